"""Figure 3 (Yin et al. Fig. 3 right): batch improvement against the number of drafts M.

Batch improvement at one position, ``BI_M = TV(p, q) - R_M`` with ``R_M`` the probability that
all M recursive-rejection drafts are rejected (reference notes §1.6), from the exact engine
(``scdsim.batch_curve`` at horizon 1). (a) Bernoulli pairs ``p = Ber(b)`` target,
``q = Ber(a)`` draft; (b) uniform draft ``Unif(V)`` against the target ``delta_0`` for several
V. Lines are the closed forms of reference notes §1.6 (``(b - a)(1 - (1 - a)^(M-1))`` for b > a,
``(a - b)(1 - a^(M-1))`` for b < a, ``(1 - 1/V)(1 - (1 - 1/V)^(M-1))``); markers the engine.
The paper's own Bernoulli/uniform parameters were not found: these are ours.
"""

from __future__ import annotations

import numpy as np

from paper_figures.common import cached, figure_entry, new_figure, series, styled

NAME = "fig03_batch_improvement"
TITLE = "Batch improvement saturates in M (Yin et al. Fig. 3, right)"
CAPTION = ("Yin et al. Fig. 3 (right): one-position batch improvement TV − R_M vs M for "
           "Bernoulli pairs and for a uniform draft against a point-mass target (V = 2..32); "
           "exact engine (markers) on the closed forms (lines)")

PARAMS = {
    True: {"Ms": list(range(1, 13)), "bernoulli": [[0.2, 0.6], [0.5, 0.9], [0.7, 0.3],
                                                   [0.1, 0.9]], "Vs": [2, 4, 8, 16, 32]},
    False: {"Ms": list(range(1, 33)), "bernoulli": [[0.2, 0.6], [0.5, 0.9], [0.7, 0.3],
                                                    [0.1, 0.9]], "Vs": [2, 4, 8, 16, 32]},
}


def bernoulli_closed_form(a, b, Ms):
    """reference notes §1.6: ``BI_M`` for draft ``Ber(a)`` and target ``Ber(b)``."""
    Ms = np.asarray(Ms, dtype=float)
    if b >= a:
        return (b - a) * (1.0 - (1.0 - a) ** (Ms - 1))
    return (a - b) * (1.0 - a ** (Ms - 1))


def uniform_closed_form(V, Ms):
    """reference notes §1.6: ``BI_M`` for draft ``Unif(V)`` and target ``delta_0``."""
    Ms = np.asarray(Ms, dtype=float)
    return (1.0 - 1.0 / V) * (1.0 - (1.0 - 1.0 / V) ** (Ms - 1))


def _compute(Ms, bernoulli, Vs):
    import scdsim
    from scdsim import chains

    bern = []
    for a, b in bernoulli:
        c = scdsim.batch_curve(chains.bernoulli_pair(b, a), 1, Ms)
        bern.append({"draft": a, "target": b, "improvement": c["improvement"],
                     "rejections": c["rejections"],
                     "closed_form": bernoulli_closed_form(a, b, Ms)})
    unif = []
    for V in Vs:
        c = scdsim.batch_curve(chains.uniform_pair(V), 1, Ms)
        unif.append({"V": V, "improvement": c["improvement"], "rejections": c["rejections"],
                     "closed_form": uniform_closed_form(V, Ms)})
    return {"M": Ms, "bernoulli": bern, "uniform": unif}


def compute(quick=False, use_cache=True):
    """Exact batch improvement curves and their closed forms."""
    return cached(NAME, PARAMS[bool(quick)], _compute, use_cache)


@styled
def plot(data):
    fig, axes = new_figure(2, 1, width=4.3, height=3.5)
    M = np.asarray(data["M"])
    for k, key in enumerate(("bernoulli", "uniform")):
        ax = axes[0, k]
        handles, labels = [], []
        for i, c in enumerate(data[key]):
            st = series(i)
            labels.append(f"q = Ber({c['draft']}), p = Ber({c['target']})"
                          if key == "bernoulli" else f"V = {c['V']}")
            (h1,) = ax.plot(M, c["closed_form"], color=st["color"], linestyle=st["linestyle"],
                            lw=1.0, marker="")
            (h2,) = ax.plot(M, c["improvement"], color=st["color"], marker=st["marker"],
                            linestyle="none")
            handles.append((h1, h2))
        ax.set_xlabel("number of drafts M")
        ax.set_ylabel("batch improvement TV − R_M\n(rejection probability per position)")
        ax.set_ylim(0, 1.08)
        ax.legend(handles, labels, loc="upper left", fontsize=7, ncol=2,
                  title="markers: exact engine; lines: closed form", title_fontsize=7)
    axes[0, 0].set_title("(a) Bernoulli pairs (draft q, target p)")
    axes[0, 1].set_title("(b) uniform draft q = Unif(V), target p = δ₀")
    return fig


main = figure_entry(NAME)


if __name__ == "__main__":
    raise SystemExit(main())
