"""Distances between next-token laws, the SD residual, and standardized sampling (``warp``).

Notation: ``target`` is the large model's law (p in Leviathan et al. and in our kernels),
``draft`` the small model's (q). All functions broadcast over leading axes; the vocabulary is
the last axis. They accept NumPy arrays or torch tensors and return the same kind.

Identities used throughout (docs/theory.md §1):
``TV(p, q) = 1/2 sum|p - q| = 1 - sum min(p, q) = sum [p - q]_+``; ``overlap = 1 - TV`` is the
single-draft acceptance probability beta of Leviathan et al. Thm 3.5.
"""

from __future__ import annotations

import contextlib
import math

import array_api_compat
import numpy as np

from scdsim._validate import (
    as_pair,
    as_prob,
    check_int,
    check_logits,
    check_real,
    namespace,
)

__all__ = [
    "tv",
    "overlap",
    "residual",
    "entropy",
    "softmax",
    "log_softmax",
    "warp",
    "positive_part_normalised",
]


def _quiet(xp):
    """Silence NumPy's over/underflow warnings where an overflow to -inf is the right answer."""
    if xp is np or getattr(xp, "__name__", "").endswith("numpy"):
        return np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore")
    return contextlib.nullcontext()


def positive_part_normalised(f, fallback):
    """``norm([f]_+)`` along the last axis; rows whose positive mass is 0 get ``fallback``.

    This is the numerically guarded form of the residual: when the positive part vanishes
    (e.g. ``p == q``) the residual is never sampled, but it must not be NaN.

    Raises
    ------
    ValueError
        If ``f`` or ``fallback`` has a NaN or infinite entry (a NaN would otherwise be dropped
        by the positive part without a trace).
    """
    xp = namespace(f, fallback)
    for arr, name in ((f, "f"), (fallback, "fallback")):
        if math.prod(arr.shape) and not bool(xp.all(xp.isfinite(arr))):
            raise ValueError(f"{name} contains NaN or infinite entries")
    pos = xp.clip(f, 0.0, None) if hasattr(xp, "clip") else xp.where(f > 0, f, 0.0)
    mass = xp.sum(pos, axis=-1, keepdims=True)
    safe = xp.where(mass > 0, mass, xp.ones_like(mass))
    return xp.where(mass > 0, pos / safe, fallback + xp.zeros_like(pos))


def _overlap_raw(p, q):
    xp = namespace(p, q)
    return xp.sum(xp.minimum(p, q), axis=-1)


def overlap(target, draft):
    """``sum_x min(p(x), q(x))``: the acceptance probability of lossless SD (Leviathan Thm 3.5)."""
    p, q = as_pair(target, draft)
    xp = namespace(p, q)
    return xp.clip(_overlap_raw(p, q), 0.0, 1.0)


def tv(target, draft):
    """Total variation distance ``1/2 sum |p - q|`` (``= 1 - sum min(p, q)``), in [0, 1].

    Computed as the half L1 norm so that it is exactly 0 when ``p == q`` even for rows that sum
    to 1 only within the validation tolerance.
    """
    p, q = as_pair(target, draft)
    xp = namespace(p, q)
    return xp.clip(0.5 * xp.sum(xp.abs(p - q), axis=-1), 0.0, 1.0)


def residual(target, draft):
    """The SD resampling law ``norm(max(0, p - q))`` (Leviathan §2.3), shape ``(..., V)``.

    Where ``p == q`` the positive part is 0 and the law is never used; it is then defined as
    ``p`` so that no NaN appears.
    """
    p, q = as_pair(target, draft)
    return positive_part_normalised(p - q, p)


def entropy(probs):
    """Shannon entropy in nats, ``-sum p log p`` with ``0 log 0 = 0``; shape ``(...)``."""
    p = as_prob(probs, "probs")
    xp = namespace(p)
    safe = xp.where(p > 0, p, xp.ones_like(p))
    return -xp.sum(xp.where(p > 0, p * xp.log(safe), xp.zeros_like(p)), axis=-1)


def _shifted(xp, x, temperature=1.0):
    """``(x - max x) / temperature`` without overflow: entries are <= 0, the maxima exactly 0.

    Dividing first would overflow finite logits (``1e308 / 0.5``) and ``0 / 0`` appears when
    ``temperature`` underflows in the array's dtype; shifting first and keeping the maxima at
    0 gives the limit law (uniform over the argmax set) as ``temperature -> 0+``.
    """
    if math.prod(x.shape) == 0:
        return x
    with _quiet(xp):
        z = x - xp.max(x, axis=-1, keepdims=True)
        if temperature != 1.0:
            z = xp.where(z < 0, z / temperature, xp.zeros_like(z))
    return z


def _log_softmax(xp, x, temperature=1.0):
    """Log-softmax of validated logits (no NaN/+inf, every row with a finite entry)."""
    z = _shifted(xp, x, temperature)
    if math.prod(z.shape) == 0:
        return z
    with _quiet(xp):
        return z - xp.log(xp.sum(xp.exp(z), axis=-1, keepdims=True))


def _softmax(xp, x, temperature=1.0):
    """Softmax of validated logits; ``-inf`` logits get probability exactly 0."""
    return xp.exp(_log_softmax(xp, x, temperature))


def log_softmax(logits):
    """Numerically stable log-softmax along the last axis; ``-inf`` logits stay ``-inf``.

    Raises
    ------
    ValueError
        If ``logits`` has a NaN or ``+inf`` entry or a row that is entirely ``-inf``.
    """
    x = check_logits(logits, "logits")
    return _log_softmax(namespace(x), x)


def softmax(logits):
    """Softmax along the last axis (``-inf`` logits get probability exactly 0).

    Raises
    ------
    ValueError
        If ``logits`` has a NaN or ``+inf`` entry or a row that is entirely ``-inf``.
    """
    x = check_logits(logits, "logits")
    xp = namespace(x)
    return xp.exp(_log_softmax(xp, x))


def _keep(xp, logits, mask):
    return xp.where(mask, logits, xp.full_like(logits, -math.inf))


def warp(logits, temperature=1.0, top_k=None, top_p=None, epsilon=None, min_p=None):
    """Standardized sampling: turn logits into the law that is actually sampled.

    Applied in this order (the order of HF logits warpers): temperature, top-k, top-p, min-p,
    epsilon. Each truncation acts on the law left by the previous one and renormalises.

    Parameters
    ----------
    logits : array (..., V)
        Unnormalised log-probabilities (log-probabilities are fine too); ``-inf`` masks a token.
    temperature : float >= 0
        Divides the logits (after shifting each row by its maximum, so finite logits never
        overflow). ``0`` means greedy: the exact one-hot of the argmax (first index on ties);
        a positive temperature so small that every gap overflows gives the uniform law on the
        argmax set, the limit as ``temperature -> 0+``.
    top_k : int >= 1, optional
        Keep the ``top_k`` most likely tokens (ties at the boundary broken by index).
    top_p : float in (0, 1], optional
        Nucleus: keep the smallest most-likely set whose mass reaches ``top_p``.
    epsilon : float in [0, 1), optional
        Epsilon sampling (Hewitt et al.): drop tokens with probability below ``epsilon``.
        Raises if that drops every token.
    min_p : float in [0, 1], optional
        Drop tokens with probability below ``min_p * max_x p(x)``.

    Returns
    -------
    probs : array (..., V), rows summing to 1.
    """
    x = check_logits(logits, "logits")
    temperature = check_real(temperature, "temperature", low=0.0)
    top_k = check_int(top_k, "top_k", minimum=1, allow_none=True)
    top_p = check_real(top_p, "top_p", low=0.0, high=1.0, low_open=True, allow_none=True)
    epsilon = check_real(epsilon, "epsilon", low=0.0, high=1.0, high_open=True, allow_none=True)
    min_p = check_real(min_p, "min_p", low=0.0, high=1.0, allow_none=True)
    xp = namespace(x)
    V = x.shape[-1]

    if math.prod(x.shape) == 0:
        return x
    if temperature == 0.0:
        idx = xp.argmax(x, axis=-1, keepdims=True)
        ar = xp.arange(V, device=array_api_compat.device(x))
        return xp.astype(ar == idx, x.dtype)
    x = _shifted(xp, x, temperature)
    softmax = lambda z: _softmax(xp, z)  # noqa: E731 - rows here always keep a finite entry

    order = None
    if top_k is not None and top_k < V:
        order = xp.argsort(-x, axis=-1, stable=True)
        ranks = xp.argsort(order, axis=-1, stable=True)
        x = _keep(xp, x, ranks < top_k)
    if top_p is not None and top_p < 1.0:
        probs = softmax(x)
        order = xp.argsort(-x, axis=-1, stable=True)
        sorted_p = xp.take_along_axis(probs, order, axis=-1)
        mass_before = xp.cumulative_sum(sorted_p, axis=-1) - sorted_p
        keep_sorted = mass_before < top_p  # the token that crosses top_p is kept; first always kept
        ranks = xp.argsort(order, axis=-1, stable=True)
        x = _keep(xp, x, xp.take_along_axis(keep_sorted, ranks, axis=-1))
    if min_p is not None and min_p > 0.0:
        probs = softmax(x)
        x = _keep(xp, x, probs >= min_p * xp.max(probs, axis=-1, keepdims=True))
    if epsilon is not None and epsilon > 0.0:
        probs = softmax(x)
        keep = probs >= epsilon
        if bool(xp.any(~xp.any(keep, axis=-1))):
            raise ValueError(
                f"epsilon={epsilon} removes every token of some row (its largest probability is "
                f"{float(xp.min(xp.max(probs, axis=-1))):.3g}); the support would be empty"
            )
        x = _keep(xp, x, keep)
    return softmax(x)
