"""Figure 1 (Yin et al. Fig. 2 left): Monte Carlo mean rejections converge to Theorem 1.

A seeded, non-stationary (time-inhomogeneous) Markov chain with 7 states; lossless SD drafting
to the horizon (Yin et al. Alg. 1). For each horizon T the Monte Carlo mean of N_rej over the
first n runs, with its +-1.96 s.e. band, is drawn against n; the dashed line is the exact
value of Thm 1, ``sum_n E_{prefix ~ target}[TV(p_n, q_n)]`` (exact engine).
"""

from __future__ import annotations

import numpy as np

from paper_figures.common import cached, figure_entry, new_figure, running_mean, series, styled

NAME = "fig01_mc_convergence"
TITLE = "Monte Carlo rejections converge to Yin et al. Thm 1"
CAPTION = ("Yin et al. Fig. 2 (left): mean rejections of SD over n runs (±1.96 s.e. band) on a "
           "7-state non-stationary Markov chain, T = 25, 50, 100, against the exact Thm 1 value")

PARAMS = {
    True: {"horizons": [25, 50, 100], "runs": 4_000, "states": 7, "concentration": 4.0,
           "seed": 2024, "points": 25},
    False: {"horizons": [25, 50, 100], "runs": 100_000, "states": 7, "concentration": 4.0,
            "seed": 2024, "points": 40},
}


def chain_pair(horizon, states=7, concentration=4.0, seed=2024):
    """The seeded non-stationary pair: target and draft rows i.i.d. Dirichlet(concentration)."""
    from scdsim.chains import MarkovLM, MarkovPair

    rng = np.random.default_rng(seed)
    a = np.full(states, concentration)
    P = rng.dirichlet(a, size=(horizon, states))
    Q = rng.dirichlet(a, size=(horizon, states))
    return MarkovPair(MarkovLM(P), MarkovLM(Q),
                      name=f"nonstationary(S={states}, T={horizon}, seed={seed})")


def _compute(horizons, runs, states, concentration, seed, points):
    import scdsim
    from scdsim import rules

    out = {"horizons": horizons, "curves": []}
    for i, T in enumerate(horizons):
        pair = chain_pair(max(horizons), states, concentration, seed)
        exact = scdsim.expected_rejections(pair, rules.lossless, T)
        thm1 = scdsim.expected_rejections_theorem1(pair, T)
        res = scdsim.simulate(pair, rules.lossless, T, runs=runs, rng=seed + i)
        n, mean, sem = running_mean(res.rejections, points)
        out["curves"].append({"T": T, "exact": exact, "theorem1": thm1, "n": n, "mean": mean,
                              "sem": sem, "mean_rejections": res.mean_rejections,
                              "sem_rejections": res.sem_rejections, "seed": res.seed})
    return out


def compute(quick=False, use_cache=True):
    """Exact Thm 1 values and Monte Carlo running means for each horizon."""
    return cached(NAME, PARAMS[bool(quick)], _compute, use_cache)


@styled
def plot(data):
    """Running mean / exact, one panel: the horizons on one scale (ratio to the exact value)."""
    fig, axes = new_figure(2, 1, width=4.2)
    ax, axr = axes[0]
    for i, c in enumerate(data["curves"]):
        st = series(i)
        n, m, s = np.asarray(c["n"]), np.asarray(c["mean"]), np.asarray(c["sem"])
        ax.fill_between(n, m - 1.96 * s, m + 1.96 * s, color=st["color"], alpha=0.18, lw=0)
        ax.plot(n, m, color=st["color"], marker=st["marker"], linestyle=st["linestyle"],
                markevery=4, label=f"Monte Carlo, T = {c['T']}")
        ax.axhline(c["exact"], color=st["color"], lw=1.0, linestyle=(0, (2, 2)))
        z = (m - c["exact"]) / np.where(s > 0, s, np.nan)
        axr.plot(n, z, color=st["color"], marker=st["marker"], linestyle=st["linestyle"],
                 markevery=4, label=f"T = {c['T']}")
    ax.plot([], [], color="grey", lw=1.0, marker="", linestyle=(0, (2, 2)),
            label="exact (Thm 1)")
    top = max(float(np.max(np.asarray(c["mean"]) + 1.96 * np.asarray(c["sem"])))
              for c in data["curves"])
    ax.set_ylim(0, 1.45 * top)
    ax.set_xscale("log")
    ax.set_xlabel("Monte Carlo runs n")
    ax.set_ylabel("mean rejections per sequence  (tokens)")
    ax.set_title("(a) running mean ± 1.96 s.e. vs Thm 1")
    ax.legend(loc="upper center", ncol=2)
    axr.axhspan(-1.96, 1.96, color="grey", alpha=0.15, lw=0, label="|z| < 1.96")
    axr.axhline(0, color="black", lw=0.8)
    axr.set_xscale("log")
    axr.set_xlabel("Monte Carlo runs n")
    axr.set_ylabel("z = (MC mean − exact) / s.e.  (s.e. units)")
    axr.set_title("(b) standardised error")
    axr.set_ylim(-4.89, 4.89)
    axr.legend(loc="lower right", ncol=2)
    fig.suptitle(TITLE + "\n7-state non-stationary Markov chain, lossless SD drafting to the "
                 "horizon")
    return fig


main = figure_entry(NAME)


if __name__ == "__main__":
    raise SystemExit(main())
