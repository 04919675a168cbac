"""Agreement of an estimate with an exact value: the one statistics module.

Used by the CLI (``scdsim simulate``), the theory table (``scdsim theory``), the tests, and the
real-model validation. One policy everywhere:

* a per-assert false-fail rate ``alpha`` (default ``1e-6``, the project's);
* means: ``|estimate - exact| <= z_threshold(alpha) * sem`` (two-sided; 4.89 s.e. at 1e-6);
* laws: Pearson chi-square (or G) over merged cells (``merged_cells``: cells with expected count
  >= 5 stay alone, the others, zero-probability cells included, form one pool, joined to the
  smallest kept cell while the pool's expected count is below 5), rejected above
  ``chi2.isf(alpha, df)``; a count in a zero-probability cell is a deterministic failure;
* power against a planted alternative: the noncentral chi-square tail at that threshold, with
  noncentrality ``n sum_cells (b - p)^2 / p`` (Pearson) or ``2 n sum_cells b log(b / p)`` (G)
  over the same merged cells (the standard large-sample approximation, e.g. Agresti 2002 §6.6).

SciPy's ``stats`` is imported on first use, not with ``scdsim``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from scdsim._validate import check_int

__all__ = [
    "ALPHA",
    "MIN_EXPECTED",
    "z_threshold",
    "z_score",
    "mean_agrees",
    "merged_cells",
    "ChiSquare",
    "chi_square",
    "chi_square_power",
    "sampling_noise_tv",
    "ratio_of_means",
    "STEMS",
    "Agreement",
    "compare",
]

#: The project's per-assert false-fail rate.
ALPHA = 1e-6
#: Smallest expected count of a cell of a chi-square test.
MIN_EXPECTED = 5.0


def _stats():
    from scipy import stats

    return stats


def _alpha(alpha):
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    return alpha


def z_threshold(alpha: float = ALPHA) -> float:
    """Two-sided normal quantile: ``|z| > z_threshold(alpha)`` with probability ``alpha``.

    >>> round(z_threshold(1e-6), 4)
    4.8916
    """
    return float(_stats().norm.isf(_alpha(alpha) / 2))


def z_score(estimate: float, sem: float, exact: float) -> float:
    """``(estimate - exact) / sem``; NaN when ``sem`` is not a positive finite number."""
    sem = float(sem)
    if not (math.isfinite(sem) and sem > 0):
        return math.nan
    return (float(estimate) - float(exact)) / sem


def mean_agrees(estimate: float, sem: float, exact: float, alpha: float = ALPHA) -> bool:
    """Whether a Monte Carlo mean agrees with an exact value at false-fail rate ``alpha``.

    A zero standard error (a deterministic estimate) agrees only when equal up to 1e-12.
    """
    sem = float(sem)
    if not math.isfinite(sem):
        return False
    return abs(float(estimate) - float(exact)) <= z_threshold(alpha) * sem + 1e-12


def merged_cells(expected, min_expected: float = MIN_EXPECTED) -> list[list[int]]:
    """The cells of a chi-square test: indices grouped so that each group's expected count is
    at least ``min_expected`` where possible.

    Cells with ``expected >= min_expected`` stay alone; the rest (zero-probability cells
    included) form one pool, joined to the smallest kept cell while the pool is still below
    ``min_expected``. Fewer than two groups means there is nothing to test.

    >>> merged_cells([500.0, 300.0, 200.0, 0.0])
    [[0], [1], [3, 2]]
    """
    expected = np.asarray(expected, dtype=float).ravel()
    groups = [[int(i)] for i in np.flatnonzero(expected >= min_expected)]
    pool = [int(i) for i in np.flatnonzero(expected < min_expected)]
    if pool:
        if expected[pool].sum() < min_expected and groups:
            j = min(range(len(groups)), key=lambda g: expected[groups[g]].sum())
            pool += groups.pop(j)
        groups.append(pool)
    return groups


class ChiSquare(NamedTuple):
    """A chi-square (or G) goodness-of-fit test of counts against an exact law."""

    statistic: float  #: Pearson's X^2 or G over the merged cells (inf if a zero cell was hit)
    df: int  #: degrees of freedom (groups - 1)
    threshold: float  #: ``chi2.isf(alpha, df)`` (NaN when df = 0)
    pvalue: float  #: 0 if a zero-probability cell was drawn, NaN when df = 0
    groups: list  #: the merged cells
    zero_cell_hit: bool  #: a count fell in a cell of probability 0

    @property
    def passed(self) -> bool:
        """No zero cell was hit and the statistic is at most the threshold (or df = 0)."""
        if self.zero_cell_hit:
            return False
        return self.df == 0 or self.statistic <= self.threshold


def _as_counts_probs(counts, probs):
    counts = np.asarray(counts, dtype=float).ravel()
    probs = np.asarray(probs, dtype=float).ravel()
    if counts.shape != probs.shape:
        raise ValueError(f"counts has {counts.size} cells but probs has {probs.size}")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise ValueError("counts must be finite and nonnegative")
    if np.any(probs < 0) or not np.all(np.isfinite(probs)):
        raise ValueError("probs must be finite and nonnegative")
    if counts.size == 0:
        raise ValueError("counts and probs have no cells")
    if abs(probs.sum() - 1.0) > 1e-6:
        raise ValueError(f"probs must sum to 1 within 1e-6, got {probs.sum():.9g}")
    return counts, probs


def chi_square(counts, probs, alpha: float = ALPHA, statistic: str = "pearson") -> ChiSquare:
    """Test ``counts`` against the exact law ``probs`` over merged cells.

    Parameters
    ----------
    counts : array
        Observed counts per cell (any shape; flattened).
    probs : array
        Exact cell probabilities (same number of cells; they should sum to 1).
    alpha : float
        False-fail rate of the threshold.
    statistic : {"pearson", "g"}
        Pearson's ``sum (O - E)^2 / E`` or the likelihood-ratio ``G = 2 sum O log(O / E)``.

    Examples
    --------
    >>> t = chi_square([500, 300, 200, 0], [0.5, 0.3, 0.2, 0.0])
    >>> t.statistic, t.df, t.passed, round(t.pvalue, 6)
    (0.0, 2, True, 1.0)
    >>> chi_square([500, 300, 199, 1], [0.5, 0.3, 0.2, 0.0]).zero_cell_hit
    True
    """
    if statistic not in ("pearson", "g"):
        raise ValueError(f"statistic must be one of ['g', 'pearson'], got {statistic!r}")
    alpha = _alpha(alpha)
    counts, probs = _as_counts_probs(counts, probs)
    N = counts.sum()
    groups = merged_cells(N * probs)
    df = len(groups) - 1
    threshold = float(_stats().chi2.isf(alpha, df)) if df > 0 else math.nan
    if np.any(counts[probs <= 0] > 0):
        return ChiSquare(math.inf, df, threshold, 0.0, groups, True)
    if df == 0:
        return ChiSquare(0.0, 0, math.nan, math.nan, groups, False)
    O = np.array([counts[g].sum() for g in groups])
    E = np.array([N * probs[g].sum() for g in groups])
    if statistic == "pearson":
        stat = float(np.sum((O - E) ** 2 / E))
    else:
        pos = O > 0
        stat = float(2.0 * np.sum(O[pos] * np.log(O[pos] / E[pos])))
    return ChiSquare(stat, df, threshold, float(_stats().chi2.sf(stat, df)), groups, False)


def chi_square_power(probs, alternative, n: int, alpha: float = ALPHA,
                     statistic: str = "pearson") -> tuple[float, float]:
    """Power of ``chi_square`` with ``n`` draws against the law ``alternative``.

    Returns ``(power, noncentrality)``: the noncentral chi-square tail above the ``alpha``
    threshold, over the cells ``chi_square`` would merge for ``probs``.

    Raises
    ------
    ValueError
        Fewer than two merged cells (nothing to test: raise ``n``).

    Examples
    --------
    >>> power, lam = chi_square_power([0.5, 0.5], [0.6, 0.4], 20_000)
    >>> power > 1 - 1e-6, round(lam, 3)
    (True, 800.0)
    """
    if statistic not in ("pearson", "g"):
        raise ValueError(f"statistic must be one of ['g', 'pearson'], got {statistic!r}")
    alpha = _alpha(alpha)
    n = check_int(n, "n", minimum=1)
    _, probs = _as_counts_probs(np.zeros(np.size(probs)), probs)
    _, alt = _as_counts_probs(np.zeros(np.size(alternative)), alternative)
    if probs.shape != alt.shape:
        raise ValueError(f"probs has {probs.size} cells but alternative has {alt.size}")
    groups = merged_cells(n * probs)
    if len(groups) < 2:
        raise ValueError(f"too few cells for a chi-square test with n = {n}; raise n")
    P = np.array([probs[g].sum() for g in groups])
    B = np.array([alt[g].sum() for g in groups])
    if statistic == "pearson":
        lam = n * float(np.sum((B - P) ** 2 / P))
    else:
        pos = B > 0
        lam = 2.0 * n * float(np.sum(B[pos] * np.log(B[pos] / P[pos])))
    df = len(groups) - 1
    st = _stats()
    return float(st.ncx2.sf(st.chi2.isf(alpha, df), df, lam)), lam


def sampling_noise_tv(probs, n: int) -> float:
    """The TV distance that sampling noise alone gives between ``n`` draws and their law.

    ``E|p_hat - p|`` per cell is about ``sqrt(2 p (1 - p) / (pi n))`` (normal approximation),
    so the expected TV is about half their sum.

    >>> round(sampling_noise_tv([0.5, 0.5], 10_000), 5)
    0.00399
    """
    n = check_int(n, "n", minimum=1)
    p = np.clip(np.asarray(probs, dtype=float).ravel(), 0.0, 1.0)
    return 0.5 * float(np.sum(np.sqrt(2.0 * p * (1.0 - p) / (math.pi * n))))


def ratio_of_means(scale: float, costs) -> tuple[float, float]:
    """``scale / mean(costs)`` and its delta-method standard error.

    For per-run costs ``X_i`` (target calls, or ``calls + c drafts``) the ratio ``T / mean(X)``
    (tokens per call, speedup) has standard error ``scale sd(X) / (sqrt(N) mean(X)^2)``; NaN
    for a single run.

    >>> value, se = ratio_of_means(10.0, [4.0, 6.0])
    >>> value, round(se, 6)
    (2.0, 0.4)
    """
    X = np.asarray(costs, dtype=float).ravel()
    if X.size == 0 or not np.all(np.isfinite(X)):
        raise ValueError("costs must be a non-empty array of finite numbers")
    m = float(np.mean(X))
    if m == 0.0:
        raise ValueError("costs have mean 0: the ratio scale / mean(costs) is undefined")
    value = float(scale) / m
    if X.size < 2:
        return value, math.nan
    return value, float(scale) * float(np.std(X, ddof=1)) / (math.sqrt(X.size) * m * m)


#: The scalar stems shared by exact (``expected_<stem>``) and estimated (``mean_<stem>``,
#: ``sem_<stem>``) results (docs/architecture.md).
STEMS = ("rejections", "target_calls", "draft_tokens")


class Agreement(NamedTuple):
    """One shared quantity of an exact result and an estimate."""

    stem: str
    exact: float
    mean: float
    sem: float
    z: float
    agrees: bool


def compare(exact, estimate, stems=STEMS, alpha: float = ALPHA) -> list[Agreement]:
    """"Exact vs estimate" as a loop over the shared names.

    Parameters
    ----------
    exact : result with ``expected_<stem>`` attributes (``SequenceLaw``, ``BlockStats``)
    estimate : result with ``mean_<stem>`` and ``sem_<stem>`` (``SimResult``, real-model results)
    stems : names to compare (default ``STEMS``; ``"tokens_per_call"`` compares the unprefixed
        ratio with ``sem_tokens_per_call``)
    alpha : false-fail rate of each agreement

    Returns
    -------
    list of Agreement
    """
    rows = []
    for stem in stems:
        if stem == "tokens_per_call":
            ex, mean = exact.tokens_per_call, estimate.tokens_per_call
            sem = estimate.sem_tokens_per_call
        else:
            ex = getattr(exact, f"expected_{stem}")
            mean, sem = getattr(estimate, f"mean_{stem}"), getattr(estimate, f"sem_{stem}")
        ex, mean, sem = float(ex), float(mean), float(sem)
        rows.append(Agreement(stem, ex, mean, sem, z_score(mean, sem, ex),
                              mean_agrees(mean, sem, ex, alpha)))
    return rows
