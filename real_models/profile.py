"""Measured cost profile of a (target, draft) pair: what one target call and one draft step cost.

Leviathan's walltime model charges one unit per target call whatever it verifies; on a CPU (and
for long blocks anywhere) verifying gamma + 1 tokens costs more than one step. The profile
measures, at a given context length with a warm KV cache,

``target_s[k-1]``  seconds of one target forward on k new tokens, k = 1..gamma+1;
``draft_s``        seconds of one draft step (one new token; ~0 for an n-gram proposer);

as the median of ``repeats`` timings (min and max kept), and ``c = draft_s / target_s[0]``.
``real_models.validate.score`` turns it into a speedup prediction:
``tokens_per_call * target_s[0] / (target_s[gamma] + gamma * draft_s)``.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["cost_profile"]


def _forward_timer(lm, context_len, seed):
    """A function ``k -> seconds`` of one cached forward on k new tokens after a fixed context."""
    import torch
    from transformers import DynamicCache

    from real_models.engine import _cache_kwarg

    model = lm.model
    kw = _cache_kwarg(model)
    g = torch.Generator().manual_seed(seed)
    V = int(lm.vocab_size)
    ctx = torch.randint(0, V, (1, context_len), generator=g).to(lm.device)

    cache = DynamicCache()
    with torch.no_grad():
        model(input_ids=ctx, use_cache=True, **{kw: cache})  # the context, prefilled once

    def run(k):
        nonlocal cache
        new = torch.randint(0, V, (1, k), generator=g).to(lm.device)
        pos = torch.arange(context_len, context_len + k, device=lm.device)[None]
        mask = torch.ones((1, context_len + k), dtype=torch.long, device=lm.device)
        with torch.no_grad():
            if lm.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(input_ids=new, position_ids=pos, attention_mask=mask, use_cache=True,
                  **{kw: cache})
            if lm.device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            if hasattr(cache, "crop"):  # back to the context for the next timing
                cache.crop(-k)  # transformers 5: a negative count drops that many
            else:  # pragma: no cover - caches without crop: prefill again
                cache = DynamicCache()
                model(input_ids=ctx, use_cache=True, **{kw: cache})
        return dt
    return run


def cost_profile(target, draft, gamma=4, context_len=64, repeats=7, seed=0):
    """Measure the cost profile (module docstring) of ``target`` and ``draft``.

    Parameters
    ----------
    target : real_models.LM
    draft : real_models.LM or an n-gram proposer (``propose(context, k)``)
    gamma : int >= 1
    context_len : int >= 1
        Tokens already in the cache when the timed call runs.
    repeats : int >= 1
        Timings per point (after one warm-up); the median is used.

    Returns
    -------
    dict: ``target_s`` (gamma+1 medians), ``target_min_s``, ``target_max_s``, ``draft_s``,
    ``draft_min_s``, ``draft_max_s``, ``c``, ``verify_cost_ratio`` (t(gamma+1)/t(1)),
    ``context_len``, ``repeats``, ``draft_kind``.
    """
    for name, v, lo in (("gamma", gamma, 1), ("context_len", context_len, 1),
                        ("repeats", repeats, 1)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    tgt = _forward_timer(target, context_len, seed)
    T = np.zeros((gamma + 1, repeats))
    for k in range(1, gamma + 2):
        tgt(k)  # warm-up
        for j in range(repeats):
            T[k - 1, j] = tgt(k)
    if hasattr(draft, "model"):
        dft = _forward_timer(draft, context_len, seed + 1)
        dft(1)
        D = np.array([dft(1) for _ in range(repeats)])
        kind = "model"
    else:
        ctx = list(range(context_len))
        D = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            draft.propose(ctx, gamma)
            D.append((time.perf_counter() - t0) / gamma)
        D = np.array(D)
        kind = "ngram"
    med = np.median(T, axis=1)
    return {"target_s": med.tolist(), "target_min_s": T.min(1).tolist(),
            "target_max_s": T.max(1).tolist(), "draft_s": float(np.median(D)),
            "draft_min_s": float(D.min()), "draft_max_s": float(D.max()),
            "c": float(np.median(D) / med[0]), "verify_cost_ratio": float(med[gamma] / med[0]),
            "context_len": context_len, "repeats": repeats, "draft_kind": kind}
