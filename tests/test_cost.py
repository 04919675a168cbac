"""Tests for scdsim.cost: Leviathan et al. (2023) cost models and the reconstructed SCD variant.

Paper numbers come from reference notes §3 (Tables 1 and 4, §3.6 text, lenience text, all [V]) and
§7.1; derived ones from reference notes §7.1 and §7.6 ([D]); the rest from independent derivations
written out in this file (explicit sums over the accepted-count law, brute-force maxima).
"""

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scdsim import cost

PROPERTY = settings(deadline=None)  # example count comes from the conftest profile


def _tokens_by_sum(alpha, gamma):
    """Eq. (1) as the finite geometric sum sum_{k=0}^{gamma} alpha^k (no division)."""
    return math.fsum(alpha ** k for k in range(gamma + 1))


def _tokens_by_law(alphas):
    """E[# tokens] from the law of the accepted count N: P(N = n) = prod_{i<n} a_i (1 - a_n)."""
    total, reach = 0.0, 1.0
    for n, a in enumerate(alphas):
        total += (n + 1) * reach * (1.0 - a)  # n drafts accepted, draft n+1 rejected
        reach *= a
    return total + (len(alphas) + 1) * reach  # all accepted: gamma drafts + bonus token


# ---------------------------------------------------------------- Leviathan Table 1

TABLE_1 = [  # alpha, gamma, ops (paper), speed (paper), ops (formula), speed (formula); §3, §7.1
    (0.6, 2, 1.53, 1.96, 1.5306, 1.9600),
    (0.7, 3, 1.58, 2.53, 1.5792, 2.5330),
    (0.8, 2, 1.23, 2.44, 1.2295, 2.4400),
    (0.8, 5, 1.63, 3.69, 1.6263, 3.6893),
    (0.9, 2, 1.11, 2.71, 1.1070, 2.7100),
    (0.9, 10, 1.60, 6.86, 1.6031, 6.8619),
]


@pytest.mark.parametrize("alpha, gamma, ops_paper, speed_paper, ops_formula, speed_formula",
                         TABLE_1)
def test_leviathan_table_1_operations_and_speed(alpha, gamma, ops_paper, speed_paper,
                                                ops_formula, speed_formula):
    ops = cost.operations(alpha, gamma, c_hat=0.0)
    speed = cost.speedup(alpha, gamma, c=0.0)
    assert abs(ops - ops_paper) <= 0.005 + 1e-12  # the paper prints 2 decimals
    assert abs(speed - speed_paper) <= 0.005 + 1e-12
    assert ops == pytest.approx(ops_formula, abs=5e-5)  # reference notes §7.1, 4 decimals
    assert speed == pytest.approx(speed_formula, abs=5e-5)
    assert speed == pytest.approx(_tokens_by_sum(alpha, gamma), rel=1e-13)
    assert ops == pytest.approx((gamma + 1) / _tokens_by_sum(alpha, gamma), rel=1e-13)


# ---------------------------------------------------------------- Leviathan Table 4

TABLE_4 = [  # task/draft/temp, gamma, alpha, c, Exp (paper), formula (reference notes §7.1)
    ("EnDe small T0", 7, 0.75, 0.02, 3.2, 3.1575),
    ("EnDe base T0", 7, 0.80, 0.04, 3.3, 3.2509),
    ("EnDe large T0", 7, 0.82, 0.11, 2.5, 2.4971),
    ("EnDe small T1", 7, 0.62, 0.02, 2.3, 2.2580),
    ("EnDe base T1", 5, 0.68, 0.04, 2.4, 2.3467),
    ("EnDe large T1", 3, 0.71, 0.11, 2.0, 1.9338),
    ("CNNDM small T0", 5, 0.65, 0.02, 2.4, 2.4015),
    ("CNNDM base T0", 5, 0.73, 0.04, 2.6, 2.6193),
    ("CNNDM large T0", 3, 0.74, 0.11, 2.0, 2.0247),
    ("CNNDM small T1", 5, 0.53, 0.02, 1.9, 1.8914),
    ("CNNDM base T1", 3, 0.55, 0.04, 1.8, 1.8026),
    ("CNNDM large T1", 3, 0.56, 0.11, 1.6, 1.5408),
]


@pytest.mark.parametrize("row, gamma, alpha, c, paper, formula", TABLE_4)
def test_leviathan_table_4_expected_speedup(row, gamma, alpha, c, paper, formula):
    value = cost.speedup(alpha, gamma, c)
    # reference notes §7.1: the printed alpha and c are rounded, so the paper's Exp is met within 0.07.
    assert abs(value - paper) <= 0.07
    assert value == pytest.approx(formula, abs=5e-5)
    assert value == pytest.approx(_tokens_by_sum(alpha, gamma) / (gamma * c + 1), rel=1e-13)


def test_leviathan_table_4_vectorised_equals_rowwise():
    g = np.array([r[1] for r in TABLE_4])
    a = np.array([r[2] for r in TABLE_4])
    c = np.array([r[3] for r in TABLE_4])
    out = cost.speedup(a, g, c)
    assert isinstance(out, np.ndarray) and out.shape == (12,)
    np.testing.assert_allclose(out, [cost.speedup(*args) for args in zip(a, g, c)], rtol=1e-15)


# ---------------------------------------------------------------- further §3 / §7.1 numbers

def test_bigram_draft_speedup_is_1_25x():
    # §3.6: "alpha≈0.2 ... improvement factor of 1.25X with gamma=3"; §7.1: 1.248.
    value = cost.speedup(0.2, 3, 0.0)
    assert value == pytest.approx(1.248, abs=1e-12)
    assert round(value, 2) == 1.25


@pytest.mark.parametrize("alpha, formula, paper", [
    (0.75, 3.3033, 3.3), (0.80, 3.8651, 3.9), (0.87, 4.9070, 4.9),
])
def test_argmax_lenience_speedups(alpha, formula, paper):
    # §3 lenience text: c = 0.015, gamma = 8 gives 3.3X, 3.3X, 3.9X, 4.9X; §7.1 [D] 4 decimals.
    value = cost.speedup(alpha, 8, 0.015)
    assert value == pytest.approx(formula, abs=5e-5)
    assert round(value, 1) == paper


def test_corollary_3_9_value():
    # §3: the gamma = 1 improvement (1 + alpha) / (1 + c); §7.1: alpha = .5, c = .1 -> 1.363636.
    assert cost.speedup(0.5, 1, 0.1) == pytest.approx(1.363636, abs=5e-7)
    assert cost.speedup(0.5, 1, 0.1) == pytest.approx(1.5 / 1.1, rel=1e-15)


OPTIMAL = {  # reference notes §7.1 [D]: c -> {alpha: (gamma*, speed)}, gamma over 1..200
    0.01: {0.5: (5, 1.875), 0.6: (7, 2.297), 0.7: (9, 2.972), 0.8: (14, 4.232),
           0.9: (24, 7.486), 0.95: (40, 12.542)},
    0.05: {0.5: (3, 1.630), 0.6: (4, 1.921), 0.7: (6, 2.353), 0.8: (8, 3.092),
           0.9: (13, 4.674), 0.95: (21, 6.600)},
    0.1: {0.5: (2, 1.458), 0.6: (3, 1.674), 0.7: (4, 1.981), 0.8: (6, 2.470),
          0.9: (10, 3.431), 0.95: (15, 4.479)},
}


@pytest.mark.parametrize("c, alpha, gamma_star, speed",
                         [(c, a, g, s) for c, row in OPTIMAL.items() for a, (g, s) in row.items()])
def test_optimal_gamma_table_theory_7_1(c, alpha, gamma_star, speed):
    result = cost.optimal_gamma(alpha, c)
    assert result.gamma == gamma_star and isinstance(result.gamma, int)
    assert result.speedup == pytest.approx(speed, abs=5e-4)  # 3 decimals
    g, s = result  # unpacks as (gamma, speedup)
    assert (g, s) == (result.gamma, result.speedup)


def test_optimal_gamma_vectorised_over_alpha_and_c():
    alphas = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    cs = np.array([[0.01], [0.05], [0.1]])
    result = cost.optimal_gamma(alphas, cs)
    assert result.gamma.shape == (3, 6) and result.speedup.shape == (3, 6)
    for i, c in enumerate([0.01, 0.05, 0.1]):
        for j, a in enumerate(alphas):
            assert result.gamma[i, j] == OPTIMAL[c][float(a)][0]
            assert result.speedup[i, j] == pytest.approx(OPTIMAL[c][float(a)][1], abs=5e-4)


@pytest.mark.parametrize("alpha, gamma_star, speed", [
    (0.62, 7, 2.3295), (0.71, 9, 2.9392), (0.76, 10, 3.4462), (0.84, 15, 4.7886),
])
def test_optimal_gamma_for_sampling_lenience_alphas_theory_7_1(alpha, gamma_star, speed):
    # §7.1 [D]: the best integer gamma at c = 0.015 (the paper's 2.5X..5X is not reproducible).
    result = cost.optimal_gamma(alpha, 0.015)
    assert result.gamma == gamma_star
    assert result.speedup == pytest.approx(speed, abs=5e-5)


def test_optimal_gamma_prefers_the_smallest_gamma_on_ties():
    # alpha = 0, c = 0: every gamma gives speedup 1; alpha = 1, c = 0: gamma + 1 grows to the cap.
    assert cost.optimal_gamma(0.0, 0.0) == (1, 1.0)
    assert cost.optimal_gamma(1.0, 0.0, max_gamma=17) == (17, 18.0)
    # An exact tie of two gammas: alpha = 1/2, f(1) = 1.5/(1 + c) = f(2) = 1.75/(1 + 2c) at
    # c = 1/5, both 1.25 (and f(3) = 1.875/1.6 < 1.25); in floats they may differ by an ulp.
    result = cost.optimal_gamma(0.5, 0.2)
    assert result.gamma == 1
    assert result.speedup == pytest.approx(1.25, rel=1e-15)
    assert cost.speedup(0.5, 2, 0.2) == pytest.approx(1.25, rel=1e-15)


# ---------------------------------------------------------------- SCD (reconstructed)

SCD_TABLE = [  # lam, gamma, c, SCD (extra amateur on full accept), always gamma+1, Leviathan SD
    (0.8, 4, 0.1, 2.3329, 2.2411, 2.4011),
    (0.7, 4, 0.1, 1.9474, 1.8487, 1.9808),
    (0.6, 3, 0.05, 1.8746, 1.8133, 1.8922),
    (0.9, 5, 0.02, 4.2144, 4.1836, 4.2596),
]


@pytest.mark.parametrize("lam, gamma, c, scd, always, sd", SCD_TABLE)
def test_scd_speedup_table_theory_7_6(lam, gamma, c, scd, always, sd):
    assert cost.scd_speedup(lam, gamma, c) == pytest.approx(scd, abs=5e-5)
    assert cost.scd_speedup(lam, gamma, c, amateur="always") == pytest.approx(always, abs=5e-5)
    assert cost.speedup(lam, gamma, c) == pytest.approx(sd, abs=5e-5)
    # baseline "cd": contrastive decoding pays 1 + c per token (reference notes §2).
    assert cost.scd_speedup(lam, gamma, c, baseline="cd") == pytest.approx(
        scd * (1 + c), abs=5e-5 * (1 + c))
    tokens = _tokens_by_sum(lam, gamma)
    assert cost.scd_speedup(lam, gamma, c, "always", "cd") == pytest.approx(
        tokens * (1 + c) / (1 + c * (gamma + 1)), rel=1e-13)


@PROPERTY
@given(st.floats(0.0, 1.0), st.floats(0.0, 2.0))
def test_scd_with_gamma_0_is_contrastive_decoding(lam, c):
    # gamma = 0: one expert and one amateur call per token, exactly CD's cost.
    for amateur in ("on_full_accept", "always"):
        assert cost.scd_speedup(lam, 0, c, amateur, "cd") == pytest.approx(1.0, rel=1e-14)
        assert cost.scd_speedup(lam, 0, c, amateur) == pytest.approx(1 / (1 + c), rel=1e-14)


@PROPERTY
@given(st.floats(0.0, 1.0), st.integers(0, 30), st.floats(0.0, 2.0))
def test_scd_cost_models_bracket_each_other_below_plain_sd(lam, gamma, c):
    # Extra amateur work only lowers the speedup: always >= on_full_accept's cost.
    sd = cost.speedup(lam, gamma, c)
    on_full = cost.scd_speedup(lam, gamma, c)
    always = cost.scd_speedup(lam, gamma, c, "always")
    assert always <= on_full * (1 + 1e-14) and on_full <= sd * (1 + 1e-14)


# ---------------------------------------------------------------- properties

@PROPERTY
@given(st.floats(0.0, 1.0), st.integers(0, 60))
def test_expected_tokens_equals_the_geometric_sum(alpha, gamma):
    # Relative 1e-12 also near alpha = 1, where (1 - a^(g+1)) / (1 - a) cancels catastrophically.
    assert cost.expected_tokens(alpha, gamma) == pytest.approx(_tokens_by_sum(alpha, gamma),
                                                               rel=1e-12)


@PROPERTY
@given(st.integers(0, 60), st.floats(1e-16, 1e-6))
def test_expected_tokens_is_accurate_just_below_alpha_1(gamma, eps):
    assert cost.expected_tokens(1.0 - eps, gamma) == pytest.approx(
        _tokens_by_sum(1.0 - eps, gamma), rel=1e-12)
    assert cost.expected_tokens(1.0, gamma) == gamma + 1


@PROPERTY
@given(st.floats(0.0, 1.0), st.floats(0.0, 10.0))
def test_speedup_is_one_at_gamma_zero(alpha, c):
    assert cost.speedup(alpha, 0, c) == 1.0
    assert cost.operations(alpha, 0, c) == 1.0


@PROPERTY
@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.integers(1, 40), st.floats(0.0, 2.0))
def test_speedup_increases_with_alpha(a1, a2, gamma, c):
    lo, hi = min(a1, a2), max(a1, a2)
    s_lo, s_hi = cost.speedup(lo, gamma, c), cost.speedup(hi, gamma, c)
    assert s_lo <= s_hi * (1 + 1e-14)
    if hi - lo > 1e-6:
        assert s_lo < s_hi  # d/d alpha of sum alpha^k is >= 1 for gamma >= 1


@PROPERTY
@given(st.floats(0.0, 1.0), st.floats(0.0, 2.0))
def test_corollary_3_9_is_the_gamma_1_speedup(alpha, c):
    assert cost.speedup(alpha, 1, c) == pytest.approx((1 + alpha) / (1 + c), rel=1e-14)


@PROPERTY
@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_some_gamma_improves_iff_alpha_exceeds_c(alpha, c):
    # Cor 3.9 and its converse: sum_{k<=g} alpha^k <= 1 + g alpha <= 1 + g c when alpha <= c.
    best = cost.optimal_gamma(alpha, c, max_gamma=50).speedup
    if alpha > c + 1e-9:
        assert best > 1.0
    elif alpha <= c:
        assert best <= 1.0 + 1e-14


@PROPERTY
@given(st.floats(0.0, 1.0), st.floats(0.0, 0.5), st.integers(1, 25))
# gains 0.125^k fall below 1e-12 relative: a near-tie that the smaller gamma must win
@example(0.125, 0.0, 15)
def test_optimal_gamma_is_the_brute_force_maximiser(alpha, c, max_gamma):
    values = [_tokens_by_sum(alpha, g) / (g * c + 1) for g in range(1, max_gamma + 1)]
    result = cost.optimal_gamma(alpha, c, max_gamma)
    assert result.speedup == pytest.approx(max(values), rel=1e-12)
    assert 1 <= result.gamma <= max_gamma
    assert values[result.gamma - 1] == pytest.approx(max(values), rel=1e-12)
    # smallest maximiser: every smaller gamma is strictly (beyond rounding) worse
    assert all(v < max(values) * (1 - 1e-13) for v in values[:result.gamma - 1])


@PROPERTY
@given(st.floats(0.0, 1.0), st.integers(0, 40))
def test_positional_tokens_with_constant_alphas_equal_eq_1(alpha, gamma):
    assert cost.expected_tokens_positional([alpha] * gamma) == pytest.approx(
        cost.expected_tokens(alpha, gamma), rel=1e-12)


@PROPERTY
@given(st.lists(st.floats(0.0, 1.0), max_size=20))
def test_positional_tokens_equal_the_mean_of_the_accepted_count_law(alphas):
    assert cost.expected_tokens_positional(alphas) == pytest.approx(_tokens_by_law(alphas),
                                                                    rel=1e-12)


def test_positional_tokens_broadcast_over_leading_axes():
    alphas = np.array([[0.9, 0.5, 0.0], [1.0, 1.0, 1.0]])
    out = cost.expected_tokens_positional(alphas)
    np.testing.assert_allclose(out, [1 + 0.9 + 0.45, 4.0], rtol=1e-15)
    assert cost.expected_tokens_positional([]) == 1.0  # gamma = 0: plain decoding


@PROPERTY
@given(st.floats(0.0, 1.0), st.integers(0, 40))
def test_operations_times_speedup_is_gamma_plus_one_at_zero_cost(alpha, gamma):
    # Thm 3.8 at c = 0 times Thm 3.11 at c_hat = 0: the target runs gamma+1 positions per call.
    assert cost.operations(alpha, gamma, 0.0) * cost.speedup(alpha, gamma, 0.0) == \
        pytest.approx(gamma + 1, rel=1e-13)


# ---------------------------------------------------------------- return types

def test_scalar_inputs_return_python_floats_and_arrays_return_arrays():
    assert type(cost.expected_tokens(0.5, 3)) is float
    assert type(cost.speedup(np.float64(0.5), np.int64(3), 0)) is float
    assert type(cost.operations(0.5, 3, 0.1)) is float
    assert type(cost.scd_speedup(0.5, 3, 0.1)) is float
    out = cost.speedup(np.array([0.5, 0.8]), np.array([[1], [2], [3]]), 0.1)
    assert isinstance(out, np.ndarray) and out.shape == (3, 2)
    assert out[2, 1] == pytest.approx(_tokens_by_sum(0.8, 3) / 1.3, rel=1e-14)
    assert cost.expected_tokens([0.0, 1.0], 2).tolist() == [1.0, 3.0]


# ---------------------------------------------------------------- error paths

@pytest.mark.parametrize("alpha", [-0.1, 1.1, math.nan, math.inf, [0.5, 1.5]])
def test_alpha_outside_unit_interval_raises(alpha):
    for call in (lambda: cost.expected_tokens(alpha, 2), lambda: cost.speedup(alpha, 2, 0.1),
                 lambda: cost.operations(alpha, 2, 0.1), lambda: cost.optimal_gamma(alpha, 0.1)):
        with pytest.raises(ValueError, match=r"^alpha must (lie in \[0.0, 1.0\]|be finite)"):
            call()


def test_lam_outside_unit_interval_raises():
    with pytest.raises(ValueError, match=r"^lam must lie in \[0.0, 1.0\], got 1.2"):
        cost.scd_speedup(1.2, 2, 0.1)


def test_alphas_outside_unit_interval_or_scalar_raise():
    with pytest.raises(ValueError, match=r"^alphas must lie in \[0.0, 1.0\], got -0.5"):
        cost.expected_tokens_positional([0.5, -0.5])
    with pytest.raises(ValueError, match="alphas must have a block axis"):
        cost.expected_tokens_positional(0.5)


@pytest.mark.parametrize("gamma, exc, match", [
    (-1, ValueError, "gamma must be >= 0, got -1"),
    (np.array([2, -3]), ValueError, "gamma must be >= 0, got -3"),
    (2.0, TypeError, "gamma must be an integer, got 2.0"),
    (True, TypeError, "gamma must be an integer, got True"),
    ([1, 2.5], TypeError, "gamma must be an integer"),
])
def test_gamma_must_be_a_nonnegative_integer(gamma, exc, match):
    for call in (lambda: cost.expected_tokens(0.5, gamma), lambda: cost.speedup(0.5, gamma, 0.1),
                 lambda: cost.operations(0.5, gamma, 0.1),
                 lambda: cost.scd_speedup(0.5, gamma, 0.1)):
        with pytest.raises(exc, match=match):
            call()


@pytest.mark.parametrize("c", [-0.1, math.nan, math.inf])
def test_negative_or_nonfinite_cost_coefficient_raises(c):
    with pytest.raises(ValueError, match=r"^c must"):
        cost.speedup(0.5, 2, c)
    with pytest.raises(ValueError, match=r"^c must"):
        cost.optimal_gamma(0.5, c)
    with pytest.raises(ValueError, match=r"^c must"):
        cost.scd_speedup(0.5, 2, c)
    with pytest.raises(ValueError, match=r"^c_hat must"):
        cost.operations(0.5, 2, c)


@pytest.mark.parametrize("max_gamma, exc", [(0, ValueError), (2.0, TypeError)])
def test_max_gamma_must_be_a_positive_integer(max_gamma, exc):
    with pytest.raises(exc, match="max_gamma"):
        cost.optimal_gamma(0.5, 0.1, max_gamma=max_gamma)


def test_non_numeric_parameters_raise_type_error():
    with pytest.raises(TypeError, match="alpha must be a real number"):
        cost.speedup("0.5", 2, 0.1)
    with pytest.raises(TypeError, match="alpha must be a real number"):
        cost.speedup(np.array([True, False]), 2, 0.1)
    with pytest.raises(TypeError, match="c must be a real number"):
        cost.speedup(0.5, 2, 1j)


def test_unknown_scd_options_raise():
    with pytest.raises(ValueError, match="amateur must be one of"):
        cost.scd_speedup(0.5, 2, 0.1, amateur="sometimes")
    with pytest.raises(ValueError, match="baseline must be one of"):
        cost.scd_speedup(0.5, 2, 0.1, baseline="sd")


# ---- calls of a finite generation, alone and in a lockstep batch -----------------------------


def _brute_calls(pmf, N):
    """Law of C by enumerating every sequence of block lengths (small N)."""
    from itertools import product

    L = len(pmf) - 1
    law = np.zeros(N + 1)
    for k in range(1, N + 1):
        for lens in product(range(1, L + 1), repeat=k):
            s = np.cumsum(lens)
            if s[-1] >= N and (k == 1 or s[-2] < N):
                law[k] += np.prod([pmf[j] for j in lens])
    return law


@pytest.mark.parametrize("seed", range(4))
def test_calls_distribution_equals_enumeration_of_block_sequences(seed):
    rng = np.random.default_rng(seed)
    L = 1 + seed % 3
    pmf = np.concatenate([[0.0], rng.dirichlet(np.ones(L))])
    for N in (1, 2, 5, 7):
        np.testing.assert_allclose(cost.calls_distribution(pmf, N), _brute_calls(pmf, N),
                                   atol=1e-12)


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_expected_max_calls_equals_the_joint_enumeration_over_rows(rows):
    from itertools import product

    pmf = np.array([0.0, 0.3, 0.2, 0.5])
    N = 6
    law = _brute_calls(pmf, N)
    exact = sum(max(ks) * np.prod([law[k] for k in ks])
                for ks in product(range(N + 1), repeat=rows))
    np.testing.assert_allclose(cost.expected_max_calls(pmf, N, rows), exact, rtol=1e-12)


def test_calls_of_a_deterministic_block_and_the_renewal_limit():
    assert cost.expected_max_calls([0, 0, 0, 1.0], 7, 5) == pytest.approx(3.0, abs=1e-12)
    pmf = np.array([0.0, 0.2, 0.3, 0.5])
    mean = pmf @ np.arange(4)
    N = 4000
    EC = cost.expected_max_calls(pmf, N, 1)
    # renewal theory: E[C] = N / mean + O(1)
    assert abs(EC - N / mean) < 2.0
    # more rows in lockstep never need fewer calls
    vals = [cost.expected_max_calls(pmf, 50, b) for b in (1, 2, 4, 8)]
    assert all(a < b for a, b in zip(vals, vals[1:]))


@pytest.mark.parametrize("bad,match", [
    (dict(block_pmf=[0.5, 0.5]), "block_pmf\\[0\\]"),
    (dict(block_pmf=[0, 0.5, 0.6]), "sum to 1"),
    (dict(block_pmf=[0, -0.1, 1.1]), "non-negative"),
    (dict(block_pmf=[0, np.nan, 1]), "finite"),
    (dict(block_pmf=[1.0]), "1-D law"),
    (dict(n_tokens=0), "n_tokens"),
    (dict(rows=0), "rows"),
])
def test_calls_functions_name_the_bad_argument(bad, match):
    kw = dict(block_pmf=[0, 0.5, 0.5], n_tokens=4, rows=2, **{})
    kw.update(bad)
    with pytest.raises(ValueError, match=match):
        cost.expected_max_calls(**kw)


def test_expected_max_calls_with_one_law_per_row_equals_the_joint_enumeration():
    from itertools import product

    pmfs = [np.array([0.0, 0.3, 0.2, 0.5]), np.array([0.0, 0.9, 0.1, 0.0]),
            np.array([0.0, 0.0, 0.0, 1.0])]
    N = 5
    laws = [_brute_calls(f, N) for f in pmfs]
    exact = sum(max(ks) * np.prod([laws[i][k] for i, k in enumerate(ks)])
                for ks in product(range(N + 1), repeat=3))
    np.testing.assert_allclose(cost.expected_max_calls(np.array(pmfs), N), exact, rtol=1e-12)
    # identical rows: the shared-law form
    np.testing.assert_allclose(cost.expected_max_calls(np.array([pmfs[0]] * 3), N),
                               cost.expected_max_calls(pmfs[0], N, 3), rtol=1e-12)
    with pytest.raises(ValueError, match="rows"):
        cost.expected_max_calls(np.array(pmfs), N, rows=2)
