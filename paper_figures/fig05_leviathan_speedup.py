"""Figure 5 (Leviathan et al. Figs. 2/3): tokens per target call and walltime speedup vs gamma.

(a) Expected tokens per target call ``(1 - alpha^(gamma+1)) / (1 - alpha)`` (Leviathan Eq. 1)
for an alpha grid; markers are the exact engine's long-run tokens per call
(``scdsim.stationary_rates``) on a one-state pair whose acceptance rate is alpha.
(b)-(d) Walltime improvement factor ``(1 - alpha^(gamma+1)) / ((1 - alpha)(gamma c + 1))``
(Thm 3.8) for three cost ratios c, the optimal integer gamma marked (``cost.optimal_gamma``).
"""

from __future__ import annotations

import numpy as np

from paper_figures.common import cached, figure_entry, new_figure, series, styled

NAME = "fig05_leviathan_speedup"
TITLE = "Speculative decoding: tokens per call and walltime speedup vs γ (Leviathan et al.)"
CAPTION = ("Leviathan et al. Figs. 2/3: expected tokens per target call (Eq. 1, exact-engine "
           "markers) and walltime speedup (Thm 3.8) vs γ for α = 0.5..0.95 and c = 0.01, "
           "0.05, 0.1, optimal γ starred")

PARAMS = {
    True: {"alphas": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95], "cs": [0.01, 0.05, 0.1], "max_gamma": 40,
           "engine_gammas": [1, 2, 4, 8]},
    False: {"alphas": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95], "cs": [0.01, 0.05, 0.1],
            "max_gamma": 40, "engine_gammas": [1, 2, 3, 4, 6, 8, 12, 16, 20]},
}


def _compute(alphas, cs, max_gamma, engine_gammas):
    import scdsim
    from scdsim import chains, cost, rules

    g = np.arange(0, max_gamma + 1)
    tokens = [cost.expected_tokens(a, g) for a in alphas]
    engine = []
    for a in alphas:
        # draft (1, 0), target (alpha, 1 - alpha): TV = 1 - alpha in the single state
        pair = chains.bernoulli_pair(1.0 - a, 0.0)
        engine.append([scdsim.stationary_rates(pair, rules.lossless, k).tokens_per_call
                       for k in engine_gammas])
    speed = {}
    best = {}
    for c in cs:
        speed[str(c)] = [cost.speedup(a, g[1:], c) for a in alphas]
        og = cost.optimal_gamma(np.asarray(alphas), c, max_gamma=200)
        best[str(c)] = {"gamma": og.gamma, "speedup": og.speedup}
    return {"alphas": alphas, "cs": cs, "gamma": g, "tokens": tokens,
            "engine_gammas": engine_gammas, "engine_tokens": engine, "speedup": speed,
            "optimal": best}


def compute(quick=False, use_cache=True):
    """Cost-model curves, exact-engine tokens per call and the optimal gammas."""
    return cached(NAME, PARAMS[bool(quick)], _compute, use_cache)


@styled
def plot(data):
    cs = data["cs"]
    fig, axes = new_figure(2, 2, width=4.3, height=3.3)
    g = np.asarray(data["gamma"])
    ax = axes[0, 0]
    handles = []
    for i, a in enumerate(data["alphas"]):
        st = series(i)
        (h,) = ax.plot(g, data["tokens"][i], color=st["color"], linestyle=st["linestyle"],
                       marker="", label=f"α = {a:g}")
        ax.plot(data["engine_gammas"], data["engine_tokens"][i], color=st["color"],
                marker=st["marker"], linestyle="none")
        handles.append(h)
    (hm,) = ax.plot([], [], color="grey", marker="o", linestyle="none",
                    label="exact engine (stationary)")
    ax.legend(handles=handles + [hm], loc="upper left", fontsize=7, ncol=2)
    ax.set_xlabel("draft tokens per block γ")
    ax.set_ylabel("expected tokens per target call")
    ax.set_title("(a) Eq. (1): (1 − α^(γ+1)) / (1 − α)")
    for k, c in enumerate(cs):
        ax = axes.ravel()[k + 1]
        opt = data["optimal"][str(c)]
        for i, a in enumerate(data["alphas"]):
            st = series(i)
            ax.plot(g[1:], data["speedup"][str(c)][i], color=st["color"],
                    linestyle=st["linestyle"], marker="", label=f"α = {a:g}")
            gs, sp = opt["gamma"][i], opt["speedup"][i]
            ax.plot([gs], [sp], color=st["color"], marker="*", markersize=10,
                    markeredgecolor="black", markeredgewidth=0.6, linestyle="none")
            # the lowest curves are close together: their labels go below-right
            off, ha = ((6, -12), "left") if i < 2 else ((0, 7), "center")
            ax.annotate(f"γ*={gs}", (gs, sp), textcoords="offset points", xytext=off,
                        fontsize=6.5, ha=ha)
        (h,) = ax.plot([], [], color="grey", marker="*", markersize=10,
                       markeredgecolor="black", linestyle="none",
                       label="optimal integer γ (α as in (a))")
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_xlim(0, g[-1] + 4)
        ax.set_ylim(0, 1.12 * max(max(opt["speedup"]), 1.0))
        ax.set_xlabel("draft tokens per block γ")
        ax.set_ylabel("walltime speedup  (× autoregressive)")
        ax.set_title(f"({'bcd'[k]}) Thm 3.8 at cost ratio c = {c:g}")
        ax.legend(handles=[h], loc="lower right", fontsize=7)
    return fig


main = figure_entry(NAME)


if __name__ == "__main__":
    raise SystemExit(main())
