"""Hypothesis strategies for next-token laws and (target, draft) pairs.

Laws are built from small integer weights (and, for tiny masses, an exact ``1e-12`` fraction
of the total) and normalised once in float64, with the rounding remainder put on the largest
entry so that every row sums to 1 within 1e-15. The strategies deliberately produce the edge
cases of DESIGN.md §5: exact zeros, disjoint supports, one-hot laws, equal and near-equal
pairs, tiny masses, V = 1 and V up to ``MAX_V``.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

MAX_V = 12
TINY = 1e-12

__all__ = [
    "MAX_V",
    "TINY",
    "normalise",
    "prob_vectors",
    "prob_pairs",
    "batched_pairs",
    "bernoulli_params",
]


def normalise(weights) -> np.ndarray:
    """``weights / sum(weights)`` in float64, the rounding remainder put on the largest entry."""
    w = np.asarray(weights, dtype=np.float64)
    p = w / w.sum()
    i = int(np.argmax(p))
    p[i] += 1.0 - p.sum()
    return p


def _weights(draw, V, *, allow_zero=True):
    """Integer weights in [0, 20] (or [1, 20]) with at least one positive entry."""
    low = 0 if allow_zero else 1
    w = draw(st.lists(st.integers(low, 20), min_size=V, max_size=V))
    if not any(w):
        w[draw(st.integers(0, V - 1))] = draw(st.integers(1, 20))
    return np.asarray(w, dtype=np.float64)


def _one_hot(draw, V):
    w = np.zeros(V)
    w[draw(st.integers(0, V - 1))] = 1.0
    return w


def _tiny(draw, V):
    """Ordinary weights with some entries replaced by ``TINY`` times the total."""
    w = _weights(draw, V, allow_zero=False)
    if V > 1:
        flags = draw(st.lists(st.booleans(), min_size=V, max_size=V))
        flags[int(np.argmax(w))] = False  # keep one ordinary entry
        w = np.where(flags, TINY * w.sum(), w)
    return w


_KINDS = ("weights", "full_support", "one_hot", "tiny", "uniform")


def _law(draw, V, kind):
    if kind == "weights":
        return normalise(_weights(draw, V))
    if kind == "full_support":
        return normalise(_weights(draw, V, allow_zero=False))
    if kind == "one_hot":
        return _one_hot(draw, V)
    if kind == "tiny":
        return normalise(_tiny(draw, V))
    return normalise(np.ones(V))


@st.composite
def prob_vectors(draw, min_size=1, max_size=MAX_V, size=None, kinds=_KINDS):
    """A probability vector ``(V,)``: weighted with zeros, full support, one-hot, tiny, uniform."""
    V = size if size is not None else draw(st.integers(min_size, max_size))
    return _law(draw, V, draw(st.sampled_from(kinds)))


_PAIR_KINDS = ("independent", "disjoint", "near_equal", "equal", "one_hot", "tiny")


def _pair(draw, V, kind):
    if kind == "disjoint" and V >= 2:
        mask = draw(st.lists(st.booleans(), min_size=V, max_size=V))
        i, j = draw(st.permutations(range(V)))[:2]
        mask[i], mask[j] = True, False
        mask = np.asarray(mask)
        p = normalise(np.where(mask, _weights(draw, V, allow_zero=False), 0.0))
        q = normalise(np.where(~mask, _weights(draw, V, allow_zero=False), 0.0))
        return p, q
    if kind == "near_equal":
        # p and p + a tiny relative perturbation (zeros stay zeros); may round back to p
        p = _law(draw, V, draw(st.sampled_from(("weights", "full_support", "tiny"))))
        k = np.asarray(draw(st.lists(st.integers(-3, 3), min_size=V, max_size=V)), float)
        scale = draw(st.sampled_from((1e-15, 1e-12, 1e-9)))
        return p, normalise(p * (1.0 + scale * k))
    if kind == "equal":
        p = _law(draw, V, draw(st.sampled_from(_KINDS)))
        return p, p.copy()
    if kind == "one_hot":
        p = _one_hot(draw, V)
        q = _law(draw, V, draw(st.sampled_from(_KINDS)))
        return (p, q) if draw(st.booleans()) else (q, p)
    if kind == "tiny":
        return normalise(_tiny(draw, V)), normalise(_tiny(draw, V))
    kinds = st.sampled_from(_KINDS)
    return _law(draw, V, draw(kinds)), _law(draw, V, draw(kinds))


@st.composite
def prob_pairs(draw, min_size=1, max_size=MAX_V, size=None, kinds=_PAIR_KINDS):
    """A ``(target, draft)`` pair of ``(V,)`` laws, drawn from one of the edge-case families.

    Families: independent laws (each may have zeros, be one-hot, tiny or uniform), disjoint
    supports (``V >= 2``), near-equal (``q = p (1 + k s)``, ``s`` in {1e-15, 1e-12, 1e-9}),
    equal, one side one-hot, and both with 1e-12 masses.
    """
    V = size if size is not None else draw(st.integers(min_size, max_size))
    return _pair(draw, V, draw(st.sampled_from(kinds)))


@st.composite
def batched_pairs(draw, max_batch=4, min_size=1, max_size=MAX_V):
    """A ``(target, draft)`` pair of ``(B, V)`` arrays whose rows come from ``prob_pairs``."""
    V = draw(st.integers(min_size, max_size))
    B = draw(st.integers(1, max_batch))
    rows = [_pair(draw, V, draw(st.sampled_from(_PAIR_KINDS))) for _ in range(B)]
    return np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])


def bernoulli_params(denominator=20):
    """Two distinct success probabilities ``(a, b)`` on the grid ``k / denominator``, 0 < k < d."""
    grid = st.integers(1, denominator - 1).map(lambda k: k / denominator)
    return st.tuples(grid, grid).filter(lambda ab: ab[0] != ab[1])
