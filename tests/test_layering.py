"""Imports point one way: a lower layer of scdsim never imports a higher one, and scdsim never
imports real_models, paper_figures, matplotlib, transformers or torch when it is imported.

Layers (docs/architecture.md), lowest first; a module may import any lower layer, and its own
layer only inside its own package (``exact.markov`` may import ``exact.lp``):

0. ``_validate`` (input checks), ``io`` (atomic writes, JSON-lines logs)
1. ``_results``, ``agreement``, ``reference``
2. ``distributions``, ``cost``
3. ``contrast``
4. ``rules``, ``chains``
5. ``process``
6. ``exact``, ``montecarlo``
7. ``checks`` (the theory table), ``plotting`` (matplotlib imported inside its functions)
8. ``cli``
9. the package ``scdsim`` itself (its public API), ``__main__``

Every import is counted, also one inside a function: a lazy upward import is still a cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "scdsim"

LAYERS = [
    {"_validate", "io"},
    {"_results", "agreement", "reference"},
    {"distributions", "cost"},
    {"contrast"},
    {"rules", "chains"},
    {"process"},
    {"exact", "montecarlo"},
    {"checks", "plotting"},
    {"cli"},
    {"__init__", "__main__"},
]
OUTSIDE = ("real_models", "paper_figures", "matplotlib", "transformers", "torch")
#: The one exception to "scdsim never imports real_models or paper_figures": the command line's
#: plugin subcommands (``scdsim validate``, ``scdsim figures``) load their parsers from those
#: packages, lazily (inside a function, never at import time, checked below).
CLI_PLUGINS = {("scdsim.cli", "paper_figures.cli"), ("scdsim.cli", "real_models.cli")}


def _modules():
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _unit(module: str) -> str:
    """The top-level unit of a scdsim module: ``scdsim.exact.markov`` -> ``exact``."""
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _layer(module: str) -> int:
    unit = _unit(module)
    for i, units in enumerate(LAYERS):
        if unit in units:
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")


def _imports(path: Path, module: str):
    """Every (absolute) module named by an import statement in ``path``, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = pkg.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                yield (full if full in MODULES else base), node.lineno


def _lazy_import_lines(path: Path) -> set[int]:
    """Lines of the import statements inside a function of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    lines.add(node.lineno)
    return lines


def test_every_scdsim_module_has_a_layer():
    for module in MODULES:
        _layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer_or_a_sibling_package(module):
    mine = _layer(module)
    bad = []
    lazy = _lazy_import_lines(MODULES[module])
    for target, line in _imports(MODULES[module], module):
        top = target.split(".")[0]
        if top in ("real_models", "paper_figures"):
            if (module, target) not in CLI_PLUGINS or line not in lazy:
                bad.append(f"line {line}: {target} (scdsim never imports {top})")
            continue
        if top != "scdsim" or target == "scdsim":
            continue
        theirs = _layer(target)
        if theirs > mine or (theirs == mine and _unit(target) != _unit(module)):
            bad.append(f"line {line}: {target} (layer {theirs}) from layer {mine}")
    assert not bad, f"{module} imports upward:\n" + "\n".join(bad)


def test_the_layering_check_catches_an_upward_import(tmp_path, monkeypatch):
    """Negative control: a planted upward import (rules -> process) is reported."""
    planted = tmp_path / "rules.py"
    planted.write_text("from scdsim.process import Scheme\n\ndef f():\n    import scdsim.cli\n")
    found = [t for t, _ in _imports(planted, "scdsim.rules")]
    assert found == ["scdsim.process", "scdsim.cli"]
    assert _layer("scdsim.process") > _layer("scdsim.rules")
    assert _layer("scdsim.cli") > _layer("scdsim.rules")


def test_importing_scdsim_loads_no_model_plotting_or_torch_package():
    code = ("import sys, scdsim, scdsim.cli, scdsim.checks, scdsim.process, scdsim.agreement, "
            "scdsim.reference, scdsim.exact, scdsim.montecarlo\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({OUTSIDE!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_cli_plugin_exception_holds_only_for_imports_inside_a_function(tmp_path):
    """Negative control of ``CLI_PLUGINS``: a module-level plugin import is not lazy."""
    planted = tmp_path / "cli.py"
    planted.write_text("from paper_figures.cli import add_figures_parser\n\n\n"
                       "def f():\n    from paper_figures.cli import add_figures_parser\n")
    assert [line for t, line in _imports(planted, "scdsim.cli") if t == "paper_figures.cli"] == [1, 5]
    assert _lazy_import_lines(planted) == {5}
