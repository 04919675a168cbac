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
        for _name, prm in sorted(model.named_parameters()):
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


class _MarkovConfig:
    """The few config fields the engine reads from a wrapped Markov chain."""

    def __init__(self, vocab_size, max_positions):
        self.vocab_size = vocab_size
        self.max_position_embeddings = max_positions


def _markov_module(chain, max_positions):
    import numpy as np
    import torch

    class MarkovCausalLM(torch.nn.Module):
        """A ``scdsim.chains.MarkovLM`` as a torch causal LM (see :func:`markov_lm`)."""

        def __init__(self):
            super().__init__()
            k = np.asarray(chain.kernels, dtype=np.float64)
            with np.errstate(divide="ignore"):
                logk = np.log(k)
            self.register_buffer("log_kernels", torch.from_numpy(logk if k.ndim == 3
                                                                  else logk[None]))
            self.register_buffer("state_of", torch.from_numpy(np.array(chain.state_of, dtype=np.int64)))
            self.start = int(chain.start)
            self.config = _MarkovConfig(chain.V, max_positions)

        def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None,
                    use_cache=True, **kwargs):
            from types import SimpleNamespace

            from transformers import DynamicCache

            B, n = input_ids.shape
            if position_ids is None:
                past = 0 if cache is None else cache.get_seq_length()
                position_ids = torch.arange(past, past + n)[None, :].expand(B, n)
            # the token at sequence position t predicts output token n = t (prompt = 1 token)
            state = torch.where(position_ids == 0, torch.full_like(input_ids, self.start),
                                self.state_of[input_ids])
            T = self.log_kernels.shape[0]
            npos = position_ids.clamp(0, T - 1)
            logits = self.log_kernels[npos, state]  # (B, n, V)
            if use_cache:
                if cache is None:
                    cache = DynamicCache()
                z = torch.zeros((B, 1, n, 1), dtype=torch.float64)
                cache.update(z, z, 0)
            return SimpleNamespace(logits=logits, cache=cache)

    return MarkovCausalLM()


def markov_lm(chain, name="markov", max_positions=4096) -> LM:
    """A ``scdsim.chains.MarkovLM`` wrapped as a torch causal LM, for the engine bridge tests.

    The prompt is one token (any id) at position 0. The logits at sequence position ``t``
    (the law of output token ``n = t``) are ``log kernel(n)[s]`` (``-inf`` where the kernel is
    0), with ``s`` the start state at ``t = 0`` and ``state_of[token at t]`` after: the state
    is read from the tokens and positions the model is given, so any cache layout (holes,
    compaction, reordering) that feeds the right tokens and position ids gives the chain's
    laws. Past positions do not matter (order 1); the model still fills a ``DynamicCache``
    (zeros) so the engine's cache operations run on it. Inhomogeneous kernels are clamped to
    their last position beyond their horizon.
    """
    import torch

    module = _markov_module(chain, max_positions)
    return LM(model=module, tokenizer=None, name=name, device=torch.device("cpu"),
              vocab_size=int(chain.V), info={"kind": "markov", "S": int(chain.S)})


def markov_pair_lms(pair, max_positions=4096):
    """``(target LM, draft LM)`` of a ``scdsim.MarkovPair`` (see :func:`markov_lm`)."""
    name = pair.name or "pair"
    return (markov_lm(pair.target, f"{name}:target", max_positions),
            markov_lm(pair.draft, f"{name}:draft", max_positions))
