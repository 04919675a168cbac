"""Shared helpers of the paper figures: the data cache, atomic output, style and palette.

Cache
-----
``cached(name, params, fn)`` returns ``fn(**params)``, stored as JSON in the cache directory
under a key hashed from the figure name, its parameters and the scdsim version: changing any of
them recomputes, rerunning reuses. The directory is, in order: ``set_cache_dir(path)``, the
environment variable ``SCDSIM_FIGURE_CACHE``, ``~/.cache/scdsim/figures``.

Style
-----
Colours are the Okabe-Ito palette (safe for the common colour-vision deficiencies), ordered so
that neighbours differ in lightness too; every series also gets its own marker and line style,
so the figures stay readable in greyscale.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from scdsim.io import atomic_open, to_jsonable
from scdsim.plotting import LINESTYLES, MARKERS, OKABE_ITO, PALETTE, series

__all__ = [
    "OKABE_ITO", "PALETTE", "MARKERS", "LINESTYLES", "series", "style",
    "cache_dir", "set_cache_dir", "cache_key", "cached", "to_jsonable",
    "write_atomic", "save_figure", "new_figure", "styled", "figure_main", "running_mean",
]


def style() -> dict:
    """The rcParams every figure is drawn with."""
    return {
        "figure.dpi": 100, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 10,
        "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8,
        "axes.grid": True, "grid.alpha": 0.3, "lines.linewidth": 1.5, "lines.markersize": 5,
        "legend.framealpha": 0.85, "axes.prop_cycle": _cycler(),
    }


def _cycler():
    from cycler import cycler

    k = len(PALETTE)
    return cycler(color=PALETTE, marker=MARKERS[:k], linestyle=LINESTYLES[:k])


def styled(plot):
    """Decorator: run a ``plot(data) -> Figure`` function under the house style; a figure the
    function left without a suptitle gets its module's ``TITLE``."""
    import functools

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        import matplotlib.pyplot as plt

        with plt.rc_context(style()):
            fig = plot(*args, **kwargs)
            title = plot.__globals__.get("TITLE")
            if title and getattr(fig, "_suptitle", None) is None:
                fig.suptitle(title)
            return fig

    return wrapper


def new_figure(ncols=1, nrows=1, width=4.2, height=3.4, **kw):
    """``(fig, axes)`` (axes always 2-D), ``width`` x ``height`` inches per panel."""
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                        layout="constrained", squeeze=False, **kw)


# ------------------------------------------------------------------------------------------
# cache

_CACHE_DIR: Path | None = None


def set_cache_dir(path) -> None:
    """Use ``path`` as the cache directory from now on (``None``: back to the default)."""
    global _CACHE_DIR
    _CACHE_DIR = None if path is None else Path(path)


def cache_dir() -> Path:
    """The directory where figure data are cached (see the module docstring)."""
    if _CACHE_DIR is not None:
        return _CACHE_DIR
    env = os.environ.get("SCDSIM_FIGURE_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "scdsim" / "figures"


def _version() -> str:
    import scdsim

    return scdsim.__version__


def cache_key(name: str, params: dict) -> str:
    """Hex key of ``(name, params, scdsim version)``: 16 characters of a SHA-256."""
    blob = json.dumps({"figure": name, "params": to_jsonable(params), "version": _version()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_atomic(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (``scdsim.io.atomic_open``: temp file, fsync, rename)."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def cached(name: str, params: dict, fn, use_cache: bool = True) -> dict:
    """``fn(**params)`` as a JSON-safe dict, read from / written to the cache.

    The returned dict also holds ``"figure"``, ``"params"``, ``"version"`` and ``"cache_key"``.
    """
    key = cache_key(name, params)
    path = cache_dir() / f"{name}-{key}.json"
    if use_cache and path.exists():
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, json.JSONDecodeError):
            pass  # a damaged cache file is recomputed
    data = to_jsonable(fn(**params))
    data.update({"figure": name, "params": to_jsonable(params), "version": _version(),
                 "cache_key": key})
    if use_cache:
        write_atomic(path, json.dumps(data).encode())
    return data


def save_figure(fig, out_dir, name: str, formats=("png", "pdf")) -> list[Path]:
    """Save ``fig`` as ``out_dir/name.<fmt>`` for each format, atomically; return the paths."""
    import io

    paths = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=150)
        path = Path(out_dir) / f"{name}.{fmt}"
        write_atomic(path, buf.getvalue())
        paths.append(path)
    return paths


def running_mean(x, points, first=10):
    """Running mean and its s.e. of the sample ``x`` after ``n`` runs, ``n`` log-spaced.

    Returns ``(n, mean, sem)`` arrays; ``n`` runs from ``first`` to ``len(x)``.
    """
    x = np.asarray(x, dtype=float)
    n = np.unique(np.geomspace(first, x.shape[0], points).astype(int))
    c1, c2 = np.cumsum(x), np.cumsum(x * x)
    mean = c1[n - 1] / n
    var = (c2[n - 1] - n * mean**2) / (n - 1)
    return n, mean, np.sqrt(np.maximum(var, 0.0) / n)


def figure_entry(module_name: str):
    """The ``main(argv=None)`` of one figure script (``main = figure_entry(NAME)``)."""

    def main(argv=None) -> int:
        return figure_main(module_name, argv)

    short = module_name.rsplit(".", 1)[-1]
    main.__doc__ = (f"``python -m paper_figures.{short} [--quick] [--out DIR]``: draw this "
                    f"figure (``scdsim figures --only {short}``).")
    return main


def figure_main(module_name: str, argv=None) -> int:
    """``main()`` of one figure script: ``python -m paper_figures.figNN_x [--quick] [--out D]``."""
    from paper_figures.cli import main

    short = module_name.rsplit(".", 1)[-1]
    return main(["--only", short] + list(argv if argv is not None else _argv()))


def _argv():
    import sys

    return sys.argv[1:]
