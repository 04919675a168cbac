"""Studies on real model pairs; each writes ``<name>.json`` (inputs + results) and ``<name>.png``.

Every study takes a target LM, prompts (token-id lists) and a size; ``run_study(name, size,
out)`` builds the pair and prompts of a size: ``"smoke"`` (tiny random Llamas, seconds; run by
CI) or ``"full"`` (the embedded smollm2-135m, 4 built-in and 2 HumanEval prompts, 16 new
tokens; the SCD study adds 20 HumanEval problems, asked in the chat format, at 256 new tokens
for pass@1: the size this
2-core machine finishes; raise ``max_new_tokens`` and the prompt lists in ``_setup`` on a bigger
one).

1. ``draft_gallery``  per draft (early-exit, lens, quant at several bits, n-gram): acceptance
   ``alpha = 1 - E[r]`` with its interval, cost ratio c (measured profile), tokens per call,
   speedup predicted (Leviathan Thm 3.8 at (alpha, c); the cost profile) and measured (SD vs
   autoregressive, same prompts, same batch), optimal gamma (``scdsim.cost.optimal_gamma``).
2. ``entropy``        entropy of the target law at accepted vs recovered positions, SD and SCD
   (the SCD paper's analysis): means, s.e., the difference and its z.
3. ``multidraft``     recovered tokens per sequence vs M = 1..4, ``batch="first"`` and ``"tree"``,
   observed against the predicted sum of the rule's rejection probabilities (martingale z), and
   the M -> infinity limit process of each reading (``real_models.batch_limit``); how slowly
   the all-reject probability approaches its limit at the realised positions.
4. ``over_accept``    Decoding-OPT vs Decoding-UNO at eps in {0.05, 0.1, 0.2, 0.4}: rejection
   rate, the exact per-token bias TV(step law, p) from the realised laws (teacher-forced),
   target log-likelihood per token, and the realised (rejection, bias) points beside the exact
   Pareto front P(reject) + TV = TV(p, q) of the same positions (Yin et al. Thm 5).
5. ``scd``            SCD vs SD (contrast 0) vs CD vs target alone, and a sensitivity grid over
   plausibility, contrast and amateur temperature (one axis at a time around a center):
   acceptance, tokens per call, tokens/s, and quality proxies: perplexity of the output under
   the target, distinct-2, and HumanEval pass@1 on long generations (each completion run in a
   subprocess with a timeout and no network).

JSON fields (for figures): every file holds ``{"study", "size", "inputs", "environment",
"rows": [...]}``; the row fields are named in each function's docstring.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

from real_models.validate import environment, prompt_summary, score

__all__ = ["STUDIES", "run_study", "draft_gallery", "entropy_study", "multidraft_study",
           "over_accept_study", "scd_study", "laws_along", "one_at_a_time_grid", "redraw",
           "PLOTS"]


# --------------------------------------------------------------------------------------------
# helpers


def _gen(target, ids, *, seed, **kw):
    import torch

    from real_models import generate

    rng = [torch.Generator().manual_seed(seed + i) for i in range(len(ids))]
    t0 = time.perf_counter()
    res = generate(target, ids, rng=rng, eos_token_id=None, **kw)
    return res, time.perf_counter() - t0


def _scored(res, gamma, n_boot=500, seed=0):
    return score([prompt_summary(r, gamma) for r in res.records], gamma, n_boot=n_boot, seed=seed)


def laws_along(target, draft, prompt_ids, tokens, warp=None, contrast=None):
    """Teacher-forced laws ``(p, q)`` (float64, ``(n, V)``) at each new token's position.

    ``p`` is the warped target law (in SCD the contrasted law of target and draft), ``q`` the
    warped draft law; also returns ``logp`` (n,), the log-probability of each emitted token
    under the unwarped target.
    """
    import torch

    from real_models import laws as L

    warp = dict(warp or {})
    ids = torch.tensor([list(prompt_ids) + list(tokens)], dtype=torch.long, device=target.device)
    n, P0 = len(tokens), len(prompt_ids)
    with torch.no_grad():
        lt = target.model(input_ids=ids, use_cache=False).logits[0, P0 - 1:P0 - 1 + n]
        lq = draft.model(input_ids=ids, use_cache=False).logits[0, P0 - 1:P0 - 1 + n]
    lt, lq = lt.double(), lq.double()
    p = L.contrast_law(lt, lq, **contrast, **warp) if contrast else L.sampling_law(lt, **warp)
    q = L.sampling_law(lq, **warp)
    logp = torch.log_softmax(lt, -1)[torch.arange(n), torch.tensor(tokens)]
    return p.double().cpu().numpy(), q.double().cpu().numpy(), logp.cpu().numpy()


def _write(out, name, size, inputs, rows, plot, extra=None):
    from scdsim.io import atomic_open, write_json_atomic

    out = Path(out)
    data = {"study": name, "size": size, "inputs": inputs, "environment": environment(),
            "rows": rows, **(extra or {})}
    write_json_atomic(out / f"{name}.json", data)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot(data)
    with atomic_open(out / f"{name}.png", "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return data


def _row_pmfs(records, gamma, sc):
    """Each prompt's block law from its own per-position acceptances (the pooled value at a
    position the prompt never reached): the slowest row of a lockstep batch sets its calls."""
    from real_models.validate import positional_pmf

    pooled = np.clip(np.asarray(sc["acceptance_by_phase"]["value"][:gamma]), 0, 1)
    out = []
    for recs in records:
        s = prompt_summary(recs, gamma)
        cnt = np.asarray(s["phase_count"][:gamma], dtype=float)
        acc = np.asarray(s["phase_accept"][:gamma], dtype=float)
        out.append(positional_pmf(np.clip(np.where(cnt > 0, acc / np.maximum(cnt, 1), pooled),
                                          0, 1)))
    return out


def _sem(x):
    x = np.asarray(x, dtype=np.float64)
    return float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else None


# --------------------------------------------------------------------------------------------
# 1. draft gallery


def draft_gallery(target, ids, specs, *, gamma=4, max_new_tokens=32, warp=None, seed=0,
                  profile_repeats=3, timing_repeats=1, out=".", size="custom"):
    """Row fields: ``draft, alpha, alpha_ci, c, verify_cost_ratio, tokens_per_call,
    tokens_per_call_ci, speedup_leviathan, speedup_profile_forwards_only, speedup_profile (the
    walltime model of ``real_models.profile.predict_walltime``: lockstep batch, prefills,
    engine overhead), speedup_measured, optimal_gamma, optimal_speedup, z_rejections,
    ar_time_s, sd_time_s (medians of ``timing_repeats`` alternated timings),
    speedup_measured_per_repeat, profile`` (one batch of all prompts; the autoregressive
    baseline is timed next to each draft's run)."""
    from real_models.drafters import make_draft
    from real_models.profile import cost_profile, engine_overhead, predict_walltime
    from scdsim import cost, rules

    warp = dict(warp or {})
    rows = []
    for spec in specs:
        draft = make_draft(target, spec)
        # the baseline is timed right before each SD run: on a shared machine the load drifts,
        # and a baseline timed once at the start would be compared with runs at another load
        ar_ts, sd_ts = [], []
        for _ in range(int(timing_repeats)):  # alternated; same seeds, so the same tokens
            ar, t_ar = _gen(target, ids, seed=seed, max_new_tokens=max_new_tokens, **warp)
            res, t_sd = _gen(target, ids, seed=seed, draft=draft, rule=rules.lossless,
                             gamma=gamma, max_new_tokens=max_new_tokens, **warp)
            ar_ts.append(t_ar)
            sd_ts.append(t_sd)
        ar_t, sd_t = float(np.median(ar_ts)), float(np.median(sd_ts))
        n_ar = sum(len(t) for t in ar.tokens)
        n_sd = sum(len(t) for t in res.tokens)
        # the batch the runs decode, at the start and the end of a generation
        L0 = max(len(x) for x in ids)
        prof = cost_profile(target, draft, gamma=gamma, context_len=[L0, L0 + max_new_tokens],
                            repeats=profile_repeats, batch=len(ids))
        prof["overhead"] = engine_overhead(
            target.vocab_size, rule=rules.lossless, gamma=gamma, batch=len(ids),
            max_new_tokens=max_new_tokens, warp=warp, repeats=profile_repeats, seed=seed,
            ngram=None if hasattr(draft, "model") else draft)
        sc = _scored(res, gamma, seed=seed)
        alpha, c = sc["alpha"]["value"], prof["c"]
        tpc = sc["predictions"]["positional"]["tokens_per_call"]
        t = prof["target_s"]
        og = cost.optimal_gamma(alpha, c, max_gamma=16)
        rows.append({
            "draft": spec, "alpha": alpha, "alpha_ci": sc["alpha"]["ci"], "c": c,
            "verify_cost_ratio": prof["verify_cost_ratio"],
            "tokens_per_call": sc["tokens_per_call"]["observed"],
            "tokens_per_call_ci": sc["tokens_per_call"]["ci"],
            "speedup_leviathan": float(cost.speedup(alpha, gamma, c)),
            "speedup_profile_forwards_only": tpc * t[0] / (t[gamma] + gamma * prof["draft_s"]),
            "speedup_profile": predict_walltime(
                prof, sc["block_length_pmf"]["positional"], max_new_tokens, [len(ids)], gamma,
                overhead=prof["overhead"], row_pmfs=_row_pmfs(res.records, gamma, sc))["speedup"],
            "speedup_measured": (ar_t / n_ar) / (sd_t / n_sd),
            "speedup_measured_per_repeat": [(a / n_ar) / (b / n_sd)
                                            for a, b in zip(ar_ts, sd_ts)],
            "optimal_gamma": int(og.gamma), "optimal_speedup": float(og.speedup),
            "z_rejections": sc["rejections"]["z_pooled"], "ar_time_s": ar_t, "sd_time_s": sd_t,
            "profile": prof})

    inputs = {"target": target.name, "drafts": list(specs), "gamma": gamma,
              "max_new_tokens": max_new_tokens, "warp": warp, "seed": seed, "prompts": len(ids),
              "batch_size": len(ids), "timing_repeats": int(timing_repeats),
              "profile_repeats": int(profile_repeats)}
    return _write(out, "draft_gallery", size, inputs, rows, _plot_draft_gallery)


# --------------------------------------------------------------------------------------------
# 2. entropy of accepted vs rejected tokens


def entropy_study(target, ids, draft_spec, *, contrast=None, gamma=4, max_new_tokens=32,
                  warp=None, seed=0, out=".", size="custom"):
    """Row fields (one per method, "SD" and "SCD"): ``method, entropy_accepted,
    sem_accepted, n_accepted, entropy_rejected, sem_rejected, n_rejected, difference, z``.
    Entropies (nats) of the verifying target law (the contrasted law in SCD)."""
    from real_models.drafters import make_draft
    from scdsim import rules

    draft = make_draft(target, draft_spec)
    contrast = dict(contrast or {"plausibility": 0.1, "contrast": 0.5})
    rows = []
    for method, cd in (("SD", None), ("SCD", contrast)):
        res, _ = _gen(target, ids, seed=seed, draft=draft, rule=rules.lossless, gamma=gamma,
                      contrast=cd, max_new_tokens=max_new_tokens, **dict(warp or {}))
        H = {"accepted": [], "recovered": []}
        for recs in res.records:
            for r in recs:
                if r["kind"] in H:
                    H[r["kind"]].append(r["entropy_p"])
        a, b = np.array(H["accepted"]), np.array(H["recovered"])
        sa, sb = _sem(a), _sem(b)
        diff = float(a.mean() - b.mean()) if a.size and b.size else None
        se = math.hypot(sa, sb) if sa is not None and sb is not None else None
        rows.append({"method": method, "entropy_accepted": float(a.mean()) if a.size else None,
                     "sem_accepted": sa, "n_accepted": int(a.size),
                     "entropy_rejected": float(b.mean()) if b.size else None,
                     "sem_rejected": sb, "n_rejected": int(b.size), "difference": diff,
                     "z": diff / se if diff is not None and se else None})

    inputs = {"target": target.name, "draft": draft_spec, "contrast": contrast, "gamma": gamma,
              "max_new_tokens": max_new_tokens, "warp": dict(warp or {}), "seed": seed,
              "prompts": len(ids)}
    return _write(out, "entropy", size, inputs, rows, _plot_entropy)


# --------------------------------------------------------------------------------------------
# 3. multi-draft


def multidraft_study(target, ids, draft_spec, *, Ms=(1, 2, 3, 4), gamma=3, max_new_tokens=32,
                     warp=None, seed=0, convergence_Ms=(1, 2, 4, 16, 64, 256), out=".",
                     size="custom"):
    """Row fields: ``M (None for the limit), limit (bool), batch, rule, mean_rejections,
    sem_rejections, expected_rejections (mean over prompts of the sum of the rule's r_t), z,
    tokens_per_call``. After the engine runs at each M, one row per reading holds the
    M -> infinity limit process (``real_models.batch_limit``: the first position of a block,
    or every position in the tree reading, emits ``x ~ p`` and is rejected iff ``q(x) = 0``),
    scored the same way. ``convergence`` (top level): how slowly R_M reaches its limit at the
    realised first positions of the M = 1 run: mean over those positions of the recursive
    rule's all-reject probability for each of ``convergence_Ms`` and of the limit
    ``p(q = 0)``."""
    from real_models.batch_limit import limit_records
    from real_models.drafters import make_draft
    from scdsim import rules
    from scdsim.rules import rejection_prob

    draft = make_draft(target, draft_spec)
    warp = dict(warp or {})

    def row_of(records, M, batch, rule_name, t):
        S = [prompt_summary(r, gamma) for r in records]
        rej = np.array([s["rejections"] for s in S], dtype=float)
        exp = np.array([s["expected_rejections"] for s in S])
        V = sum(s["var_rejections"] for s in S)
        return {"M": M, "limit": M is None, "batch": batch, "rule": rule_name,
                "mean_rejections": float(rej.mean()), "sem_rejections": _sem(rej),
                "expected_rejections": float(exp.mean()),
                "z": float((rej.sum() - exp.sum()) / math.sqrt(V)) if V > 0 else None,
                "tokens_per_call": float(sum(s["tokens"] for s in S)
                                         / sum(s["target_calls"] for s in S)),
                "time_s": t}

    rows, first_run = [], None
    for batch in ("first", "tree"):
        for M in Ms:
            rule = rules.recursive(M)
            res, t = _gen(target, ids, seed=seed, draft=draft, rule=rule, gamma=gamma, M=M,
                          batch=batch, max_new_tokens=max_new_tokens, **warp)
            if M == 1 and first_run is None:
                first_run = res
            rows.append(row_of(res.records, int(M), batch, rule.name, t))
        t0 = time.perf_counter()
        lim = limit_records(target, draft, ids, gamma, max_new_tokens, reading=batch,
                            warp=warp, seed=seed)
        rows.append(row_of(lim, None, batch, "recursive(M -> inf)", time.perf_counter() - t0))

    convergence = None
    if first_run is not None and convergence_Ms:
        Rm = {int(m): [] for m in convergence_Ms}
        lim0 = []
        for i, recs in enumerate(first_run.records):
            p, q, _ = laws_along(target, draft, ids[i], first_run.tokens[i], warp=warp)
            for j, rec in enumerate(recs):
                if rec["kind"] in ("accepted", "recovered") and rec["pos_in_block"] == 0:
                    for m in Rm:
                        Rm[m].append(float(rejection_prob(rules.recursive(m), p[j], q[j])))
                    lim0.append(float(p[j][q[j] <= 0].sum()))
        convergence = {"positions": len(lim0),
                       "M": [int(m) for m in convergence_Ms],
                       "mean_all_reject": [float(np.mean(Rm[m])) for m in Rm],
                       "limit": float(np.mean(lim0)) if lim0 else None}

    inputs = {"target": target.name, "draft": draft_spec, "Ms": list(Ms), "gamma": gamma,
              "max_new_tokens": max_new_tokens, "warp": warp, "seed": seed,
              "prompts": len(ids), "convergence_Ms": list(convergence_Ms)}
    return _write(out, "multidraft", size, inputs, rows, _plot_multidraft, extra={"convergence": convergence})


# --------------------------------------------------------------------------------------------
# 4. over-acceptance: Decoding-OPT vs Decoding-UNO


def over_accept_study(target, ids, draft_spec, *, eps=(0.05, 0.1, 0.2, 0.4), gamma=4,
                      max_new_tokens=32, warp=None, seed=0, out=".", size="custom"):
    """Row fields: ``resample (OPT|UNO|lossless), eps, rejection_rate (observed),
    rejection_prob (mean rule r_t at verified positions), bias_tv (mean exact TV(step law, p)
    over emitted positions), mean_tv (mean TV(p, q): the Pareto front's rejection + bias),
    loglik_per_token (target log-probability of the output), z``."""
    from real_models.drafters import make_draft
    from scdsim import rules
    from scdsim.distributions import tv
    from scdsim.rules import rejection_prob, step_law

    draft = make_draft(target, draft_spec)
    warp = dict(warp or {})
    configs = [("lossless", 0.0, rules.lossless)]
    for e in eps:
        configs += [("OPT", e, rules.over_accept(e, resample="optimal")),
                    ("UNO", e, rules.over_accept(e, resample="target"))]
    rows = []
    for tag, e, rule in configs:
        res, _ = _gen(target, ids, seed=seed, draft=draft, rule=rule, gamma=gamma,
                      max_new_tokens=max_new_tokens, **warp)
        S = [prompt_summary(r, gamma) for r in res.records]
        bias, tvs, rej_p, ll = [], [], [], []
        for i, toks in enumerate(res.tokens):
            p, q, logp = laws_along(target, draft, ids[i], toks, warp)
            bias.append(np.asarray(tv(step_law(rule, p, q), p)))
            tvs.append(np.asarray(tv(p, q)))
            rej_p.append(np.asarray(rejection_prob(rule, p, q)))
            ll.append(logp)
        bias, tvs, rej_p, ll = (np.concatenate(x) for x in (bias, tvs, rej_p, ll))
        ver = sum(s["verified"] for s in S)
        O = sum(s["rejections"] for s in S)
        E = sum(s["expected_rejections"] for s in S)
        V = sum(s["var_rejections"] for s in S)
        rows.append({"resample": tag, "eps": e, "rule": rule.name,
                     "rejection_rate": O / max(ver, 1), "rejection_prob": E / max(ver, 1),
                     "rejection_prob_all_positions": float(rej_p.mean()),
                     "bias_tv": float(bias.mean()), "sem_bias_tv": _sem(bias),
                     "mean_tv": float(tvs.mean()),
                     "loglik_per_token": float(ll.mean()), "sem_loglik": _sem(ll),
                     "z": float((O - E) / math.sqrt(V)) if V > 0 else None})

    inputs = {"target": target.name, "draft": draft_spec, "eps": list(eps), "gamma": gamma,
              "max_new_tokens": max_new_tokens, "warp": warp, "seed": seed, "prompts": len(ids)}
    return _write(out, "over_accept", size, inputs, rows, _plot_over_accept)


# --------------------------------------------------------------------------------------------
# 5. SCD vs SD vs CD vs target alone


def one_at_a_time_grid(center, axes):
    """The center and, for each axis, the center with that axis moved to each of its values.

    ``center`` is a dict of settings, ``axes`` maps a setting to the values to try; points equal
    to the center are not repeated. A sensitivity design that costs ``1 + sum(len - 1)`` runs
    instead of the full product.
    """
    pts = [dict(center)]
    for key, values in axes.items():
        for v in values:
            pt = {**center, key: v}
            if pt not in pts:
                pts.append(pt)
    return pts


def _scd_runs(target, draft, ids, grid, gamma, kw, seed, problems, n_boot=200, code_of=None):
    """Rows of target / SD / (CD, SCD) per grid point on ``ids`` (see :func:`scd_study`);
    ``code_of`` turns a generated text into the completion that is checked (default: cut at
    HumanEval's stop sequences)."""
    import torch

    from real_models.prompts import distinct_n, humaneval_passed, truncate_code

    code_of = code_of or truncate_code
    from scdsim import rules

    runs = [("target", None, False), ("SD", None, True)]
    for cd in grid:
        runs += [("CD", cd, False), ("SCD", cd, True)]
    rows = []
    for method, cd, spec in runs:
        k = dict(kw)
        if spec:
            k.update(draft=draft, rule=rules.lossless, gamma=gamma, contrast=cd)
        elif cd is not None:
            k.update(amateur=draft, contrast=cd)
        res, t = _gen(target, ids, seed=seed, **k)
        ntok = sum(len(x) for x in res.tokens)
        lls = []
        for i, toks in enumerate(res.tokens):
            x = torch.tensor([list(ids[i]) + list(toks)], dtype=torch.long, device=target.device)
            with torch.no_grad():
                lg = target.model(input_ids=x, use_cache=False).logits[0].double()
            P0 = len(ids[i])
            lp = torch.log_softmax(lg[P0 - 1:P0 - 1 + len(toks)], -1)
            lls.append(lp[torch.arange(len(toks)), torch.tensor(toks)].numpy())
        ll = np.concatenate(lls)
        row = {"method": method, **(cd or {"plausibility": None, "contrast": None,
                                           "amateur_temperature": None}),
               "tokens_per_s": ntok / t, "perplexity": float(np.exp(-ll.mean())),
               # s.e. of the mean log-likelihood over prompts (tokens within a prompt are
               # dependent): perplexities of two runs differ by chance by about this much
               "sem_log_perplexity": _sem([-x.mean() for x in lls]),
               "distinct_2": distinct_n(res.tokens, 2), "alpha": None,
               "tokens_per_call": None, "pass_at_1": None, "n_problems": None}
        if spec:
            sc = _scored(res, gamma, n_boot=n_boot, seed=seed)
            row.update(alpha=sc["alpha"]["value"], alpha_ci=sc["alpha"]["ci"],
                       tokens_per_call=sc["tokens_per_call"]["observed"])
        if problems is not None and res.text is not None:
            ok = [humaneval_passed(pr, code_of(txt)) for pr, txt in zip(problems, res.text)
                  if pr is not None]
            if ok:
                row.update(pass_at_1=float(np.mean(ok)), n_problems=len(ok),
                           n_passed=int(np.sum(ok)),
                           # what was scored, for a reader to see why it passes or fails
                           samples=[code_of(txt) for pr, txt in zip(problems, res.text)
                                    if pr is not None][:3])
        rows.append(row)
    return rows


def scd_study(target, ids, draft_spec, *, grid=None, gamma=4, max_new_tokens=32, warp=None,
              seed=0, problems=None, heldout_ids=None, humaneval=None, out=".", size="custom"):
    """SCD vs SD (contrast 0) vs CD vs the target alone, over a grid of contrast settings.

    Row fields: ``method (target|SD|CD|SCD), plausibility, contrast, amateur_temperature,
    alpha, alpha_ci, tokens_per_call, tokens_per_s, perplexity (of the output under the
    target), sem_log_perplexity (over prompts), distinct_2, pass_at_1 / n_problems / n_passed
    (prompts with HumanEval tests only, else None)``; top level ``heldout_perplexity`` (the target's own perplexity on held-out
    text: a reference). ``grid`` is a list of settings dicts (:func:`one_at_a_time_grid` makes
    a sensitivity design).

    ``humaneval`` (optional): ``{"problems": [...], "ids": [...], "max_new_tokens": int,
    "temperature": float, "contrast": dict, "format": "raw" | "chat"}``: long generations on
    HumanEval prompts by the target, SD, CD and SCD at one contrast setting, scored pass@1
    (each completion run against the problem's tests in a subprocess with a timeout and no
    network); ``"chat"``: the ids hold ``prompts.humaneval_chat_messages`` under the chat
    template and the reply's code block is checked (``prompts.extract_code``), the form an
    instruction-tuned model answers in. Stored as ``humaneval_rows`` (fields as above, plus
    three scored ``samples``).
    """
    import torch

    from real_models.drafters import make_draft

    draft = make_draft(target, draft_spec)
    warp = dict(warp or {})
    grid = grid or [{"plausibility": 0.1, "contrast": 0.5, "amateur_temperature": 1.0}]
    held = None
    if heldout_ids:
        nll, n = 0.0, 0
        for h in heldout_ids:
            x = torch.tensor([h], dtype=torch.long, device=target.device)
            with torch.no_grad():
                lg = target.model(input_ids=x, use_cache=False).logits[0, :-1].double()
            nll -= float(torch.log_softmax(lg, -1)[torch.arange(len(h) - 1),
                                                    x[0, 1:]].sum())
            n += len(h) - 1
        held = math.exp(nll / n)
    rows = _scd_runs(target, draft, ids, grid, gamma, dict(max_new_tokens=max_new_tokens, **warp),
                     seed, problems)
    for r in rows:
        r["heldout_perplexity"] = held
    he_rows, he_inputs = None, None
    if humaneval:
        hw = {**warp, "temperature": humaneval.get("temperature", warp.get("temperature", 1.0))}
        he_inputs = {k: humaneval[k] for k in ("max_new_tokens", "contrast") if k in humaneval}
        he_inputs.update(temperature=hw["temperature"], problems=len(humaneval["problems"]))
        from real_models.prompts import extract_code

        he_inputs["format"] = humaneval.get("format", "raw")
        he_rows = _scd_runs(target, draft, humaneval["ids"], [humaneval["contrast"]], gamma,
                            dict(max_new_tokens=humaneval["max_new_tokens"], **hw), seed,
                            humaneval["problems"],
                            code_of=extract_code if he_inputs["format"] == "chat" else None)

    inputs = {"target": target.name, "amateur": draft_spec, "grid": grid, "gamma": gamma,
              "max_new_tokens": max_new_tokens, "warp": warp, "seed": seed, "prompts": len(ids),
              "humaneval": he_inputs}
    return _write(out, "scd", size, inputs, rows, _plot_scd,
                  extra={"heldout_perplexity": held, "humaneval_rows": he_rows})


# --------------------------------------------------------------------------------------------
# plots (module level, so a saved JSON can be redrawn: ``redraw``)


def _plot_draft_gallery(data):
    import matplotlib.pyplot as plt

    r = data["rows"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = np.arange(len(r))
    bars = (("speedup_leviathan", "Leviathan Thm 3.8"),
            ("speedup_profile_forwards_only", "profile, forwards only"),
            ("speedup_profile", "profile, walltime model"),
            ("speedup_measured", "measured (median)"))
    w = 0.8 / len(bars)
    for k, (key, lab) in enumerate(bars):
        ax.bar(x + (k - (len(bars) - 1) / 2) * w, [row.get(key) or 0 for row in r], w,
               label=lab)
    for xi, row in zip(x, r):  # the spread of the measured speedup over repeats
        rep = row.get("speedup_measured_per_repeat") or []
        if len(rep) > 1:
            ax.plot([xi + 1.5 * w] * 2, [min(rep), max(rep)], "k-", lw=1)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(x, [f"{row['draft']}\nalpha={row['alpha']:.2f}" for row in r], fontsize=7)
    ax.set_ylabel("speedup over autoregressive")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _plot_entropy(data):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3))
    r = data["rows"]
    x = np.arange(len(r))
    for k, key in enumerate(("accepted", "rejected")):
        ax.bar(x + (k - 0.5) * 0.35, [row[f"entropy_{key}"] or 0 for row in r], 0.35,
               yerr=[row[f"sem_{key}"] or 0 for row in r], label=key, capsize=3)
    ax.set_xticks(x, [row["method"] for row in r])
    ax.set_ylabel("entropy of the target law (nats)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _plot_multidraft(data):
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    xs = [row["M"] for row in data["rows"] if not row["limit"]]
    xinf = max(xs) + 1.5
    for batch, mk, col in (("first", "o", "C0"), ("tree", "s", "C1")):
        r = [row for row in data["rows"] if row["batch"] == batch and not row["limit"]]
        ax.errorbar([row["M"] for row in r], [row["mean_rejections"] for row in r],
                    yerr=[row["sem_rejections"] or 0 for row in r], fmt=mk, color=col,
                    label=f"observed ({batch})", capsize=3)
        ax.plot([row["M"] for row in r], [row["expected_rejections"] for row in r], "--",
                color=col, label=f"predicted sum r_t ({batch})")
        lim = [row for row in data["rows"] if row["batch"] == batch and row["limit"]]
        for row in lim:
            ax.errorbar([xinf], [row["mean_rejections"]], yerr=[row["sem_rejections"] or 0],
                        fmt=mk, mfc="none", color=col, capsize=3,
                        label=f"M -> inf limit ({batch}): observed; bar: predicted")
            ax.plot([xinf - 0.3, xinf + 0.3], [row["expected_rejections"]] * 2, "-",
                    color=col)
    ax.set_xticks(sorted(set(xs)) + [xinf], [str(m) for m in sorted(set(xs))] + ["inf"])
    ax.set_xlabel("drafts per position M (recursive rejection)")
    ax.set_ylabel("recovered tokens per sequence")
    ax.legend(fontsize=6)
    cv = data.get("convergence")
    if cv:
        ax2.semilogx(cv["M"], cv["mean_all_reject"], "o-", label="mean R_M at block starts")
        if cv["limit"] is not None:
            ax2.axhline(cv["limit"], color="k", ls=":", label="M -> inf limit p(q = 0)")
        ax2.set_xlabel("M")
        ax2.set_ylabel("all-M-rejected probability")
        ax2.set_title(f"{cv['positions']} realised first positions", fontsize=8)
        ax2.legend(fontsize=6)
    fig.tight_layout()
    return fig


def _plot_over_accept(data):
    """Each run's (rejection, bias) divided by the mean TV(p, q) of its own positions: the
    exact Pareto front of those positions (Yin et al. Thm 5, averaged) is then the line
    x + y = 1 for every run, with no approximation across runs."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    r = data["rows"]
    xs = np.linspace(0, 1, 20)
    ax.plot(xs, 1 - xs, "k-", lw=0.8, label="exact front of each run's positions")
    ax.fill_between(xs, 0, 1 - xs, color="0.92", label="unattainable")
    for tag, mk in (("lossless", "k*"), ("OPT", "o"), ("UNO", "s")):
        rr = [row for row in r if row["resample"] == tag]
        x = [row["rejection_prob_all_positions"] / row["mean_tv"] for row in rr]
        y = [row["bias_tv"] / row["mean_tv"] for row in rr]
        ax.plot(x, y, mk, label=tag)
        if tag != "lossless":
            for row, xi, yi in zip(rr, x, y):
                ax.annotate(f"{row['eps']:g}", (xi, yi), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")
    ax.set_xlabel("rejection probability / mean TV(p, q)")
    ax.set_ylabel("bias TV(step law, p) / mean TV(p, q)")
    ax.set_title("Decoding-OPT vs UNO (labels: eps)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _plot_scd(data):
    import matplotlib.pyplot as plt

    r = data["rows"]
    he = data.get("humaneval_rows")
    fig, axes = plt.subplots(1, 3 if he else 2, figsize=(12 if he else 9, 3.4))
    labels = [row["method"] + ("" if row["contrast"] is None else
                               f"\nP{row['plausibility']:g} C{row['contrast']:g} "
                               f"T{row['amateur_temperature']:g}") for row in r]
    x = np.arange(len(r))
    axes[0].bar(x, [row["tokens_per_s"] for row in r])
    axes[0].set_xticks(x, labels, fontsize=5, rotation=90)
    axes[0].set_ylabel("tokens / s")
    axes[1].bar(x, [row["perplexity"] for row in r], color="C1")
    axes[1].set_xticks(x, labels, fontsize=5, rotation=90)
    axes[1].set_ylabel("perplexity of output under target")
    if he:
        xh = np.arange(len(he))
        axes[2].bar(xh, [row["pass_at_1"] or 0 for row in he], color="C2")
        for xi, row in zip(xh, he):
            if row.get("n_problems"):
                axes[2].annotate(f"{row.get('n_passed', 0)}/{row['n_problems']}",
                                 (xi, row["pass_at_1"] or 0), ha="center", fontsize=7,
                                 xytext=(0, 2), textcoords="offset points")
        axes[2].set_ylim(0, 1)
        axes[2].set_xticks(xh, [row["method"] for row in he], fontsize=7)
        axes[2].set_ylabel("HumanEval pass@1 (long generations)")
    fig.tight_layout()
    return fig


PLOTS = {"draft_gallery": _plot_draft_gallery, "entropy": _plot_entropy,
         "multidraft": _plot_multidraft, "over_accept": _plot_over_accept, "scd": _plot_scd}


def redraw(path):
    """Redraw ``<name>.png`` from a saved ``<name>.json`` (atomically, next to it)."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scdsim.io import atomic_open

    path = Path(path)
    data = json.loads(path.read_text())
    name = data.get("study")
    if name not in PLOTS:
        raise ValueError(f"{path}: 'study' must be one of {sorted(PLOTS)}, got {name!r}")
    fig = PLOTS[name](data)
    png = path.with_suffix(".png")
    with atomic_open(png, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return png


# --------------------------------------------------------------------------------------------
# sizes


STUDIES = ("draft_gallery", "entropy", "multidraft", "over_accept", "scd")


def _chat_ids(target, messages):
    """Token ids of ``messages`` under the target's chat template, with a generation prompt."""
    enc = target.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                               tokenize=True)
    if isinstance(enc, dict) or hasattr(enc, "keys"):
        enc = enc["input_ids"]
    return [int(t) for t in enc]


def _setup(size):
    """(target, prompt ids, draft specs, settings) of a size."""
    if size == "smoke":
        from real_models import random_lm

        target = random_lm(vocab_size=32, hidden_size=32, layers=4, seed=0, scale=2.0)
        ids = [[i % 32, (7 * i + 3) % 32, (5 * i + 1) % 32] for i in range(3)]
        return target, ids, None, dict(drafts=["early-exit:2", "ngram:2"], draft="early-exit:2",
                                       max_new_tokens=6, gamma=2, Ms=(1, 2), eps=(0.1, 0.4),
                                       grid=[{"plausibility": 0.1, "contrast": 0.5,
                                              "amateur_temperature": 1.0}],
                                       humaneval={"problems": [None, None], "ids": ids[:2],
                                                  "max_new_tokens": 8, "temperature": 0.5,
                                                  "contrast": {"plausibility": 0.1,
                                                               "contrast": 0.5}})
    if size == "full":
        from real_models import load
        from real_models.prompts import BUILTIN, humaneval_chat_messages, load_prompts

        target = load("smollm2-135m")
        keep = ("prose-0", "chat-0", "code-0", "code-1")
        ps = [{"id": i, "text": t, "problem": None} for i, _, t in BUILTIN if i in keep]
        ps += load_prompts("humaneval:2")
        ids = [list(target.tokenizer(p["text"])["input_ids"]) for p in ps]
        problems = [p.get("problem") for p in ps]
        center = {"plausibility": 0.1, "contrast": 0.5, "amateur_temperature": 1.0}
        he = load_prompts("humaneval:20")
        return target, ids, problems, dict(
            drafts=["early-exit:8", "lens:8", "early-exit:24", "quant:3", "quant:4", "ngram:3"],
            draft="early-exit:24", max_new_tokens=16, gamma=3, Ms=(1, 2, 3, 4),
            eps=(0.05, 0.1, 0.2, 0.4),
            grid=one_at_a_time_grid(center, {"plausibility": (0.02, 0.3),
                                             "contrast": (0.25, 1.0),
                                             "amateur_temperature": (0.5, 1.5)}),
            humaneval={"problems": [p["problem"] for p in he],
                       "ids": [_chat_ids(target, humaneval_chat_messages(p["problem"]))
                               for p in he],
                       "format": "chat", "max_new_tokens": 256, "temperature": 0.2,
                       "contrast": center})
    raise ValueError(f"size must be 'smoke' or 'full', got {size!r}")


def run_study(name, size="smoke", out=".", seed=0):
    """Run one study (``STUDIES``) at a size; returns the data written to ``out/<name>.json``."""
    if name not in STUDIES:
        raise ValueError(f"study must be one of {STUDIES}, got {name!r}")
    target, ids, problems, cfg = _setup(size)
    common = dict(max_new_tokens=cfg["max_new_tokens"], seed=seed, out=out, size=size)
    if name == "draft_gallery":
        return draft_gallery(target, ids, cfg["drafts"], gamma=cfg["gamma"],
                             profile_repeats=7 if size == "full" else 1,
                             timing_repeats=3 if size == "full" else 1, **common)
    if name == "entropy":
        return entropy_study(target, ids, cfg["draft"], gamma=cfg["gamma"], **common)
    if name == "multidraft":
        return multidraft_study(target, ids, cfg["draft"], Ms=cfg["Ms"], gamma=cfg["gamma"],
                                **common)
    if name == "over_accept":
        return over_accept_study(target, ids, cfg["draft"], eps=cfg["eps"], gamma=cfg["gamma"],
                                 **common)
    held = None
    if size == "full":
        from real_models.prompts import BUILTIN

        held = [list(target.tokenizer(t + " and then")["input_ids"]) for _, _, t in BUILTIN[:4]]
    return scd_study(target, ids, cfg["draft"], grid=cfg["grid"], gamma=cfg["gamma"],
                     problems=problems, heldout_ids=held, humaneval=cfg.get("humaneval"),
                     **common)


def main(argv=None):
    """``python -m real_models.studies NAME|all [--size smoke|full] [--out DIR]``, or
    ``python -m real_models.studies redraw FILE.json ...``."""
    import argparse

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["redraw"]:
        if len(argv) < 2:
            print("usage: python -m real_models.studies redraw FILE.json [FILE.json ...]",
                  file=sys.stderr)
            return 2
        for f in argv[1:]:
            try:
                print(f"redrew {redraw(f)}")
            except (OSError, ValueError) as e:
                print(f"python -m real_models.studies redraw: error: {e}", file=sys.stderr)
                return 2
        return 0
    ap = argparse.ArgumentParser(prog="python -m real_models.studies", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", choices=(*STUDIES, "all"))
    ap.add_argument("--size", choices=("smoke", "full"), default="smoke")
    ap.add_argument("--out", default="studies_out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    for name in (STUDIES if a.name == "all" else (a.name,)):
        t0 = time.perf_counter()
        data = run_study(name, a.size, a.out, a.seed)
        print(f"{name}: {len(data['rows'])} rows -> {a.out}/{name}.json, {name}.png "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
