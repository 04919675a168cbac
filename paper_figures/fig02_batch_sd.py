"""Figure 2 (Yin et al. Fig. 2 middle/right): batch SD, Monte Carlo against exact, and the M scaling.

(a), (b) Batch SD with M = 4 and 5 recursive-rejection drafts on the 7-state non-stationary
chain of figure 1 (T = 50): Monte Carlo running means (+-1.96 s.e.) against the exact engine,
in the two labelled readings of Yin et al.'s Alg. 4 (reference notes §1.6): variant A verifies the
M drafts only at the first position of a block, variant B keeps every draft consistent with the
accepted prefix (a tree).
(c) Expected rejections against M on the T = 4 chain of reference notes §7.3: variant A (exact)
converges to its M -> infinity limit 0.651050 (Yin et al. Prop. 1: not zero); variant B (exact
for small M, Monte Carlo beyond) keeps falling.
"""

from __future__ import annotations

import numpy as np

from paper_figures.common import cached, figure_entry, new_figure, running_mean, series, styled
from paper_figures.fig01_mc_convergence import chain_pair

NAME = "fig02_batch_sd"
TITLE = "Batch speculative decoding (Yin et al. Alg. 4): Monte Carlo vs exact, and the M scaling"
CAPTION = ("Yin et al. Fig. 2 (middle/right): batch SD with M = 4, 5 drafts, MC vs exact in both "
           "batch readings; E[N_rej] vs M converging to the M → ∞ limit (variant A)")

PARAMS = {
    True: {"horizon": 50, "Ms": [4, 5], "runs": 3_000, "seed": 7, "points": 20,
           "curve_Ms": [1, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32, 48, 64], "tree_exact_max": 7,
           "tree_mc_Ms": [8, 16, 32, 64], "tree_mc_runs": 3_000},
    False: {"horizon": 50, "Ms": [4, 5], "runs": 50_000, "seed": 7, "points": 30,
            "curve_Ms": [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 24, 32, 48, 64],
            "tree_exact_max": 10, "tree_mc_Ms": [12, 16, 24, 32, 48, 64],
            "tree_mc_runs": 20_000},
}


def _compute(horizon, Ms, runs, seed, points, curve_Ms, tree_exact_max, tree_mc_Ms,
             tree_mc_runs):
    import scdsim
    from scdsim import chains, rules

    pair = chain_pair(100)  # the chain of figure 1, first `horizon` positions
    conv = []
    for batch in ("first", "tree"):
        for j, M in enumerate(Ms):
            rule = rules.recursive(M)
            exact = scdsim.expected_rejections(pair, rule, horizon, batch=batch)
            res = scdsim.simulate(pair, rule, horizon, runs=runs, rng=seed + 10 * j, batch=batch)
            n, mean, sem = running_mean(res.rejections, points)
            conv.append({"batch": batch, "M": M, "exact": exact, "n": n, "mean": mean,
                         "sem": sem, "mean_rejections": res.mean_rejections,
                         "sem_rejections": res.sem_rejections})
    yin = chains.yin_example()
    T = 4
    A = scdsim.batch_curve(yin, T, curve_Ms, batch="first")
    tree_Ms = [m for m in curve_Ms if m <= tree_exact_max]
    B = scdsim.batch_curve(yin, T, tree_Ms, batch="tree")
    mc = []
    for M in tree_mc_Ms:
        r = scdsim.simulate(yin, rules.recursive(M), T, runs=tree_mc_runs, rng=seed + M,
                            batch="tree")
        mc.append({"M": M, "mean": r.mean_rejections, "sem": r.sem_rejections})
    return {"horizon": horizon, "convergence": conv,
            "curve": {"M": A["M"], "first": A["rejections"], "tree_M": B["M"],
                      "tree": B["rejections"], "tree_mc": mc,
                      "limit": scdsim.expected_rejections_batch_limit(yin, T),
                      "theorem1": scdsim.expected_rejections_theorem1(yin, T)}}


def compute(quick=False, use_cache=True):
    """Monte Carlo and exact batch-SD rejections; the exact M curves on the §7.3 chain."""
    return cached(NAME, PARAMS[bool(quick)], _compute, use_cache)


@styled
def plot(data):
    fig, axes = new_figure(3, 1, width=3.9, height=3.5)
    labels = {"first": "variant A (first-position batch)", "tree": "variant B (tree)"}
    for k, batch in enumerate(("first", "tree")):
        ax = axes[0, k]
        for i, c in enumerate(x for x in data["convergence"] if x["batch"] == batch):
            st = series(2 * k + i)
            n, m, s = np.asarray(c["n"]), np.asarray(c["mean"]), np.asarray(c["sem"])
            ax.fill_between(n, m - 1.96 * s, m + 1.96 * s, color=st["color"], alpha=0.18, lw=0)
            ax.plot(n, m, color=st["color"], marker=st["marker"], linestyle=st["linestyle"],
                    markevery=4, label=f"Monte Carlo, M = {c['M']}")
            ax.axhline(c["exact"], color=st["color"], lw=1.0, linestyle=(0, (2, 2)),
                       label=f"exact, M = {c['M']}: {c['exact']:.3f}")
        ax.set_xscale("log")
        ax.set_xlabel("Monte Carlo runs n")
        ax.set_ylabel("mean rejections per sequence  (tokens)")
        ax.set_title(f"({'ab'[k]}) {labels[batch]}, T = {data['horizon']}")
        ax.legend(loc="upper right", fontsize=7)
    lo = min(min(np.asarray(c["mean"]) - 2 * np.asarray(c["sem"])) for c in data["convergence"])
    hi = max(max(np.asarray(c["mean"]) + 2 * np.asarray(c["sem"])) for c in data["convergence"])
    for ax in axes[0, :2]:
        ax.set_ylim(lo, hi + 0.35 * (hi - lo))
    ax = axes[0, 2]
    cv = data["curve"]
    ax.plot(cv["M"], cv["first"], label="variant A, exact", **series(0))
    ax.plot(cv["tree_M"], cv["tree"], label="variant B, exact", **series(2))
    mc = cv["tree_mc"]
    st = series(3)
    ax.errorbar([x["M"] for x in mc], [x["mean"] for x in mc],
                yerr=[1.96 * x["sem"] for x in mc], color=st["color"], marker=st["marker"],
                linestyle="none", capsize=3, label="variant B, Monte Carlo (±1.96 s.e.)")
    ax.axhline(cv["limit"], color="grey", lw=1.2, linestyle=(0, (4, 2)),
               label=f"variant A limit M → ∞: {cv['limit']:.6f}")
    ax.axhline(cv["theorem1"], color="grey", lw=0.8, linestyle=":",
               label=f"M = 1 (Thm 1): {cv['theorem1']:.4f}")
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1.15)
    ax.set_xlabel("number of drafts M (log scale)")
    ax.set_ylabel("expected rejections E[N_rej]  (tokens)")
    ax.set_title("(c) scaling in M, docs/theory.md §3 chain (T = 4)")
    ax.legend(loc="lower left", fontsize=7)
    return fig


main = figure_entry(NAME)


if __name__ == "__main__":
    raise SystemExit(main())
