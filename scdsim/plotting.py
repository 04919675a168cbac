"""Plot helpers: ``plot_*(ax, result, ...) -> ax`` for scdsim results.

Matplotlib is never imported here at import time (nothing in the core needs it); each helper
draws on the ``ax`` it is given (``ax=None``: a new figure's axes). Colours, markers and line
styles come from :func:`series` (Okabe-Ito, ordered to stay distinct in greyscale); the paper
figures use the same palette.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_running_mean", "plot_block_length_pmf", "plot_pareto_front", "series",
           "OKABE_ITO", "PALETTE", "MARKERS", "LINESTYLES"]

#: The Okabe-Ito colours by name.
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7",
}
#: Series order: consecutive colours differ in luma by more than 0.1 (distinct in greyscale);
#: yellow left out (too light on white and in grey).
PALETTE = [OKABE_ITO[k] for k in ("black", "bluish_green", "sky_blue", "blue", "orange",
                                  "vermillion", "reddish_purple")]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (3, 1)), (0, (1, 2))]


def series(i: int) -> dict:
    """Colour, marker and line style of the ``i``-th series (Matplotlib keyword arguments)."""
    n = len(PALETTE)
    return {"color": PALETTE[i % n], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)]}


def _ax(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(layout="constrained")
    return ax


def plot_running_mean(ax, result, exact=None, points=30, z=1.96, label=None, i=0):
    """Running mean of a Monte Carlo result's rejections over its runs, with a +-z s.e. band.

    Parameters
    ----------
    ax : matplotlib Axes or None
    result : scdsim.SimResult
    exact : float, optional
        The exact expected rejections, drawn as a dashed line.
    points : int
        Number of log-spaced run counts.
    z : float
        Half-width of the band in standard errors.
    label : str, optional
    i : int
        Series index (colour, marker, line style).

    Returns
    -------
    ax
    """
    ax = _ax(ax)
    x = np.asarray(result.rejections, dtype=float)
    if x.shape[0] < 2:
        raise ValueError(f"plot_running_mean needs at least 2 runs, got {x.shape[0]}")
    points = int(points)
    if points < 2:
        raise ValueError(f"points must be an integer >= 2, got {points}")
    n = np.unique(np.geomspace(2, x.shape[0], points).astype(int))
    c1, c2 = np.cumsum(x), np.cumsum(x * x)
    mean = c1[n - 1] / n
    sem = np.sqrt(np.maximum((c2[n - 1] - n * mean**2) / (n - 1), 0.0) / n)
    st = series(i)
    color = st.get("color")
    ax.fill_between(n, mean - z * sem, mean + z * sem, color=color, alpha=0.2, lw=0)
    ax.plot(n, mean, label=label or f"Monte Carlo ({result.rule})", markevery=4, **st)
    if exact is not None:
        ax.axhline(float(exact), color=color or "black", lw=1.0, linestyle=(0, (2, 2)),
                   label=f"exact: {float(exact):.4f}")
    ax.set_xscale("log")
    ax.set_xlabel("Monte Carlo runs n")
    ax.set_ylabel("mean rejections per sequence (tokens)")
    return ax


def plot_block_length_pmf(ax, stats, iid=True, label="exact"):
    """Bars of the exact law of tokens per target call from ``scdsim.block_stats``.

    With ``iid=True`` the capped geometric law of Leviathan et al.'s i.i.d. model at the same
    average acceptance ``stats.alpha`` is drawn beside it (hatched).
    """
    ax = _ax(ax)
    pmf = np.asarray(stats.tokens_per_call_pmf, dtype=float)
    j = np.arange(pmf.shape[0])
    w = 0.38 if iid else 0.8
    ax.bar(j - (w / 2 if iid else 0), pmf, width=w, color=series(3).get("color"),
           label=f"{label} (mean {stats.tokens_per_call:.3f})")
    if iid:
        a, g = float(stats.alpha), int(stats.gamma)
        geo = np.where(j == 0, 0.0, np.where(j <= g, a ** np.maximum(j - 1, 0) * (1 - a), a**g))
        ax.bar(j + w / 2, geo, width=w, color="white", edgecolor="black", hatch="///",
               label=f"i.i.d. capped geometric, α = {a:.3f}")
    ax.set_xticks(j[1:])
    ax.set_xlabel("tokens emitted per target call j")
    ax.set_ylabel("fraction of target calls")
    return ax


def plot_pareto_front(ax, front, shade=True):
    """The bias-rejection front of ``scdsim.pareto_front`` (Yin et al. Thm 5), region below shaded."""
    ax = _ax(ax)
    r, b = np.asarray(front.rejection), np.asarray(front.bias)
    if shade:
        ax.fill_between(r, 0, b, color="grey", alpha=0.25, lw=0, label="unattainable")
    ax.plot(r, b, color="black", marker="", label=f"Pareto front, TV = {front.tv:.3f}")
    ax.set_xlabel("rejection probability P(reject)")
    ax.set_ylabel("bias TV(output law, target)")
    return ax
