"""Statistics shared by the real-model engine tests (test_real_*.py).

Every statistical assert has a false-fail probability of at most ``ALPHA = 1e-6``:
* laws: Pearson chi-square over cells merged to an expected count >= 5, rejected above
  ``chi2.isf(ALPHA, df)``; a drawn zero-probability cell fails deterministically;
* means: ``|mean - expected| <= Z * sem`` with ``Z = norm.isf(ALPHA / 2) = 4.89``;
* power against a planted bug's exact law: the non-central chi-square tail at the threshold
  with ``lambda = N sum_cells (P_bug - P)^2 / P`` over the same merged cells.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

ALPHA = 1e-6
Z = float(stats.norm.isf(ALPHA / 2))


def cell_groups(expected, min_expected=5.0):
    """Cells with expected count >= 5 alone; the rest pooled (joined to the smallest kept cell
    while the pool is below 5)."""
    groups = [[int(i)] for i in np.flatnonzero(expected >= min_expected)]
    pool = [int(i) for i in np.flatnonzero(expected < min_expected)]
    if pool:
        if expected[pool].sum() < min_expected and groups:
            j = min(range(len(groups)), key=lambda g: expected[groups[g]].sum())
            pool += groups.pop(j)
        groups.append(pool)
    return groups


def chi2_gof(counts, probs):
    """Pearson statistic over merged cells, its df and the ALPHA threshold."""
    counts = np.asarray(counts, dtype=float).ravel()
    probs = np.asarray(probs, dtype=float).ravel()
    N = counts.sum()
    groups = cell_groups(N * probs)
    O = np.array([counts[g].sum() for g in groups])
    E = np.array([N * probs[g].sum() for g in groups])
    stat = float(np.sum((O - E) ** 2 / E))
    df = len(groups) - 1
    return stat, df, float(stats.chi2.isf(ALPHA, df))


def power(probs, bug_probs, N):
    """Power of :func:`chi2_gof` with ``N`` samples against the law ``bug_probs``."""
    probs = np.asarray(probs, dtype=float).ravel()
    bug = np.asarray(bug_probs, dtype=float).ravel()
    groups = cell_groups(N * probs)
    assert len(groups) >= 2, "too few cells for a chi-square test; raise N"
    P = np.array([probs[g].sum() for g in groups])
    B = np.array([bug[g].sum() for g in groups])
    lam = N * float(np.sum((B - P) ** 2 / P))
    df = len(groups) - 1
    return float(stats.ncx2.sf(stats.chi2.isf(ALPHA, df), df, lam))


def assert_law(counts, probs, what, allow_point=False):
    """Chi-square goodness of fit; a drawn zero-probability cell fails. ``allow_point``: a law
    with a single merged cell (a point mass) is checked by its zero cells alone."""
    counts = np.asarray(counts).ravel()
    probs = np.asarray(probs).ravel()
    assert counts[probs == 0].sum() == 0, f"{what}: a zero-probability cell was drawn"
    stat, df, thr = chi2_gof(counts, probs)
    if allow_point and df == 0:
        return stat, df, thr
    assert df >= 1, f"{what}: too few cells"
    assert stat <= thr, f"{what}: chi2 = {stat:.1f} > {thr:.1f} (df = {df})"
    return stat, df, thr


def law_rejected(counts, probs):
    """True when the chi-square test rejects ``probs`` (used on planted-bug samples)."""
    counts = np.asarray(counts).ravel()
    probs = np.asarray(probs).ravel()
    if counts[probs == 0].sum() > 0:
        return True
    stat, _, thr = chi2_gof(counts, probs)
    return stat > thr


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
