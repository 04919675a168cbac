"""The command line: `scdsim theory` passes every row; `scdsim simulate` prints exact and MC side by side."""

import re
import subprocess
import sys

import pytest

from scdsim import rules
from scdsim.checks import Check, format_table, foundation_checks, run_checks, sequence_checks
from scdsim.cli import main, parse_pair, parse_rule


def test_theory_foundation_rows_all_pass(capsys):
    assert main(["theory", "--foundation-only", "--no-progress"]) == 0
    out = capsys.readouterr().out
    m = re.search(r"(\d+) passed, (\d+) failed", out)
    assert m and int(m.group(2)) == 0 and int(m.group(1)) > 200


def test_theory_sequence_rows_all_pass():
    rows = run_checks(sequence_checks(mc_runs=4000, seed=1))
    failed = [r for r in rows if not r.passed]
    assert not failed, format_table(failed)


def test_check_table_reports_a_wrong_value_as_failed():
    rows = run_checks([Check("x", "deliberately wrong", 1.0, lambda: 1.5, 1e-9, "test")])
    assert not rows[0].passed
    assert "0 passed, 1 failed" in format_table(rows)


def test_check_table_reports_an_exception_as_failed_not_hidden():
    def boom():
        raise ValueError("kaput")

    rows = run_checks([Check("x", "raises", 0.0, boom, 1.0, "test")])
    assert not rows[0].passed and "kaput" in rows[0].error


def test_foundation_checks_cover_every_reference_section():
    sections = {c.section for c in foundation_checks()}
    assert {"7.1", "7.2", "7.4", "7.5", "7.6"} <= sections


def test_theory_json_is_written(tmp_path, capsys):
    path = tmp_path / "rows.json"
    assert main(["theory", "--foundation-only", "--no-progress", "--json", str(path)]) == 0
    import json

    rows = json.loads(path.read_text())
    assert len(rows) > 200 and all(r["passed"] for r in rows)


def test_simulate_prints_exact_and_monte_carlo_side_by_side(capsys):
    rc = main(["simulate", "--pair", "yin", "--rule", "recursive:3", "--batch", "tree", "--runs", "4000",
               "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    line = next(l for l in out.splitlines() if l.startswith("E[rejections]"))
    exact, mc, se, z = map(float, line.split()[1:])
    from scdsim import chains, expected_rejections

    # the CLI prints the exact engine's value (to its 6 printed decimals) and an MC mean near it
    assert abs(exact - expected_rejections(chains.yin_example(), rules.recursive(3), 4, batch="tree")) < 1e-6
    assert abs(mc - exact) < 5 * se and abs(z) < 5 and se > 0


def test_simulate_with_blocks_prints_speedup_and_iid_gap(capsys):
    rc = main(["simulate", "--pair", "dirichlet:8:0.3", "--rule", "lossless", "--gamma", "3", "--horizon", "30",
               "--c", "0.05", "--runs", "3000", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "speedup (c=0.05)" in out and "i.i.d. prediction" in out
    line = next(l for l in out.splitlines() if l.startswith("speedup (c=0.05)"))
    exact, mc, se, z = map(float, line.split()[2:])
    from scdsim import block_stats, chains

    bs = block_stats(chains.dirichlet_pair(8, 0.3), rules.lossless, 30, 3, c=0.05)
    assert abs(exact - bs.speedup) < 1e-6
    # delta-method s.e. of T / mean(cost): positive and small, and the MC value within 4.89 of it
    assert 0 < se < 0.05 and abs(mc - exact) <= 4.89 * se and abs(z - (mc - exact) / se) < 0.01


@pytest.mark.parametrize(
    "spec, name",
    [("lossless", "lossless"), ("greedy", "greedy"), ("recursive:3", "recursive(3)"), ("kseq:2", "kseq(2)"),
     ("optimal:2", "optimal(2)"), ("over_accept:0.2:ratio:target", "over_accept(0.2,ratio,UNO)"),
     ("lenient:0.5", "lenient(0.5)"), ("typical:0.09:0.3", "typical(0.09,0.3)")],
)
def test_parse_rule_round_trips_names(spec, name):
    assert parse_rule(spec).name == name


@pytest.mark.parametrize("spec", ["nope", "recursive", "recursive:0", "over_accept:-1", "lenient:2"])
def test_parse_rule_rejects_bad_specs(spec):
    with pytest.raises(ValueError, match="--rule"):
        parse_rule(spec)


@pytest.mark.parametrize("spec", ["nope", "uniform", "dirichlet:10:2.0", "bernoulli:0.5"])
def test_parse_pair_rejects_bad_specs(spec):
    with pytest.raises(ValueError, match="--pair"):
        parse_pair(spec)


def test_cli_bad_input_exits_2_with_message(capsys):
    assert main(["simulate", "--rule", "recursive:0", "--runs", "10", "--no-progress"]) == 2
    assert "M must be >= 1" in capsys.readouterr().err


def test_simulate_refuses_a_non_samplable_rule(capsys):
    assert main(["simulate", "--rule", "optimal:2", "--runs", "10", "--no-progress"]) == 2
    assert "optimal(2)" in capsys.readouterr().err


def test_console_script_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "scdsim.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "theory" in out.stdout and "simulate" in out.stdout


def test_rules_module_values_are_the_documented_ones():
    assert rules.lossless.name == "lossless" and not rules.lossless.lossy
    assert rules.greedy.lossy


def test_simulate_json_holds_the_printed_rows(tmp_path, capsys):
    import json

    out = tmp_path / "sub" / "sim.json"
    rc = main(["simulate", "--pair", "yin", "--rule", "lossless", "--gamma", "2", "--runs", "3000",
               "--no-progress", "--json", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["rule"] == "lossless" and data["gamma"] == 2 and data["runs"] == 3000
    assert [r["quantity"] for r in data["rows"]][:2] == ["E[rejections]", "E[target calls]"]
    line = next(l for l in printed.splitlines() if l.startswith("E[rejections]"))
    assert float(line.split()[1]) == pytest.approx(data["rows"][0]["exact"], abs=1e-6)
    assert not list(out.parent.glob("*.tmp"))  # the atomic write left no temporary file
