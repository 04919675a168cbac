"""``real_models.generate``: one entry point for every decoder.

With a ``draft`` it runs the speculative engine (``real_models.engine``: SD, multi-draft, SCD
when ``contrast`` is given, n-gram drafts); without one, the autoregressive decoders of
``real_models.decoders`` (sampling, greedy, beam, contrastive decoding with ``amateur``).
"""

from __future__ import annotations

from real_models.results import GenerationResult
from scdsim._validate import check_choice, check_int

__all__ = ["generate", "encode_prompts", "make_rngs"]


def encode_prompts(target, prompts, chat=False):
    """Token-id lists from strings (tokenised as they are; ``chat=True`` applies the chat
    template with a generation prompt) or token-id lists (passed through)."""
    if isinstance(prompts, (str, bytes)) or (
            isinstance(prompts, (list, tuple)) and prompts and isinstance(prompts[0], int)):
        raise TypeError("prompts must be a list of prompts (strings or token-id lists), got a "
                        "single prompt; wrap it in a list")
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError(f"prompts must be a non-empty list, got {prompts!r}")
    tok = target.tokenizer
    ids = []
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            if tok is None:
                raise TypeError(f"prompt {i} is a string but target {target.name!r} has no "
                                "tokenizer; pass token-id lists")
            if chat:
                if getattr(tok, "chat_template", None) is None:
                    raise ValueError(f"chat=True but the tokenizer of {target.name!r} has no "
                                     "chat template (a base model)")
                enc = tok.apply_chat_template([{"role": "user", "content": p}],
                                              add_generation_prompt=True, tokenize=True)
                if isinstance(enc, dict) or hasattr(enc, "keys"):
                    enc = enc["input_ids"]
                ids.append([int(t) for t in enc])
            else:
                ids.append([int(t) for t in tok(p)["input_ids"]])
        else:
            try:
                ids.append([int(t) for t in p])
            except TypeError as err:
                raise TypeError(f"prompt {i} must be a string or a list of token ids, got "
                                f"{type(p).__name__}") from err
    return ids


def make_rngs(rng, n):
    """One ``torch.Generator`` per prompt (``real_models.decoders.make_rngs``; imported when
    called, so that importing this module does not import torch)."""
    from real_models import decoders

    return decoders.make_rngs(rng, n)


def generate(target, prompts, draft=None, rule=None, gamma=4, M=1, batch="first",
             max_new_tokens=64, temperature=1.0, top_k=None, top_p=None, min_p=None,
             epsilon=None, decoder="sample", num_beams=1, length_penalty=1.0,
             no_repeat_ngram_size=0, amateur=None, contrast=None, chat=False, rng=None,
             eos_token_id="auto") -> GenerationResult:
    """Generate from ``target`` for a list of prompts.

    Parameters
    ----------
    target : LM
    prompts : list of str or list of list of int
    draft : LM, NGramDraft, str spec (``make_draft``) or None
        With a draft, speculative decoding with ``rule`` (default ``rules.lossless``), ``gamma``
        drafts per block and ``M`` drafts per position (``batch`` "first" or "tree"). With
        ``contrast`` as well, speculative contrastive decoding: the draft is the amateur.
    temperature, top_k, top_p, min_p, epsilon
        The sampling law (``scdsim.distributions.warp``) of target and draft; temperature 0 is
        greedy.
    decoder, num_beams, length_penalty, no_repeat_ngram_size
        Autoregressive decoders (no draft): "sample" or "beam".
    amateur, contrast
        Contrastive decoding: the amateur LM and ``scdsim.contrast.contrastive``'s parameters.
    chat : bool
        Apply the tokenizer's chat template to string prompts.
    rng : None, int, or one int / torch.Generator per prompt
        A row's tokens depend on its own stream only.
    eos_token_id : int, list, None or "auto"
        "auto": the tokenizer's EOS when there is a tokenizer, else none.

    Returns
    -------
    GenerationResult
    """
    ids = encode_prompts(target, prompts, chat=chat)
    check_choice(decoder, "decoder", {"sample", "beam"})
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens", minimum=1)
    if isinstance(eos_token_id, str):
        if eos_token_id != "auto":
            raise ValueError(f"eos_token_id must be an int, a list, None or 'auto', got "
                             f"{eos_token_id!r}")
        tok = target.tokenizer
        eos_token_id = getattr(tok, "eos_token_id", None) if tok is not None else None
    warp = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": min_p,
            "epsilon": epsilon}
    rngs = make_rngs(rng, len(ids))
    settings = {"decoder": "speculative" if draft is not None else decoder,
                "temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": min_p,
                "epsilon": epsilon, "max_new_tokens": max_new_tokens, "chat": chat,
                "rng": rng if rng is None or isinstance(rng, int) else "per-prompt"}
    if draft is not None:
        from real_models import engine
        from scdsim import rules as _rules

        if decoder != "sample" or num_beams != 1:
            raise ValueError("speculative decoding samples (or is greedy at temperature 0); "
                             f"decoder={decoder!r}, num_beams={num_beams} need draft=None")
        if no_repeat_ngram_size:
            raise ValueError("no_repeat_ngram_size is not supported with a draft (it would "
                             "change p between drafting and verification); use draft=None")
        if isinstance(draft, str):
            from real_models.drafters import make_draft
            draft = make_draft(target, draft)
        if amateur is not None and amateur is not draft:
            raise ValueError("in speculative contrastive decoding the amateur is the draft: pass "
                             "draft=amateur (and contrast=...), not a different amateur")
        rule = _rules.lossless if rule is None else rule
        return engine.speculative_generate(
            target, draft, ids, rule=rule, gamma=gamma, M=M, batch=batch,
            max_new_tokens=max_new_tokens, warp=warp, contrast=contrast,
            eos_token_id=eos_token_id, rngs=rngs, settings=settings)
    if rule is not None or M != 1:
        raise ValueError("rule and M apply to speculative decoding: pass a draft")
    from real_models import decoders

    if decoder == "beam":
        return decoders.beam(target, ids, num_beams=num_beams, length_penalty=length_penalty,
                             max_new_tokens=max_new_tokens,
                             no_repeat_ngram_size=no_repeat_ngram_size,
                             eos_token_id=eos_token_id, amateur=amateur, contrast=contrast)
    return decoders.sample(target, ids, max_new_tokens=max_new_tokens, temperature=temperature,
                           top_k=top_k, top_p=top_p, min_p=min_p, epsilon=epsilon,
                           no_repeat_ngram_size=no_repeat_ngram_size, eos_token_id=eos_token_id,
                           amateur=amateur, contrast=contrast, rngs=rngs)
