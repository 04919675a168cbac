"""The papers' figures, regenerated from scdsim: one module per figure, one command for all.

Each ``figNN_<slug>`` module has ``compute(quick=False) -> data`` (a JSON-safe dict, cached by
parameters and scdsim version, see ``paper_figures.common``), ``plot(data) -> Figure`` and
``main()``; ``TITLE`` and ``CAPTION`` say what it shows. Figures 1-8 need only the core
(exact engine, Monte Carlo engine, cost model); 9-11 draw saved ``scdsim validate`` results
and have ``available() -> str | None`` (the reason they cannot be drawn, or None).

``scdsim figures [--quick] [--only NAME] [--out DIR] [--jobs N]`` regenerates them.
"""

from __future__ import annotations

import importlib

__all__ = ["CORE", "REAL", "FIGURES", "load", "resolve"]

CORE = [
    "fig01_mc_convergence",
    "fig02_batch_sd",
    "fig03_batch_improvement",
    "fig04_pareto_front",
    "fig05_leviathan_speedup",
    "fig06_scd_acceleration",
    "fig07_multidraft_acceptance",
    "fig08_state_dependence",
]
REAL = [
    "fig09_real_rejections",
    "fig10_entropy",
    "fig11_tokens_per_call",
]
FIGURES = CORE + REAL


def resolve(name: str) -> str:
    """The full module name of a figure given ``fig01``, ``1``, ``01``, the slug or full name.

    Raises ValueError naming the argument when nothing (or more than one figure) matches.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"--only: empty figure name {name!r}")
    key = name.strip().lower()
    if key.isdigit():
        key = f"fig{int(key):02d}"
    hits = [f for f in FIGURES if f == key or f.split("_", 1)[0] == key
            or f.split("_", 1)[1] == key]
    if len(hits) != 1:
        raise ValueError(f"--only: unknown figure {name!r}; choose from "
                         + ", ".join(f.split("_", 1)[0] for f in FIGURES)
                         + " (or their full names, e.g. fig01_mc_convergence)")
    return hits[0]


def load(name: str):
    """Import the module of figure ``name`` (see :func:`resolve`)."""
    return importlib.import_module(f"paper_figures.{resolve(name)}")
