"""One-step optimality of verification rules, proved by linear programs (no randomness).

Notation (kernels follow Leviathan et al.; **Yin et al. swap the letters**: their q is our
target ``p`` and their p is our draft ``q``)
---------------------------------------------------------------------------------------------
``p``    target law, ``(..., V)``;  ``q``  draft law, ``(..., V)``; a draft token is ``X ~ q``
``u(x)`` accepted mass ``q(x) a(x)`` in ``[0, q(x)]`` (``a`` the acceptance probability)
``w(x)`` recovered mass ``rho P(x) >= 0`` (``P`` the resampling law, ``rho = 1 - sum u`` the
         rejection probability); the one-step output law is ``u + w``.

Linearising a rule as ``(u, w)`` turns Yin et al.'s optimality statements into LPs, which are
solved here with HiGHS (``scipy.optimize.linprog(method="highs")``) and compared, in the tests,
with the closed forms used by the rest of the toolkit:

- ``rejection_lower_bound``: min rejection over unbiased rules (``u + w = p``) = ``TV(p, q)``
  (Yin Thm 2).
- ``minimum_bias`` / ``pareto_front``: min bias ``TV(u + w, p)`` at a rejection level /
  on a grid of levels = ``max(0, TV - rho)`` (Yin Thms 4-5, the straight-line Pareto front).
- ``front_gap``: how far a given single-draft rule lies above that front (closed form).
- ``optimal_acceptance_lp``: the optimal M-draft coupling (SpecTr's OTM-k LP), whose value
  ``rules.optimal(M)`` gives by a min-cut closed form.

Tolerance: HiGHS runs with primal/dual feasibility tolerances ``1e-10``; LP optima agree with
the closed forms to ``LP_ATOL = 1e-9`` (not to the 1e-12 of the closed-form identities).

Input: any laws the validator accepts (NumPy or torch, float16/bfloat16/float32/float64, rows
within the dtype's tolerance, see ``scdsim._validate``) are converted to float64 NumPy and
renormalised before the LP is built: a row off by 1e-9 or a float32 softmax would otherwise
make the equality constraints infeasible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scdsim import rules as _rules
from scdsim._validate import as_pair, check_int, check_unit_interval, renormalised64
from scdsim.distributions import tv

__all__ = [
    "LP_ATOL",
    "LP_MAX_VARIABLES",
    "ParetoFront",
    "FrontGap",
    "rejection_lower_bound",
    "pareto_front",
    "front_gap",
    "minimum_bias",
    "optimal_acceptance_lp",
]

LP_ATOL = 1e-9
LP_MAX_VARIABLES = 2_000_000
#: pareto_front solves n LPs of 3V variables, about 20 us per unit of n * (V + 100) on an idle
#: core (2 ms per LP at V = 3); it refuses more work than this, about 2 s
PARETO_MAX_WORK = 100_000
_HIGHS_OPTIONS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


def _numpy64(x):
    """Validated laws as float64 NumPy rows renormalised to sum to 1 (see module docstring)."""
    return renormalised64(x)


def _rows(target, draft):
    """Validated float64 NumPy rows ``(N, V)`` of the broadcast pair and the leading shape."""
    p, q = as_pair(target, draft)
    p, q = np.broadcast_arrays(_numpy64(p), _numpy64(q))
    lead = p.shape[:-1]
    V = p.shape[-1]
    return p.reshape(-1, V), q.reshape(-1, V), lead


def _one_pair(target, draft, what):
    """One validated float64 ``(V,)`` pair; ``what`` names the caller in the error."""
    p, q = as_pair(target, draft)
    if p.ndim != 1 or q.ndim != 1:
        raise ValueError(
            f"{what} takes one (V,) pair, got target {tuple(p.shape)} and draft {tuple(q.shape)}"
        )
    return _numpy64(p), _numpy64(q)


def _shaped(values, lead):
    out = np.asarray(values, dtype=np.float64).reshape(lead)
    return float(out) if out.ndim == 0 else out


def _sparse():
    """``scipy.sparse``, imported on first use (keeps ``import scdsim`` fast)."""
    import scipy.sparse

    return scipy.sparse


def _solve(c, *, A_ub=None, b_ub=None, A_eq=None, b_eq=None, bounds, what):
    from scipy.optimize import linprog  # lazy: the optimiser takes ~1 s to import

    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds,
                  method="highs", options=_HIGHS_OPTIONS)
    if res.status != 0:  # every LP here is feasible and bounded for valid input
        raise RuntimeError(f"{what}: HiGHS failed (status {res.status}): {res.message}")
    return res


# ---------------------------------------------------------------------------------------------
# Yin et al. Thm 2: the instance lower bound on rejections of unbiased rules


def _rejection_lp(p, q):
    sp = _sparse()
    V = p.shape[0]
    eye = sp.identity(V, format="csr")
    # variables z = [u, w]; maximise sum u subject to u + w = p, 0 <= u <= q, w >= 0
    c = np.concatenate([-np.ones(V), np.zeros(V)])
    bounds = [(0.0, qi) for qi in q] + [(0.0, None)] * V
    res = _solve(c, A_eq=sp.hstack([eye, eye], format="csr"), b_eq=p, bounds=bounds,
                 what="rejection_lower_bound")
    return 1.0 + res.fun


def rejection_lower_bound(target, draft):
    """Minimum rejection probability over all unbiased rejection-based rules, by LP.

    A rule accepts the draft token ``x ~ q`` with probability ``a(x)`` and otherwise draws from
    a residual law. With accepted mass ``u = q a`` in ``[0, q]`` and recovered mass ``w >= 0``,
    unbiasedness is ``u + w = p``; the LP minimises ``1 - sum u``. Its optimum is ``TV(p, q)``,
    attained by lossless SD (``u = min(p, q)``).

    Parameters
    ----------
    target, draft : array (..., V)
        Target law ``p`` and draft law ``q``; leading axes broadcast.

    Returns
    -------
    float or ndarray (...)
        The LP optimum, accurate to ``LP_ATOL`` (HiGHS tolerance).

    References
    ----------
    Yin et al. 2024, "A Theoretical Perspective for Speculative Decoding Algorithm", Thm 2
    (their q is our target ``p``). Leviathan et al. 2023, Thm 3.5 (acceptance ``1 - TV``).
    """
    p, q, lead = _rows(target, draft)
    return _shaped([_rejection_lp(pi, qi) for pi, qi in zip(p, q)], lead)


# ---------------------------------------------------------------------------------------------
# Yin et al. Thms 4-5: the bias-rejection Pareto front


def _freeze(a):
    a = np.array(a, dtype=np.float64)
    a.flags.writeable = False
    return a


@dataclass(frozen=True)
class ParetoFront:
    """The least achievable bias at each rejection level (one-step, single draft).

    Attributes
    ----------
    rejection : ndarray (n,)
        Rejection levels rho, increasing from 0 to 1; ``tv`` is one of them exactly.
    bias : ndarray (n,)
        ``min TV(output law, p)`` over all rules with ``P(reject) = rho`` (LP optimum).
    tv : float
        ``TV(p, q)``, where the front reaches bias 0.
    """

    rejection: np.ndarray
    bias: np.ndarray
    tv: float


def _rejection_grid(tv_value, n):
    """``n`` increasing levels in [0, 1] containing 0, ``tv_value`` and 1 exactly."""
    if tv_value <= 0.0 or tv_value >= 1.0:
        return np.linspace(0.0, 1.0, n)
    k = int(np.clip(round(tv_value * (n - 1)) + 1, 2, n - 1))  # levels in [0, TV]
    return np.concatenate([np.linspace(0.0, tv_value, k),
                           np.linspace(tv_value, 1.0, n - k + 1)[1:]])


def _min_bias_lp(p, q, rho):
    sp = _sparse()
    V = p.shape[0]
    eye = sp.identity(V, format="csr")
    zero = sp.csr_matrix((1, V))
    one = sp.csr_matrix(np.ones((1, V)))
    # variables z = [u, w, s]; |u + w - p| <= s; minimise sum(s) / 2 = TV(u + w, p)
    A_ub = sp.vstack([sp.hstack([eye, eye, -eye]), sp.hstack([-eye, -eye, -eye])], format="csr")
    b_ub = np.concatenate([p, -p])
    A_eq = sp.vstack([sp.hstack([one, zero, zero]), sp.hstack([zero, one, zero])], format="csr")
    b_eq = np.array([1.0 - rho, rho])
    c = np.concatenate([np.zeros(2 * V), 0.5 * np.ones(V)])
    bounds = [(0.0, qi) for qi in q] + [(0.0, None)] * (2 * V)
    res = _solve(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds,
                 what="minimum_bias")
    return res.fun


def minimum_bias(target, draft, rejection):
    """Least bias ``TV(output law, p)`` of any single-draft rule rejecting with prob. ``rejection``.

    The LP behind ``pareto_front`` at one level: accepted mass ``u = q a`` in ``[0, q]`` with
    ``sum u = 1 - rejection``, recovered mass ``w >= 0`` with ``sum w = rejection``.

    Parameters
    ----------
    target, draft : array (V,)
    rejection : float in [0, 1]

    Returns
    -------
    float
        The LP optimum, ``max(0, TV(p, q) - rejection)`` by Yin et al. Thm 5 (to ``LP_ATOL``).

    References
    ----------
    Yin et al. 2024, Thms 4-5 (their q is our target ``p``).
    """
    p, q = _one_pair(target, draft, "minimum_bias")
    rejection = check_unit_interval(rejection, "rejection")
    return _min_bias_lp(p, q, rejection)


def pareto_front(target, draft, n=51) -> ParetoFront:
    """The bias-rejection Pareto front of single-draft rules at one position, by LP.

    For each rejection level ``rho`` it minimises ``TV(u + w, p)`` over every rule: accepted
    mass ``u = q a`` with ``a`` in ``[0, 1]^V`` and ``sum u = 1 - rho``, and any recovered
    mass ``w >= 0`` with ``sum w = rho``. Yin et al. Thm 5 says the result is the straight
    line ``max(0, TV(p, q) - rho)``.

    Parameters
    ----------
    target, draft : array (V,)
        One target law ``p`` and one draft law ``q``.
    n : int >= 3
        Number of rejection levels; the grid contains 0, ``TV(p, q)`` and 1 exactly. Limited to
        ``n * (V + 100) <= PARETO_MAX_WORK`` (n <= 970 at V = 3, n <= 90 at V = 1000): each
        level is one LP.

    Returns
    -------
    ParetoFront

    References
    ----------
    Yin et al. 2024, Thm 4 (optimal resampling law) and Thm 5 (linear Pareto front
    ``P(reject) + Loss*_TV = TV``); their q is our target ``p``.
    """
    p, q = _one_pair(target, draft, "pareto_front")
    n = check_int(n, "n", minimum=3)
    V = p.shape[0]
    if n * (V + 100) > PARETO_MAX_WORK:
        raise ValueError(
            f"n={n} rejection levels at V={V} is too many LPs (n * (V + 100) = {n * (V + 100):,} "
            f"> PARETO_MAX_WORK = {PARETO_MAX_WORK:,}, about 2 s on an idle core); use n <= "
            f"{PARETO_MAX_WORK // (V + 100)}, or the closed form max(0, TV(p, q) - rho) of "
            "Yin Thm 5 (minimum_bias checks it at any single level)")
    tv_value = float(tv(p, q))
    grid = _rejection_grid(tv_value, n)
    bias = [_min_bias_lp(p, q, rho) for rho in grid]
    return ParetoFront(rejection=_freeze(grid), bias=_freeze(bias), tv=tv_value)


@dataclass(frozen=True)
class FrontGap:
    """Where a single-draft rule sits relative to the Pareto front (arrays ``(...)`` or floats).

    Attributes
    ----------
    rejection : P(reject) of the rule.
    bias : ``TV(step law, p)``.
    front : the least bias at that rejection, ``max(0, TV(p, q) - rejection)`` (Yin Thm 5).
    gap : ``bias - front`` (>= 0; 0 means the rule is on the front).
    """

    rejection: float | np.ndarray
    bias: float | np.ndarray
    front: float | np.ndarray
    gap: float | np.ndarray


def _check_rule_law(rule, law, rejection):
    """Raise, naming the rule, if its one-step output law or rejection is not a probability."""
    sums = law.sum(axis=-1)
    if (not np.all(np.isfinite(law)) or np.any(law < -1e-12) or np.any(np.abs(sums - 1) > 1e-9)
            or np.any(rejection < -1e-12) or np.any(rejection > 1 + 1e-12)):
        raise ValueError(
            f"rule {getattr(rule, 'name', rule)!r} gives a one-step output law that is not a "
            f"probability law (row sums {np.min(sums):.6g}..{np.max(sums):.6g}, min entry "
            f"{np.min(law):.3g}, rejection {np.min(rejection):.6g}..{np.max(rejection):.6g}); its "
            "acceptances must lie in [0, 1] with shape (..., M, V) and its residual must be a law"
        )


def front_gap(rule, target, draft) -> FrontGap:
    """Distance of a single-draft rule from the bias-rejection Pareto front (closed form).

    Decoding-OPT (``over_accept(..., resample="optimal")``) and ``lenient`` lie on the front
    (gap 0); Decoding-UNO (``resample="target"``) lies above it.

    Parameters
    ----------
    rule : scdsim rule with ``M == 1``
        The front bounds single-draft rules only; multi-draft rules can go below it.
    target, draft : array (..., V)

    Returns
    -------
    FrontGap
        NumPy float64 fields, floats for one ``(V,)`` pair.

    References
    ----------
    Yin et al. 2024, Thms 4-5 (their q is our target ``p``).
    """
    p, q = as_pair(target, draft)
    p, q = _numpy64(p), _numpy64(q)
    rejection = np.asarray(_rules.rejection_prob(rule, p, q), dtype=np.float64)
    if rule.M != 1:
        raise ValueError(
            f"front_gap compares single-draft rules with Yin Thm 5; rule {rule.name!r} uses "
            f"M={rule.M} drafts"
        )
    law = np.asarray(_rules.step_law(rule, p, q), dtype=np.float64)
    _check_rule_law(rule, law, rejection)
    bias = np.asarray(tv(law, p + np.zeros_like(q)), dtype=np.float64)
    front = np.maximum(0.0, np.asarray(tv(p, q)) - rejection)
    vals = [v if v.ndim else float(v) for v in (rejection, bias, front, bias - front)]
    return FrontGap(*vals)


# ---------------------------------------------------------------------------------------------
# SpecTr's optimal transport with membership cost (M drafts)


def _coupling_lp(p, q, M):
    sp = _sparse()
    V = p.shape[0]
    T = V**M
    digits = np.stack(np.unravel_index(np.arange(T), (V,) * M), axis=0)  # (M, T)
    tuple_mass = np.prod(q[digits], axis=0)  # prod_m q(x_m)
    member = (digits[:, :, None] == np.arange(V)[None, None, :]).any(axis=0)  # (T, V)
    # variable pi(t, y) sits at t * V + y
    A_eq = sp.vstack([sp.kron(sp.identity(T), np.ones((1, V))),
                      sp.kron(np.ones((1, T)), sp.identity(V))], format="csr")
    b_eq = np.concatenate([tuple_mass, p])
    res = _solve(-member.ravel().astype(np.float64), A_eq=A_eq, b_eq=b_eq,
                 bounds=(0.0, None), what="optimal_acceptance_lp")
    return -res.fun


def optimal_acceptance_lp(target, draft, M):
    """Acceptance of the optimal M-draft coupling, by the linear program of SpecTr.

    Variables ``pi(x_1..x_M, y) >= 0`` with marginal ``prod_m q(x_m)`` over the drafts
    (i.i.d. from the draft law) and ``p(y)`` over the output; maximise
    ``P(y in {x_1..x_M})``. ``rules.optimal(M)`` evaluates the same optimum by its min-cut
    closed form; this LP is the independent check.

    Parameters
    ----------
    target, draft : array (..., V)
    M : int >= 1
        Number of drafts. The LP has ``V^(M+1)`` variables, limited to ``LP_MAX_VARIABLES``.

    Returns
    -------
    float or ndarray (...)
        The optimal acceptance probability, accurate to ``LP_ATOL``.

    References
    ----------
    Sun et al. 2023, "SpecTr: Fast Speculative Decoding via Optimal Transport" (OTM-k LP).
    Khisti et al. 2025, "Multi-Draft Speculative Sampling", Thm 3 (K = 2 closed form).
    """
    M = check_int(M, "M", minimum=1)
    p, q, lead = _rows(target, draft)
    V = p.shape[-1]
    if V ** (M + 1) > LP_MAX_VARIABLES:
        raise ValueError(
            f"optimal_acceptance_lp needs V^(M+1) = {V}^{M + 1} = {V ** (M + 1)} variables "
            f"(V={V}, M={M}), above the limit {LP_MAX_VARIABLES}"
        )
    return _shaped([_coupling_lp(pi, qi, M) for pi, qi in zip(p, q)], lead)
