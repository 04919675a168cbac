"""Hostile input gets a clear answer: a ValueError/TypeError naming the argument, or the right value.

One section per class of issue 8: NaN/inf and negatives, rows off by 1e-3 and 1e-9, dtypes
(NumPy float16/32/64, torch float16/bfloat16), empty batches, extreme temperatures, huge sizes
(refused at once, before allocating), user-written rules, malformed CLI flags. References are
computed here by other formulas than the library's (pairwise-difference softmax, half-L1 TV,
brute-force searches). ``benchmarks/fuzz_harness.py`` counts the same classes over ~1,200 inputs.
"""

from __future__ import annotations

import math
import re
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import prob_pairs, prob_vectors

from scdsim import chains, contrast, cost, rules
from scdsim._validate import as_numpy64, as_prob, prob_atol
from scdsim.distributions import (
    entropy,
    log_softmax,
    overlap,
    positive_part_normalised,
    residual,
    softmax,
    tv,
    warp,
)
from scdsim.exact import lp

P = np.array([0.5, 0.3, 0.2])
Q = np.array([0.2, 0.3, 0.5])
TV_PQ = 0.3


def half_l1(p, q):
    return 0.5 * np.abs(np.asarray(p, float) - np.asarray(q, float)).sum(-1)


# functions of a (target, draft) pair that validate both laws, with their value on (P, Q)
PAIR_FUNCTIONS = {
    "tv": (tv, TV_PQ),
    "overlap": (overlap, 1 - TV_PQ),
    "rejection_lower_bound": (lp.rejection_lower_bound, TV_PQ),
    "minimum_bias": (lambda p, q: lp.minimum_bias(p, q, 0.1), TV_PQ - 0.1),
    "optimal_acceptance_lp": (lambda p, q: lp.optimal_acceptance_lp(p, q, 1), 1 - TV_PQ),
    "front_gap": (lambda p, q: lp.front_gap(rules.lossless, p, q).gap, 0.0),
    "acceptance_prob kseq": (lambda p, q: rules.acceptance_prob(rules.kseq(1), p, q), 1 - TV_PQ),
    "acceptance_prob optimal": (lambda p, q: rules.acceptance_prob(rules.optimal(1), p, q),
                                1 - TV_PQ),
}


def _timed(fn, *args, seconds=5.0, megabytes=100.0):
    """Call ``fn``; assert it returned or raised within the time and traced-memory budget."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        return fn(*args)
    finally:
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert elapsed < seconds, f"{elapsed:.1f} s"
        assert peak < megabytes * 2**20, f"peak {peak / 2**20:.0f} MB"


# ---------------------------------------------------------------------------------------------
# NaN, inf and negative entries in a law: rejected, naming the argument


@given(prob_vectors(min_size=2), st.data(),
       st.sampled_from([math.nan, math.inf, -math.inf, -0.1, -1e-300]))
def test_a_nan_inf_or_negative_entry_in_either_law_is_refused_naming_it(law, data, bad):
    i = data.draw(st.integers(0, law.shape[0] - 1))
    broken = law.copy()
    broken[i] = bad
    good = np.full(law.shape[0], 1.0 / law.shape[0])
    for side in ("target", "draft"):
        args = (broken, good) if side == "target" else (good, broken)
        for name in ("tv", "overlap"):
            with pytest.raises(ValueError, match=side):
                PAIR_FUNCTIONS[name][0](*args)
        with pytest.raises(ValueError, match=side):
            residual(*args)


@pytest.mark.parametrize("name", sorted(PAIR_FUNCTIONS))
@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.1])
def test_every_pair_function_refuses_a_broken_law_naming_the_side(name, bad):
    fn, _ = PAIR_FUNCTIONS[name]
    broken = np.array([0.5, bad, 0.5])
    with pytest.raises(ValueError, match="target"):
        fn(broken, Q)
    with pytest.raises(ValueError, match="draft"):
        fn(P, broken)


def test_markov_kernels_with_nan_or_complex_entries_are_refused_naming_kernels():
    with pytest.raises(ValueError, match="kernels"):
        chains.MarkovLM([[0.5, np.nan], [0.5, 0.5]])
    with pytest.raises(TypeError, match="kernels"):
        chains.MarkovLM(np.array([[0.5, 0.5], [0.5, 0.5]], dtype=complex))
    with pytest.raises(TypeError, match="kernels"):
        chains.MarkovLM([["a", "b"], ["c", "d"]])


def test_positive_part_normalised_refuses_nan_instead_of_dropping_it():
    with pytest.raises(ValueError, match="f contains NaN"):
        positive_part_normalised(np.array([0.3, np.nan, 0.1]), np.full(3, 1 / 3))
    with pytest.raises(ValueError, match="f contains"):
        positive_part_normalised(np.array([0.3, np.inf, 0.1]), np.full(3, 1 / 3))
    with pytest.raises(ValueError, match="fallback"):
        positive_part_normalised(np.zeros(3), np.array([np.nan, 0.5, 0.5]))
    np.testing.assert_allclose(positive_part_normalised(np.array([0.3, -0.2, 0.1]), P),
                               [0.75, 0.0, 0.25], atol=1e-15)


@pytest.mark.parametrize("fn", [softmax, log_softmax], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("logits", [[1.0, np.nan, 0.5], [1.0, np.inf], [-np.inf, -np.inf]],
                         ids=["nan", "+inf", "all -inf"])
def test_public_softmaxes_refuse_nan_plus_inf_and_empty_support(fn, logits):
    with pytest.raises(ValueError, match="logits"):
        fn(np.array(logits))


def test_public_softmaxes_refuse_non_arrays_naming_logits():
    with pytest.raises(TypeError, match="logits"):
        softmax("abc")
    with pytest.raises(ValueError, match="logits"):
        log_softmax(np.zeros(0))


# ---------------------------------------------------------------------------------------------
# rows off by 1e-3 (refused) and by 1e-9 (accepted, and the exact LPs still solve)


@pytest.mark.parametrize("name", sorted(PAIR_FUNCTIONS))
def test_a_row_off_by_1e_3_is_refused_and_one_off_by_1e_9_gives_the_value(name):
    fn, value = PAIR_FUNCTIONS[name]
    with pytest.raises(ValueError, match="target rows must sum to 1"):
        fn(P + np.array([1e-3, 0, 0]), Q)
    out = fn(P + np.array([1e-9, 0, 0]), Q + np.array([0, 0, -1e-9]))
    assert abs(float(out) - value) <= 1e-8


@settings(max_examples=25)
@given(prob_pairs(min_size=2, max_size=6), st.sampled_from([np.float32, np.float16]))
def test_coupling_lp_solves_low_precision_laws_the_validator_accepts(pair, dtype):
    p, q = (law.astype(dtype) for law in pair)
    p64, q64 = (as_numpy64(x) / as_numpy64(x).sum() for x in (p, q))
    if abs(p64.sum() - 1) > prob_atol(dtype) or abs(q64.sum() - 1) > prob_atol(dtype):
        return  # rounding pushed a row outside the tolerance: rejected, tested elsewhere
    assert abs(lp.optimal_acceptance_lp(p, q, 1) - (1 - half_l1(p64, q64))) <= 1e-8
    exact2 = rules.acceptance_prob(rules.optimal(2), p64, q64)
    assert abs(lp.optimal_acceptance_lp(p, q, 2) - exact2) <= 1e-8


# ---------------------------------------------------------------------------------------------
# one tolerance policy by dtype, everywhere


def test_the_tolerance_policy_is_loose_by_the_precision_of_the_dtype():
    assert prob_atol(np.float64) == 1e-6
    assert prob_atol(np.float32) == 1e-4
    assert prob_atol(np.float16) == 4e-3
    assert prob_atol(np.dtype("float16")) == 4e-3


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_a_law_accepted_by_tv_is_accepted_by_the_lp_and_the_chains(dtype):
    # rounded to the dtype, this row sums to 1 only within the dtype's tolerance
    row = np.array([0.1, 0.2, 0.3, 0.4 + (2e-3 if dtype == np.float16 else 5e-5)], dtype=dtype)
    other = np.full(4, 0.25, dtype=dtype)
    t = float(tv(row, other))
    row64 = row.astype(float) / row.astype(float).sum()
    assert abs(t - half_l1(row64, 0.25)) <= 5 * prob_atol(dtype)
    front = lp.pareto_front(row, other, n=5)
    assert abs(front.tv - half_l1(row64, 0.25)) <= 1e-12
    model = chains.MarkovLM(np.stack([row] * 4))
    np.testing.assert_allclose(model.kernels.sum(-1), 1.0, atol=1e-15)
    with pytest.raises(ValueError, match="within"):
        chains.MarkovLM(np.stack([row + dtype(0.05)] * 4))


def test_torch_half_and_bfloat16_laws_work_in_the_numpy_paths():
    torch = pytest.importorskip("torch")
    for dt in (torch.float16, torch.bfloat16):
        p, q = torch.tensor(P, dtype=dt), torch.tensor(Q, dtype=dt)
        p64, q64 = p.double().numpy(), q.double().numpy()
        p64, q64 = p64 / p64.sum(), q64 / q64.sum()
        ref = 1 - half_l1(p64, q64)
        tol = 5 * prob_atol(dt)
        assert abs(float(tv(p, q)) - (1 - ref)) <= tol
        assert abs(lp.optimal_acceptance_lp(p, q, 1) - ref) <= 1e-8
        assert abs(lp.rejection_lower_bound(p, q) - (1 - ref)) <= 1e-8
        assert abs(float(rules.acceptance_prob(rules.kseq(2), p, q))
                   - float(rules.acceptance_prob(rules.kseq(2), p64, q64))) <= tol
        assert abs(float(rules.acceptance_prob(rules.optimal(2), p, q))
                   - float(rules.acceptance_prob(rules.optimal(2), p64, q64))) <= tol
        assert abs(lp.pareto_front(p, q, n=5).tv - (1 - ref)) <= 1e-12
        assert chains.MarkovLM(torch.stack([p, p, p])).kernels.dtype == np.float64


# ---------------------------------------------------------------------------------------------
# empty batches (0, V): empty results, not a crash inside validation


def test_an_empty_batch_gives_empty_results():
    e = np.zeros((0, 3))
    assert tv(e, e).shape == (0,)
    assert overlap(e, e).shape == (0,)
    assert residual(e, e).shape == (0, 3)
    assert entropy(e).shape == (0,)
    assert np.shape(lp.rejection_lower_bound(e, e)) == (0,)
    assert np.shape(lp.optimal_acceptance_lp(e, e, 2)) == (0,)
    assert np.shape(rules.acceptance_prob(rules.recursive(2), e, e)) == (0,)
    assert warp(e, temperature=0.5).shape == (0, 3)
    assert softmax(e).shape == (0, 3)
    assert as_prob(e).shape == (0, 3)
    with pytest.raises(ValueError, match="pareto_front takes one"):
        lp.pareto_front(e, e)


# ---------------------------------------------------------------------------------------------
# extreme temperatures: warp and the amateur temperature compute stably


def _pairwise_softmax(x, temperature):
    """``p_i = 1 / sum_j exp((x_j - x_i) / T)``: another formula than shift-and-normalise."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        d = (x[None, :] - x[:, None])
        d = np.where(d == 0, 0.0, d / temperature)  # d == 0 also where both are -inf
        out = 1.0 / np.exp(d).sum(axis=1)
    return np.where(np.isfinite(x), out, 0.0)


@given(st.lists(st.one_of(st.floats(-1e308, 1e308), st.just(-math.inf)), min_size=1, max_size=6)
       .filter(lambda v: any(math.isfinite(x) for x in v)),
       st.one_of(st.floats(1e-320, 1e300), st.sampled_from([1e-320, 5e-324, 0.5, 1e300])))
def test_warp_of_finite_logits_is_a_law_at_every_positive_temperature(logits, temperature):
    out = warp(np.array(logits), temperature=temperature)
    assert np.all(np.isfinite(out)) and abs(out.sum() - 1.0) <= 1e-12
    np.testing.assert_allclose(out, _pairwise_softmax(logits, temperature), atol=1e-12)


def test_warp_at_the_issue_8_temperatures():
    np.testing.assert_array_equal(warp(np.array([1e308, 0.0]), temperature=0.5), [1.0, 0.0])
    np.testing.assert_array_equal(warp(np.array([1.0, 3.0, 3.0]), temperature=1e-320),
                                  [0.0, 0.5, 0.5])
    for dtype in (np.float32, np.float16):
        out = warp(np.array([1.0, 3.0, 2.0], dtype=dtype), temperature=1e-320)
        np.testing.assert_array_equal(out, np.array([0.0, 1.0, 0.0], dtype=dtype))


def test_warp_refuses_bad_temperatures_naming_it():
    for t in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="temperature"):
            warp(P, temperature=t)
    with pytest.raises(TypeError, match="temperature"):
        warp(P, temperature="hot")


def test_a_tiny_amateur_temperature_is_blamed_by_name_or_computed():
    e = np.array([2.0, 1.0, 0.0, -1.0])
    a = np.array([1.0, 2.0, 0.0, -1.0])
    # tau = 1e-30 and 1e-300: the law concentrates on the plausible token the amateur likes least
    for tau in (1e-30, 1e-300):
        np.testing.assert_array_equal(contrast.contrastive(e, a, amateur_temperature=tau),
                                      [0.0, 0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="amateur_temperature=.* is so small"):
        contrast.contrastive(e, a, amateur_temperature=1e-320)
    with pytest.raises(ValueError, match="amateur_logits is -inf"):
        contrast.contrastive(e, np.array([1.0, -np.inf, 0.0, -1.0]))


# ---------------------------------------------------------------------------------------------
# huge sizes: refused (or computed) at once, within seconds and a few MB


def test_pareto_front_refuses_too_many_levels_naming_n_and_the_closed_form():
    with pytest.raises(ValueError, match=r"n=100000 .*max\(0, TV"):
        _timed(lp.pareto_front, P, Q, 10**5)
    front = lp.pareto_front(P, Q, n=200)  # well within the bound at V = 3
    np.testing.assert_allclose(front.bias, np.maximum(0.0, TV_PQ - front.rejection), atol=1e-9)


def test_uniform_pair_refuses_a_huge_vocabulary_before_allocating():
    for V in (10**9, 10**12):
        with pytest.raises(ValueError, match="MAX_KERNEL_ENTRIES|exceeds"):
            _timed(chains.uniform_pair, V)


def _brute_optimal_gamma(a, c, max_gamma):
    g = np.arange(1, max_gamma + 1)
    f = np.array([(1 - a ** (k + 1)) / (1 - a) if a < 1 else k + 1.0 for k in g]) / (g * c + 1)
    best = f.max()
    k = int(np.flatnonzero(f >= best * (1 - 1e-12))[0])
    return k + 1, f[k]


@given(st.floats(0, 1), st.floats(0, 2), st.integers(1, 400))
def test_optimal_gamma_by_bisection_equals_the_full_search(a, c, max_gamma):
    gamma, value = cost._optimal_gamma_bisect(np.array(a), np.array(c), max_gamma)
    g_ref, f_ref = _brute_optimal_gamma(a, c, max_gamma)
    assert int(gamma) == g_ref
    assert abs(float(value) - f_ref) <= 1e-12 * f_ref


def test_optimal_gamma_up_to_a_billion_is_instant():
    res = _timed(cost.optimal_gamma, 0.9, 0.05, 10**9)
    assert res == cost.optimal_gamma(0.9, 0.05, 200)
    assert _timed(cost.optimal_gamma, 1.0, 0.0, 10**9) == (10**9, 10**9 + 1.0)
    res = _timed(cost.optimal_gamma, np.linspace(0, 0.99, 1000), 0.01, 10**6)
    assert res.gamma.shape == (1000,)
    with pytest.raises(ValueError, match="max_gamma must be <= 2\\*\\*53"):
        cost.optimal_gamma(0.5, 0.1, 2**60)


def test_huge_gammas_are_computed_not_overflowed():
    assert cost.expected_tokens(0.8, 10**20) == pytest.approx(5.0, rel=1e-15)
    assert cost.expected_tokens(1.0, 10**20) == pytest.approx(1e20, rel=1e-15)
    assert cost.speedup(0.5, 10**20, 0.0) == pytest.approx(2.0, rel=1e-15)
    assert cost.operations(0.5, 10**20, 0.1) == pytest.approx(1.1e20 / 2.0, rel=1e-12)
    np.testing.assert_allclose(cost.expected_tokens(0.5, np.array([0, 10**20], dtype=object)),
                               [1.0, 2.0], rtol=1e-15)


def test_mismatched_shapes_name_the_arguments():
    with pytest.raises(ValueError, match=r"alpha \(2,\), gamma \(3,\)"):
        cost.speedup(np.array([0.1, 0.2]), np.array([1, 2, 3]), 0.1)
    with pytest.raises(ValueError, match=r"lam \(2,\).*c \(3,\)"):
        cost.scd_speedup(np.array([0.1, 0.2]), 2, np.array([0.1, 0.2, 0.3]))


def test_the_coupling_lp_refuses_its_size_before_building():
    u = np.full(200, 1 / 200)
    with pytest.raises(ValueError, match="V=200, M=3"):
        _timed(lp.optimal_acceptance_lp, u, u, 3)


# ---------------------------------------------------------------------------------------------
# user-written rules, as far as these modules are concerned


class _UserLossless(rules.Rule):
    """Lossless SD as a user would write it from the docs."""

    name = "user-lossless"
    M = 1

    def acceptances(self, p, q):
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(q > 0, np.minimum(1.0, p / np.where(q > 0, q, 1.0)), 1.0)
        return a[..., None, :]

    def residual(self, p, q):
        return positive_part_normalised(p - q, p)


def test_front_gap_places_a_user_written_lossless_rule_on_the_front():
    gap = lp.front_gap(_UserLossless(), P, Q)
    assert abs(gap.gap) <= 1e-12 and abs(gap.rejection - TV_PQ) <= 1e-12


def test_front_gap_refuses_non_rules_naming_the_rule():
    with pytest.raises(TypeError, match="rule"):
        lp.front_gap("lossless", P, Q)


class _UserResidualUnnormalised(_UserLossless):
    name = "user-residual-unnormalised"

    def residual(self, p, q):
        return np.clip(p - q, 0.0, None)  # mass TV(p, q), not 1


class _UserAcceptanceTwo(_UserLossless):
    name = "user-acceptance-2"

    def acceptances(self, p, q):
        return np.full(p.shape[:-1] + (1, p.shape[-1]), 2.0)


@pytest.mark.parametrize("rule", [_UserResidualUnnormalised(), _UserAcceptanceTwo()],
                         ids=lambda r: r.name)
def test_front_gap_blames_a_user_rule_whose_law_is_not_a_law(rule):
    # before: "target rows must sum to 1", blaming the caller's valid target; now the message
    # names the rule (front_gap's own check, or the rule-output check of the process layer)
    with pytest.raises(ValueError, match=rf"rule '?{re.escape(rule.name)}'?"):
        lp.front_gap(rule, P, Q)


def test_batch_curve_names_ms_when_given_an_integer():
    import scdsim

    pair = chains.yin_example()
    with pytest.raises(TypeError, match="Ms must be a sequence of draft counts"):
        scdsim.batch_curve(pair, 4, 3)
    np.testing.assert_allclose(scdsim.batch_curve(pair, 4, [1, 2])["rejections"],
                               [1.0514, 0.926388], atol=5e-7)  # docs/theory.md §3-4


# ---------------------------------------------------------------------------------------------
# malformed CLI flags: exit status 2, the flag named, no traceback, no stray file


def _cli(argv, capsys):
    from scdsim.cli import main

    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    return rc, err


SIM = ["simulate", "--runs", "200", "--no-progress"]


@pytest.mark.parametrize("argv, flag", [
    (SIM + ["--rule", "over_accept:0.1:target:optimal"], "--rule"),
    (SIM + ["--rule", "over_accept:0.1:ratio:additive"], "--rule"),
    (SIM + ["--rule", "over_accept:0.1:sideways"], "--rule"),
    (SIM + ["--rule", "over_accept:nan"], "--rule"),
    (SIM + ["--rule", "recursive:x"], "--rule"),
    (SIM + ["--rule", "optimal:2"], "--rule"),
    (SIM + ["--rule", ""], "--rule"),
    (SIM + ["--c", "nan"], "--c"),
    (SIM + ["--c", "inf"], "--c"),
    (SIM + ["--c", "-1"], "--c"),
    (SIM + ["--json", ""], "--json"),
    (SIM + ["--runs", "0"], "--runs"),
    (SIM + ["--runs", "1e9"], "--runs"),
    (SIM + ["--horizon", "0"], "--horizon"),
    (SIM + ["--horizon", "99"], "--horizon"),  # the yin chain defines 4 positions
    (SIM + ["--gamma", "-1"], "--gamma"),
    (SIM + ["--gamma", "2.5"], "--gamma"),
    (SIM + ["--seed", "-1"], "--seed"),
    (SIM + ["--pair", "uniform:0"], "--pair"),
    (SIM + ["--pair", "uniform:1000000000"], "--pair"),
    (SIM + ["--pair", "bernoulli:nan:0.5"], "--pair"),
    (SIM + ["--pair", "foo"], "--pair"),
    (SIM + ["--batch", "bad"], "--batch"),
    (["theory", "--mc-runs", "0"], "--mc-runs"),
    (["theory", "--mc-runs", "-5"], "--mc-runs"),
    (["theory", "--json", ""], "--json"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_a_malformed_flag_exits_2_naming_the_flag(argv, flag, capsys):
    rc, err = _cli(argv, capsys)
    assert rc == 2 and flag in err and "Traceback" not in err


def test_json_into_a_directory_is_refused_and_leaves_no_file(tmp_path, capsys):
    for argv in (["theory", "--foundation-only", "--json", str(tmp_path)],
                 SIM + ["--json", str(tmp_path)]):
        rc, err = _cli(argv, capsys)
        assert rc == 2 and "--json" in err and "is a directory" in err
        assert list(tmp_path.iterdir()) == []


def test_json_writer_leaves_no_temporary_file_when_the_rename_fails(tmp_path):
    from scdsim.cli import _write_json_atomic

    target = tmp_path / "out"
    target.mkdir()  # os.replace onto a directory fails
    with pytest.raises(ValueError, match="--json"):
        _write_json_atomic(str(target), {"a": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and not any(target.iterdir())


def test_version_and_defaults_in_help(capsys):
    import scdsim

    rc, _ = _cli(["--version"], capsys)
    assert rc == 0
    from scdsim.cli import build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["simulate"].format_help()
    assert "(default: 20000)" in help_text and "(default: lossless)" in help_text
    assert "``" not in build_parser().format_help()
    assert scdsim.__version__


def test_tree_batch_beyond_the_exact_limit_runs_monte_carlo_and_says_so(capsys):
    from scdsim.cli import main

    rc = main(["simulate", "--pair", "uniform:50", "--rule", "recursive:5", "--batch", "tree",
               "--runs", "200", "--horizon", "5", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "exact side not computed" in out and "Monte Carlo side only" in out
    assert re.search(r"E\[rejections\]\s+\d", out)


def test_no_progress_bar_when_stderr_is_not_a_terminal(capsys):
    from scdsim.cli import main

    assert main(["simulate", "--runs", "200", "--rule", "recursive:2"]) == 0
    assert capsys.readouterr().err == ""  # pytest's captured stderr is not a tty


_SPEC_WORDS = ["lossless", "greedy", "recursive", "kseq", "optimal", "over_accept", "lenient",
               "typical", "additive", "ratio", "target", "yin", "bernoulli", "uniform",
               "dirichlet", "zipf", "nan", "inf", "-1", "0", "1", "2", "0.5", "1e-3", "", "x"]


@settings(max_examples=200)
@given(st.lists(st.sampled_from(_SPEC_WORDS), min_size=1, max_size=5))
def test_any_rule_spec_gives_a_rule_or_an_error_naming_the_flag(words):
    from scdsim.cli import parse_rule

    spec = ":".join(words)
    try:
        rule = parse_rule(spec)
    except ValueError as e:
        assert str(e).startswith(f"--rule {spec!r}")
    else:
        assert isinstance(rule, rules.Rule)


@settings(max_examples=100)
@given(st.lists(st.sampled_from(_SPEC_WORDS), min_size=1, max_size=4))
def test_any_pair_spec_gives_a_pair_or_an_error_naming_the_flag(words):
    from scdsim.cli import parse_pair

    spec = ":".join(words)
    try:
        pair = parse_pair(spec)
    except ValueError as e:
        assert str(e).startswith(f"--pair {spec!r}")
    else:
        assert isinstance(pair, chains.MarkovPair)
