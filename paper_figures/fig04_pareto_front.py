"""Figure 4 (Yin et al. Fig. 4): the bias-rejection Pareto front of one verification step.

For a target ``p`` and a draft ``q`` (reference notes §7.4 Examples 1 and 2; Yin et al. write them
the other way round) the least bias ``TV(output law, p)`` at each rejection probability is
computed by linear programming over every single-draft rule (``scdsim.pareto_front``); Yin et
al. Thm 5 says it is the line ``bias = max(0, TV - rejection)``; the region below is
unattainable. Over-accepting rules ``b_eps`` for an eps sweep in both forms,
``min(1, (p + eps)/q)`` and ``min(1, p/q + eps)`` (the paper's form was not found), are placed
by their exact (rejection, bias): Decoding-OPT (Thm 4's resampling law) lies on the front,
Decoding-UNO (resample from p) above it.
"""

from __future__ import annotations

import numpy as np

from paper_figures.common import cached, figure_entry, new_figure, series, styled

NAME = "fig04_pareto_front"
TITLE = "The bias-rejection Pareto front (Yin et al. Thms 4-5, Fig. 4)"
CAPTION = ("Yin et al. Fig. 4: least bias vs rejection probability by LP over all rules (the "
           "line rejection + bias = TV, unattainable region shaded), with Decoding-OPT and "
           "Decoding-UNO over an ε sweep, both b_ε forms")

EXAMPLES = [
    {"name": "Example 1", "target": [0.2, 0.3, 0.5], "draft": [0.5, 0.3, 0.2]},
    {"name": "Example 2", "target": [0.1, 0.2, 0.3, 0.4], "draft": [0.4, 0.3, 0.2, 0.1]},
]
PAPER_EPS = [0.1, 0.2, 0.4, 0.8]

PARAMS = {
    True: {"examples": EXAMPLES, "eps": [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8],
           "front_points": 21},
    False: {"examples": EXAMPLES, "eps": [float(e) for e in np.round(np.linspace(0, 1, 41), 3)],
            "front_points": 101},
}
FORMS = {"additive": "min(1, (p+ε)/q)", "ratio": "min(1, p/q+ε)"}
RESAMPLE = {"optimal": "OPT", "target": "UNO"}


def _compute(examples, eps, front_points):
    import scdsim
    from scdsim import rules

    out = []
    for ex in examples:
        p, q = np.asarray(ex["target"]), np.asarray(ex["draft"])
        front = scdsim.pareto_front(p, q, n=front_points)
        pts = {}
        for form in FORMS:
            for resample in RESAMPLE:
                g = [scdsim.front_gap(rules.over_accept(e, form=form, resample=resample), p, q)
                     for e in eps]
                pts[f"{form}/{resample}"] = {"rejection": [x.rejection for x in g],
                                             "bias": [x.bias for x in g],
                                             "gap": [x.gap for x in g]}
        out.append({**ex, "tv": front.tv, "front_rejection": front.rejection,
                    "front_bias": front.bias, "points": pts})
    return {"eps": eps, "examples": out}


def compute(quick=False, use_cache=True):
    """LP front and the (rejection, bias) of OPT and UNO over the eps sweep."""
    return cached(NAME, PARAMS[bool(quick)], _compute, use_cache)


@styled
def plot(data):
    fig, axes = new_figure(len(data["examples"]), 1, width=4.4, height=3.9)
    eps = np.asarray(data["eps"])
    for k, ex in enumerate(data["examples"]):
        ax = axes[0, k]
        r, b, tv = np.asarray(ex["front_rejection"]), np.asarray(ex["front_bias"]), ex["tv"]
        ax.fill_between(r, 0, b, color="grey", alpha=0.25, lw=0, label="unattainable")
        ax.plot(r, np.maximum(0, tv - r), color="black", lw=1.4, marker="",
                label="Thm 5: rejection + bias = TV")
        ax.plot(r, b, color="black", marker=".", markersize=3, linestyle="none",
                label="least bias by LP (grid)")
        i = 1
        for form, flab in FORMS.items():
            for resample, rlab in RESAMPLE.items():
                st = series(i)
                pts = ex["points"][f"{form}/{resample}"]
                filled = resample == "optimal"
                ax.plot(pts["rejection"], pts["bias"], color=st["color"], marker=st["marker"],
                        linestyle=st["linestyle"], lw=0.8, alpha=0.9,
                        markerfacecolor=st["color"] if filled else "none",
                        markersize=8 if form == "additive" else 5,
                        label=f"Decoding-{rlab}, b_ε = {flab}")
                i += 1
        # label the paper's eps values on the UNO additive path
        pts = ex["points"]["additive/target"]
        seen = {}
        for e in PAPER_EPS:
            j = np.flatnonzero(np.isclose(eps, e))
            if j.size:
                xy = (round(pts["rejection"][j[0]], 9), round(pts["bias"][j[0]], 9))
                seen.setdefault(xy, []).append(f"{e:g}")
        for xy, es in seen.items():
            ax.annotate("ε=" + ",".join(es), xy, textcoords="offset points", xytext=(4, 4),
                        fontsize=6.5)
        ax.set_xlim(-0.02, tv + 0.1)
        ax.set_ylim(-0.01, 0.5)
        ax.set_xlabel("rejection probability P(reject)  (per position)")
        ax.set_ylabel("bias TV(output law, target p)")
        ax.set_title(f"({'ab'[k]}) {ex['name']} (docs/theory.md §2), TV = {tv:.2f}\n"
                     f"p = {tuple(ex['target'])}, q = {tuple(ex['draft'])}", fontsize=8.5)
        ax.legend(loc="upper right", fontsize=6.5, title_fontsize=6.5,
                  title="ε labels: the UNO points of min(1, (p+ε)/q)")
    fig.suptitle(TITLE + "\np = target, q = draft (Yin et al. swap the letters)")
    return fig


main = figure_entry(NAME)


if __name__ == "__main__":
    raise SystemExit(main())
