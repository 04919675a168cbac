"""Identities of the distances and the SD residual, and the semantics of ``warp``.

Reference values are computed here by formulas different from the library's (half-L1 TV,
SciPy's ``entr``, explicit sorting loops for top-k / top-p) or taken from reference notes §0, §7.2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy.special import entr
from strategies import MAX_V, batched_pairs, prob_pairs, prob_vectors

from scdsim.distributions import (
    entropy,
    log_softmax,
    overlap,
    positive_part_normalised,
    residual,
    softmax,
    tv,
    warp,
)

EXACT = 1e-12


def half_l1(p, q):
    return 0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum(axis=-1)


# ---------------------------------------------------------------------------------------------
# the strategies themselves: rows sum to 1 within 1e-15, as the exact tests assume


@given(prob_pairs())
def test_strategy_laws_are_normalised_to_1e_15(pair):
    for law in pair:
        assert law.dtype == np.float64 and law.min() >= 0.0
        assert abs(law.sum() - 1.0) <= 1e-15


# ---------------------------------------------------------------------------------------------
# tv, overlap, residual (reference notes §0)


@given(prob_pairs())
def test_tv_is_one_minus_overlap_and_half_the_l1_distance(pair):
    target, draft = pair
    assert tv(target, draft) == pytest.approx(1.0 - overlap(target, draft), abs=EXACT)
    assert tv(target, draft) == pytest.approx(half_l1(target, draft), abs=EXACT)
    assert tv(target, draft) == pytest.approx(np.maximum(target - draft, 0).sum(), abs=EXACT)
    assert 0.0 <= tv(target, draft) <= 1.0


@given(prob_pairs())
def test_tv_and_overlap_are_exactly_symmetric(pair):
    target, draft = pair
    assert tv(target, draft) == tv(draft, target)
    assert overlap(target, draft) == overlap(draft, target)


@given(prob_pairs())
def test_tv_of_a_law_with_itself_is_zero(pair):
    # 1 - sum min(p, p) = 1 - sum p: zero up to the row's rounding (<= 1e-15 here)
    target, _ = pair
    assert tv(target, target) == pytest.approx(0.0, abs=EXACT)


@given(batched_pairs())
def test_distances_broadcast_over_leading_axes(pair):
    target, draft = pair
    B = target.shape[0]
    np.testing.assert_allclose(tv(target, draft), half_l1(target, draft), rtol=0, atol=EXACT)
    # one draft row against the whole batch of targets, and a (2, B, V) stack
    np.testing.assert_allclose(tv(target, draft[0]), half_l1(target, draft[0]), rtol=0, atol=EXACT)
    stacked = tv(np.stack([target, draft]), draft)
    assert stacked.shape == (2, B)
    np.testing.assert_allclose(stacked[1], 0.0, rtol=0, atol=EXACT)
    assert residual(target, draft[0]).shape == target.shape


@given(prob_pairs())
def test_residual_is_the_normalised_positive_part_where_target_exceeds_draft(pair):
    target, draft = pair
    r = residual(target, draft)
    assert np.all(np.isfinite(r)) and r.min() >= 0.0
    assert r.sum() == pytest.approx(1.0, abs=EXACT)
    pos = np.maximum(target - draft, 0.0)
    if pos.sum() > 0:
        assert np.all(r[target <= draft] == 0.0)  # supported where p > q only
        np.testing.assert_allclose(r, pos / pos.sum(), rtol=0, atol=EXACT)
    else:  # p == q: never sampled; documented fallback is the target itself
        np.testing.assert_array_equal(r, target)


# reference notes §7.2, Yin letters (p draft, q target): target = q, draft = p
@pytest.mark.parametrize("target,draft,tv_value,resid", [
    ((0.2, 0.3, 0.5), (0.5, 0.3, 0.2), 0.3, (0.0, 0.0, 1.0)),
    ((0.1, 0.2, 0.3, 0.4), (0.4, 0.3, 0.2, 0.1), 0.4, (0.0, 0.0, 0.25, 0.75)),
])
def test_section_7_2_distances_and_residuals(target, draft, tv_value, resid):
    assert tv(target, draft) == pytest.approx(tv_value, abs=EXACT)
    assert overlap(target, draft) == pytest.approx(1 - tv_value, abs=EXACT)
    np.testing.assert_allclose(residual(target, draft), resid, rtol=0, atol=EXACT)


def test_positive_part_normalised_uses_the_fallback_only_for_rows_without_positive_mass():
    f = np.array([[0.2, -0.1, 0.3], [-0.1, 0.0, -0.2]])
    fallback = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    with np.errstate(all="raise"):
        out = positive_part_normalised(f, fallback)
    np.testing.assert_allclose(out, [[0.4, 0.0, 0.6], [0.0, 0.0, 1.0]], rtol=0, atol=EXACT)


# ---------------------------------------------------------------------------------------------
# entropy


@given(prob_vectors())
def test_entropy_is_minus_sum_p_log_p_with_zero_log_zero(p):
    h = entropy(p)
    assert h == pytest.approx(entr(p).sum(), abs=EXACT)
    assert -EXACT <= h <= math.log(np.count_nonzero(p)) + EXACT


@pytest.mark.parametrize("V", [1, 2, 5, 12])
def test_entropy_of_uniform_is_log_v_and_of_one_hot_is_zero(V):
    assert entropy(np.full(V, 1.0 / V)) == pytest.approx(math.log(V), abs=EXACT)
    assert entropy(np.eye(V)[V - 1]) == 0.0


def test_entropy_broadcasts_over_leading_axes():
    probs = np.array([[[0.5, 0.5], [1.0, 0.0]]] * 3)
    np.testing.assert_allclose(entropy(probs), [[math.log(2), 0.0]] * 3, rtol=0, atol=EXACT)


# ---------------------------------------------------------------------------------------------
# softmax


@given(st.lists(st.floats(-30, 30), min_size=1, max_size=MAX_V), st.data())
def test_softmax_sums_to_one_and_masks_minus_inf_exactly(values, data):
    x = np.array(values)
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(x), max_size=len(x))))
    mask[int(np.argmax(x))] = False  # keep at least one token
    x = np.where(mask, -np.inf, x)
    p = softmax(x)
    assert np.all(p[mask] == 0.0)
    assert p.sum() == pytest.approx(1.0, abs=EXACT)
    finite = ~mask
    np.testing.assert_allclose(log_softmax(x)[finite], np.log(p[finite]), rtol=0, atol=1e-10)
    np.testing.assert_allclose(p, np.exp(x - x.max()) / np.exp(x - x.max()).sum(), rtol=0,
                               atol=EXACT)


# ---------------------------------------------------------------------------------------------
# warp (temperature, top-k, top-p, min-p, epsilon, in that order)


def reference_softmax(x):
    z = np.exp(x - np.max(x))
    return z / z.sum()


def ranked(x):
    """Token indices by decreasing logit, ties by index."""
    return sorted(range(len(x)), key=lambda i: (-x[i], i))


def restrict(x, keep):
    """Softmax of ``x`` restricted to the boolean set ``keep`` (renormalised)."""
    return reference_softmax(np.where(keep, x, -np.inf))


# logits on a coarse grid so ties happen; at least two tokens for the truncations
logit_rows = st.lists(st.integers(-12, 12).map(lambda k: k / 4), min_size=2, max_size=MAX_V)


def test_warp_temperature_zero_is_the_exact_one_hot_argmax_first_on_ties():
    x = np.array([1.0, 3.0, 3.0, -np.inf, 0.0])
    np.testing.assert_array_equal(warp(x, temperature=0.0), [0.0, 1.0, 0.0, 0.0, 0.0])
    batch = np.array([[0.0, 2.0, 1.0], [5.0, 5.0, 5.0]])
    np.testing.assert_array_equal(warp(batch, temperature=0), [[0, 1, 0], [1, 0, 0]])


@given(logit_rows, st.sampled_from((0.05, 0.5, 1.0, 2.0, 10.0)))
def test_warp_temperature_divides_the_logits(values, temperature):
    x = np.array(values)
    np.testing.assert_allclose(warp(x, temperature=temperature),
                               reference_softmax(x / temperature), rtol=0, atol=EXACT)


@given(logit_rows, st.integers(1, MAX_V + 2))
def test_warp_top_k_keeps_the_k_most_likely_tokens(values, k):
    x = np.array(values)
    keep = np.zeros(len(x), bool)
    keep[ranked(x)[:k]] = True
    out = warp(x, top_k=k)
    assert np.count_nonzero(out) == min(k, len(x))
    np.testing.assert_allclose(out, restrict(x, keep), rtol=0, atol=EXACT)


@given(logit_rows, st.floats(0.01, 1.0))
def test_warp_top_p_keeps_the_smallest_set_reaching_top_p(values, top_p):
    x = np.array(values)
    p = reference_softmax(x)
    order = ranked(x)
    cum = np.cumsum(p[order])
    assume(np.all(np.abs(cum - top_p) > 1e-9))  # away from the rounding boundary
    j = 1
    while j < len(x) and cum[j - 1] < top_p:
        j += 1
    keep = np.zeros(len(x), bool)
    keep[order[:j]] = True
    np.testing.assert_allclose(warp(x, top_p=top_p), restrict(x, keep), rtol=0, atol=EXACT)


@given(logit_rows, st.floats(0.0, 1.0))
def test_warp_min_p_drops_tokens_below_min_p_times_the_maximum(values, min_p):
    x = np.array(values)
    p = reference_softmax(x)
    assume(np.all(np.abs(p - min_p * p.max()) > 1e-9))
    np.testing.assert_allclose(warp(x, min_p=min_p), restrict(x, p >= min_p * p.max()),
                               rtol=0, atol=EXACT)


@given(logit_rows, st.floats(0.0, 0.99))
def test_warp_epsilon_drops_tokens_below_epsilon(values, epsilon):
    x = np.array(values)
    p = reference_softmax(x)
    assume(np.all(np.abs(p - epsilon) > 1e-9))
    if p.max() < epsilon:
        with pytest.raises(ValueError, match="removes every token"):
            warp(x, epsilon=epsilon)
    else:
        np.testing.assert_allclose(warp(x, epsilon=epsilon), restrict(x, p >= epsilon),
                                   rtol=0, atol=EXACT)


LOG4 = np.log(np.array([0.4, 0.3, 0.2, 0.1]))


def test_warp_applies_temperature_before_top_p():
    # law (.5,.3,.2): top_p=.6 keeps 2 tokens at T=1; at T=.5 the law is (.658,.237,.105)
    # and top_p=.6 keeps only the first. Top-p first and then T=.5 would keep two.
    x = np.log(np.array([0.5, 0.3, 0.2]))
    np.testing.assert_allclose(warp(x, top_p=0.6), [0.625, 0.375, 0.0], rtol=0, atol=EXACT)
    np.testing.assert_array_equal(warp(x, temperature=0.5, top_p=0.6), [1.0, 0.0, 0.0])


def test_warp_applies_top_k_before_top_p():
    # top_k=2 leaves (4/7, 3/7); top_p=.5 then keeps one token. The reverse order keeps two.
    np.testing.assert_array_equal(warp(LOG4, top_k=2, top_p=0.5), [1.0, 0.0, 0.0, 0.0])


def test_warp_applies_top_p_before_min_p():
    # top_p=.5 keeps (.4,.3) -> (4/7, 3/7); min_p=.6 then keeps both (3/7 >= .6 * 4/7).
    # min_p first would keep (.4,.3) too, but top_p=.5 on (4/7,3/7) would then keep one.
    np.testing.assert_allclose(warp(LOG4, top_p=0.5, min_p=0.6), [4 / 7, 3 / 7, 0, 0],
                               rtol=0, atol=EXACT)


def test_warp_applies_min_p_before_epsilon():
    # min_p=.6 leaves (4/7, 3/7); epsilon=.45 then keeps one token. Epsilon first on
    # (.4,.3,.2,.1) would remove every token and raise.
    np.testing.assert_array_equal(warp(LOG4, min_p=0.6, epsilon=0.45), [1.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="removes every token"):
        warp(LOG4, epsilon=0.45)


def test_warp_no_op_settings_return_the_softmax():
    np.testing.assert_allclose(warp(LOG4, top_k=4, top_p=1.0, min_p=0.0, epsilon=0.0),
                               [0.4, 0.3, 0.2, 0.1], rtol=0, atol=EXACT)


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(epsilon=0.5), ValueError, r"epsilon=0\.5 removes every token"),
    (dict(top_p=0.0), ValueError, r"top_p must lie in \(0\.0, 1\.0\], got 0\.0"),
    (dict(top_p=1.5), ValueError, r"top_p must lie in \(0\.0, 1\.0\], got 1\.5"),
    (dict(top_k=0), ValueError, "top_k must be >= 1, got 0"),
    (dict(top_k=2.5), TypeError, r"top_k must be an integer, got 2\.5"),
    (dict(temperature=-1.0), ValueError, r"temperature must lie in \[0\.0, inf\], got -1\.0"),
    (dict(temperature=math.nan), ValueError, "temperature must be finite"),
    (dict(epsilon=1.0), ValueError, r"epsilon must lie in \[0\.0, 1\.0\), got 1\.0"),
    (dict(min_p=1.5), ValueError, r"min_p must lie in \[0\.0, 1\.0\], got 1\.5"),
])
def test_warp_rejects_bad_settings(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        warp(LOG4, **kwargs)


@pytest.mark.parametrize("logits,msg", [
    (np.array([0.0, np.nan, 1.0]), "logits contains NaN"),
    (np.array([[0.0, 1.0], [-np.inf, -np.inf]]), "every token is -inf"),
    (np.array([0.0, np.inf]), r"logits contains \+inf"),
    (np.zeros((2, 0)), "non-empty vocabulary axis"),
])
def test_warp_rejects_bad_logits(logits, msg):
    with pytest.raises(ValueError, match=msg):
        warp(logits)


# ---------------------------------------------------------------------------------------------
# error paths of the distances


@pytest.mark.parametrize("fn", [tv, overlap, residual])
def test_distances_name_the_bad_argument(fn):
    good = np.array([0.5, 0.5])
    with pytest.raises(ValueError, match="target rows must sum to 1"):
        fn(np.array([0.5, 0.6]), good)
    with pytest.raises(ValueError, match="draft has negative entries"):
        fn(good, np.array([1.5, -0.5]))
    with pytest.raises(ValueError, match="vocabulary mismatch: target has V=2, draft has V=3"):
        fn(good, np.array([0.2, 0.3, 0.5]))


def test_entropy_rejects_unnormalised_input():
    with pytest.raises(ValueError, match="probs rows must sum to 1"):
        entropy(np.array([0.5, 0.6]))


# ---------------------------------------------------------------------------------------------
# one implementation for numpy and torch


WARP_SETTINGS = [
    dict(),
    dict(temperature=0.0),
    dict(temperature=0.7, top_k=3),
    dict(top_p=0.8),
    dict(temperature=1.3, top_k=5, top_p=0.9, min_p=0.05),
    dict(min_p=0.2, epsilon=0.01),
]


@pytest.mark.torch
@pytest.mark.parametrize("kwargs", WARP_SETTINGS, ids=str)
@given(rows=st.lists(st.lists(st.integers(-12, 12).map(lambda k: k / 4), min_size=6, max_size=6),
                     min_size=1, max_size=3))
def test_warp_torch_float64_matches_numpy(kwargs, rows):
    torch = pytest.importorskip("torch")
    x = np.array(rows)
    out = warp(torch.tensor(x, dtype=torch.float64), **kwargs)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), warp(x, **kwargs), rtol=0, atol=EXACT)


@pytest.mark.torch
@given(batched_pairs(max_batch=3))
def test_distances_torch_float64_match_numpy(pair):
    torch = pytest.importorskip("torch")
    target, draft = pair
    tt, td = torch.tensor(target, dtype=torch.float64), torch.tensor(draft, dtype=torch.float64)
    for fn in (tv, overlap, residual):
        np.testing.assert_allclose(fn(tt, td).numpy(), fn(target, draft), rtol=0, atol=EXACT)
    np.testing.assert_allclose(entropy(tt).numpy(), entropy(target), rtol=0, atol=EXACT)
