"""Where figures 9-11 find saved ``scdsim validate`` results, and how they read them.

A result directory is what ``real_models.validate.run_validate(out=DIR)`` writes:
``DIR/summary.json`` (inputs, score, ...) and ``DIR/prompts.jsonl`` (a header line, then one
line per prompt with its records and summary). Directories searched, in order:

1. the environment variable ``SCDSIM_VALIDATE_DIR`` (one directory, or several separated by
   ``os.pathsep``), each either a result directory or a directory of result directories;
2. ``./results/validate`` (same rule).

In ``--quick`` mode, when none is found and the real-model engine is installed, a small
validation (SD and SCD) is run into the figure cache (``quick_run``), unless the environment
variable ``SCDSIM_FIGURES_NO_VALIDATE`` is ``1``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from paper_figures.common import cache_dir

__all__ = ["result_dirs", "load_run", "engine_reason", "find_or_make_runs", "run_label"]

DEFAULT_DIR = Path("results") / "validate"


def _candidates():
    env = os.environ.get("SCDSIM_VALIDATE_DIR")
    roots = [Path(p) for p in env.split(os.pathsep) if p] if env else []
    return roots + [DEFAULT_DIR]


def result_dirs(roots=None) -> list[Path]:
    """Result directories (holding ``summary.json``) under ``roots`` (default: see module)."""
    found = []
    for root in (roots if roots is not None else _candidates()):
        root = Path(root)
        if (root / "summary.json").is_file():
            found.append(root)
        elif root.is_dir():
            found += sorted(p for p in root.iterdir() if (p / "summary.json").is_file())
    return found


def load_run(d) -> dict:
    """``{"dir", "summary", "header", "prompts"}`` of one result directory."""
    d = Path(d)
    with open(d / "summary.json") as f:
        summary = json.load(f)
    header, prompts = {}, []
    path = d / "prompts.jsonl"
    if path.is_file():
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line of an interrupted run
                if "header" in obj:
                    header = obj["header"]
                else:
                    prompts.append(obj)
    return {"dir": str(d), "summary": summary, "header": header, "prompts": prompts}


def run_label(run) -> str:
    """A short label of a run from its inputs, e.g. ``"SCD γ=4 (lens:6)"``: SD or SCD (a
    contrast was set), gamma, M when above 1, and the draft."""
    inp = run["summary"].get("inputs") or run["header"] or {}
    contrast = inp.get("contrast")
    label = "SCD" if contrast not in (None, 0, 0.0, {}, "") else "SD"
    if inp.get("gamma") is not None:
        label += f" γ={inp['gamma']}"
    if inp.get("M") not in (None, 1):
        label += f" M={inp['M']}"
    if inp.get("draft"):
        label += f" ({str(inp['draft']).split(' of ')[0]})"  # "early-exit:8 of smollm2-135m"
    return label


def engine_reason() -> str | None:
    """Why the real-model engine cannot run here, or None when it can."""
    for mod in ("torch", "transformers"):
        if importlib.util.find_spec(mod) is None:
            return f"the models extra is not installed ({mod} missing: pip install -e '.[models]')"
    try:
        from real_models import validate
    except ImportError:
        return "the real-model engine (real_models.validate) is not installed"
    if not hasattr(validate, "run_validate"):
        return "real_models.validate has no run_validate yet (the real-model engine is incomplete)"
    if importlib.util.find_spec("real_models.cli") is None:
        return "the `scdsim validate` command (real_models.cli) is not installed"
    return None


#: The small validation of ``--quick`` mode: SD and SCD on the embedded model, 2 prompts of 16
#: new tokens, no timing (``scdsim validate``'s flags; about ten minutes on 2 busy CPU cores).
QUICK_RUNS = {
    "sd": ["--preset", "quick", "--prompts", "prose:1+code:1", "--max-new-tokens", "16",
           "--no-ar", "--no-profile", "--surrogate-states", "1,2", "--boot", "200",
           "--no-progress"],
    "scd": ["--preset", "quick", "--prompts", "prose:1+code:1", "--max-new-tokens", "16",
            "--no-ar", "--no-profile", "--surrogate-states", "1,2", "--boot", "200",
            "--contrast", "plausibility=0.1,contrast=0.5", "--no-progress"],
}


def quick_run() -> list[Path]:
    """Run the small validations of ``QUICK_RUNS`` into the cache (once); their directories.

    Set ``SCDSIM_FIGURES_NO_VALIDATE=1`` to never run one (the figures are then skipped).
    """
    import contextlib
    import io

    from real_models.cli import main as validate_main

    dirs = []
    for name, argv in QUICK_RUNS.items():
        out = cache_dir() / "validate" / name
        if not (out / "summary.json").is_file():
            with contextlib.redirect_stdout(io.StringIO()):
                rc = validate_main(argv + ["--out", str(out)])
            if rc != 0:
                raise RuntimeError(f"scdsim validate {' '.join(argv)} exited with status {rc}")
        dirs.append(out)
    return dirs


def find_or_make_runs(quick: bool):
    """``(runs, reason)``: loaded runs, or ``[]`` and why there are none."""
    dirs = result_dirs()
    if not dirs:
        reason = engine_reason()
        if not quick:
            return [], ("no saved `scdsim validate` results (looked in $SCDSIM_VALIDATE_DIR and "
                        f"{DEFAULT_DIR}/); run `scdsim validate --preset quick --out "
                        f"{DEFAULT_DIR}/quick`")
        if reason is not None:
            return [], f"no saved `scdsim validate` results and {reason}"
        if os.environ.get("SCDSIM_FIGURES_NO_VALIDATE") == "1":
            return [], ("no saved `scdsim validate` results, and SCDSIM_FIGURES_NO_VALIDATE=1 "
                        "forbids a quick validation run")
        dirs = quick_run()
    runs = [load_run(d) for d in dirs]
    runs.sort(key=lambda r: (not run_label(r).startswith("SD "), run_label(r)))  # SD first
    return runs, None
