"""Figure 6: expected acceleration of SCD against SD, from the cost model (a reconstruction).

Speculative contrastive decoding (Yuan et al. 2024) is lossless SD whose target is the
contrastive law; with acceptance rate lambda of amateur drafts against it, the tokens per
expert call are Leviathan's Eq. (1) in lambda, but the amateur also supplies the contrast, so a
block costs ``1 + c gamma + c lambda^gamma`` expert-call units (extra amateur call only after a
fully accepted block) or ``1 + c (gamma + 1)`` (always). **This cost model is reconstructed
(reference notes §2), not the paper's verified formula.** (a), (b): acceleration vs lambda at
gamma = 4 for c = 0.05 and 0.2: SD (Thm 3.8), SCD in both amateur options against expert-only
decoding, and SCD against non-speculative contrastive decoding (cost 1 + c per token).
(c): the ratio SCD / SD against c for several lambda.
"""

from __future__ import annotations

import numpy as np

from paper_figures.common import cached, figure_entry, new_figure, series, styled

NAME = "fig06_scd_acceleration"
TITLE = "Speculative contrastive decoding vs SD: expected acceleration (reconstructed cost model)"
CAPTION = ("SCD (Yuan et al.) vs SD: expected acceleration vs acceptance rate λ and cost ratio c "
           "from the cost model (SCD's formula is a reconstruction, docs/theory.md §7), both amateur "
           "options, against the expert and against contrastive decoding")

PARAMS = {
    True: {"gamma": 4, "panel_cs": [0.05, 0.2], "lams": 41, "ratio_lams": [0.6, 0.7, 0.8, 0.9],
           "cs": 41},
    False: {"gamma": 4, "panel_cs": [0.05, 0.2], "lams": 201,
            "ratio_lams": [0.6, 0.7, 0.8, 0.9], "cs": 201},
}
METHODS = [
    ("sd", "SD (Leviathan Thm 3.8) vs expert"),
    ("scd", "SCD, extra amateur call on full accept, vs expert"),
    ("scd_always", "SCD, amateur γ+1 calls, vs expert"),
    ("scd_vs_cd", "SCD (full-accept option) vs contrastive decoding"),
]


def _curves(lam, gamma, c):
    from scdsim import cost

    return {"sd": cost.speedup(lam, gamma, c),
            "scd": cost.scd_speedup(lam, gamma, c),
            "scd_always": cost.scd_speedup(lam, gamma, c, amateur="always"),
            "scd_vs_cd": cost.scd_speedup(lam, gamma, c, baseline="cd")}


def _compute(gamma, panel_cs, lams, ratio_lams, cs):
    lam = np.linspace(0.0, 0.99, lams)
    panels = [{"c": c, **_curves(lam, gamma, c)} for c in panel_cs]
    cgrid = np.linspace(0.0, 0.3, cs)
    ratio = []
    for lv in ratio_lams:
        cur = _curves(np.full_like(cgrid, lv), gamma, cgrid)
        ratio.append({"lam": lv, "ratio": cur["scd"] / cur["sd"],
                      "ratio_always": cur["scd_always"] / cur["sd"]})
    return {"gamma": gamma, "lam": lam, "panels": panels, "c": cgrid, "ratio": ratio}


def compute(quick=False, use_cache=True):
    """Cost-model curves (cheap: quick and full differ only in grid resolution)."""
    return cached(NAME, PARAMS[bool(quick)], _compute, use_cache)


@styled
def plot(data):
    fig, axes = new_figure(3, 1, width=3.9, height=3.6)
    lam = np.asarray(data["lam"])
    for k, pan in enumerate(data["panels"]):
        ax = axes[0, k]
        for i, (key, lab) in enumerate(METHODS):
            st = series(i)
            ax.plot(lam, pan[key], color=st["color"], linestyle=st["linestyle"],
                    marker=st["marker"], markevery=max(1, len(lam) // 8), label=lab)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xlabel("acceptance rate λ (amateur vs contrastive target)")
        ax.set_ylabel("expected acceleration  (× baseline)")
        ax.set_title(f"({'ab'[k]}) γ = {data['gamma']}, c = {pan['c']:g}")
        ax.legend(loc="upper left", fontsize=6.5)
        ax.set_ylim(0, 1.35 * max(max(pan[key]) for key, _ in METHODS))
    ax = axes[0, 2]
    c = np.asarray(data["c"])
    for i, r in enumerate(data["ratio"]):
        st = series(i)
        ax.plot(c, r["ratio"], color=st["color"], linestyle=st["linestyle"], marker=st["marker"],
                markevery=max(1, len(c) // 8), label=f"λ = {r['lam']:g}")
    ax.set_xlabel("cost ratio c (amateur / expert walltime)")
    ax.set_ylabel("SCD / SD acceleration  (ratio)")
    ax.set_title(f"(c) SCD / SD at γ = {data['gamma']} (full-accept option)")
    ax.legend(loc="lower left", fontsize=7)
    return fig


main = figure_entry(NAME)


if __name__ == "__main__":
    raise SystemExit(main())
