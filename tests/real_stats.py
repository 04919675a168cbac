"""Statistics shared by the real-model engine tests (test_real_*.py), on ``scdsim.agreement``.

Every statistical assert has a false-fail probability of at most ``ALPHA = 1e-6``:
* laws: Pearson chi-square over cells merged to an expected count >= 5
  (``scdsim.agreement.chi_square``), rejected above ``chi2.isf(ALPHA, df)``; a drawn
  zero-probability cell fails deterministically;
* means: ``|mean - expected| <= Z * sem`` with ``Z = norm.isf(ALPHA / 2) = 4.89``;
* power against a planted bug's exact law: the non-central chi-square tail at the threshold
  over the same merged cells (``scdsim.agreement.chi_square_power``).
"""

from __future__ import annotations

import numpy as np

from scdsim import agreement

ALPHA = 1e-6
Z = agreement.z_threshold(ALPHA)


def power(probs, bug_probs, N):
    """Power of the chi-square test with ``N`` samples against the law ``bug_probs``."""
    return agreement.chi_square_power(probs, bug_probs, int(N), alpha=ALPHA)[0]


def assert_law(counts, probs, what, allow_point=False):
    """Chi-square goodness of fit; a drawn zero-probability cell fails. ``allow_point``: a law
    with a single merged cell (a point mass) is checked by its zero cells alone."""
    t = agreement.chi_square(counts, probs, alpha=ALPHA)
    assert not t.zero_cell_hit, f"{what}: a zero-probability cell was drawn"
    if allow_point and t.df == 0:
        return t.statistic, t.df, t.threshold
    assert t.df >= 1, f"{what}: too few cells"
    assert t.passed, f"{what}: chi2 = {t.statistic:.1f} > {t.threshold:.1f} (df = {t.df})"
    return t.statistic, t.df, t.threshold


def law_rejected(counts, probs):
    """True when the chi-square test rejects ``probs`` (used on planted-bug samples)."""
    return not agreement.chi_square(counts, probs, alpha=ALPHA).passed


def assert_mean(mean, sem, expected, what):
    assert abs(mean - expected) <= Z * sem + 1e-12, (
        f"{what}: {mean:.5f} vs {expected:.5f} ({(mean - expected) / sem:.2f} SE)")


def seq_counts(tokens, V, T):
    """Counts of the first ``T`` tokens of each sequence as cells of a ``V^T`` table."""
    arr = np.asarray([t[:T] for t in tokens], dtype=np.int64)
    idx = np.zeros(len(arr), dtype=np.int64)
    for n in range(T):
        idx = idx * V + arr[:, n]
    return np.bincount(idx, minlength=V**T)
