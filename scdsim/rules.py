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
from typing import ClassVar, NamedTuple

import numpy as np

from scdsim._validate import (
    _tolerance,
    as_pair,
    check_choice,
    check_int,
    check_real,
    namespace,
)
from scdsim.distributions import entropy, positive_part_normalised

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
    "sequential_parts",
    "SequentialParts",
    "spec",
    "from_spec",
    "RULE_SPECS",
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

    A user-written rule subclasses ``Rule`` and implements ``acceptances`` and ``residual``
    (and ``bonus`` if its bonus token is not drawn from the target); every engine checks their
    outputs once per position (``sequential_parts``) and refuses a malformed rule by name.

    Attributes (class-level, never constructor fields)
    --------------------------------------------------
    name : str
        Short label used in tables and the CLI.
    lossy : bool
        True if the output law differs from the target in general (opt-in, always labelled).
    samplable : bool
        True if the rule has the sequential (acceptances, residual) form, so it can be run by
        the sequence engines (exact, Monte Carlo, real-model).
    M : int
        Number of drafts the rule consumes at one position (a field of multi-draft rules).
    """

    name: ClassVar[str] = "rule"
    lossy: ClassVar[bool] = False
    samplable: ClassVar[bool] = True
    M: int = 1

    def acceptances(self, p, q):
        """Acceptance probability of draft ``m`` given drafts ``< m`` rejected, ``(..., M, V)``."""
        raise NotImplementedError(
            f"{type(self).__name__}.acceptances(p, q) is not implemented: a Rule subclass must "
            "return the acceptance probability of each draft token, an array of shape "
            "(..., M, V) with values in [0, 1] (M = 1 for a single draft)"
        )

    def residual(self, p, q):
        """Law of the recovered token after all ``M`` drafts were rejected, ``(..., V)``."""
        raise NotImplementedError(
            f"{type(self).__name__}.residual(p, q) is not implemented: a Rule subclass must "
            "return the law of the recovered token after every draft was rejected, an array of "
            "shape (..., V) whose rows are nonnegative and sum to 1"
        )

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

    @property
    def spec(self) -> str:
        """The CLI spec that ``from_spec`` turns back into this rule (e.g. ``"recursive:3"``)."""
        raise TypeError(f"rule {self.name!r} ({type(self).__name__}) has no CLI spec")

    def __str__(self):
        return self.name

    def __repr__(self):
        return f"{type(self).__name__}()"


# --------------------------------------------------------------------------------------------
# single-draft rules


@dataclass(frozen=True)
class _Lossless(Rule):
    """Lossless speculative sampling (Leviathan et al. 2023 §2.3; Chen et al. 2023).

    ``a(x) = min(1, p(x)/q(x))``, ``r = norm(max(0, p - q))``. Output law is exactly ``p``
    (Leviathan App. A.1); rejection probability is ``TV(p, q)``, the minimum over all unbiased
    rejection-based rules (Yin et al. 2024 Thm 2).
    """

    name: ClassVar[str] = "lossless"
    spec: ClassVar[str] = "lossless"

    def __repr__(self):
        return "rules.lossless"

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

    name: ClassVar[str] = "greedy"
    lossy: ClassVar[bool] = True
    spec: ClassVar[str] = "greedy"

    def __repr__(self):
        return "rules.greedy"

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
    lossy: ClassVar[bool] = True

    @property
    def name(self):  # type: ignore[override]
        tag = "OPT" if self.resample == "optimal" else "UNO"
        return f"over_accept({self.eps:g},{self.form},{tag})"

    @property
    def spec(self):  # type: ignore[override]
        return f"over_accept:{self.eps!r}:{self.form}:{self.resample}"

    def __repr__(self):
        return f"rules.over_accept({self.eps!r}, form={self.form!r}, resample={self.resample!r})"

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

    Returns
    -------
    Rule
        Lossy (``lossy`` is True); samplable; ``M = 1``.

    References
    ----------
    Yin, Chen, Huang, Wang 2024, "A Theoretical Perspective for Speculative Decoding
    Algorithm", §5, Thms 4-5.

    See Also
    --------
    lenient, scdsim.exact.lp.pareto_front

    Examples
    --------
    >>> import numpy as np
    >>> from scdsim import rules
    >>> p, q = np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.3, 0.2])  # target, draft
    >>> rule = rules.over_accept(0.1)
    >>> round(float(rules.rejection_prob(rule, p, q)), 6), rules.step_law(rule, p, q).round(4).tolist()
    (0.2, [0.3, 0.3, 0.4])
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
    lossy: ClassVar[bool] = True

    @property
    def name(self):  # type: ignore[override]
        return f"lenient({self.l:g})"

    @property
    def spec(self):  # type: ignore[override]
        return f"lenient:{self.l!r}"

    def __repr__(self):
        return f"rules.lenient({self.l!r})"

    def acceptances(self, p, q):
        xp = namespace(p, q)
        return _min1(xp, _ratio(xp, p, self.l * q))[..., None, :]

    def residual(self, p, q):
        a = self.acceptances(p, q)[..., 0, :]
        return positive_part_normalised(p - q * a, p)


def lenient(l) -> Rule:
    """Leviathan et al.'s lenient rule with lenience ``l`` in (0, 1]; lossy for ``l < 1``.

    Parameters
    ----------
    l : float in (0, 1]
        Lenience: a draft token is accepted with ``min(1, p / (l q))``; ``l = 1`` is lossless.

    Returns
    -------
    Rule
        Samplable, ``M = 1``, residual ``norm([p - q a]_+)`` (a labelled choice).

    References
    ----------
    Leviathan, Kalman, Matias 2023, App. A.5.

    See Also
    --------
    over_accept

    Examples
    --------
    >>> import numpy as np
    >>> from scdsim import rules
    >>> p, q = np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.3, 0.2])  # target, draft
    >>> rule = rules.lenient(0.5)
    >>> round(float(rules.rejection_prob(rule, p, q)), 6), rules.step_law(rule, p, q).round(4).tolist()
    (0.1, [0.4, 0.3, 0.3])
    """
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
    lossy: ClassVar[bool] = True

    @property
    def name(self):  # type: ignore[override]
        return f"typical({self.eps:g},{self.delta:g})"

    @property
    def spec(self):  # type: ignore[override]
        return f"typical:{self.eps!r}:{self.delta!r}"

    def __repr__(self):
        return f"rules.typical({self.eps!r}, {self.delta!r})"

    def acceptances(self, p, q):
        xp = namespace(p, q)
        h = entropy(p)[..., None]  # nats
        thresh = xp.minimum(xp.full_like(h, self.eps), self.delta * xp.exp(-h))
        a = xp.astype(p > thresh, p.dtype) + xp.zeros_like(q)
        return a[..., None, :]

    def residual(self, p, q):
        return p + namespace(p, q).zeros_like(q)


def typical(eps, delta) -> Rule:
    """Medusa-style typical acceptance with hard threshold ``eps`` and entropy factor ``delta``.

    Parameters
    ----------
    eps : float in [0, 1]
        Hard threshold: a draft token with ``p(x) > eps`` is always accepted.
    delta : float >= 0
        Entropy factor: a token with ``p(x) > delta exp(-H(p))`` is accepted.

    Returns
    -------
    Rule
        Lossy, samplable, ``M = 1``; the recovered token is drawn from ``p``.

    References
    ----------
    Cai et al. 2024, "Medusa", §2.3.1 (typical acceptance).

    See Also
    --------
    greedy, lenient

    Examples
    --------
    >>> import numpy as np
    >>> from scdsim import rules
    >>> p, q = np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.3, 0.2])  # target, draft
    >>> rule = rules.typical(0.09, 0.3)
    >>> round(float(rules.rejection_prob(rule, p, q)), 6), rules.step_law(rule, p, q).round(4).tolist()
    (0.0, [0.5, 0.3, 0.2])
    """
    eps = check_real(eps, "eps", low=0.0, high=1.0)
    delta = check_real(delta, "delta", low=0.0)
    return _Typical(eps=eps, delta=delta)


lossless: Rule = _Lossless()
"""Lossless speculative sampling (Leviathan et al. 2023): ``rules.lossless``.

>>> import numpy as np
>>> from scdsim import rules
>>> p, q = np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.3, 0.2])
>>> round(float(rules.rejection_prob(rules.lossless, p, q)), 6)  # TV(p, q)
0.3
"""
greedy: Rule = _Greedy()
"""Greedy verification: ``rules.greedy`` (emits the target's argmax; lossy w.r.t. sampling)."""


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

    @property
    def spec(self):  # type: ignore[override]
        return f"recursive:{self.M}"

    def __repr__(self):
        return f"rules.recursive({self.M})"

    def residual_chain(self, p, q):
        """``[r_0, ..., r_M]`` stacked on axis -2, shape ``(..., M+1, V)``."""
        xp = namespace(p, q)
        r = p + xp.zeros_like(q)
        chain = [r]
        for _ in range(self.M):
            nxt = positive_part_normalised(r - q, r)
            if bool(xp.all(nxt == r)):
                break  # a fixed point (r <= q wherever r > 0): every later residual is r
            r = nxt
            chain.append(r)
        out = xp.stack(chain, axis=-2)
        rest = self.M + 1 - len(chain)
        if rest:
            tail = xp.broadcast_to(r[..., None, :], tuple(r.shape[:-1]) + (rest, r.shape[-1]))
            out = xp.concat([out, tail], axis=-2)
        return out

    def acceptances(self, p, q):
        xp = namespace(p, q)
        chain = self.residual_chain(p, q)
        return _min1(xp, _ratio(xp, chain[..., :-1, :], q[..., None, :]))

    def residual(self, p, q):
        # r_M by the same recursion, kept contiguous (a slice of the chain is a strided view,
        # which makes every later matrix product on it several times slower)
        xp = namespace(p, q)
        r = p + xp.zeros_like(q)
        for _ in range(self.M):
            nxt = positive_part_normalised(r - q, r)
            if bool(xp.all(nxt == r)):
                break
            r = nxt
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

    Parameters
    ----------
    M : int, 1 <= M <= MAX_DRAFTS (10,000)
        Number of i.i.d. drafts verified at one position; ``M = 1`` is lossless SD. The
        acceptances are ``(..., M, V)`` arrays, hence the limit.

    Returns
    -------
    Rule
        Unbiased, samplable; all-reject probability ``prod_m TV(q, r_{m-1})``.

    References
    ----------
    Miao et al. 2024, "SpecInfer"; Yin et al. 2024, Alg. 4 (batch speculative decoding).

    See Also
    --------
    kseq, optimal, scdsim.exact.batch_curve

    Examples
    --------
    >>> import numpy as np
    >>> from scdsim import rules
    >>> p, q = np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.3, 0.2])  # target, draft
    >>> rule = rules.recursive(2)
    >>> round(float(rules.rejection_prob(rule, p, q)), 6), rules.step_law(rule, p, q).round(4).tolist()
    (0.24, [0.2, 0.3, 0.5])
    """
    M = _check_drafts(M, "recursive")
    return _Recursive(M=M)


def _kseq_rho(p_row, q_row, M):
    """SpecTr's division factor rho* in [1, M]: smallest rho with 1-(1-beta)^M <= rho*beta."""
    from scipy.optimize import brentq  # lazy: importing the optimiser costs ~1 s (issue 8)

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

    @property
    def spec(self):  # type: ignore[override]
        return f"kseq:{self.M}"

    def __repr__(self):
        return f"rules.kseq({self.M})"

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
    """SpecTr's k-SEQ rule with ``M >= 1`` drafts (at most ``MAX_DRAFTS``); ``M = 1`` is lossless SD.

    Parameters
    ----------
    M : int, 1 <= M <= MAX_DRAFTS (10,000)
        Number of i.i.d. drafts verified at one position.

    Returns
    -------
    Rule
        Unbiased, samplable; acceptance ``1 - (1 - beta)^M`` at the division factor rho*.

    References
    ----------
    Sun et al. 2023, "SpecTr: Fast Speculative Decoding via Optimal Transport", k-SEQ.

    See Also
    --------
    recursive, optimal

    Examples
    --------
    >>> import numpy as np
    >>> from scdsim import rules
    >>> p, q = np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.3, 0.2])  # target, draft
    >>> rule = rules.kseq(2)
    >>> round(float(rules.rejection_prob(rule, p, q)), 6), rules.step_law(rule, p, q).round(4).tolist()
    (0.208645, [0.2, 0.3, 0.5])
    """
    M = _check_drafts(M, "kseq")
    return _KSeq(M=M)


def _to_numpy(x):
    from scdsim._validate import as_numpy64  # float64 NumPy, torch bfloat16 included

    return as_numpy64(x)


OPTIMAL_MAX_V = 22
#: optimal(M) evaluates the subsets of this many (row, subset) entries at a time (64 MB each
#: for the target's and the draft's masses), so a batch of rows costs time, not memory.
OPTIMAL_CHUNK_ENTRIES = 1 << 23


def _subset_masses(x):
    """``x(S)`` for all ``2^V`` subsets S of the vocabulary, by doubling: ``(..., 2^V)`` floats.

    Memory is ``2^V`` per row (32 MB at V = 22), not a ``2^V x V`` mask matrix.
    """
    out = np.zeros(x.shape[:-1] + (1,))
    for v in range(x.shape[-1]):
        out = np.concatenate([out, out + x[..., v:v + 1]], axis=-1)
    return out


#: Most ``rows x 2^V`` subset masses ``optimal(M)`` evaluates in one call (2^25; a few float64
#: arrays of this many entries would be about 1 GB). The rows are evaluated in chunks of
#: ``OPTIMAL_CHUNK_ENTRIES``, so memory stays bounded below this limit; the limit bounds the
#: work of one call (and the memory a caller would need to hold it at once).
OPTIMAL_MAX_SUBSET_ENTRIES = 2**25


def _check_subset_memory(shape, V):
    rows = math.prod(shape[:-1])
    if rows * 2**V > OPTIMAL_MAX_SUBSET_ENTRIES:
        per_call = max(1, OPTIMAL_MAX_SUBSET_ENTRIES // 2**V)
        raise ValueError(
            f"optimal(M) evaluates 2^V subset masses per row: {rows} rows x 2^{V} exceeds the "
            f"limit OPTIMAL_MAX_SUBSET_ENTRIES = 2^25 (about 1 GB if held at once); at V={V} "
            f"call it on at most {per_call} rows at a time (a loop over chunks of the batch)"
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
    samplable: ClassVar[bool] = False

    @property
    def name(self):  # type: ignore[override]
        return f"optimal({self.M})"

    @property
    def spec(self):  # type: ignore[override]
        return f"optimal:{self.M}"

    def __repr__(self):
        return f"rules.optimal({self.M})"

    def acceptance_prob(self, p, q):
        pn = np.asarray(_to_numpy(p), dtype=np.float64)
        qn = np.asarray(_to_numpy(q), dtype=np.float64)
        V = pn.shape[-1]
        if V > OPTIMAL_MAX_V:
            raise ValueError(
                f"optimal(M) enumerates 2^V subsets; V={V} exceeds the limit {OPTIMAL_MAX_V}"
            )
        pn, qn = np.broadcast_arrays(pn, qn)
        batch = pn.shape[:-1]
        _check_subset_memory(pn.shape, V)  # the whole batch's work, before any subset is built
        pn, qn = pn.reshape(-1, V), qn.reshape(-1, V)
        # rows in chunks so that the (rows, 2^V) subset masses stay near OPTIMAL_CHUNK_ENTRIES
        step = max(1, OPTIMAL_CHUNK_ENTRIES >> V)
        alpha = np.empty(pn.shape[0])
        for i in range(0, pn.shape[0], step):
            pS, qS = _subset_masses(pn[i:i + step]), _subset_masses(qn[i:i + step])
            # (pS + 1) - qS^M in place: two arrays alive per chunk, not four
            pS += 1.0
            np.power(qS, self.M, out=qS)
            alpha[i:i + step] = np.min(np.subtract(pS, qS, out=pS), axis=-1)
        return np.clip(alpha, 0.0, 1.0).reshape(batch)

    def acceptances(self, p, q):
        raise TypeError("optimal(M) has no sequential acceptance form; use rejection_prob")

    def residual(self, p, q):
        raise TypeError("optimal(M) has no residual law; use rejection_prob")

    def with_drafts(self, m):
        return self if m == self.M else _Optimal(M=m)


def optimal(M) -> Rule:
    """The optimal ``M``-draft coupling (acceptance by closed form; not samplable).

    Parameters
    ----------
    M : int >= 1
        Number of i.i.d. drafts.

    Returns
    -------
    Rule
        Not samplable (``samplable`` is False): ``rejection_prob`` only, ``V <= 22``.

    References
    ----------
    Sun et al. 2023 (SpecTr), OTM-k; Khisti et al. 2025 (min-cut form).

    See Also
    --------
    recursive, kseq, scdsim.exact.lp.optimal_acceptance_lp

    Examples
    --------
    >>> import numpy as np
    >>> from scdsim import rules
    >>> p, q = np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.3, 0.2])  # target, draft
    >>> round(float(rules.rejection_prob(rules.optimal(2), p, q)), 6)
    0.14
    """
    M = check_int(M, "M", minimum=1)
    return _Optimal(M=M)


# --------------------------------------------------------------------------------------------
# specs: the short text form of a rule (CLI, tables, JSON)

RULE_SPECS = (
    "lossless | greedy | recursive:M | kseq:M | optimal:M"
    " | over_accept:EPS[:additive|ratio][:optimal|target] | lenient:L | typical:EPS:DELTA"
)


def spec(rule) -> str:
    """The text spec of a built-in rule; ``from_spec(spec(rule)) == rule``.

    Examples
    --------
    >>> from scdsim import rules
    >>> rules.spec(rules.recursive(3))
    'recursive:3'
    >>> rules.from_spec(rules.spec(rules.over_accept(0.2, form="ratio"))) == rules.over_accept(0.2, form="ratio")
    True
    """
    return _check_rule(rule).spec


def _spec_int(text, what, spec_text):
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"rule spec {spec_text!r}: {what} must be an integer, got {text!r}") from None


def _spec_float(text, what, spec_text):
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"rule spec {spec_text!r}: {what} must be a number, got {text!r}") from None
    if not math.isfinite(value):  # nan and inf would pass as 'numbers' into the rules
        raise ValueError(f"rule spec {spec_text!r}: {what} must be a finite number, got {text!r}")
    return value


def from_spec(text: str) -> Rule:
    """Build a rule from its text spec (what ``scdsim simulate --rule`` accepts).

    Parameters
    ----------
    text : str
        One of ``lossless``, ``greedy``, ``recursive:M``, ``kseq:M``, ``optimal:M``,
        ``over_accept:EPS[:additive|ratio][:optimal|target]``, ``lenient:L``,
        ``typical:EPS:DELTA``.

    Returns
    -------
    Rule

    Raises
    ------
    ValueError
        An unknown name, a wrong number of fields, a field that is not a number, a repeated or
        contradictory option (``over_accept:0.1:target:optimal``), or a parameter the rule's
        factory refuses (e.g. ``recursive:0``); the message quotes the spec.
    TypeError
        ``text`` is not a string.

    Examples
    --------
    >>> from scdsim import rules
    >>> rules.from_spec("recursive:3")
    rules.recursive(3)
    >>> rules.from_spec("over_accept:0.2:ratio:target")
    rules.over_accept(0.2, form='ratio', resample='target')
    """
    if not isinstance(text, str):
        raise TypeError(f"rule spec must be a string such as 'recursive:3', got {text!r}")
    name, *args = text.strip().split(":")
    try:
        if name == "lossless" and not args:
            return lossless
        if name == "greedy" and not args:
            return greedy
        if name in ("recursive", "kseq", "optimal") and len(args) == 1:
            return {"recursive": recursive, "kseq": kseq, "optimal": optimal}[name](
                _spec_int(args[0], "M", text))
        if name == "over_accept" and 1 <= len(args) <= 3:
            kw = {}
            for a in args[1:]:
                key = ("form" if a in ("additive", "ratio") else
                       "resample" if a in ("optimal", "target") else None)
                if key is None:
                    raise ValueError(
                        f"rule spec {text!r}: option {a!r} is none of additive, ratio, optimal, "
                        "target")
                if key in kw:
                    raise ValueError(
                        f"rule spec {text!r}: {key} given twice ({kw[key]!r} and {a!r})")
                kw[key] = a
            return over_accept(_spec_float(args[0], "EPS", text), **kw)
        if name == "lenient" and len(args) == 1:
            return lenient(_spec_float(args[0], "L", text))
        if name == "typical" and len(args) == 2:
            return typical(_spec_float(args[0], "EPS", text), _spec_float(args[1], "DELTA", text))
    except (ValueError, TypeError) as e:
        msg = str(e)
        raise ValueError(msg if msg.startswith("rule spec") else f"rule spec {text!r}: {msg}") \
            from None
    raise ValueError(f"rule spec {text!r} is not understood; expected {RULE_SPECS}")


# --------------------------------------------------------------------------------------------
# one-step laws, the same code for every rule


def _check_rule(rule):
    if not isinstance(rule, Rule):
        raise TypeError(
            f"rule must be a scdsim rule (e.g. rules.lossless or rules.recursive(2)), got {rule!r}"
        )
    return rule


#: ``sequential_parts`` refuses a rule whose ``(..., M, V)`` acceptances would exceed this many
#: entries (512 MB in float64) before asking the rule for them.
MAX_ACCEPTANCE_ENTRIES = 1 << 26


class SequentialParts(NamedTuple):
    """A sequential rule's laws at one position, checked (see ``sequential_parts``).

    Shapes: ``B`` is the broadcast batch shape of ``(p, q)`` without the vocabulary axis.
    """

    acceptances: object  #: ``a_m(x)``, ``B + (M, V)``
    accepted: object  #: ``q(x) a_m(x)``, the accepted sub-law of draft m alone, ``B + (M, V)``
    rho: object  #: rejection probability of draft m given it is tried, ``B + (M,)``
    residual: object  #: ``r``, the law of the recovered token, ``B + (V,)``
    all_reject: object  #: ``prod_m rho_m``, every draft rejected, ``B``
    accepted_law: object  #: ``W = sum_m (prod_{i<m} rho_i) q a_m``, ``B + (V,)``


def _shape_text(shape):
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _got(x):
    """How an output is described in an error: its shape, or its type when it is no array."""
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return _shape_text(tuple(x.shape))
    return f"a {type(x).__name__}, not an array"


def check_acceptances(rule, a, batch, V):
    """Refuse acceptances that lack the ``(..., M, V)`` shape or leave ``[0, 1]``."""
    M = rule.M
    want = tuple(batch) + (M, V)
    shape = tuple(a.shape) if hasattr(a, "shape") and hasattr(a, "dtype") else None
    ok_shape = shape is not None and len(shape) == len(want) and shape[-2:] == (M, V)
    if ok_shape:
        try:
            ok_shape = np.broadcast_shapes(shape, want) == want
        except ValueError:
            ok_shape = False
    if not ok_shape:
        raise ValueError(
            f"rule {rule.name}: acceptances must have shape (..., M, V) = {_shape_text(want)} "
            f"(M = {M} drafts on an axis of their own, before the vocabulary), got {_got(a)}"
        )
    if isinstance(a, np.ndarray):  # the engines' path: two reductions, no namespace lookup
        lo, hi = a.min(initial=0.0), a.max(initial=0.0)
        if lo >= 0 and hi <= 1:  # NaN fails both
            return
    xp = namespace(a)
    if not bool(xp.all((a >= 0) & (a <= 1))):  # NaN fails too
        raise ValueError(
            f"rule {rule.name}: acceptance probabilities must lie in [0, 1] (finite), got values "
            f"in [{float(xp.min(a)):.3g}, {float(xp.max(a)):.3g}]"
        )


def check_law(rule, law, batch, V, what):
    """Refuse a rule's law (residual, bonus) of the wrong shape, negative, non-finite or
    unnormalised (row sums within the dtype's tolerance, as every input law)."""
    want = tuple(batch) + (V,)
    shape = tuple(law.shape) if hasattr(law, "shape") and hasattr(law, "dtype") else None
    ok_shape = shape is not None and len(shape) == len(want) and shape[-1:] == (V,)
    if ok_shape:
        try:
            ok_shape = np.broadcast_shapes(shape, want) == want
        except ValueError:
            ok_shape = False
    if not ok_shape:
        raise ValueError(
            f"rule {rule.name}: {what} law must have shape (..., V) = {_shape_text(want)}, got "
            f"{_got(law)}"
        )
    if isinstance(law, np.ndarray) and law.size:  # the engines' path: three reductions
        tol = _tolerance(law)
        worst = float(np.max(np.abs(law.sum(axis=-1) - 1.0)))
        if law.min() >= 0 and worst <= tol:  # NaN or inf makes both fail
            return
    xp = namespace(law)
    if not bool(xp.all(xp.isfinite(law))):
        raise ValueError(f"rule {rule.name}: {what} law has NaN or infinite entries")
    if bool(xp.any(law < 0)):
        raise ValueError(
            f"rule {rule.name}: {what} law has negative entries (min {float(xp.min(law)):.3g})"
        )
    if V and math.prod(shape[:-1]) > 0:
        err = xp.abs(xp.sum(law, axis=-1) - 1.0)
        worst = float(xp.max(err))
        tol = _tolerance(law)
        if not worst <= tol:
            raise ValueError(
                f"rule {rule.name}: {what} rows must sum to 1 within {tol:g}; worst is off by "
                f"{worst:.3g}"
            )


def sequential_parts(rule, p, q) -> SequentialParts:
    """A sequential rule's laws at one position, with its outputs checked once.

    The one function through which ``step_law``, ``rejection_prob``, the exact engine, the
    Monte Carlo engine and the real-model engine call a rule's ``acceptances`` and
    ``residual``. Draft ``m`` (tried when drafts ``< m`` were rejected) is accepted with
    probability ``sum_x q(x) a_m(x) = 1 - rho_m``; the reach-weighted accepted law is
    ``W = sum_m (prod_{i<m} rho_i) q a_m`` and the one-step output law is
    ``W + (prod_m rho_m) r``.

    Parameters
    ----------
    rule : Rule
        A samplable rule with ``M`` drafts.
    p, q : array ``(..., V)``
        Target and draft laws (validated by the caller), NumPy or torch.

    Returns
    -------
    SequentialParts
        ``(acceptances, accepted, rho, residual, all_reject, accepted_law)``.

    Raises
    ------
    ValueError
        Naming the rule: acceptances without the ``(..., M, V)`` shape or outside [0, 1]; a
        residual that is not a law (negative, non-finite, rows not summing to 1).

    Examples
    --------
    >>> import numpy as np
    >>> from scdsim import rules
    >>> parts = rules.sequential_parts(rules.lossless, np.array([0.2, 0.3, 0.5]),
    ...                                np.array([0.5, 0.3, 0.2]))
    >>> parts.accepted_law.round(3).tolist(), round(float(parts.all_reject), 3)
    ([0.2, 0.3, 0.2], 0.3)
    """
    xp = namespace(p, q)
    V = p.shape[-1]
    batch = np.broadcast_shapes(tuple(p.shape[:-1]), tuple(q.shape[:-1]))
    entries = math.prod(batch) * rule.M * V
    if entries > MAX_ACCEPTANCE_ENTRIES:
        raise ValueError(
            f"rule {rule.name}: its acceptances (..., M, V) = {_shape_text(batch + (rule.M, V))} "
            f"hold {entries:,} entries, above the limit {MAX_ACCEPTANCE_ENTRIES:,}; use fewer "
            "drafts M (the M -> infinity limit of the first-position batch is "
            "scdsim.exact.expected_rejections_batch_limit) or fewer rows"
        )
    a = rule.acceptances(p, q)
    check_acceptances(rule, a, batch, V)
    r = rule.residual(p, q)
    check_law(rule, r, batch, V, "residual")
    if tuple(a.shape[:-2]) != batch:  # a rule may return rows that broadcast over the batch
        a = xp.broadcast_to(a, batch + (rule.M, V))
    if tuple(r.shape[:-1]) != batch:
        r = xp.broadcast_to(r, batch + (V,))
    acc = q[..., None, :] * a
    rho = xp.clip(1.0 - xp.sum(acc, axis=-1), 0.0, 1.0)
    if rule.M == 1:
        W = acc[..., 0, :]
        all_reject = rho[..., 0]
    else:
        ones = xp.ones_like(rho[..., :1])
        reach = _cumprod(xp, xp.concat([ones, rho[..., :-1]], axis=-1))
        W = xp.sum(reach[..., None] * acc, axis=-2)
        all_reject = xp.prod(rho, axis=-1)
    return SequentialParts(a, acc, rho, r, all_reject, W)


def step_law(rule, target, draft):
    """One-step output law of ``rule`` for target ``p`` and draft ``q``, shape ``(..., V)``.

    For a sequential rule with M drafts: ``W + (prod_m rho_m) r`` with the reach-weighted
    accepted law ``W = sum_m (prod_{i<m} rho_i) q a_m`` (``sequential_parts``); for M = 1 this
    is ``q a + (1 - sum q a) r`` (docs/theory.md §2). For ``optimal(M)`` it is the target (the
    coupling's second marginal).
    """
    rule = _check_rule(rule)
    p, q = as_pair(target, draft)
    xp = namespace(p, q)
    if not rule.samplable:
        return p + xp.zeros_like(q)
    parts = sequential_parts(rule, p, q)
    return parts.accepted_law + parts.all_reject[..., None] * parts.residual


def _cumprod(xp, x):
    if hasattr(xp, "cumulative_prod"):
        return xp.cumulative_prod(x, axis=-1)
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
    return sequential_parts(rule, p, q).all_reject


def acceptance_prob(rule, target, draft):
    """``1 - rejection_prob``: the probability that some draft token is accepted."""
    return 1.0 - rejection_prob(rule, target, draft)
