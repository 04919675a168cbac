"""Figure 7: multi-draft acceptance against M: recursive rejection vs optimal coupling vs k-SEQ.

One position, M i.i.d. drafts from q: the probability that the emitted token is one of the
drafts, for recursive rejection sampling (SpecInfer; ``rules.recursive``), the optimal coupling
(SpecTr's OTM-k, min-cut closed form ``rules.optimal``, checked against the linear program at
small M) and SpecTr's k-SEQ (``rules.kseq``). Pairs: Bernoulli (target Ber(0.6), draft
Ber(0.2), reference notes §7.5), uniform draft on V = 8 against a point-mass target (all three rules
coincide there: a draft is useful only if it hits the one token), and Dirichlet and Zipf pairs
with mean TV 0.4 over their states (acceptance averaged uniformly over states).
"""

from __future__ import annotations

import numpy as np

from paper_figures.common import cached, figure_entry, new_figure, series, styled

NAME = "fig07_multidraft_acceptance"
TITLE = "Multi-draft acceptance vs number of drafts M: recursive vs optimal vs k-SEQ"
CAPTION = ("Acceptance probability of M i.i.d. drafts at one position: recursive rejection "
           "(SpecInfer), optimal coupling (SpecTr OTM-k, LP-checked) and k-SEQ, on Bernoulli, "
           "uniform, Dirichlet and Zipf pairs")

PAIRS = [
    {"kind": "bernoulli", "args": [0.6, 0.2]},
    {"kind": "uniform", "args": [8]},
    {"kind": "dirichlet", "args": [8, 0.4]},
    {"kind": "zipf", "args": [16, 4, 0.4]},
]
PARAMS = {
    True: {"pairs": PAIRS, "Ms": [1, 2, 3, 4, 5, 6, 8], "lp_max_vars": 3_000},
    False: {"pairs": PAIRS, "Ms": list(range(1, 13)), "lp_max_vars": 100_000},
}
RULES = [("recursive", "recursive rejection (SpecInfer)"), ("kseq", "k-SEQ (SpecTr)"),
         ("optimal", "optimal coupling (OTM-k)")]


def make_pair(kind, args):
    """The pair of one panel."""
    from scdsim import chains

    if kind == "bernoulli":
        return chains.bernoulli_pair(*args)
    if kind == "uniform":
        return chains.uniform_pair(*args)
    if kind == "dirichlet":
        return chains.dirichlet_pair(args[0], args[1])
    if kind == "zipf":
        return chains.zipf_pair(args[0], S=args[1], mean_tv=args[2])
    raise ValueError(f"unknown pair kind {kind!r}")


def _compute(pairs, Ms, lp_max_vars):
    import scdsim
    from scdsim import rules

    out = []
    for spec in pairs:
        pair = make_pair(spec["kind"], spec["args"])
        P, Q = pair.kernels(0)
        acc = {name: [float(np.mean(scdsim.acceptance_prob(getattr(rules, name)(M), P, Q)))
                      for M in Ms] for name, _ in RULES}
        lp_M, lp = [], []
        for M in Ms:
            if pair.V ** (M + 1) * pair.S <= lp_max_vars:
                lp_M.append(M)
                lp.append(float(np.mean(scdsim.optimal_acceptance_lp(P, Q, M))))
        tvs = [float(x) for x in scdsim.tv(P, Q)]
        out.append({"name": pair.name, "kind": spec["kind"], "V": pair.V, "S": pair.S,
                    "mean_tv": float(np.mean(tvs)), **acc, "lp_M": lp_M, "lp": lp})
    return {"M": Ms, "pairs": out}


def compute(quick=False, use_cache=True):
    """Acceptance of the three rules per pair and M, with LP checks of the optimum."""
    return cached(NAME, PARAMS[bool(quick)], _compute, use_cache)


@styled
def plot(data):
    fig, axes = new_figure(4, 1, width=3.2, height=3.4)
    M = np.asarray(data["M"])
    for k, pr in enumerate(data["pairs"]):
        ax = axes[0, k]
        for i, (key, lab) in enumerate(RULES):
            st = series(i)
            ax.plot(M, pr[key], color=st["color"], linestyle=st["linestyle"],
                    marker=st["marker"], markersize=6 - 1.5 * i, label=lab)
        if pr["lp_M"]:
            ax.plot(pr["lp_M"], pr["lp"], color="black", marker="x", markersize=8,
                    linestyle="none", label="optimal by LP (check)")
        ax.axhline(1 - pr["mean_tv"], color="grey", lw=0.8, linestyle=":",
                   label="M = 1: 1 − TV")
        ax.set_ylim(min(0.5, 1 - pr["mean_tv"] - 0.05), 1.02)
        ax.set_xlabel("number of drafts M")
        ax.set_ylabel("acceptance probability (per position)")
        ax.set_title(f"({'abcd'[k]}) {_short(pr)}", fontsize=8.5)
        ax.legend(loc="upper left" if pr["kind"] == "uniform" else "lower right", fontsize=6.5)
    return fig


def _short(pr):
    if pr["kind"] == "bernoulli":
        return "target Ber(0.6), draft Ber(0.2)"
    if pr["kind"] == "uniform":
        return f"target δ₀, draft Unif(V={pr['V']})"
    return f"{pr['kind']}: V={pr['V']}, S={pr['S']}, mean TV {pr['mean_tv']:.2f}"


main = figure_entry(NAME)


if __name__ == "__main__":
    raise SystemExit(main())
