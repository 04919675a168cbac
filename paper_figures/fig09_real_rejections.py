"""Figure 9 (real models): predicted vs observed rejections per prompt, and the martingale z.

From saved ``scdsim validate`` results (``paper_figures.real``): for each prompt, the observed
number of rejections against the sum over its verified positions of the rule's rejection
probability from the realised (p_t, q_t); error bars +-1.96 sqrt(sum r_t (1 - r_t)), the
martingale standard deviation. (b) The per-prompt z-scores against N(0, 1).
"""

from __future__ import annotations

import numpy as np

from paper_figures.common import figure_entry, new_figure, series, styled

NAME = "fig09_real_rejections"
TITLE = "Real models: predicted vs observed rejections per prompt"
CAPTION = ("Real models (saved `scdsim validate` runs): observed rejections per prompt vs the sum "
           "of the rule's per-position rejection probabilities, and the martingale z histogram "
           "against N(0, 1)")


def compute(quick=False, use_cache=True):
    """Per-prompt (expected, observed, variance, z) of every saved run; or ``{"skipped"}``."""
    from paper_figures.real import find_or_make_runs, run_label

    runs, reason = find_or_make_runs(quick)
    if reason:
        return {"skipped": reason}
    out = []
    for run in runs:
        s = [p["summary"] for p in run["prompts"] if "summary" in p]
        rej = run["summary"].get("score", {}).get("rejections", {})
        out.append({"label": run_label(run), "dir": run["dir"],
                    "expected": [x["expected_rejections"] for x in s],
                    "observed": [x["rejections"] for x in s],
                    "var": [x["var_rejections"] for x in s],
                    "z": [x["z"] for x in s if x.get("z") is not None],
                    "z_pooled": rej.get("z_pooled"), "ks_pvalue": rej.get("ks_pvalue")})
    return {"runs": out}


@styled
def plot(data):
    from scipy import stats

    fig, axes = new_figure(2, 1, width=4.3, height=3.7)
    ax, axz = axes[0]
    hi = 1.0
    for i, r in enumerate(data["runs"]):
        st = series(i)
        e, o, v = (np.asarray(r[k], dtype=float) for k in ("expected", "observed", "var"))
        zp = r["z_pooled"]
        ax.errorbar(e, o, yerr=1.96 * np.sqrt(v), color=st["color"], marker=st["marker"],
                    linestyle="none", capsize=2, alpha=0.8,
                    label=f"{r['label']}" + (f" (pooled z = {zp:+.2f})" if zp is not None else ""))
        hi = max(hi, float(np.max(e, initial=0)), float(np.max(o, initial=0)))
    ax.plot([0, hi * 1.05], [0, hi * 1.05], color="grey", lw=1.0, marker="", label="observed = predicted")
    ax.set_xlabel("predicted rejections Σ r_t  (tokens per prompt)")
    ax.set_ylabel("observed rejections  (tokens per prompt)")
    ax.set_title("(a) per prompt, ±1.96 martingale s.d.")
    ax.set_ylim(0, 1.3 * hi)
    ax.legend(loc="upper left", fontsize=7)
    zs = [np.asarray(r["z"], dtype=float) for r in data["runs"]]
    allz = np.concatenate(zs) if zs else np.zeros(0)
    lim = max(4.0, float(np.max(np.abs(allz), initial=0)) + 0.5)
    bins = np.linspace(-lim, lim, 25)
    for i, (r, z) in enumerate(zip(data["runs"], zs)):
        st = series(i)
        ks = r["ks_pvalue"]
        axz.hist(z, bins=bins, density=True, histtype="step", lw=1.6, color=st["color"],
                 linestyle=st["linestyle"],
                 label=f"{r['label']}: {len(z)} prompts" + (f", KS p = {ks:.2g}" if ks is not None else ""))
    x = np.linspace(-lim, lim, 200)
    axz.plot(x, stats.norm.pdf(x), color="black", lw=1.2, marker="", label="N(0, 1)")
    axz.set_xlabel("z = (observed − predicted) / martingale s.d.  (s.d. units)")
    axz.set_ylabel("density  (1 / s.d. unit)")
    axz.set_title("(b) per-prompt z-scores")
    axz.set_ylim(0, 1.5 * max(0.4, axz.get_ylim()[1]))
    axz.legend(loc="upper left", fontsize=7)
    return fig


main = figure_entry(NAME)


if __name__ == "__main__":
    raise SystemExit(main())
