"""Tiny models for fast tests: seeded random transformers built from a config (no download).

``random_lm`` gives a real ``transformers`` Llama causal LM with a few thousand parameters whose
weights depend only on ``seed`` (a private ``torch.Generator``; the global torch seed is never
touched), so tests of the engine run in milliseconds and are reproducible.
"""

from __future__ import annotations

from real_models.lm import LM


def random_lm(vocab_size: int = 32, hidden_size: int = 32, layers: int = 2, heads: int = 4,
              seed: int = 0, scale: float = 1.0, max_positions: int = 512, dtype=None) -> LM:
    """A seeded random Llama causal LM (no tokenizer).

    Parameters
    ----------
    vocab_size, hidden_size, layers, heads : int
        Shape of the model (``hidden_size`` must be divisible by ``heads``).
    seed : int
        The weights are a function of ``seed`` alone.
    scale : float
        Multiplies the initial weight standard deviation: larger values give peakier
        (lower-entropy) next-token laws.
    max_positions : int
        Context length the model accepts.
    dtype : torch.dtype, optional
        Weight dtype (default float32).
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden_size % heads:
        raise ValueError(f"hidden_size={hidden_size} must be divisible by heads={heads}")
    cfg = LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=max_positions, tie_word_embeddings=False,
        bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )
    model = LlamaForCausalLM(cfg)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, prm in sorted(model.named_parameters()):
            if prm.ndim == 1:  # norms: keep at one
                prm.fill_(1.0)
            else:
                prm.copy_(torch.randn(prm.shape, generator=gen) * (0.02 * 8 * scale))
    model.eval()
    if dtype is not None:
        model = model.to(dtype)
    return LM(model=model, tokenizer=None, name=f"random-llama(V={vocab_size}, seed={seed})",
              device=torch.device("cpu"), vocab_size=vocab_size,
              info={"kind": "random", "seed": int(seed), "layers": layers, "hidden": hidden_size})
