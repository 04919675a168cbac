"""Measured cost profile of a (target, draft) pair: what one target call and one draft step cost.

Leviathan's walltime model charges one unit per target call whatever it verifies; on a CPU (and
for long blocks anywhere) verifying gamma + 1 tokens costs more than one step. The profile
measures, at a given context length with a warm KV cache,

``target_s[k-1]``  seconds of one target forward on k new tokens, k = 1..gamma+1;
``draft_s``        seconds of one draft step (one new token; ~0 for an n-gram proposer);

as the median of ``repeats`` timings (min and max kept), and ``c = draft_s / target_s[0]``.
Both are measured on ``batch`` rows at once (the engine decodes a batch of prompts in lockstep,
and on a CPU a forward on 4 rows costs far less than 4 forwards on one), and at one or more
context lengths: with several, ``target_s`` and ``draft_s`` are the means over them (the run's
average cost when the lengths span it: prompt length to prompt length + new tokens), and
``by_context`` keeps each.
``real_models.validate.score`` turns it into a speedup prediction:
``tokens_per_call * target_s[0] / (target_s[gamma] + gamma * draft_s)``.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["cost_profile"]


def _forward_timer(lm, context_len, seed, batch=1):
    """A function ``k -> seconds`` of one cached forward on k new tokens (``batch`` rows) after a
    fixed context."""
    import torch
    from transformers import DynamicCache

    from real_models.engine import _cache_kwarg

    model = lm.model
    kw = _cache_kwarg(model)
    g = torch.Generator().manual_seed(seed)
    V = int(lm.vocab_size)
    ctx = torch.randint(0, V, (batch, context_len), generator=g).to(lm.device)

    cache = DynamicCache()
    with torch.no_grad():
        model(input_ids=ctx, use_cache=True, **{kw: cache})  # the context, prefilled once

    def run(k):
        nonlocal cache
        new = torch.randint(0, V, (batch, k), generator=g).to(lm.device)
        pos = torch.arange(context_len, context_len + k, device=lm.device)[None].expand(batch, k)
        mask = torch.ones((batch, context_len + k), dtype=torch.long, device=lm.device)
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


def _profile_one(target, draft, gamma, context_len, repeats, seed, batch):
    tgt = _forward_timer(target, context_len, seed, batch)
    T = np.zeros((gamma + 1, repeats))
    for k in range(1, gamma + 2):
        tgt(k)  # warm-up
        for j in range(repeats):
            T[k - 1, j] = tgt(k)
    if hasattr(draft, "model"):
        dft = _forward_timer(draft, context_len, seed + 1, batch)
        dft(1)
        D = np.array([dft(1) for _ in range(repeats)])
        kind = "model"
    else:
        ctx = list(range(context_len))
        D = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _row in range(batch):
                draft.propose(ctx, gamma)
            D.append((time.perf_counter() - t0) / gamma)
        D = np.array(D)
        kind = "ngram"
    return T, D, kind


def cost_profile(target, draft, gamma=4, context_len=64, repeats=7, seed=0, batch=1):
    """Measure the cost profile (module docstring) of ``target`` and ``draft``.

    Parameters
    ----------
    target : real_models.LM
    draft : real_models.LM or an n-gram proposer (``propose(context, k)``)
    gamma : int >= 1
    context_len : int >= 1, or a sequence of them
        Tokens already in the cache when the timed call runs; with several lengths the profile
        is their mean (``by_context`` keeps each).
    repeats : int >= 1
        Timings per point (after one warm-up); the median is used.
    batch : int >= 1
        Rows decoded together (the engine's batch of prompts).

    Returns
    -------
    dict: ``target_s`` (gamma+1 medians), ``target_min_s``, ``target_max_s``, ``draft_s``,
    ``draft_min_s``, ``draft_max_s``, ``c``, ``verify_cost_ratio`` (t(gamma+1)/t(1)),
    ``context_len`` (the list of lengths, or the one length), ``batch``, ``repeats``,
    ``draft_kind``, ``by_context`` (``[{context_len, target_s, draft_s}]``).
    """
    lens = [context_len] if isinstance(context_len, (int, np.integer)) and not isinstance(
        context_len, bool) else list(context_len) if isinstance(context_len, (list, tuple)) \
        else None
    if not lens:
        raise ValueError(f"context_len must be an int >= 1 or a non-empty list of them, got "
                         f"{context_len!r}")
    for name, v, lo in (("gamma", gamma, 1), ("repeats", repeats, 1), ("batch", batch, 1),
                        *(("context_len", int(c) if isinstance(c, np.integer) else c, 1)
                          for c in lens)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    lens = [int(c) for c in lens]
    Ts, Ds, by = [], [], []
    for i, L in enumerate(lens):
        T, D, kind = _profile_one(target, draft, gamma, L, repeats, seed + 2 * i, batch)
        Ts.append(T)
        Ds.append(D)
        by.append({"context_len": L, "target_s": np.median(T, axis=1).tolist(),
                   "draft_s": float(np.median(D))})
    med = np.mean([np.median(T, axis=1) for T in Ts], axis=0)
    dmed = float(np.mean([np.median(D) for D in Ds]))
    Tall, Dall = np.concatenate(Ts, axis=1), np.concatenate(Ds)
    return {"target_s": med.tolist(), "target_min_s": Tall.min(1).tolist(),
            "target_max_s": Tall.max(1).tolist(), "draft_s": dmed,
            "draft_min_s": float(Dall.min()), "draft_max_s": float(Dall.max()),
            "c": float(dmed / med[0]), "verify_cost_ratio": float(med[gamma] / med[0]),
            "context_len": lens[0] if len(lens) == 1 else lens, "batch": int(batch),
            "repeats": repeats, "draft_kind": kind, "by_context": by}
