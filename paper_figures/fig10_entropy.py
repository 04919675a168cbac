"""Figure 10 (real models): entropy of the target at accepted vs rejected draft tokens, SD and SCD.

The SCD paper's "compatibility" analysis (Yuan et al.; direction of the effect not verified in
theory.md): at every verified position of saved ``scdsim validate`` runs, the entropy of the
target law (the contrasted law for SCD) where the draft token was accepted vs where it was
rejected. (a) Distributions over positions; (b) per-run means with 95 % intervals over prompts.
"""

from __future__ import annotations

import numpy as np

from paper_figures.common import figure_entry, new_figure, series, styled

NAME = "fig10_entropy"
TITLE = "Real models: target entropy at accepted vs rejected draft tokens (SD and SCD)"
CAPTION = ("Real models (saved `scdsim validate` runs): entropy of the target law at accepted vs "
           "rejected draft tokens, SD and SCD (the SCD paper's analysis)")


def compute(quick=False, use_cache=True):
    """Entropies at accepted / recovered positions of every saved run; or ``{"skipped"}``."""
    from paper_figures.real import find_or_make_runs, run_label

    runs, reason = find_or_make_runs(quick)
    if reason:
        return {"skipped": reason}
    out = []
    for run in runs:
        acc, rej, per_prompt = [], [], {"accepted": [], "rejected": []}
        for p in run["prompts"]:
            a = [r["entropy_p"] for r in p.get("records", [])
                 if r["kind"] == "accepted" and r.get("entropy_p") is not None]
            b = [r["entropy_p"] for r in p.get("records", [])
                 if r["kind"] == "recovered" and r.get("entropy_p") is not None]
            acc += a
            rej += b
            for kind, v in (("accepted", a), ("rejected", b)):
                if v:  # a prompt's mean, over the prompts that have such tokens
                    per_prompt[kind].append(float(np.mean(v)))
        out.append({"label": run_label(run), "accepted": acc, "rejected": rej,
                    "per_prompt": per_prompt})
    if not any(r["accepted"] or r["rejected"] for r in out):
        return {"skipped": "the saved runs hold no per-token records with entropy_p"}
    return {"runs": out}


@styled
def plot(data):
    fig, axes = new_figure(2, 1, width=4.3, height=3.6)
    ax, axm = axes[0]
    allv = np.concatenate([np.asarray(r["accepted"] + r["rejected"], dtype=float)
                           for r in data["runs"]])
    bins = np.linspace(0, max(float(allv.max(initial=1.0)), 1e-3), 30)
    labels, means, cis = [], [], []
    for i, r in enumerate(data["runs"]):
        for j, kind in enumerate(("accepted", "rejected")):
            st = series(2 * i + j)
            v = np.asarray(r[kind], dtype=float)
            if v.size:
                ax.hist(v, bins=bins, density=True, histtype="step", lw=1.6, color=st["color"],
                        linestyle=st["linestyle"], label=f"{r['label']}: {kind} ({v.size})")
        for kind in ("accepted", "rejected"):
            col = np.asarray(r["per_prompt"][kind], dtype=float)
            m = float(col.mean()) if col.size else np.nan
            se = float(col.std(ddof=1) / np.sqrt(col.size)) if col.size > 1 else np.nan
            labels.append(f"{r['label']}\n{kind}")
            means.append(m)
            cis.append(1.96 * se)
    ax.set_xlabel("entropy of the target law H(p_t)  (nats)")
    ax.set_ylabel("density  (1 / nat)")
    ax.set_title("(a) over verified positions")
    ax.legend(loc="upper right", fontsize=6.5)
    nr = len(data["runs"])
    for j, kind in enumerate(("accepted", "rejected")):
        st = series(j)
        xs = np.arange(nr) + (j - 0.5) * 0.3
        axm.errorbar(xs, means[j::2], yerr=cis[j::2], color=st["color"], marker=st["marker"],
                     capsize=4, linestyle="none", markersize=7, label=f"{kind} draft tokens")
    axm.set_xticks(np.arange(nr))
    axm.set_xticklabels([r["label"] for r in data["runs"]], fontsize=7)
    axm.set_xlim(-0.6, nr - 0.4)
    lo = np.nanmin(np.asarray(means) - np.nan_to_num(cis))
    hi = np.nanmax(np.asarray(means) + np.nan_to_num(cis))
    pad = 0.1 * max(hi - lo, 0.2)
    axm.set_ylim(lo - pad, hi + 3 * pad)
    axm.set_xlabel("validated run")
    axm.set_ylabel("mean entropy per prompt  (nats)")
    axm.set_title("(b) mean of per-prompt means, 95 % interval")
    axm.legend(loc="best", fontsize=6.5)
    return fig


main = figure_entry(NAME)


if __name__ == "__main__":
    raise SystemExit(main())
