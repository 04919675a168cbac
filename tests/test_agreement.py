"""The one statistics module (scdsim.agreement): z for means, chi-square/G with merged cells,
power against a planted alternative, sampling-noise TV, delta-method ratio of means."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from scdsim import agreement


def test_z_threshold_is_the_two_sided_normal_quantile():
    assert agreement.z_threshold(1e-6) == pytest.approx(4.891638475698, abs=1e-9)
    assert agreement.z_threshold(0.05) == pytest.approx(1.959963984540, abs=1e-9)
    with pytest.raises(ValueError, match="alpha must lie in"):
        agreement.z_threshold(0.0)


def test_mean_agreement_uses_the_threshold_and_refuses_undefined_errors():
    assert agreement.mean_agrees(1.0 + 4.8 * 0.01, 0.01, 1.0)
    assert not agreement.mean_agrees(1.0 + 4.9 * 0.01, 0.01, 1.0)
    assert not agreement.mean_agrees(1.0, math.nan, 1.0)
    assert agreement.z_score(1.2, 0.1, 1.0) == pytest.approx(2.0)
    assert math.isnan(agreement.z_score(1.2, 0.0, 1.0))


def test_merged_cells_pool_small_and_zero_cells_with_the_smallest_kept_cell():
    # the pool (1 + 0 < 5) is joined to the smallest kept cell (6)
    assert agreement.merged_cells([10, 8, 6, 1, 0]) == [[0], [1], [3, 4, 2]]
    assert agreement.merged_cells([10, 8, 3, 2, 0]) == [[0], [1], [2, 3, 4]]  # pool of 5 stays
    E = np.array([10.0, 8.0, 6.0, 1.0, 0.0])
    groups = agreement.merged_cells(E)
    assert all(E[g].sum() >= 5 for g in groups)
    assert sorted(i for g in groups for i in g) == list(range(5))
    assert agreement.merged_cells([3.0, 1.0]) == [[0, 1]]  # nothing kept: one group, df = 0


def test_chi_square_p_value_is_one_on_exact_counts_and_small_on_a_wrong_law():
    """Moved from test_cli (the CLI's p-value is now this one)."""
    probs = np.array([0.5, 0.3, 0.2, 0.0])

    def pvalue(counts, p):
        return agreement.chi_square(counts, p).pvalue

    assert pvalue([500, 300, 200, 0], probs) == pytest.approx(1.0)
    assert pvalue([200, 300, 500, 0], probs) < 1e-6
    assert pvalue([500, 300, 199, 1], probs) == 0.0  # a zero-probability cell was drawn
    assert np.isnan(pvalue([10, 0, 0, 0], np.array([1.0, 0, 0, 0])))
    # under the null the p-value is about uniform: of 400 multinomial draws, the number below 0.05
    # is about Binomial(400, 0.05); the bounds hold with probability >= 1 - 1e-6
    rng = np.random.default_rng(0)
    small = sum(pvalue(rng.multinomial(2000, probs), probs) < 0.05 for _ in range(400))
    low, high = stats.binom.ppf(0.5e-6, 400, 0.05), stats.binom.isf(0.5e-6, 400, 0.05)
    assert low <= small <= high, (small, low, high)


def test_chi_square_statistics_match_their_definitions():
    counts, probs = np.array([30.0, 50.0, 20.0]), np.array([0.25, 0.5, 0.25])
    E = 100 * probs
    t = agreement.chi_square(counts, probs)
    assert t.statistic == pytest.approx(np.sum((counts - E) ** 2 / E), abs=1e-12)
    assert (t.df, t.threshold) == (2, pytest.approx(stats.chi2.isf(1e-6, 2)))
    g = agreement.chi_square(counts, probs, statistic="g")
    assert g.statistic == pytest.approx(2 * np.sum(counts * np.log(counts / E)), abs=1e-12)
    assert t.passed and g.passed
    assert not agreement.chi_square([1, 0], [0.0, 1.0]).passed
    with pytest.raises(ValueError, match="counts has 2 cells but probs has 3"):
        agreement.chi_square([1, 2], probs)
    with pytest.raises(ValueError, match="statistic must be one of"):
        agreement.chi_square(counts, probs, statistic="kl")


@pytest.mark.parametrize("statistic", ["pearson", "g"])
def test_power_predicts_the_rejection_rate_of_the_test(statistic):
    """The computed power against a planted alternative matches the observed rejection rate
    of the test over 400 draws (binomial bounds at 1e-6), at a false-fail rate of 0.01 where the
    power is intermediate; and it is >= 1 - 1e-6 at the project's settings for a clear bug."""
    probs, alt = np.array([0.4, 0.3, 0.2, 0.1]), np.array([0.37, 0.31, 0.21, 0.11])
    n, alpha, reps = 2000, 0.01, 400
    pw, lam = agreement.chi_square_power(probs, alt, n, alpha=alpha, statistic=statistic)
    assert 0.05 < pw < 0.95 and lam > 0
    rng = np.random.default_rng(1)
    hits = sum(not agreement.chi_square(rng.multinomial(n, alt), probs, alpha=alpha,
                                        statistic=statistic).passed for _ in range(reps))
    low, high = stats.binom.ppf(0.5e-6, reps, pw), stats.binom.isf(0.5e-6, reps, pw)
    assert low <= hits <= high, (hits, low, high, pw)
    big, _ = agreement.chi_square_power(probs, [0.3, 0.3, 0.25, 0.15], 20_000, statistic=statistic)
    assert big >= 1 - 1e-6
    with pytest.raises(ValueError, match="too few cells"):
        agreement.chi_square_power([0.5, 0.5], [0.6, 0.4], 4)


def test_sampling_noise_tv_matches_the_mean_tv_of_multinomial_draws():
    probs, n = np.array([0.5, 0.3, 0.15, 0.05]), 5000
    rng = np.random.default_rng(2)
    tvs = np.array([0.5 * np.abs(rng.multinomial(n, probs) / n - probs).sum() for _ in range(400)])
    z = (tvs.mean() - agreement.sampling_noise_tv(probs, n)) / (tvs.std(ddof=1) / math.sqrt(400))
    assert abs(z) <= agreement.z_threshold() + 1.0  # the normal approximation's bias is < 1 s.e.


def test_ratio_of_means_delta_method():
    X = np.array([4.0, 6.0, 5.0, 9.0])
    value, se = agreement.ratio_of_means(20.0, X)
    assert value == pytest.approx(20.0 / 6.0)
    assert se == pytest.approx(20.0 * X.std(ddof=1) / (2.0 * 36.0))
    assert math.isnan(agreement.ratio_of_means(20.0, [5.0])[1])


@pytest.mark.parametrize("call,match", [
    (lambda: agreement.chi_square([], []), "no cells"),
    (lambda: agreement.chi_square([1, 2], [0.5, 0.4]), "probs must sum to 1"),
    (lambda: agreement.chi_square([1, -2], [0.5, 0.5]), "counts must be finite and nonnegative"),
    (lambda: agreement.chi_square([1, 2], [np.nan, 0.5]), "probs must be finite"),
    (lambda: agreement.chi_square_power([0.5, 0.5], [0.6, 0.4], 0), "n must be >= 1"),
    (lambda: agreement.chi_square_power([0.5, 0.5], [0.6, 0.3], 100), "probs must sum to 1"),
    (lambda: agreement.sampling_noise_tv([0.5, 0.5], -3), "n must be >= 1"),
    (lambda: agreement.ratio_of_means(1.0, []), "non-empty array of finite numbers"),
    (lambda: agreement.ratio_of_means(1.0, [0.0, 0.0]), "mean 0"),
    (lambda: agreement.z_threshold(1.5), "alpha must lie in"),
])
def test_bad_input_gets_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
