"""Verification rules: how a target model accepts or replaces the draft's tokens at one position.

Notation (kernels follow Leviathan et al.; **Yin et al. swap the letters**)
-------------------------------------------------------------------------
``p``  target law (the large model, or the contrasted law in SCD), shape ``(..., V)``
``q``  draft law, the exact law the draft token was sampled from, shape ``(..., V)``
``M``  number of i.i.d. drafts proposed at the position (1 for ordinary SD)

Glossary
--------
accepted token   a draft token kept by the target's test
recovered token  the token drawn from the residual law after every draft was rejected
                 (one "rejection": in Yin et al. each costs one more target call)
bonus token      the token drawn from ``p`` after a whole block of drafts was accepted

The one shape every rule has
----------------------------
A *sequential* rule tries drafts ``m = 1..M`` (each ``X_m ~ q`` independently) in order. Draft
``m`` is accepted with probability ``a_m(X_m)``; the first accepted draft is emitted. If all are
rejected, the token is drawn from the residual law ``r``. So a rule is two array functions:

``acceptances(p, q) -> a``  shape ``(..., M, V)``
``residual(p, q)    -> r``  shape ``(..., V)``

and everything else follows (``step_law``, ``rejection_prob``). Single-draft rules are ``M = 1``.
The exact engine, the Monte Carlo engine and the real-model engine all call these same two
functions (on NumPy arrays or torch tensors: the code is written against the array API), so a
rule is implemented exactly once.

The optimal multi-draft coupling (``optimal(M)``) is not sequential: only its acceptance
probability has a closed form, so it exposes ``rejection_prob`` and is marked not samplable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scdsim._validate import (
    as_pair,
    check_choice,
    check_int,
    check_real,
    namespace,
)
from scdsim.distributions import positive_part_normalised

__all__ = [
    "Rule",
    "lossless",
    "greedy",
    "over_accept",
    "lenient",
    "typical",
    "recursive",
    "optimal",
    "kseq",
    "step_law",
    "rejection_prob",
    "acceptance_prob",
]


def _ratio(xp, num, den):
    """``num / den`` where ``den > 0``, and ``+inf`` where ``den == 0`` (so min(1, .) = 1).

    A token the draft cannot produce (q(x) = 0) is never proposed; giving it acceptance 1 keeps
    ``q * a`` exactly 0 there without dividing by zero.
    """
    safe = xp.where(den > 0, den, xp.ones_like(den))
    return xp.where(den > 0, num / safe, xp.full_like(num, math.inf))


def _min1(xp, x):
    return xp.minimum(x, xp.ones_like(x))


class Rule:
    """Base class of verification rules. Concrete rules are frozen dataclasses.

    Attributes
    ----------
    name : str
        Short label used in tables and the CLI.
    lossy : bool
        True if the output law differs from the target in general (opt-in, always labelled).
    M : int
        Number of drafts the rule consumes at one position.
    samplable : bool
        True if the rule has the sequential (acceptances, residual) form, so it can be run by
        the Monte Carlo and real-model engines.
    """

    name: str = "rule"
    lossy: bool = False
    M: int = 1
    samplable: bool = True

    def acceptances(self, p, q):  # pragma: no cover - abstract
        """Acceptance probability of draft ``m`` given drafts ``< m`` rejected, ``(..., M, V)``."""
        raise NotImplementedError

    def residual(self, p, q):  # pragma: no cover - abstract
        """Law of the recovered token after all ``M`` drafts were rejected, ``(..., V)``."""
        raise NotImplementedError

    def bonus(self, p):
        """Law of the bonus token drawn after a whole block was accepted, ``(..., V)``.

        The target itself for every sampling rule; greedy verification takes the target's argmax.
        """
        return p

    def with_drafts(self, m: int) -> Rule:
        """The same rule for ``m`` drafts (used by tree verification and batch variants)."""
        if m == self.M:
            return self
        raise ValueError(f"rule {self.name!r} is defined for M={self.M} drafts only, not {m}")

    def single(self) -> Rule:
        """The single-draft rule used after the first position of a multi-draft round."""
        return self.with_drafts(1)

    def __str__(self):
        return self.name


# --------------------------------------------------------------------------------------------
# single-draft rules


@dataclass(frozen=True)
class _Lossless(Rule):
    """Lossless speculative sampling (Leviathan et al. 2023 §2.3; Chen et al. 2023).

    ``a(x) = min(1, p(x)/q(x))``, ``r = norm(max(0, p - q))``. Output law is exactly ``p``
    (Leviathan App. A.1); rejection probability is ``TV(p, q)``, the minimum over all unbiased
    rejection-based rules (Yin et al. 2024 Thm 2).
    """

    name: str = "lossless"

    def acceptances(self, p, q):
        xp = namespace(p, q)
        return _min1(xp, _ratio(xp, p, q))[..., None, :]

    def residual(self, p, q):
        return positive_part_normalised(p - q, p)


@dataclass(frozen=True)
class _Greedy(Rule):
    """Greedy verification: accept the draft iff it is the target's argmax; else emit the argmax.

    The output is the one-hot argmax of ``p`` (first index on ties) whatever the draft: lossless
    with respect to greedy decoding, lossy with respect to sampling from ``p``.
    """

    name: str = "greedy"
    lossy: bool = True

    def _onehot(self, p):
        xp = namespace(p)
        idx = xp.argmax(p, axis=-1, keepdims=True)
        V = p.shape[-1]
        ar = xp.arange(V, device=_device(p))
        return xp.astype(ar == idx, p.dtype)

    def acceptances(self, p, q):
        xp = namespace(p, q)
        onehot = self._onehot(p) + xp.zeros_like(q)
        return onehot[..., None, :]

    def residual(self, p, q):
        xp = namespace(p, q)
        return self._onehot(p) + xp.zeros_like(q)

    def bonus(self, p):
        return self._onehot(p)


def _device(x):
    import array_api_compat

    return array_api_compat.device(x)


@dataclass(frozen=True)
class _OverAccept(Rule):
    """Over-acceptance with a tunable bias (Yin et al. 2024 §5, Thms 4-5).

    Acceptance (Yin's ``b_eps`` in our letters, p = target, q = draft):
    ``form="additive"``: ``a = min(1, (p + eps) / q)``;  ``form="ratio"``: ``a = min(1, p/q + eps)``.
    Resampling: ``resample="optimal"`` (Decoding-OPT) uses Thm 4's optimal law
    ``norm([p - q a]_+)``, which puts the rule exactly on the Pareto front
    ``P(reject) + TV(output, p) = TV(p, q)`` (Thm 5); ``resample="target"`` (Decoding-UNO)
    resamples from ``p`` and lies above the front. ``eps = 0`` with "optimal" is lossless SD.
    """

    eps: float = 0.0
    form: str = "additive"
    resample: str = "optimal"
    lossy: bool = True

    @property
    def name(self):  # type: ignore[override]
        tag = "OPT" if self.resample == "optimal" else "UNO"
        return f"over_accept({self.eps:g},{self.form},{tag})"

    def acceptances(self, p, q):
        xp = namespace(p, q)
        if self.form == "additive":
            a = _ratio(xp, p + self.eps, q)
        else:
            a = _ratio(xp, p, q) + self.eps
        return _min1(xp, a)[..., None, :]

    def residual(self, p, q):
        if self.resample == "target":
            return p + namespace(p, q).zeros_like(q)
        a = self.acceptances(p, q)[..., 0, :]
        return positive_part_normalised(p - q * a, p)


def over_accept(eps, form="additive", resample="optimal") -> Rule:
    """Yin et al.'s over-accepting rule (Decoding-OPT or Decoding-UNO); see ``_OverAccept``.

    Parameters
    ----------
    eps : float >= 0
        Over-acceptance threshold (Yin et al. use 0.1, 0.2, 0.4, 0.8).
    form : {"additive", "ratio"}
        ``min(1, (p+eps)/q)`` or ``min(1, p/q + eps)``; the paper's exact form is not known.
    resample : {"optimal", "target"}
        Theorem 4's optimal residual (OPT) or the target itself (UNO).
    """
    eps = check_real(eps, "eps", low=0.0)
    check_choice(form, "form", {"additive", "ratio"})
    check_choice(resample, "resample", {"optimal", "target"})
    return _OverAccept(eps=eps, form=form, resample=resample)


@dataclass(frozen=True)
class _Lenient(Rule):
    """Lenient acceptance (Leviathan et al. App. A.5): compare ``p`` against ``l * q``.

    ``a = min(1, p / (l q))``, so the acceptance rate is ``sum min(p/l, q)`` and no token is
    accepted with probability above ``p(x)/l``. Resampling uses Thm 4's optimal residual
    ``norm([p - q a]_+)``, which here equals ``norm([p - q]_+)`` (a labelled choice: the paper
    states only the acceptance test). ``l = 1`` is lossless SD.
    """

    l: float = 1.0
    lossy: bool = True

    @property
    def name(self):  # type: ignore[override]
        return f"lenient({self.l:g})"

    def acceptances(self, p, q):
        xp = namespace(p, q)
        return _min1(xp, _ratio(xp, p, self.l * q))[..., None, :]

    def residual(self, p, q):
        a = self.acceptances(p, q)[..., 0, :]
        return positive_part_normalised(p - q * a, p)


def lenient(l) -> Rule:
    """Leviathan et al.'s lenient rule with lenience ``l`` in (0, 1]; lossy for ``l < 1``."""
    l = check_real(l, "l", low=0.0, high=1.0, low_open=True)
    return _Lenient(l=l)


@dataclass(frozen=True)
class _Typical(Rule):
    """Typical acceptance (Medusa, Cai et al. 2024): deterministic threshold on the target.

    Accept draft ``x`` iff ``p(x) > min(eps, delta * exp(-H(p)))`` with ``H`` the entropy of the
    target in nats. On rejection the token is drawn from the target ``p`` (Medusa takes the base
    model's token; sampling it is the labelled choice here). Lossy.
    """

    eps: float = 0.09
    delta: float = 0.3
    lossy: bool = True

    @property
    def name(self):  # type: ignore[override]
        return f"typical({self.eps:g},{self.delta:g})"

    def acceptances(self, p, q):
        xp = namespace(p, q)
        safe = xp.where(p > 0, p, xp.ones_like(p))
        h = -xp.sum(xp.where(p > 0, p * xp.log(safe), xp.zeros_like(p)), axis=-1, keepdims=True)
        thresh = xp.minimum(xp.full_like(h, self.eps), self.delta * xp.exp(-h))
        a = xp.astype(p > thresh, p.dtype) + xp.zeros_like(q)
        return a[..., None, :]

    def residual(self, p, q):
        return p + namespace(p, q).zeros_like(q)


def typical(eps, delta) -> Rule:
    """Medusa-style typical acceptance with hard threshold ``eps`` and entropy factor ``delta``."""
    eps = check_real(eps, "eps", low=0.0, high=1.0)
    delta = check_real(delta, "delta", low=0.0)
    return _Typical(eps=eps, delta=delta)


lossless: Rule = _Lossless()
greedy: Rule = _Greedy()


# --------------------------------------------------------------------------------------------
# multi-draft rules


@dataclass(frozen=True)
class _Recursive(Rule):
    """Recursive rejection sampling over ``M`` i.i.d. drafts (SpecInfer; docs/theory.md §4).

    ``r_0 = p``; draft ``m`` is accepted with ``min(1, r_{m-1}(x)/q(x))``; after a rejection
    ``r_m = norm([r_{m-1} - q]_+)``; if all ``M`` are rejected the token is drawn from ``r_M``.
    The output law is exactly ``p``; the all-reject probability is
    ``R_M = prod_{m=1..M} TV(q, r_{m-1})`` (product formula). ``M = 1`` is lossless SD.
    """

    M: int = 2

    @property
    def name(self):  # type: ignore[override]
        return f"recursive({self.M})"

    def residual_chain(self, p, q):
        """``[r_0, ..., r_M]`` stacked on axis -2, shape ``(..., M+1, V)``."""
        xp = namespace(p, q)
        r = p + xp.zeros_like(q)
        chain = [r]
        for _ in range(self.M):
            r = positive_part_normalised(r - q, r)
            chain.append(r)
        return xp.stack(chain, axis=-2)

    def acceptances(self, p, q):
        xp = namespace(p, q)
        chain = self.residual_chain(p, q)
        return _min1(xp, _ratio(xp, chain[..., :-1, :], q[..., None, :]))

    def residual(self, p, q):
        # the same recursion as ``residual_chain`` without stacking: a contiguous (..., V)
        # array (a strided view of the stack made each product with it 4-6x slower)
        xp = namespace(p, q)
        r = p + xp.zeros_like(q)
        for _ in range(self.M):
            r = positive_part_normalised(r - q, r)
        return r

    def with_drafts(self, m):
        return self if m == self.M else _Recursive(M=m)


#: Largest number of drafts of ``recursive(M)`` and ``kseq(M)``: their acceptances are
#: ``(..., M, V)`` arrays built by a loop over ``M`` (``recursive``), so cost grows with ``M``.
MAX_DRAFTS = 10_000


def _check_drafts(M, factory):
    M = check_int(M, "M", minimum=1)
    if M > MAX_DRAFTS:
        raise ValueError(
            f"M={M} drafts exceeds the limit MAX_DRAFTS={MAX_DRAFTS} of {factory}(M): its "
            "acceptances are (..., M, V) arrays built per draft; use a smaller M (or "
            "optimal(M).acceptance_prob for the acceptance of the optimal coupling)"
        )
    return M


def recursive(M) -> Rule:
    """Recursive rejection sampling with ``M >= 1`` drafts (unbiased; SpecInfer-style).

    ``M`` is at most ``MAX_DRAFTS`` (10,000): the acceptances are ``(..., M, V)`` arrays.
    """
    M = _check_drafts(M, "recursive")
    return _Recursive(M=M)


def _kseq_rho(p_row, q_row, M):
    from scipy.optimize import brentq  # lazy: importing the optimiser costs ~1 s (issue 8)

    """SpecTr's division factor rho* in [1, M]: smallest rho with 1-(1-beta)^M <= rho*beta."""

    def beta(rho):
        return float(np.minimum(q_row, p_row / rho).sum())

    def g(rho):
        b = beta(rho)
        return 1.0 - (1.0 - b) ** M - rho * b

    if M == 1 or g(1.0) <= 0.0:
        return 1.0
    if g(float(M)) > 0.0:  # cannot happen (union bound), guard against rounding
        return float(M)
    return brentq(g, 1.0, float(M), xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)


@dataclass(frozen=True)
class _KSeq(Rule):
    """SpecTr's k-SEQ selection (Sun et al. 2023; docs/theory.md §4), ``M`` i.i.d. drafts.

    With ``beta(rho) = sum min(q, p/rho)`` and rho* the smallest rho in [1, M] with
    ``1 - (1-beta)^M <= rho beta``: each draft is accepted with ``min(1, p/(rho* q))``, the first
    accepted is emitted; if none is, the token is drawn from
    ``p_res ∝ p - min(q, p/rho*) (1 - (1-beta)^M) / beta``. Unbiased; acceptance
    ``1 - (1-beta)^M`` is at least (1 - 1/e) of the optimum.
    """

    M: int = 2

    @property
    def name(self):  # type: ignore[override]
        return f"kseq({self.M})"

    def rho(self, p, q):
        """rho* for every row, as a NumPy array of shape ``(...)`` (SciPy root-finding)."""
        pn = np.asarray(_to_numpy(p), dtype=np.float64)
        qn = np.asarray(_to_numpy(q), dtype=np.float64)
        pn, qn = np.broadcast_arrays(pn, qn)
        flat_p = pn.reshape(-1, pn.shape[-1])
        flat_q = qn.reshape(-1, qn.shape[-1])
        out = np.array([_kseq_rho(a, b, self.M) for a, b in zip(flat_p, flat_q)])
        return out.reshape(pn.shape[:-1])

    def _rho_like(self, p, q):
        xp = namespace(p, q)
        rho = self.rho(p, q)
        ref = p + xp.zeros_like(q)
        return xp.asarray(rho[..., None], dtype=ref.dtype, device=_device(ref))

    def acceptances(self, p, q):
        xp = namespace(p, q)
        a = _min1(xp, _ratio(xp, p, self._rho_like(p, q) * q))
        return xp.stack([a] * self.M, axis=-2)

    def residual(self, p, q):
        xp = namespace(p, q)
        rho = self._rho_like(p, q)
        m = xp.minimum(q, p / rho)
        beta = xp.sum(m, axis=-1, keepdims=True)
        safe = xp.where(beta > 0, beta, xp.ones_like(beta))
        scale = xp.where(beta > 0, (1.0 - (1.0 - beta) ** self.M) / safe, xp.zeros_like(beta))
        return positive_part_normalised(p - m * scale, p + xp.zeros_like(q))

    def with_drafts(self, m):
        return self if m == self.M else _KSeq(M=m)


def kseq(M) -> Rule:
    """SpecTr's k-SEQ rule with ``M >= 1`` drafts (at most ``MAX_DRAFTS``); ``M = 1`` is lossless SD."""
    M = _check_drafts(M, "kseq")
    return _KSeq(M=M)


def _to_numpy(x):
    from scdsim._validate import as_numpy64  # float64 NumPy, torch bfloat16 included

    return as_numpy64(x)


OPTIMAL_MAX_V = 22


def _subset_masses(x):
    """``x(S)`` for all ``2^V`` subsets S of the vocabulary, by doubling: ``(..., 2^V)`` floats.

    Memory is ``2^V`` per row (32 MB at V = 22), not a ``2^V x V`` mask matrix.
    """
    out = np.zeros(x.shape[:-1] + (1,))
    for v in range(x.shape[-1]):
        out = np.concatenate([out, out + x[..., v:v + 1]], axis=-1)
    return out


#: Most ``rows x 2^V`` subset masses ``optimal(M)`` holds in one call: a few float64 arrays of
#: this many entries (about 1 GB in all at the limit, 2^25).
OPTIMAL_MAX_SUBSET_ENTRIES = 2**25


def _check_subset_memory(shape, V):
    rows = math.prod(shape[:-1])
    if rows * 2**V > OPTIMAL_MAX_SUBSET_ENTRIES:
        per_call = max(1, OPTIMAL_MAX_SUBSET_ENTRIES // 2**V)
        raise ValueError(
            f"optimal(M) holds 2^V subset masses per row: {rows} rows x 2^{V} exceeds the limit "
            f"OPTIMAL_MAX_SUBSET_ENTRIES = 2^25 (about 1 GB); at V={V} call it on at most "
            f"{per_call} rows at a time (a loop over chunks of the batch)"
        )


@dataclass(frozen=True)
class _Optimal(Rule):
    """The optimal coupling of ``M`` i.i.d. drafts with the target (OTM-k; SpecTr, Khisti et al.).

    Its acceptance probability has the min-cut closed form (docs/theory.md §4, [D])
    ``alpha*_M = min over vocabulary subsets S of [p(S) + 1 - q(S)^M]``,
    evaluated by enumerating all ``2^V`` subsets (so ``V <= 22``). The coupling's output is the
    target by construction; it has no sequential (acceptances, residual) form, so it is not
    samplable here. ``scdsim.exact.lp.optimal_acceptance_lp`` cross-checks it by linear program.
    """

    M: int = 2
    samplable: bool = False

    @property
    def name(self):  # type: ignore[override]
        return f"optimal({self.M})"

    def acceptance_prob(self, p, q):
        pn = np.asarray(_to_numpy(p), dtype=np.float64)
        qn = np.asarray(_to_numpy(q), dtype=np.float64)
        V = pn.shape[-1]
        if V > OPTIMAL_MAX_V:
            raise ValueError(
                f"optimal(M) enumerates 2^V subsets; V={V} exceeds the limit {OPTIMAL_MAX_V}"
            )
        _check_subset_memory(np.broadcast_shapes(pn.shape, qn.shape), V)
        pS, qS = _subset_masses(pn), _subset_masses(qn)  # (..., 2^V)
        # (pS + 1) - qS^M in place where shapes allow: two arrays alive, not four
        pS += 1.0
        np.power(qS, self.M, out=qS)
        same = pS.shape == np.broadcast_shapes(pS.shape, qS.shape)
        alpha = np.min(np.subtract(pS, qS, out=pS if same else None), axis=-1)
        return np.clip(alpha, 0.0, 1.0)

    def acceptances(self, p, q):
        raise TypeError("optimal(M) has no sequential acceptance form; use rejection_prob")

    def residual(self, p, q):
        raise TypeError("optimal(M) has no residual law; use rejection_prob")

    def with_drafts(self, m):
        return self if m == self.M else _Optimal(M=m)


def optimal(M) -> Rule:
    """The optimal ``M``-draft coupling (acceptance by closed form; not samplable)."""
    M = check_int(M, "M", minimum=1)
    return _Optimal(M=M)


# --------------------------------------------------------------------------------------------
# one-step laws, the same code for every rule


def _check_rule(rule):
    if not isinstance(rule, Rule):
        raise TypeError(
            f"rule must be a scdsim rule (e.g. rules.lossless or rules.recursive(2)), got {rule!r}"
        )
    return rule


def sequential_parts(rule, p, q):
    """Per-draft accepted mass ``q * a_m`` ``(..., M, V)``, per-draft rejection ``(..., M)``,
    residual ``(..., V)`` and the probability that all ``M`` drafts are rejected ``(...)``.

    This is the kernel the exact engine propagates: the accepted sub-law of draft ``m`` is
    ``(prod_{i<m} rho_i) q a_m`` and the recovered sub-law is ``(prod_i rho_i) r``.
    """
    xp = namespace(p, q)
    a = rule.acceptances(p, q)
    acc = q[..., None, :] * a
    rho = xp.clip(1.0 - xp.sum(acc, axis=-1), 0.0, 1.0)
    r = rule.residual(p, q)
    all_reject = xp.prod(rho, axis=-1)
    return acc, rho, r, all_reject


def step_law(rule, target, draft):
    """One-step output law of ``rule`` for target ``p`` and draft ``q``, shape ``(..., V)``.

    For a sequential rule with M drafts: ``sum_m (prod_{i<m} rho_i) q a_m + (prod_m rho_m) r``;
    for M = 1 this is ``q a + (1 - sum q a) r`` (docs/theory.md §2). For ``optimal(M)`` it is the target
    (the coupling's second marginal).
    """
    rule = _check_rule(rule)
    p, q = as_pair(target, draft)
    xp = namespace(p, q)
    if not rule.samplable:
        return p + xp.zeros_like(q)
    acc, rho, r, all_reject = sequential_parts(rule, p, q)
    ones = xp.ones_like(rho[..., :1])
    reach = xp.cumulative_prod(xp.concat([ones, rho[..., :-1]], axis=-1), axis=-1) \
        if hasattr(xp, "cumulative_prod") else _cumprod(xp, xp.concat([ones, rho[..., :-1]], axis=-1))
    return xp.sum(reach[..., None] * acc, axis=-2) + all_reject[..., None] * r


def _cumprod(xp, x):
    out = [x[..., 0]]
    for i in range(1, x.shape[-1]):
        out.append(out[-1] * x[..., i])
    return xp.stack(out, axis=-1)


def rejection_prob(rule, target, draft):
    """Probability that the rule emits a recovered token (every draft rejected), shape ``(...)``.

    Single draft: ``1 - sum_x q(x) a(x)`` (``= TV(p, q)`` for lossless SD, Leviathan Thm 3.5).
    Recursive: ``prod_m TV(q, r_{m-1})``. Optimal: ``1 - alpha*_M``.
    """
    rule = _check_rule(rule)
    p, q = as_pair(target, draft)
    xp = namespace(p, q)
    if not rule.samplable:
        alpha = rule.acceptance_prob(p, q)
        ref = p + xp.zeros_like(q)
        return xp.asarray(1.0 - alpha, dtype=ref.dtype, device=_device(ref))
    return sequential_parts(rule, p, q)[3]


def acceptance_prob(rule, target, draft):
    """``1 - rejection_prob``: the probability that some draft token is accepted."""
    return 1.0 - rejection_prob(rule, target, draft)
