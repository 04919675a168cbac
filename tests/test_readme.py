"""The README is the first thing a user reads: its quickstart must run as printed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_python_quickstart_runs_and_its_paper_numbers_hold():
    (code,) = _blocks("python")[:1]
    ns: dict = {}
    exec(compile(code, str(README), "exec"), ns)  # noqa: S102 - our own README
    # values the comments quote from the papers (Leviathan Table 1; reference notes §7.3)
    scdsim, rules, cost, pair = ns["scdsim"], ns["rules"], ns["cost"], ns["pair"]
    assert round(cost.speedup(alpha=0.8, gamma=5, c=0.0), 2) == 3.69
    assert abs(scdsim.expected_rejections(pair, rules.lossless, 4) - 1.0514) < 1e-12
    assert abs(scdsim.expected_rejections(pair, rules.recursive(4), 4, batch="first")
               - 0.785812) < 5e-7


@pytest.mark.parametrize("line", [l for b in _blocks("bash") for l in b.splitlines()
                                  if l.startswith("scdsim simulate")])
def test_readme_shell_examples_run(line, capsys):
    from scdsim.cli import main

    argv = shlex.split(line)[1:] + ["--runs", "2000", "--no-progress"]
    assert main(argv) == 0
    assert "E[rejections]" in capsys.readouterr().out
