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

__all__ = ["cost_profile", "engine_overhead", "predict_walltime", "null_pair"]


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


def _prefill_time(lm, context_len, batch, repeats, seed):
    """Median seconds of one forward on the whole context (``batch`` rows) into an empty cache."""
    import torch
    from transformers import DynamicCache

    from real_models.engine import _cache_kwarg

    kw = _cache_kwarg(lm.model)
    g = torch.Generator().manual_seed(seed)
    ctx = torch.randint(0, int(lm.vocab_size), (batch, context_len), generator=g).to(lm.device)
    out = []
    with torch.no_grad():
        for _ in range(repeats + 1):
            if lm.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            lm.model(input_ids=ctx, use_cache=True, **{kw: DynamicCache()})
            if lm.device.type == "cuda":
                torch.cuda.synchronize()
            out.append(time.perf_counter() - t0)
    return float(np.median(out[1:]))  # the first is a warm-up


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
    ``draft_kind``, ``by_context`` (``[{context_len, target_s, draft_s}]``), ``prefill_s`` /
    ``draft_prefill_s`` (one forward on the first context length from an empty cache).
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
    prefill = _prefill_time(target, lens[0], batch, repeats, seed)
    d_prefill = (_prefill_time(draft, lens[0], batch, repeats, seed + 1)
                 if hasattr(draft, "model") else 0.0)
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
            "repeats": repeats, "draft_kind": kind, "by_context": by,
            "prefill_s": prefill, "draft_prefill_s": d_prefill}


# --------------------------------------------------------------------------------------------
# the engine's own work, and the walltime of a batched run


def null_pair(vocab_size, seed=0, mix=0.3, peaked=False):
    """``(target, draft)`` LMs whose forwards cost almost nothing: fixed unigram laws over
    ``vocab_size`` tokens (a one-state ``MarkovLM`` wrapped by ``real_models.tiny.markov_lm``);
    the draft is ``(1 - mix) p + mix u`` for another random law u, so TV(p, q) is at most
    ``mix`` and blocks have several drafts to verify. ``peaked``: the target puts 0.99 of its
    mass on 4 tokens, so its text repeats and an n-gram draft finds matches to propose."""
    from real_models.tiny import markov_lm
    from scdsim.chains import MarkovLM

    rng = np.random.default_rng(seed)
    V = int(vocab_size)
    p = rng.dirichlet(np.full(V, 0.05)) + 1e-12
    p /= p.sum()
    if peaked:
        top = rng.choice(V, size=min(4, V), replace=False)
        p = 0.01 * p
        p[top] += 0.99 / top.shape[0]
    u = rng.dirichlet(np.full(V, 0.05)) + 1e-12
    q = (1 - mix) * p + mix * u / u.sum()
    zeros = np.zeros(V, dtype=np.int64)
    return (markov_lm(MarkovLM(p[None], start=0, state_of=zeros), "null:target"),
            markov_lm(MarkovLM(q[None], start=0, state_of=zeros), "null:draft"))


def engine_overhead(vocab_size, *, rule, gamma, batch, max_new_tokens, M=1, mode="first",
                    warp=None, contrast=None, ngram=None, repeats=3, seed=0):
    """Seconds of the engine's own work per target call of SD and per step of autoregressive
    decoding: laws and sampling in float64 over the vocabulary, the rule's acceptances,
    residuals and rejection probabilities, records, cache bookkeeping.

    Measured by running ``real_models.generate`` itself on :func:`null_pair` models of the same
    vocabulary (their forwards are a table lookup), with the run's rule, gamma, M, reading,
    warp, contrast and rows; ``ngram`` (an ``NGramDraft``) replaces the null draft. The median
    over ``repeats`` runs (after a warm-up) divided by the lockstep iterations (target calls of
    the slowest row; ``max_new_tokens`` steps for autoregressive decoding).

    Returns
    -------
    dict: ``sd_per_call_s``, ``ar_per_step_s``, ``sd_calls`` (iterations of the timed run),
    ``vocab_size``, ``batch``, ``repeats``.
    """
    import torch

    from real_models import generate

    target, draft = null_pair(vocab_size, seed, peaked=ngram is not None)
    if ngram is not None:
        draft = ngram
    prompts = [[int(i) % int(vocab_size), (7 * i + 1) % int(vocab_size)] for i in range(batch)]
    warp = dict(warp or {})
    common = dict(max_new_tokens=int(max_new_tokens), eos_token_id=None, **warp)

    def sd():
        rng = [torch.Generator().manual_seed(seed + i) for i in range(batch)]
        t0 = time.perf_counter()
        res = generate(target, prompts, draft=draft, rule=rule, gamma=gamma, M=M, batch=mode,
                       contrast=contrast, rng=rng, **common)
        return time.perf_counter() - t0, max(r[-1]["target_calls"] for r in res.records)

    def ar():
        rng = [torch.Generator().manual_seed(seed + i) for i in range(batch)]
        t0 = time.perf_counter()
        generate(target, prompts, rng=rng, amateur=draft if contrast else None,
                 contrast=contrast, **common)
        return time.perf_counter() - t0

    sd(), ar()  # warm-up
    S = [sd() for _ in range(repeats)]
    A = [ar() for _ in range(repeats)]
    calls = S[0][1]
    return {"sd_per_call_s": float(np.median([t for t, _ in S])) / calls,
            "ar_per_step_s": float(np.median(A)) / int(max_new_tokens),
            "sd_calls": int(calls), "vocab_size": int(vocab_size), "batch": int(batch),
            "repeats": int(repeats)}


def predict_walltime(profile, block_pmf, n_tokens, chunk_sizes, gamma, *, overhead=None,
                     contrast=False, row_pmfs=None):
    """Predicted walltime of SD and of autoregressive decoding of the same batched run.

    Each chunk of ``B`` prompts is decoded in lockstep until its slowest row has ``n_tokens``:
    ``E[max C]`` target calls (``scdsim.cost.expected_max_calls`` on ``block_pmf``, the law of
    tokens per call). With ``t_k`` the profile's target forward on k new tokens, ``d`` a draft
    step, ``t_pre`` / ``d_pre`` the prefills and ``o_sd`` / ``o_ar`` the engine's own work
    (:func:`engine_overhead`), all at the profile's rows,

    ``SD = t_pre + d_pre + (gamma - 1 + a) d + (E[max C] - 1) (t_{gamma+1} + (gamma + a) d)
    + E[max C] o_sd``  (the first call verifies together with the prompt's prefill);
    ``AR = t_pre + a d_pre + (n_tokens - 1) (t_1 + a d) + n_tokens o_ar``,

    where ``a = 1`` with a contrast (the amateur also gives the law at the bonus position, and
    contrastive decoding runs it at every step), else 0. Every call is charged at the full
    batch's cost (rows that finish early leave, so late calls cost a little less).
    ``row_pmfs`` (optional, one law per prompt in chunk order) gives each row its own block
    law: prompts differ, and the slowest row of a chunk is the one the draft serves worst.

    Returns
    -------
    dict: ``sd_s``, ``ar_s`` (totals over chunks), ``speedup`` (AR / SD for the same tokens),
    ``expected_calls`` (per chunk), ``per_call_s``, ``per_step_s``.
    """
    from scdsim.cost import expected_max_calls

    t = np.asarray(profile["target_s"], dtype=np.float64)
    d = float(profile["draft_s"])
    g = int(gamma)
    tg = t[min(g, t.shape[0] - 1)]
    a = 1 if contrast else 0
    t_ar = float(profile.get("ar_target_s", t[0]))
    d_ar = float(profile.get("ar_draft_s", d))
    pre, dpre = float(profile.get("prefill_s", 0.0)), float(profile.get("draft_prefill_s", 0.0))
    o_sd = float(overhead["sd_per_call_s"]) if overhead else 0.0
    o_ar = float(overhead["ar_per_step_s"]) if overhead else 0.0
    N = int(n_tokens)
    per_call = tg + (g + a) * d
    per_step = t_ar + a * d_ar
    sd_s = ar_s = 0.0
    calls = []
    if row_pmfs is not None and len(row_pmfs) != sum(int(b) for b in chunk_sizes):
        raise ValueError(f"row_pmfs has {len(row_pmfs)} laws for {sum(chunk_sizes)} rows")
    start = 0
    for B in chunk_sizes:
        if row_pmfs is not None:
            EC = expected_max_calls(np.asarray(row_pmfs[start:start + int(B)]), N)
        else:
            EC = expected_max_calls(block_pmf, N, int(B))
        start += int(B)
        calls.append(EC)
        sd_s += pre + dpre + (g - 1 + a) * d + (EC - 1) * per_call + EC * o_sd
        ar_s += pre + a * dpre + (N - 1) * per_step + N * o_ar
    return {"sd_s": sd_s, "ar_s": ar_s, "speedup": ar_s / sd_s, "expected_calls": calls,
            "per_call_s": per_call + o_sd, "per_step_s": per_step + o_ar}
