"""Walltime and arithmetic-cost models of speculative decoding (Leviathan et al. 2023, §3).

Notation (Leviathan et al.)
---------------------------
``alpha``  acceptance rate ``E[beta] = 1 - E[TV(p, q)]`` (Cor. 3.6), in [0, 1]
``gamma``  number of draft tokens per target call (``gamma = 0`` is plain decoding)
``c``      cost coefficient: walltime of one draft run / one target run (Def. 3.7)
``c_hat``  arithmetic operations per token of the draft / the target (Def. 3.10)
``lam``    SCD's acceptance rate of amateur drafts against the contrastive law (docs/theory.md §7)

Every formula assumes, as the paper does, that the acceptances of the drafts of a block are
i.i.d. with mean ``alpha`` ("capped geometric" number of tokens) and long generations;
:func:`expected_tokens_positional` drops the i.i.d. part. :func:`calls_distribution` and
:func:`expected_max_calls` drop the "long generation" part: the exact number of target calls a
sequence of ``n_tokens`` needs, and the calls a batch of rows decoded in lockstep needs (the
batch runs until its slowest row is done).

Functions take Python/NumPy scalars or NumPy arrays (broadcast against each other; shapes that do
not broadcast raise a ValueError naming the arguments). All-scalar input returns a Python
``float`` (``int`` for a gamma); any array input returns a NumPy array. A gamma may be any
non-negative integer, however large (it is evaluated in float64: exact up to 2**53).

:func:`scd_speedup` is **reconstructed** (docs/theory.md §7 [R]): its cost model was not checked
against the SCD paper's text.

References
----------
Y. Leviathan, M. Kalman, Y. Matias, "Fast Inference from Transformers via Speculative
Decoding", ICML 2023 (arXiv 2211.17192): Eq. (1), Theorem 3.8, Corollary 3.9, Theorem 3.11, §3.5.
H. Yuan et al., "Speculative Contrastive Decoding", ACL 2024 (arXiv 2311.08981).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from scdsim._validate import check_choice, check_int, check_real

__all__ = [
    "expected_tokens",
    "speedup",
    "operations",
    "optimal_gamma",
    "OptimalGamma",
    "expected_tokens_positional",
    "scd_speedup",
    "calls_distribution",
    "expected_max_calls",
]

# Relative tolerance under which two speedups count as a tie in optimal_gamma: mathematically
# equal values can differ by a few ulps, and the smaller gamma must still win.
_TIE_RTOL = 1e-12


def _real_array(value, name, **bounds):
    """Validate a real scalar or array parameter elementwise; return a float64 array.

    The raising itself is left to ``check_real`` (called on the first offending element), so
    messages match the scalar checks.
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        for v in arr.flat:  # bools, complex, strings, objects: let check_real say what is wrong
            check_real(v.item() if isinstance(v, np.generic) else v, name, **bounds)
        arr = arr.astype(np.float64)
    arr = arr.astype(np.float64, copy=False)
    low, high = bounds.get("low"), bounds.get("high")
    bad = ~np.isfinite(arr)
    if low is not None:
        bad |= arr <= low if bounds.get("low_open") else arr < low
    if high is not None:
        bad |= arr >= high if bounds.get("high_open") else arr > high
    if bad.any():
        check_real(float(arr[bad].flat[0]), name, **bounds)
    return arr


def _int_array(value, name, minimum):
    """Validate an integer scalar or array parameter (bools and floats rejected).

    Returns the values as float64 (integers beyond int64, e.g. ``10**20``, are legal and would
    overflow an integer array; float64 holds every integer up to 2**53 exactly).
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        for v in arr.flat:  # bools and floats: check_int says what is wrong
            check_int(v.item() if isinstance(v, np.generic) else v, name, minimum=minimum)
        arr = np.array([float(v) for v in arr.flat], dtype=np.float64).reshape(arr.shape)
    bad = arr < minimum
    if bad.any():
        check_int(int(arr[bad].flat[0]), name, minimum=minimum)
    return arr.astype(np.float64, copy=False)


def _broadcast(**named):
    """Broadcast validated arrays; a shape mismatch raises naming the arguments and shapes."""
    try:
        return np.broadcast_arrays(*named.values())
    except ValueError:
        shapes = ", ".join(f"{k} {np.shape(v)}" for k, v in named.items())
        raise ValueError(f"shape mismatch: {shapes} do not broadcast together") from None


def _out(x, *inputs):
    """A Python scalar when every input was a scalar, else an ndarray."""
    if all(np.ndim(v) == 0 for v in inputs):
        x = np.asarray(x)
        return int(x) if x.dtype.kind in "iu" else float(x)
    return np.asarray(x)


def _tokens(a, g):
    """Eq. (1) on validated arrays: ``(1 - a^(g+1)) / (1 - a)``, ``g + 1`` at ``a = 1``."""
    with np.errstate(divide="ignore"):
        log_a = np.log(a)  # -inf at a = 0 is fine: expm1(-inf) = -1
    # -expm1((g+1) log a) is 1 - a^(g+1) without the cancellation near a = 1.
    num = -np.expm1((g + 1) * log_a)
    den = 1.0 - a
    ratio = np.where(den > 0, num / np.where(den > 0, den, 1.0), g + 1.0)
    # The exact value lies in [1, g + 1]; clipping removes last-ulp excursions (gamma = 0 -> 1).
    return np.clip(ratio, 1.0, g + 1.0)


def expected_tokens(alpha, gamma):
    """Expected number of tokens emitted per target call, Leviathan Eq. (1).

    Parameters
    ----------
    alpha : float or array in [0, 1]
        Acceptance rate.
    gamma : int or int array >= 0
        Draft tokens per block.

    Returns
    -------
    float or array: ``(1 - alpha^(gamma+1)) / (1 - alpha)``; its ``alpha -> 1`` limit
    ``gamma + 1`` at ``alpha = 1``.

    References
    ----------
    Leviathan et al. (2023), Eq. (1) (capped geometric variable, cap gamma + 1).
    """
    a = _real_array(alpha, "alpha", low=0.0, high=1.0)
    g = _int_array(gamma, "gamma", 0)
    a, g = _broadcast(alpha=a, gamma=g)
    return _out(_tokens(a, g), alpha, gamma)


def speedup(alpha, gamma, c):
    """Expected walltime improvement factor of speculative decoding, Leviathan Thm 3.8.

    Parameters
    ----------
    alpha : float or array in [0, 1]
        Acceptance rate.
    gamma : int or int array >= 0
        Draft tokens per block; ``gamma = 0`` is plain decoding (factor 1).
    c : float or array >= 0
        Draft/target walltime ratio.

    Returns
    -------
    float or array: ``(1 - alpha^(gamma+1)) / ((1 - alpha)(gamma c + 1))``.

    References
    ----------
    Leviathan et al. (2023), Theorem 3.8; Corollary 3.9 is its ``gamma = 1`` value
    ``(1 + alpha) / (1 + c)``.
    """
    a = _real_array(alpha, "alpha", low=0.0, high=1.0)
    g = _int_array(gamma, "gamma", 0)
    cc = _real_array(c, "c", low=0.0)
    a, g, cc = _broadcast(alpha=a, gamma=g, c=cc)
    return _out(_tokens(a, g) / (g * cc + 1.0), alpha, gamma, c)


def operations(alpha, gamma, c_hat):
    """Expected factor of increase in total arithmetic operations, Leviathan Thm 3.11.

    Parameters
    ----------
    alpha : float or array in [0, 1]
        Acceptance rate.
    gamma : int or int array >= 0
        Draft tokens per block.
    c_hat : float or array >= 0
        Draft/target ratio of arithmetic operations per token.

    Returns
    -------
    float or array: ``(1 - alpha)(gamma c_hat + gamma + 1) / (1 - alpha^(gamma+1))``.

    References
    ----------
    Leviathan et al. (2023), Theorem 3.11.
    """
    a = _real_array(alpha, "alpha", low=0.0, high=1.0)
    g = _int_array(gamma, "gamma", 0)
    ch = _real_array(c_hat, "c_hat", low=0.0)
    a, g, ch = _broadcast(alpha=a, gamma=g, c_hat=ch)
    return _out((g * ch + g + 1.0) / _tokens(a, g), alpha, gamma, c_hat)


class OptimalGamma(NamedTuple):
    """Result of :func:`optimal_gamma` (unpacks as ``gamma, speedup``)."""

    gamma: int | np.ndarray
    speedup: float | np.ndarray


def optimal_gamma(alpha, c, max_gamma=200):
    """The integer ``gamma`` in ``1..max_gamma`` maximising the Thm 3.8 speedup.

    Parameters
    ----------
    alpha : float or array in [0, 1]
        Acceptance rate.
    c : float or array >= 0
        Draft/target walltime ratio.
    max_gamma : int in [1, 2**53]
        Largest block length searched. Small searches evaluate every gamma; large ones
        (``max_gamma`` times the number of (alpha, c) pairs above 2e6) use bisection, exact
        because the speedup is quasi-concave in gamma (a concave numerator over an affine
        denominator), so ``max_gamma = 10**9`` costs microseconds, not gigabytes.

    Returns
    -------
    OptimalGamma(gamma, speedup)
        The smallest maximiser (values within a relative ``1e-12`` count as ties) and its
        speedup; ints/floats for scalar input, arrays for array input.

    References
    ----------
    Leviathan et al. (2023), §3.5 (optimal gamma, Fig. 3) and Theorem 3.8.
    """
    a = _real_array(alpha, "alpha", low=0.0, high=1.0)
    cc = _real_array(c, "c", low=0.0)
    max_gamma = check_int(max_gamma, "max_gamma", minimum=1)
    if max_gamma > _MAX_GAMMA:
        raise ValueError(f"max_gamma must be <= 2**53 = {_MAX_GAMMA} (gammas are evaluated in "
                         f"float64), got {max_gamma}")
    a, cc = _broadcast(alpha=a, c=cc)
    if max_gamma * max(a.size, 1) <= _DENSE_ENTRIES:
        g = np.arange(1, max_gamma + 1)
        f = _tokens(a[..., None], g) / (g * cc[..., None] + 1.0)
        best = f.max(axis=-1, keepdims=True)
        idx = np.argmax(f >= best * (1.0 - _TIE_RTOL), axis=-1)  # first (smallest) near-maximiser
        value = np.take_along_axis(f, idx[..., None], axis=-1)[..., 0]
        gamma = idx + 1
    else:
        gamma, value = _optimal_gamma_bisect(a, cc, max_gamma)
    return OptimalGamma(_out(gamma, alpha, c), _out(value, alpha, c))


_MAX_GAMMA = 2**53
# optimal_gamma evaluates every gamma while max_gamma * (number of (alpha, c)) stays below this
_DENSE_ENTRIES = 2_000_000


def _optimal_gamma_bisect(a, cc, max_gamma):
    """Smallest near-maximiser of the Thm 3.8 speedup over ``1..max_gamma``, by bisection.

    ``f(g) = tokens(g) / (g c + 1)`` is quasi-concave in g: the first bisection finds the peak
    (the first g with ``f(g + 1) <= f(g)``); ``f`` is non-decreasing before it, so a second
    bisection finds the smallest g within the tie tolerance of the peak.
    """
    def f(g):
        return _tokens(a, g) / (g * cc + 1.0)

    lo = np.ones(a.shape)
    hi = np.full(a.shape, float(max_gamma))
    while np.any(lo < hi):
        mid = np.floor((lo + hi) / 2.0)
        up = (f(mid + 1.0) > f(mid)) & (lo < hi)
        down = ~up & (lo < hi)
        lo, hi = np.where(up, mid + 1.0, lo), np.where(down, mid, hi)
    best = f(lo)
    thr = best * (1.0 - _TIE_RTOL)
    lo2, hi2 = np.ones(a.shape), lo.copy()
    while np.any(lo2 < hi2):
        mid = np.floor((lo2 + hi2) / 2.0)
        active = lo2 < hi2
        ok = f(mid) >= thr
        lo2 = np.where(active & ~ok, mid + 1.0, lo2)
        hi2 = np.where(active & ok, mid, hi2)
    return lo2.astype(np.int64), f(lo2)


def expected_tokens_positional(alphas):
    """Expected tokens per target call when acceptances are not i.i.d. across a block.

    Parameters
    ----------
    alphas : array (..., gamma), entries in [0, 1]
        ``alphas[..., k-1]`` is the probability that the k-th draft of a block is accepted
        given that drafts ``1..k-1`` were. An empty last axis is plain decoding.

    Returns
    -------
    float or array (...): ``1 + sum_k prod_{i <= k} alphas[i]`` (the bonus or recovered
    token, plus each draft with the probability that it and all before it are accepted).

    References
    ----------
    Generalises Leviathan et al. (2023), Eq. (1), which is the case of constant ``alphas``.
    """
    a = _real_array(alphas, "alphas", low=0.0, high=1.0)
    if a.ndim < 1:
        raise ValueError(f"alphas must have a block axis (last), got a scalar {float(a)}")
    tokens = 1.0 + np.cumprod(a, axis=-1).sum(axis=-1)
    return float(tokens) if a.ndim == 1 else tokens


def scd_speedup(lam, gamma, c, amateur="on_full_accept", baseline="expert"):
    """Speedup of speculative contrastive decoding -- **reconstructed** cost model.

    SCD is lossless SD whose target is the contrastive law; ``lam`` is the amateur's acceptance
    rate against it, so the tokens per expert call are Leviathan's Eq. (1) in ``lam``. The
    amateur both drafts and supplies the contrast, which changes the cost per block:

    ``amateur="on_full_accept"``
        ``gamma`` amateur calls, plus one more only when all ``gamma`` drafts are accepted (the
        bonus position needs the amateur's law too): cost ``1 + c gamma + c lam^gamma``.
    ``amateur="always"``
        ``gamma + 1`` amateur calls per block: cost ``1 + c (gamma + 1)``.

    Parameters
    ----------
    lam : float or array in [0, 1]
        Acceptance rate of amateur drafts against the contrastive target.
    gamma : int or int array >= 0
        Draft tokens per block.
    c : float or array >= 0
        Amateur/expert walltime ratio.
    amateur : {"on_full_accept", "always"}
        When the extra amateur call is made (see above).
    baseline : {"expert", "cd"}
        ``"expert"``: relative to expert-only decoding (cost 1 per token); ``"cd"``: relative to
        non-speculative contrastive decoding (cost ``1 + c`` per token), i.e. times ``1 + c``.

    Returns
    -------
    float or array: e.g. ``(1 - lam^(gamma+1)) / ((1 - lam)(1 + c gamma + c lam^gamma))``.

    Notes
    -----
    Reconstructed in docs/theory.md §7, not verified against Yuan et al.'s text; the two amateur
    options bracket the plausible implementations.

    References
    ----------
    Yuan et al. (2024), "expected acceleration factor" (reconstructed); Leviathan et al.
    (2023), Eq. (1) and Theorem 3.8.
    """
    lm = _real_array(lam, "lam", low=0.0, high=1.0)
    g = _int_array(gamma, "gamma", 0)
    cc = _real_array(c, "c", low=0.0)
    check_choice(amateur, "amateur", ("on_full_accept", "always"))
    check_choice(baseline, "baseline", ("expert", "cd"))
    lm, g, cc = _broadcast(lam=lm, gamma=g, c=cc)
    if amateur == "on_full_accept":
        cost = 1.0 + cc * g + cc * lm ** g  # numpy: 0.0 ** 0 == 1, the gamma = 0 extra call
    else:
        cost = 1.0 + cc * (g + 1.0)
    value = _tokens(lm, g) / cost
    if baseline == "cd":
        value = value * (1.0 + cc)
    return _out(value, lam, gamma, c)


def _block_pmf(block_pmf):
    pmf = np.asarray(block_pmf, dtype=np.float64)
    if pmf.ndim != 1 or pmf.shape[0] < 2:
        raise ValueError(f"block_pmf must be a 1-D law over tokens per block 0..L (L >= 1), "
                         f"got shape {pmf.shape}")
    if not np.all(np.isfinite(pmf)) or np.any(pmf < 0):
        raise ValueError(f"block_pmf must be finite and non-negative, got {pmf.tolist()}")
    if abs(pmf.sum() - 1.0) > 1e-9:
        raise ValueError(f"block_pmf must sum to 1, sums to {pmf.sum()!r}")
    if pmf[0] > 0:
        raise ValueError(f"block_pmf[0] = {pmf[0]!r}: a block emits at least one token (the "
                         "recovered or bonus token), so P(0 tokens) must be 0")
    return pmf


def calls_distribution(block_pmf, n_tokens):
    """Exact law of the number of target calls that emit ``n_tokens`` tokens.

    Blocks are i.i.d. with law ``block_pmf`` (index = tokens emitted by one target call, e.g.
    ``real_models.validate.positional_pmf``); a sequence is done after the first call ``C``
    with ``S_C >= n_tokens`` (``S_k`` = tokens after k calls). The last block's shorter draft
    budget ``min(gamma, tokens left)`` does not change ``C``: it reaches ``n_tokens`` exactly
    when the full-budget block would.

    Parameters
    ----------
    block_pmf : array (L + 1,)
        Law of tokens per block, ``block_pmf[0] = 0``.
    n_tokens : int >= 1

    Returns
    -------
    numpy.ndarray (n_tokens + 1,): ``P(C = k)``, k = 0..n_tokens (``C <= n_tokens`` since every
    block emits a token).

    Examples
    --------
    >>> from scdsim import cost
    >>> cost.calls_distribution([0, 0.5, 0.5], 2).round(3).tolist()  # 1 or 2 tokens per call
    [0.0, 0.5, 0.5]
    """
    pmf = _block_pmf(block_pmf)
    N = check_int(n_tokens, "n_tokens", minimum=1)
    alive = np.zeros(N)  # P(S_k = s, not done), s = 0..N-1
    alive[0] = 1.0
    done = np.zeros(N + 1)  # P(C <= k)
    for k in range(1, N + 1):
        alive = np.convolve(alive, pmf)[:N]  # mass that reached N is done
        done[k] = 1.0 - alive.sum()
    done[N] = 1.0
    return np.clip(np.diff(done, prepend=0.0), 0.0, None)


def expected_max_calls(block_pmf, n_tokens, rows=None):
    """Expected target calls of ``rows`` independent sequences decoded in lockstep.

    A batched engine runs until its slowest row has ``n_tokens``: ``E[max_i C_i]`` with the
    ``C_i`` independent as in :func:`calls_distribution`, ``= sum_{k >= 0} 1 - prod_i F_i(k)``
    (F_i the CDF of C_i). ``rows = 1`` is ``E[C]``.

    Parameters
    ----------
    block_pmf : array (L + 1,), or (rows, L + 1)
        One law of tokens per block shared by every row, or one law per row (prompts differ:
        the slowest row is the one with the worst draft).
    n_tokens : int >= 1
    rows : int >= 1, or None
        Number of rows sharing a 1-D ``block_pmf``; with a 2-D one, None or its row count.

    Returns
    -------
    float

    Examples
    --------
    >>> from scdsim import cost
    >>> round(cost.expected_max_calls([0, 0.5, 0.5], 2, 1), 3), round(cost.expected_max_calls(
    ...     [0, 0.5, 0.5], 2, 2), 3)
    (1.5, 1.75)
    >>> round(cost.expected_max_calls([[0, 0.5, 0.5], [0, 1.0, 0]], 2), 3)  # one row needs 2
    2.0
    """
    pmf = np.asarray(block_pmf, dtype=np.float64)
    if pmf.ndim == 2:
        if rows is not None and check_int(rows, "rows", minimum=1) != pmf.shape[0]:
            raise ValueError(f"rows={rows} but block_pmf has {pmf.shape[0]} rows (one law per "
                             "row); give rows=None")
        if pmf.shape[0] < 1:
            raise ValueError("block_pmf has no rows")
        laws = [calls_distribution(f, n_tokens) for f in pmf]
    else:
        B = check_int(1 if rows is None else rows, "rows", minimum=1)
        laws = [calls_distribution(pmf, n_tokens)] * B
    logF = np.zeros(laws[0].shape[0])
    for law in laws:
        with np.errstate(divide="ignore"):
            logF += np.log(np.clip(np.cumsum(law), 0.0, 1.0))
    return float(np.sum(1.0 - np.exp(logF[:-1])))
