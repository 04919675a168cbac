"""Figure 11 (real models): observed tokens per target call vs the three predictions.

From saved ``scdsim validate`` results: the observed mean tokens per target call (complete
blocks, 95 % bootstrap interval over prompts) against (a) Leviathan's i.i.d. formula at the
mean acceptance, (b) the per-position acceptances along the run, (c) the Markov surrogate
solved by the exact engine (when the run fitted one). Right: the block-length law, observed vs
the predicted laws.
"""

from __future__ import annotations

import numpy as np

from paper_figures.common import figure_entry, new_figure, series, styled

NAME = "fig11_tokens_per_call"
TITLE = "Real models: observed tokens per target call vs three predictions"
CAPTION = ("Real models (saved `scdsim validate` runs): observed tokens per call vs Leviathan's "
           "i.i.d. formula, the per-position prediction and the Markov surrogate; block-length laws")
PREDICTIONS = [("iid", "i.i.d. (Leviathan Eq. 1)"), ("positional", "per-position"),
               ("surrogate", "Markov surrogate")]


def compute(quick=False, use_cache=True):
    """Observed and predicted tokens per call and block-length laws; or ``{"skipped"}``."""
    from paper_figures.real import find_or_make_runs, run_label

    runs, reason = find_or_make_runs(quick)
    if reason:
        return {"skipped": reason}
    out = []
    for run in runs:
        sc = run["summary"].get("score", {})
        tpc = sc.get("tokens_per_call", {})
        obs = tpc.get("block_mean", tpc.get("observed"))
        ci = tpc.get("block_mean_ci", tpc.get("ci"))
        preds = {k: v.get("tokens_per_call") for k, v in sc.get("predictions", {}).items()
                 if isinstance(v, dict)}
        out.append({"label": run_label(run), "observed": obs, "ci": ci, "predictions": preds,
                    "pmf": sc.get("block_length_pmf", {}), "closest": sc.get("closest")})
    if not any(r["observed"] is not None for r in out):
        return {"skipped": "the saved runs hold no tokens-per-call score"}
    return {"runs": out}


@styled
def plot(data):
    n = len(data["runs"])
    fig, axes = new_figure(2, 1, width=4.4, height=3.6)
    ax, axp = axes[0]
    present = [(key, lab) for key, lab in PREDICTIONS
               if any(r["predictions"].get(key) is not None for r in data["runs"])]
    w = 0.8 / (1 + len(present))
    x = np.arange(n)
    obs = [r["observed"] if r["observed"] is not None else np.nan for r in data["runs"]]
    lo = [o - r["ci"][0] if r["ci"] else 0 for o, r in zip(obs, data["runs"])]
    up = [r["ci"][1] - o if r["ci"] else 0 for o, r in zip(obs, data["runs"])]
    bars = ax.bar(x - 0.4 + w / 2, obs, width=w, color=series(0)["color"], yerr=[lo, up],
                  capsize=3, label="observed (95 % interval)")
    ax.bar_label(bars, fmt="%.3f", fontsize=6.5, padding=2)
    hatches = ["///", "...", "xx"]
    top = np.nanmax(np.asarray(obs, dtype=float) + np.asarray(up, dtype=float))
    for k, (key, lab) in enumerate(present):
        vals = [r["predictions"].get(key) for r in data["runs"]]
        vals = [np.nan if v is None else v for v in vals]
        top = max(top, np.nanmax(np.asarray(vals, dtype=float)))
        bars = ax.bar(x - 0.4 + w * (k + 1.5), vals, width=w, color=series(k + 1)["color"],
                      hatch=hatches[k], edgecolor="black", label=lab)
        ax.bar_label(bars, fmt="%.3f", fontsize=6.5, padding=2)
    ax.set_ylim(0, 1.4 * top)
    ax.set_xticks(x)
    ax.set_xticklabels([r["label"] for r in data["runs"]], fontsize=7)
    ax.set_ylabel("tokens per target call")
    ax.set_xlabel("validated run")
    ax.set_title("(a) mean tokens per target call")
    ax.legend(loc="upper center", fontsize=7, ncol=2)
    r = data["runs"][0]
    pm = r["pmf"]
    keys = [("observed", "observed")] + PREDICTIONS
    present = [(k, lab) for k, lab in keys if pm.get(k) is not None]
    for i, (k, lab) in enumerate(present):
        v = np.asarray(pm[k], dtype=float)
        st = series(i)
        axp.plot(np.arange(v.size), v, color=st["color"], marker=st["marker"],
                 linestyle=st["linestyle"], label=lab)
    axp.set_xticks(np.arange(max(len(pm.get(k) or []) for k, _ in present)))
    axp.set_xlabel("tokens emitted per target call  j")
    axp.set_ylabel("fraction of target calls")
    axp.set_title(f"(b) block-length law, {r['label']}")
    axp.legend(loc="upper right", fontsize=7)
    return fig


main = figure_entry(NAME)


if __name__ == "__main__":
    raise SystemExit(main())
