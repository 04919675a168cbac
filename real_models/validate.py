"""Predictions against outcomes on real models: scoring engine records, and the validate run.

Scoring (pure functions over the record dicts of CONTRACTS.md; no model needed)
-------------------------------------------------------------------------------
Rejections. At every verified position t (kind accepted or recovered) the rule rejects with
probability ``r_t`` (the record's ``rejection_prob``, else its ``tv``), a function of the
realised (p_t, q_t). ``D = #recovered - sum_t r_t`` is a martingale (each increment has
conditional mean 0 given the past), so ``E[D] = 0`` and ``E[D^2] = E[sum_t r_t (1 - r_t)]``
exactly; ``z = D / sqrt(sum_t r_t (1 - r_t))`` is asymptotically N(0, 1), per prompt and pooled.

Tokens per target call and block lengths, observed (complete blocks: those that started at least
gamma + 1 tokens before the length limit, so that whether a block counts does not depend on its
length) against three predictions:
(a) ``iid``        Leviathan Eq. (1) at the mean acceptance ``alpha = 1 - mean_t r_t``;
(b) ``positional`` ``1 + sum_k prod_{i<=k} alpha_i`` with ``alpha_k`` the mean of ``1 - r_t``
                   over the verified positions at draft position k (phase) of a block
                   (``scdsim.cost.expected_tokens_positional``): drops the i.i.d. assumption;
(c) ``surrogate``  a Markov surrogate solved by the exact engine (``real_models.surrogate``).
Speedup: measured (autoregressive time per token / SD time per token, same prompts and
settings) against Leviathan Thm 3.8 at ``alpha`` and the measured ``c``, and against a cost
profile (measured time of one target call verifying gamma+1 tokens and of a draft step, on the
run's batch of prompts, averaged over the context lengths at the start and end of a generation)
used two ways: forwards only at the per-position tokens per call (``profile_forwards_only``),
and the walltime model of ``real_models.profile.predict_walltime`` (``profile``): a batch runs
until its slowest row is done (``scdsim.cost.expected_max_calls``), plus prefills and the
engine's own work per call and per step (``real_models.profile.engine_overhead``, measured on
free null models of the same vocabulary).
Intervals: bootstrap over prompts (percentile, 95 %) and s.e. over prompts.

Files written by ``run_validate(out=DIR)`` (figures 9-11 read them)
-------------------------------------------------------------------
``DIR/prompts.jsonl``   first line ``{"header": inputs}``; then one line per prompt, written as
                        it finishes: ``{"prompt", "id", "kind", "text_prompt", "tokens",
                        "text", "records", "sd_time_s", "sd_tokens", "ar_time_s",
                        "ar_tokens", "chunk", "summary"}`` (``summary`` is
                        :func:`prompt_summary`; times of a batch are shared out by tokens).
``DIR/summary.json``    ``{"inputs": {...}, "environment": {...}, "profile": {...} | None,
                        "score": score(...), "surrogate": {"S", "fit", "prediction",
                        "held_out": {S, surrogate, surrogate_rel_error, iid, iid_rel_error,
                        positional_train, positional_rel_error, observed, observed_ci}} |
                        None, "table": str}``; ``score`` holds
                        ``rejections`` {observed, expected, z_pooled, z_per_prompt, z_mean,
                        z_sd, ks_pvalue, shapiro_pvalue, looks_standard_normal, ...},
                        ``alpha`` {value, ci}, ``tokens_per_call`` {observed, sem, ci,
                        block_mean, block_mean_ci}, ``block_length_pmf`` {observed, iid,
                        positional, surrogate?}, ``predictions`` {iid|positional|surrogate:
                        {tokens_per_call, ratio, ratio_ci}}, ``closest``,
                        ``acceptance_by_phase`` {value, count}, ``entropy`` {accepted, rejected},
                        ``speedup`` {measured, ci, timed_batches, c, leviathan, profile,
                        verify_cost_ratio, ratio_leviathan, ratio_profile, within_leviathan,
                        within_profile}.
``DIR/profile.json``    ``real_models.profile.cost_profile`` + environment + inputs (measured
                        once per directory; a resume reuses it).
``DIR/summary.txt``     the table printed to stdout.
``DIR/blocks.png``      block-length pmf, observed vs (a), (b), (c).
``DIR/zscores.png``     per-prompt z against N(0, 1) (histogram and QQ).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

__all__ = [
    "verified_rejection_probs",
    "prompt_summary",
    "score",
    "format_table",
    "synthetic_records",
    "capped_geometric_pmf",
    "positional_pmf",
    "run_validate",
    "plot_summary",
    "context_features",
    "environment",
]

VERIFIED = ("accepted", "recovered")


def _r(rec):
    r = rec.get("rejection_prob")
    if r is None:
        r = rec.get("tv")
    if r is None:
        raise ValueError(f"record at index {rec.get('index')} of prompt {rec.get('prompt')} is "
                         f"verified ({rec['kind']}) but has neither rejection_prob nor tv")
    return float(r)


def verified_rejection_probs(records):
    """``(r, rejected)``: the rule's rejection probability and the outcome at verified positions."""
    ver = [rec for rec in records if rec["kind"] in VERIFIED]
    r = np.array([_r(rec) for rec in ver], dtype=np.float64)
    rej = np.array([rec["kind"] == "recovered" for rec in ver], dtype=bool)
    return r, rej


def prompt_summary(records, gamma):
    """Additive statistics of one prompt's records (JSON-safe dict).

    Parameters
    ----------
    records : list of dict
        One prompt's records (CONTRACTS.md), in emission order.
    gamma : int
        Drafts per block (the block-length axis has ``gamma + 2`` cells, index = tokens).

    Returns
    -------
    dict with ``tokens``, ``target_calls``, ``verified``, ``rejections`` (observed),
    ``expected_rejections`` (sum r_t), ``var_rejections`` (sum r_t (1 - r_t)), ``z``,
    ``phase_accept`` / ``phase_count`` (sum of 1 - r_t and count per draft position),
    ``block_hist`` (complete blocks by tokens emitted: those that started at least gamma + 1
    tokens before the prompt's last token, so that the length limit cannot have cut them),
    ``block_hist_all`` (every block),
    ``entropy_accepted`` / ``entropy_rejected`` (sums of entropy_p) and their counts.
    """
    gamma = int(gamma)
    r, rej = verified_rejection_probs(records)
    var = float(np.sum(r * (1.0 - r)))
    obs, exp = int(rej.sum()), float(r.sum())
    phase_accept = np.zeros(max(gamma, 1))
    phase_count = np.zeros(max(gamma, 1), dtype=np.int64)
    blocks = defaultdict(list)
    ent = {"accepted": [0.0, 0], "recovered": [0.0, 0]}
    for rec in records:
        blocks[rec["block"]].append(rec)
        if rec["kind"] in VERIFIED:
            k = int(rec["pos_in_block"])
            if k >= phase_accept.shape[0]:
                raise ValueError(f"record pos_in_block={k} >= gamma={gamma} at a verified position")
            phase_accept[k] += 1.0 - _r(rec)
            phase_count[k] += 1
            if rec.get("entropy_p") is not None:
                ent[rec["kind"]][0] += float(rec["entropy_p"])
                ent[rec["kind"]][1] += 1
    hist = np.zeros(gamma + 2, dtype=np.int64)
    hist_all = np.zeros(gamma + 2, dtype=np.int64)
    total = len(records)
    for recs in blocks.values():
        n = min(len(recs), gamma + 1)
        hist_all[n] += 1
        # a block counts as complete when it started with the full draft budget and room for
        # all gamma + 1 tokens: whether it is counted then does not depend on its length.
        # (Dropping just the last block would not do: a block starting near the length limit
        # survives only if it happens to be short, which biases the law toward short blocks.)
        if int(recs[0]["index"]) + gamma + 1 <= total and recs[-1]["kind"] in (
                "recovered", "bonus", "plain"):
            hist[n] += 1
    calls = max((int(rec.get("target_calls", 0)) for rec in records), default=0) or len(blocks)
    return {
        "tokens": len(records), "target_calls": calls, "verified": int(r.shape[0]),
        "rejections": obs, "expected_rejections": exp, "var_rejections": var,
        "z": (obs - exp) / math.sqrt(var) if var > 0 else None,
        "phase_accept": phase_accept.tolist(), "phase_count": phase_count.tolist(),
        "block_hist": hist.tolist(), "block_hist_all": hist_all.tolist(),
        "entropy_accepted": ent["accepted"][0], "n_entropy_accepted": ent["accepted"][1],
        "entropy_rejected": ent["recovered"][0], "n_entropy_rejected": ent["recovered"][1],
    }


def capped_geometric_pmf(alpha, gamma):
    """Law of the tokens per block under i.i.d. acceptance ``alpha`` (index = tokens, 0..gamma+1)."""
    return positional_pmf(np.full(int(gamma), float(alpha)))


def positional_pmf(alphas):
    """Law of the tokens per block when draft k is accepted w.p. ``alphas[k]`` given k-1 were."""
    alphas = np.asarray(alphas, dtype=np.float64)
    g = alphas.shape[0]
    reach = np.concatenate([[1.0], np.cumprod(alphas)])  # P(first k drafts accepted), k=0..g
    pmf = np.zeros(g + 2)
    pmf[1:g + 1] = reach[:g] * (1.0 - alphas)
    pmf[g + 1] = reach[g]
    return pmf


def _stack(summaries, gamma):
    """Per-prompt additive statistics as arrays (n, ...)."""
    def col(k, dtype=np.float64):
        return np.array([s[k] for s in summaries], dtype=dtype)
    return {
        "tokens": col("tokens"), "calls": col("target_calls"), "verified": col("verified"),
        "O": col("rejections"), "E": col("expected_rejections"), "V": col("var_rejections"),
        "phase_accept": np.array([s["phase_accept"] for s in summaries], dtype=np.float64),
        "phase_count": np.array([s["phase_count"] for s in summaries], dtype=np.float64),
        "hist": np.array([s["block_hist"] for s in summaries], dtype=np.float64),
        "ent_acc": col("entropy_accepted"), "n_ent_acc": col("n_entropy_accepted"),
        "ent_rej": col("entropy_rejected"), "n_ent_rej": col("n_entropy_rejected"),
    }


def _pooled(w, st, gamma):
    """Pooled statistics for prompt weights ``w`` (n,) or (B, n) (bootstrap counts)."""
    from scdsim.cost import expected_tokens, expected_tokens_positional

    def tot(k):
        return w @ st[k]
    E, O, V, ver = tot("E"), tot("O"), tot("V"), tot("verified")
    alpha = 1.0 - E / np.maximum(ver, 1e-300)
    alpha = np.clip(alpha, 0.0, 1.0)
    pa, pc = tot("phase_accept"), tot("phase_count")
    alphas = np.where(pc > 0, pa / np.maximum(pc, 1e-300), 0.0)
    hist = tot("hist")
    nblocks = hist.sum(axis=-1)
    j = np.arange(hist.shape[-1])
    out = {
        "O": O, "E": E, "V": V, "alpha": alpha, "alphas": alphas, "phase_count": pc,
        "tpc": tot("tokens") / tot("calls"),
        "block_mean": (hist @ j) / np.maximum(nblocks, 1e-300),
        "hist": hist,
        "iid": expected_tokens(alpha, gamma) if gamma > 0 else np.ones_like(alpha),
        "positional": expected_tokens_positional(np.clip(alphas[..., :gamma], 0.0, 1.0))
        if gamma > 0 else np.ones_like(alpha),
        "z": (O - E) / np.sqrt(np.maximum(V, 1e-300)),
    }
    return out


def _ci(x, level=0.95):
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return [None, None]
    lo, hi = np.quantile(x, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def _sem_ratio(num, den):
    """Delta-method s.e. of sum(num)/sum(den) over prompts (n >= 2), else None."""
    n = num.shape[0]
    if n < 2 or den.sum() <= 0:
        return None
    R = num.sum() / den.sum()
    resid = num - R * den
    return float(math.sqrt(n * np.sum(resid ** 2) / (n - 1)) / den.sum())


def score(summaries, gamma, surrogate=None, timing=None, profile=None, n_boot=2000, seed=0,
          level=0.95, contrast=False):
    """Predictions against outcomes, pooled over prompts, with intervals.

    Parameters
    ----------
    summaries : list of dict
        :func:`prompt_summary` of each prompt.
    gamma : int
        Drafts per block.
    surrogate : dict, optional
        ``{"tokens_per_call": float, "block_length_pmf": list}`` from ``real_models.surrogate``.
    timing : dict, optional
        ``{"sd_time_s", "ar_time_s", "sd_tokens", "ar_tokens"}``, each a list over prompts: the
        measured walltimes of SD and of autoregressive decoding; optional ``"chunk"`` (the batch
        each prompt was timed in): the interval resamples batches (none with one batch).
    profile : dict, optional
        ``{"target_s": [t(1), ..., t(gamma+1)], "draft_s": t_d}`` from ``real_models.profile``:
        seconds of one target call on k new tokens with cache, and of one draft step, at the
        SD run's rows (batch x M); optional ``"ar_target_s"`` / ``"ar_draft_s"``: one step at
        the autoregressive baseline's rows when they differ (M > 1).
    contrast : bool
        SCD against contrastive decoding: the amateur (the draft) runs gamma + 1 steps per call
        and one step per token of the baseline, so both costs include it.
    n_boot : int
        Bootstrap resamples over prompts.

    Returns
    -------
    dict (JSON-safe); see the module docstring.
    """
    from scipy import stats

    from scdsim.cost import speedup as lev_speedup

    gamma = int(gamma)
    if not summaries:
        raise ValueError("summaries is empty: no prompt finished")
    n = len(summaries)
    st = _stack(summaries, gamma)
    pt = _pooled(np.ones(n), st, gamma)
    rng = np.random.default_rng(seed)
    W = rng.multinomial(n, np.full(n, 1.0 / n), size=int(n_boot)).astype(np.float64)
    bs = _pooled(W, st, gamma)

    zs = np.array([s["z"] for s in summaries if s["z"] is not None], dtype=np.float64)
    ks = stats.kstest(zs, "norm").pvalue if zs.size >= 2 else float("nan")
    sh = stats.shapiro(zs).pvalue if zs.size >= 3 else float("nan")
    looks = None
    if zs.size >= 8:
        looks = bool(ks > 0.01 and (not np.isfinite(sh) or sh > 0.01)
                     and abs(pt["z"]) < 4.89)
    D = st["O"] - st["E"]
    rejections = {
        "observed": float(pt["O"]), "expected": float(pt["E"]), "variance": float(pt["V"]),
        "difference": float(pt["O"] - pt["E"]),
        "difference_ci": _ci(bs["O"] - bs["E"], level),
        "z_pooled": float(pt["z"]), "z_per_prompt": zs.tolist(),
        "z_mean": float(zs.mean()) if zs.size else None,
        "z_sem": float(zs.std(ddof=1) / math.sqrt(zs.size)) if zs.size >= 2 else None,
        "z_sd": float(zs.std(ddof=1)) if zs.size >= 2 else None,
        "ks_pvalue": float(ks), "shapiro_pvalue": float(sh),
        "looks_standard_normal": looks,
        "mean_D": float(D.mean()), "sem_D": float(D.std(ddof=1) / math.sqrt(n)) if n >= 2 else None,
        "mean_rejections": float(st["O"].mean()),
        "sem_rejections": float(st["O"].std(ddof=1) / math.sqrt(n)) if n >= 2 else None,
    }
    obs_pmf = pt["hist"] / max(pt["hist"].sum(), 1e-300)
    preds = {"iid": float(pt["iid"]), "positional": float(pt["positional"])}
    pred_boot = {"iid": bs["iid"], "positional": bs["positional"]}
    pmfs = {"observed": obs_pmf.tolist(),
            "iid": capped_geometric_pmf(float(pt["alpha"]), gamma).tolist(),
            "positional": positional_pmf(np.clip(pt["alphas"][:gamma], 0, 1)).tolist()}
    if surrogate is not None:
        preds["surrogate"] = float(surrogate["tokens_per_call"])
        pred_boot["surrogate"] = np.full(int(n_boot), preds["surrogate"])
        if surrogate.get("block_length_pmf") is not None:
            pmfs["surrogate"] = list(surrogate["block_length_pmf"])
    predictions = {}
    for k, v in preds.items():
        ratio_b = pred_boot[k] / bs["block_mean"]
        predictions[k] = {"tokens_per_call": v, "ratio": v / float(pt["block_mean"]),
                          "ratio_ci": _ci(ratio_b, level),
                          "abs_error": abs(v - float(pt["block_mean"]))}
    closest = min(predictions, key=lambda k: abs(math.log(predictions[k]["ratio"])))
    out = {
        "prompts": n, "gamma": gamma, "level": level, "n_boot": int(n_boot),
        "rejections": rejections,
        "alpha": {"value": float(pt["alpha"]), "ci": _ci(bs["alpha"], level)},
        "tokens_per_call": {
            "observed": float(pt["tpc"]), "sem": _sem_ratio(st["tokens"], st["calls"]),
            "ci": _ci(bs["tpc"], level), "block_mean": float(pt["block_mean"]),
            "block_mean_ci": _ci(bs["block_mean"], level),
            "complete_blocks": int(pt["hist"].sum())},
        "block_length_pmf": pmfs,
        "predictions": predictions, "closest": closest,
        "acceptance_by_phase": {"value": pt["alphas"].tolist(),
                                "count": pt["phase_count"].tolist(),
                                "ci": [_ci(bs["alphas"][:, k], level)
                                       for k in range(bs["alphas"].shape[1])]},
        "entropy": {
            "accepted": float(st["ent_acc"].sum() / max(st["n_ent_acc"].sum(), 1)),
            "rejected": float(st["ent_rej"].sum() / max(st["n_ent_rej"].sum(), 1)),
            "n_accepted": int(st["n_ent_acc"].sum()), "n_rejected": int(st["n_ent_rej"].sum())},
    }
    if timing is not None:
        sd_t = np.asarray(timing["sd_time_s"], dtype=np.float64)
        ar_t = np.asarray(timing["ar_time_s"], dtype=np.float64)
        sd_n = np.asarray(timing["sd_tokens"], dtype=np.float64)
        ar_n = np.asarray(timing["ar_tokens"], dtype=np.float64)
        measured = (ar_t.sum() / ar_n.sum()) / (sd_t.sum() / sd_n.sum())
        # prompts timed in one batch share its time: resample batches, not prompts
        chunk = np.asarray(timing.get("chunk", np.arange(n)))
        ids_, inv = np.unique(chunk, return_inverse=True)
        k = ids_.shape[0]
        if k >= 2:
            Wc = rng.multinomial(k, np.full(k, 1.0 / k), size=int(n_boot)).astype(np.float64)
            Wp = Wc[:, inv]
            mb = (Wp @ ar_t / (Wp @ ar_n)) / (Wp @ sd_t / (Wp @ sd_n))
            ci = _ci(mb, level)
        else:
            mb, ci = np.full(1, measured), [None, None]
        sp = {"measured": float(measured), "ci": ci, "timed_batches": int(k)}
        if profile is not None:
            t = np.asarray(profile["target_s"], dtype=np.float64)
            td = float(profile["draft_s"])
            c = td / t[0]
            lev = lev_speedup(float(pt["alpha"]), gamma, c)
            tg = t[min(gamma, t.shape[0] - 1)]
            # per call: one target call on gamma+1 tokens and gamma draft steps (gamma + 1 in
            # SCD: the amateur's law at the bonus position); per token of plain decoding: one
            # target call on 1 token (and one amateur step in contrastive decoding)
            t_ar = float(profile.get("ar_target_s", t[0]))
            d_ar = float(profile.get("ar_draft_s", td))
            per_token = t_ar + (d_ar if contrast else 0.0)
            per_call = tg + (gamma + (1 if contrast else 0)) * td
            # (i) forwards only, long generations: tokens per call x cost ratio
            prof_fwd = float(pt["positional"]) * per_token / per_call
            # (ii) the walltime model: lockstep batches (the slowest row sets the calls),
            # prefills, and the engine's own work per call / step when it was measured
            from real_models.profile import predict_walltime

            _, sizes = np.unique(np.asarray(timing.get("chunk", np.arange(n))),
                                 return_counts=True)
            # each prompt's own block law (per-position acceptance, the pooled value where
            # the prompt never reached a position), rows in chunk order
            order = np.argsort(np.asarray(timing.get("chunk", np.arange(n))), kind="stable")
            pooled = np.clip(pt["alphas"][:gamma], 0, 1)
            rows_pmf = []
            for i in order:
                cnt = st["phase_count"][i][:gamma]
                own = np.where(cnt > 0, st["phase_accept"][i][:gamma] / np.maximum(cnt, 1),
                               pooled)
                rows_pmf.append(positional_pmf(np.clip(own, 0, 1)))
            wall = predict_walltime(
                profile, positional_pmf(pooled), int(max(sd_n.max(), 1)), sizes.tolist(), gamma,
                overhead=profile.get("overhead"), contrast=contrast, row_pmfs=rows_pmf)
            prof = float(wall["speedup"])
            sp.update({
                "c": c, "leviathan": float(lev), "profile": prof,
                "profile_forwards_only": prof_fwd, "walltime": wall,
                "ratio_profile_forwards_only": prof_fwd / measured,
                "verify_cost_ratio": float(tg / t[0]),
                "ratio_leviathan": float(lev / measured), "ratio_profile": prof / measured,
                "ratio_profile_ci": _ci(prof / mb, level) if ci[0] is not None else [None, None],
                "within_leviathan": bool(0.8 <= lev / measured <= 1.25),
                "within_profile": bool(0.8 <= prof / measured <= 1.25)})
        out["speedup"] = sp
    return out


def _fmt_ci(ci):
    if ci is None or ci[0] is None:
        return "-"
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def format_table(sc):
    """A plain-text table of :func:`score`'s result."""
    rj = sc["rejections"]
    lines = [f"{'quantity':<38} {'value':>10}  {'95% interval':>20}"]

    def row(name, v, ci=None):
        vs = "-" if v is None else (f"{v:10.4f}" if isinstance(v, float) else f"{v!s:>10}")
        lines.append(f"{name:<38} {vs:>10}  {_fmt_ci(ci):>20}")
    row("prompts", sc["prompts"])
    row("rejections observed", rj["observed"])
    row("rejections expected (sum r_t)", rj["expected"])
    row("observed - expected", rj["difference"], rj["difference_ci"])
    row("martingale z (pooled)", rj["z_pooled"])
    if rj["z_sd"] is not None:
        row("z over prompts: mean", rj["z_mean"])
        row("z over prompts: sd", rj["z_sd"])
        row("z ~ N(0,1): KS p-value", rj["ks_pvalue"])
        row("z ~ N(0,1): Shapiro p-value", rj["shapiro_pvalue"])
    verdict = {True: "yes", False: "NO", None: "too few prompts to say"}[rj["looks_standard_normal"]]
    lines.append(f"{'z looks standard normal':<38} {verdict:>10}")
    row("acceptance alpha = 1 - mean r_t", sc["alpha"]["value"], sc["alpha"]["ci"])
    tp = sc["tokens_per_call"]
    row("tokens per call (all blocks)", tp["observed"], tp["ci"])
    row("tokens per call (complete blocks)", tp["block_mean"], tp["block_mean_ci"])
    for k, label in (("iid", "(a) Leviathan i.i.d."), ("positional", "(b) per-position"),
                     ("surrogate", "(c) Markov surrogate")):
        if k in sc["predictions"]:
            p = sc["predictions"][k]
            row(f"{label}: tokens/call", p["tokens_per_call"])
            row(f"{label}: predicted/observed", p["ratio"], p["ratio_ci"])
    lines.append(f"{'closest prediction':<38} {sc['closest']:>10}")
    row("entropy of p: accepted tokens", sc["entropy"]["accepted"])
    row("entropy of p: rejected tokens", sc["entropy"]["rejected"])
    if "speedup" in sc:
        s = sc["speedup"]
        row("speedup measured (AR time / SD time)", s["measured"], s["ci"])
        if s.get("timing_repeats", 1) > 1:
            lo, med, hi = s["measured_min_median_max"]
            lines.append(f"{'  over ' + str(s['timing_repeats']) + ' timings: min/median/max':<38} "
                         f"{med:10.4f}  {f'[{lo:.3f}, {hi:.3f}]':>20}")
        if "leviathan" in s:
            row(f"speedup Leviathan Thm 3.8 (c={s['c']:.3f})", s["leviathan"])
            row("speedup cost profile, forwards only", s["profile_forwards_only"])
            row("speedup cost profile (walltime model)", s["profile"])
            row("cost profile predicted/measured", s["ratio_profile"], s["ratio_profile_ci"])
            lines.append(f"{'profile within 0.8-1.25x':<38} "
                         f"{'yes' if s['within_profile'] else 'NO':>10}")
            lines.append(f"{'Leviathan within 0.8-1.25x':<38} "
                         f"{'yes' if s['within_leviathan'] else 'NO':>10}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# synthetic records: a correct (or planted-bug) SD process without any model


def synthetic_records(pair, rule, gamma, n_tokens, n_prompts, rng=None, actual_rule=None):
    """Records of single-draft SD on a homogeneous ``MarkovPair``, as the engine writes them.

    Each block has the draft budget ``min(gamma, n_tokens - n0)`` of the exact engine
    (``scdsim.block_stats``); drafts ``x ~ q`` are verified in order by ``actual_rule`` (default
    ``rule``), the recovered token is drawn from its residual and the bonus from ``p``. Records
    report ``rule``'s rejection probability, so ``actual_rule != rule`` plants a bug that the
    martingale z must detect.

    Returns
    -------
    list (per prompt) of lists of record dicts; each verified record also carries
    ``actual_rejection_prob`` (the planted process's true probability) and ``state``.
    """
    from scdsim.distributions import entropy, tv
    from scdsim.rules import rejection_prob

    if not pair.homogeneous:
        raise ValueError("synthetic_records needs a homogeneous MarkovPair")
    if rule.M != 1:
        raise ValueError(f"synthetic_records runs single-draft rules, got M={rule.M}")
    actual = rule if actual_rule is None else actual_rule
    rng = np.random.default_rng(rng)
    P, Q = pair.target.kernels, pair.draft.kernels
    so = pair.state_of
    r_rep = np.asarray(rejection_prob(rule, P, Q), dtype=np.float64)
    r_act = np.asarray(rejection_prob(actual, P, Q), dtype=np.float64)
    acc = np.asarray(actual.acceptances(P, Q), dtype=np.float64)[:, 0, :]
    res = np.asarray(actual.residual(P, Q), dtype=np.float64)
    tvs = np.asarray(tv(P, Q), dtype=np.float64)
    hp, hq = np.asarray(entropy(P)), np.asarray(entropy(Q))
    cq, cr, cp = (np.cumsum(a, axis=-1) for a in (Q, res, P))

    def draw(cdf, u):
        return int(min(np.searchsorted(cdf, u * cdf[-1], side="right"), cdf.shape[0] - 1))

    out = []
    for i in range(n_prompts):
        s, n, block, recs = pair.start, 0, 0, []
        while n < n_tokens:
            budget = min(gamma, n_tokens - n)
            k = 0
            while True:
                base = {"prompt": i, "index": n, "block": block, "pos_in_block": k,
                        "entropy_p": float(hp[s]), "target_calls": block + 1, "state": int(s)}
                if k == budget:  # every draft accepted: the bonus token (if room)
                    if n < n_tokens:
                        x = draw(cp[s], rng.random())
                        recs.append({**base, "token": x, "kind": "bonus", "draft_index": None,
                                     "tv": None, "entropy_q": None, "rejection_prob": None})
                        n += 1
                        s = int(so[x])
                    break
                x = draw(cq[s], rng.random())
                ver = {**base, "draft_index": 0, "tv": float(tvs[s]), "entropy_q": float(hq[s]),
                       "rejection_prob": float(r_rep[s]), "actual_rejection_prob": float(r_act[s])}
                if rng.random() < acc[s, x]:
                    recs.append({**ver, "token": x, "kind": "accepted"})
                    n += 1
                    s = int(so[x])
                    k += 1
                else:
                    y = draw(cr[s], rng.random())
                    recs.append({**ver, "token": y, "kind": "recovered", "draft_index": None})
                    n += 1
                    s = int(so[y])
                    break
            block += 1
        out.append(recs)
    return out


# --------------------------------------------------------------------------------------------
# the validate run


def environment(device=None):
    """Package versions and the device, recorded in every result file."""
    import platform
    import sys

    import scipy

    import scdsim

    env = {"python": sys.version.split()[0], "platform": platform.platform(),
           "numpy": np.__version__, "scipy": scipy.__version__, "scdsim": scdsim.__version__}
    try:
        import torch
        import transformers

        env.update(torch=torch.__version__, transformers=transformers.__version__,
                   cuda=bool(torch.cuda.is_available()), threads=torch.get_num_threads())
    except ImportError:  # pragma: no cover - models extra missing
        pass
    if device is not None:
        env["device"] = str(device)
    return env


def context_features(target, prompt_ids, new_tokens):
    """The target's last hidden state at the context before each new token and after the last.

    Returns an array ``(len(new_tokens) + 1, hidden)`` (one teacher-forced forward).
    """
    import torch

    ids = list(prompt_ids) + list(new_tokens)
    L = len(prompt_ids)
    x = torch.tensor([ids], dtype=torch.long, device=target.device)
    with torch.no_grad():
        out = target.model(input_ids=x, output_hidden_states=True, use_cache=False)
    h = out.hidden_states[-1][0, L - 1:L + len(new_tokens)]
    return h.float().cpu().numpy().astype(np.float64)


def _rule_name(rule):
    return getattr(rule, "name", str(rule))


def run_validate(target, draft, rule, gamma, *, prompts, out, M=1, batch="first",
                 max_new_tokens=48, warp=None, contrast=None, seed=0, measure_ar=True,
                 profile=True, profile_repeats=5, surrogate_states=(1, 2, 4, 8), n_boot=2000,
                 batch_size=1, timing_repeats=1, progress=None,
                 inputs=None, _interrupt_after=None):
    """Run SD prompt by prompt, log each as it finishes, then score and write the summary.

    Parameters
    ----------
    target : real_models.LM
    draft : real_models.LM or NGramDraft
    rule : scdsim rule;  gamma, M, batch : as ``real_models.generate``.
    prompts : list of dict (``real_models.prompts.load_prompts``) or of token-id lists
    out : directory for the files listed in the module docstring
    max_new_tokens : new tokens per prompt (no EOS stop, so every prompt gives this many)
    warp : dict of temperature, top_k, top_p, min_p, epsilon;  contrast : SCD parameters
    seed : prompt i uses the stream ``seed + i`` (SD and the autoregressive baseline alike)
    measure_ar : also time autoregressive decoding of the same prompts (for the speedup)
    batch_size : prompts per engine call (SD and the autoregressive baseline alike); each
        prompt's line is written when its batch finishes, with the batch's time shared out
    timing_repeats : SD and autoregressive runs of each batch, alternated, for the timing (the
        records come from the first SD run; the median time is used)
    profile : measure the cost profile once (kept in ``profile.json`` across resumes)
    profile_repeats : timings per point of the profile (medians are used)
    surrogate_states : state counts of the Markov surrogate (k-means on the target's last
        hidden state); ``()`` to skip
    inputs : dict, optional; what made the run (model names, specs), stored in every file

    Returns
    -------
    dict: the content of ``summary.json``.
    """
    import json
    import time
    from pathlib import Path

    import torch

    from real_models import generate
    from scdsim.io import JsonlLog, write_json_atomic

    out = Path(out)
    warp = dict(warp or {})
    gamma = int(gamma)
    if gamma < 1:
        raise ValueError(f"gamma must be >= 1, got {gamma}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not isinstance(timing_repeats, int) or timing_repeats < 1:
        raise ValueError(f"timing_repeats must be an int >= 1, got {timing_repeats!r}")
    items = []
    for i, p in enumerate(prompts):
        if isinstance(p, dict):
            items.append(p)
        else:
            items.append({"id": i, "text": None, "kind": "ids", "ids": list(p)})
    if not items:
        raise ValueError("prompts is empty")
    ids = []
    for it in items:
        if it.get("ids") is not None:
            ids.append(list(it["ids"]))
        else:
            if target.tokenizer is None:
                raise ValueError("text prompts need a target with a tokenizer")
            ids.append(list(target.tokenizer(it["text"])["input_ids"]))
    header = {
        **(inputs or {}),
        "target": target.name, "draft": getattr(draft, "name", repr(draft)),
        "rule": _rule_name(rule), "gamma": gamma, "M": int(M), "batch": batch,
        "max_new_tokens": int(max_new_tokens), "warp": warp, "contrast": contrast,
        "seed": int(seed), "prompt_ids": [it["id"] for it in items],
        "measure_ar": bool(measure_ar), "batch_size": int(batch_size),
        "timing_repeats": int(timing_repeats),
    }
    log = JsonlLog(out / "prompts.jsonl", key="prompt", header=header)
    env = environment(target.device)
    common = dict(max_new_tokens=max_new_tokens, eos_token_id=None, **warp)
    if progress is None:
        import sys
        progress = sys.stderr.isatty()
    todo = [i for i in range(len(items)) if i not in log]
    todo_all = list(range(len(items)))
    if todo:  # warm-up: first calls pay one-time costs that are not decoding
        generate(target, [ids[todo[0]][:4]], draft=draft, rule=rule, gamma=gamma, M=M,
                 batch=batch, contrast=contrast, rng=[seed], **{**common, "max_new_tokens": 4})
        if measure_ar:
            generate(target, [ids[todo[0]][:4]], rng=[seed], amateur=draft if contrast else None,
                     contrast=contrast, **{**common, "max_new_tokens": 4})
    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), initial=len(items) - len(todo), disable=not progress,
               desc="validate", unit="prompt")
    done = 0
    for c0 in range(0, len(todo), batch_size):
        chunk = todo[c0:c0 + batch_size]
        # one engine call per chunk; a row's tokens depend on its own stream only, so the
        # records do not depend on how prompts were grouped (a resume may regroup them)
        def run_sd(chunk=chunk):
            t0 = time.perf_counter()
            r = generate(target, [ids[i] for i in chunk], draft=draft, rule=rule, gamma=gamma,
                         M=M, batch=batch, contrast=contrast,
                         rng=[torch.Generator().manual_seed(seed + i) for i in chunk], **common)
            return r, time.perf_counter() - t0

        def run_ar(chunk=chunk):
            t0 = time.perf_counter()
            r = generate(target, [ids[i] for i in chunk],
                         rng=[torch.Generator().manual_seed(seed + i) for i in chunk],
                         amateur=draft if contrast else None, contrast=contrast, **common)
            return r, time.perf_counter() - t0

        # timings alternate SD and autoregressive, timing_repeats times each (same seeds, so
        # the same tokens); the median of each is used: one timing on a busy machine is noise
        res, t_sd = run_sd()
        sd_ts, ar_ts, ar = [t_sd], [], None
        if measure_ar:
            ar, t_ar = run_ar()
            ar_ts.append(t_ar)
        for _ in range(int(timing_repeats) - 1):
            sd_ts.append(run_sd()[1])
            if measure_ar:
                ar_ts.append(run_ar()[1])
        sd_t = float(np.median(sd_ts))
        ar_t = float(np.median(ar_ts)) if ar_ts else None
        sd_n = sum(len(x) for x in res.tokens)
        for j, i in enumerate(chunk):
            recs = [{**r, "prompt": i} for r in res.records[j]]
            n_j = len(res.tokens[j])
            row = {"prompt": i, "id": items[i]["id"], "kind": items[i].get("kind"),
                   "text_prompt": items[i].get("text"), "prompt_len": len(ids[i]),
                   "tokens": list(res.tokens[j]), "text": res.text[j] if res.text else None,
                   "records": recs, "chunk": list(chunk), "chunk_sd_time_s": sd_t,
                   "chunk_sd_times_s": sd_ts,
                   # the chunk's time shared out in proportion to the tokens emitted
                   "sd_time_s": sd_t * n_j / max(sd_n, 1), "sd_tokens": n_j,
                   "draft_tokens": res.draft_tokens[j] if res.draft_tokens else None}
            if ar is not None:
                ar_n = sum(len(x) for x in ar.tokens)
                row.update(chunk_ar_time_s=ar_t, chunk_ar_times_s=ar_ts,
                           ar_tokens=len(ar.tokens[j]),
                           ar_time_s=ar_t * len(ar.tokens[j]) / max(ar_n, 1))
            row["summary"] = prompt_summary(recs, gamma)
            log.append(row)
            bar.update(1)
            done += 1
        if _interrupt_after is not None and done >= _interrupt_after:
            bar.close()
            raise KeyboardInterrupt(f"interrupted after {done} prompts (test hook)")
    bar.close()
    rows = [log.records[i] for i in range(len(items))]

    prof = None
    prof_path = out / "profile.json"
    if profile:
        if prof_path.exists():  # measured once per run directory: a resume reuses it
            prof = json.loads(prof_path.read_text())
            prof.pop("environment", None)
            prof.pop("inputs", None)
        else:
            from real_models.profile import cost_profile

            # the run's average cost: the batch it decodes, at the start and the end of a
            # generation (rows are left-padded to the longest prompt of their batch)
            start = int(np.median([max(len(ids[i]) for i in todo_all[c:c + batch_size])
                                   for c in range(0, len(todo_all), batch_size)]))
            from real_models.profile import engine_overhead

            B = min(batch_size, len(items))
            # SD runs B * M rows (M drafts per prompt); the autoregressive baseline B rows
            prof = cost_profile(target, draft, gamma=gamma,
                                context_len=[start, start + max_new_tokens],
                                repeats=int(profile_repeats), batch=B * int(M))
            prof["overhead"] = engine_overhead(
                target.vocab_size, rule=rule, gamma=gamma, batch=B,
                max_new_tokens=max_new_tokens, M=M, mode=batch, warp=warp, contrast=contrast,
                ngram=None if hasattr(draft, "model") else draft,
                repeats=max(1, min(int(profile_repeats), 3)), seed=seed)
            if int(M) > 1:
                ar_prof = cost_profile(target, draft, gamma=1,
                                       context_len=[start, start + max_new_tokens],
                                       repeats=int(profile_repeats), batch=B)
                prof["ar_target_s"] = ar_prof["target_s"][0]
                prof["ar_draft_s"] = ar_prof["draft_s"]
            write_json_atomic(prof_path, {**prof, "environment": env, "inputs": header})
    timing = None
    if measure_ar:
        timing = {k: [r[k] for r in rows] for k in ("sd_time_s", "ar_time_s", "sd_tokens",
                                                    "ar_tokens")}
        timing["chunk"] = [r["chunk"][0] for r in rows]
    records = [r["records"] for r in rows]
    sur_out = None
    if surrogate_states and len(rows) >= 2 and hasattr(target, "model"):
        from real_models import surrogate as _sur

        feats = [context_features(target, ids[i], rows[i]["tokens"]) for i in range(len(rows))]
        Ss = [int(s) for s in surrogate_states]
        held = _sur.held_out_study(records, feats, gamma, Ss=Ss, seed=seed)
        # in-sample fit at the largest S the data supports, for prediction (c)
        allX = np.concatenate(feats)
        S = max(s for s in Ss if s <= max(1, allX.shape[0] // 20)) if any(
            s <= max(1, allX.shape[0] // 20) for s in Ss) else 1
        C, _ = _sur.kmeans(allX, S, seed=seed)
        labels = [_sur.assign(f, C) for f in feats]
        fit = _sur.fit_surrogate(records, labels, S)
        c = prof["c"] if prof else 0.0
        pred = _sur.predict(fit.pair, gamma, c=c)
        sur_out = {"S": S, "fit": fit.to_dict(), "prediction": pred, "held_out": held}
    # summaries are recomputed from the records: a log written by an older version scores
    # the same as a fresh one
    sc = score([prompt_summary(r["records"], gamma) for r in rows], gamma,
               surrogate=sur_out["prediction"] if sur_out else None, timing=timing,
               profile=prof, n_boot=n_boot, seed=seed, contrast=contrast is not None)
    if measure_ar and "speedup" in sc:
        sc["speedup"].update(_repeat_spread(rows))
    table = format_table(sc)
    summary = {"inputs": header, "environment": env, "profile": prof, "score": sc,
               "surrogate": sur_out, "table": table,
               "files": {"prompts": "prompts.jsonl", "table": "summary.txt",
                         "plots": ["blocks.png", "zscores.png"]}}
    write_json_atomic(out / "summary.json", summary)
    from scdsim.io import atomic_open

    with atomic_open(out / "summary.txt", "w", encoding="utf-8") as f:
        f.write(table + "\n")
    plot_summary(summary, out)
    return summary


def _repeat_spread(rows):
    """Measured speedup of each timing repeat (all batches), and its min / median / max."""
    chunks = {}
    for r in rows:
        chunks.setdefault(r["chunk"][0], r)
    R = min(min(len(r.get("chunk_sd_times_s") or [r["chunk_sd_time_s"]]),
                len(r.get("chunk_ar_times_s") or [r["chunk_ar_time_s"]])) for r in chunks.values())
    sd_n = sum(r["sd_tokens"] for r in rows)
    ar_n = sum(r["ar_tokens"] for r in rows)
    per = []
    for k in range(R):
        sd = sum((r.get("chunk_sd_times_s") or [r["chunk_sd_time_s"]])[k] for r in chunks.values())
        ar = sum((r.get("chunk_ar_times_s") or [r["chunk_ar_time_s"]])[k] for r in chunks.values())
        per.append((ar / ar_n) / (sd / sd_n))
    return {"timing_repeats": R, "measured_per_repeat": per,
            "measured_min_median_max": [float(np.min(per)), float(np.median(per)),
                                        float(np.max(per))]}


def plot_summary(summary, out):
    """``blocks.png`` (block-length law: observed and predictions) and ``zscores.png``."""
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    import matplotlib.pyplot as plt
    from scipy import stats

    from scdsim.io import atomic_open

    out = Path(out)
    sc = summary["score"]
    pm = sc["block_length_pmf"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    j = np.arange(len(pm["observed"]))
    ax.bar(j, pm["observed"], color="0.75", label="observed")
    for k, style in (("iid", "o--"), ("positional", "s-"), ("surrogate", "^:")):
        if k in pm:
            v = np.asarray(pm[k], dtype=float)[:len(j)]
            ax.plot(j[:len(v)], v, style, label={"iid": "(a) i.i.d.", "positional":
                                                  "(b) per-position",
                                                  "surrogate": "(c) surrogate"}[k])
    ax.set_xlabel("tokens per target call")
    ax.set_ylabel("fraction of blocks")
    ax.set_title(f"{summary['inputs']['target']} / {summary['inputs']['draft']}, "
                 f"gamma={sc['gamma']}", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_open(out / "blocks.png", "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
    zs = np.asarray(sc["rejections"]["z_per_prompt"], dtype=float)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(7, 3))
    if zs.size:
        a1.hist(zs, bins=max(5, int(np.sqrt(zs.size)) + 1), density=True, color="0.7")
        x = np.linspace(-4, 4, 200)
        a1.plot(x, stats.norm.pdf(x), "k-")
        osm, osr = stats.probplot(zs, dist="norm", fit=False)
        a2.plot(osm, osr, "o", ms=3)
        a2.plot([-3, 3], [-3, 3], "k--")
    a1.set_xlabel("martingale z per prompt")
    a2.set_xlabel("N(0,1) quantile")
    a2.set_ylabel("z quantile")
    a1.set_title(f"pooled z = {sc['rejections']['z_pooled']:.2f}", fontsize=8)
    fig.tight_layout()
    with atomic_open(out / "zscores.png", "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
