"""Tests for scdsim.contrast: contrastive-decoding laws (Li et al. 2023; O'Brien & Lewis 2023).

Expected numbers come from reference notes §7.6 (printed to 4 or 6 decimals, so compared at that
precision) and from independent derivations in this file, which go through probabilities
(``exp``, products, powers) instead of the module's log-space arithmetic, compared at 1e-12.
"""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import scdsim
from scdsim import rules
from scdsim.contrast import contrastive, contrastive_scores, plausible_set
from scdsim.distributions import softmax

# reference notes §7.6 inputs
S_E = np.array([2.0, 1.5, 0.3, -1.0, -3.0])
S_A = np.array([1.0, 1.8, 0.5, -0.5, -2.0])

PROPERTY = settings(deadline=None)  # example count comes from the conftest profile


def _probs(logits):
    """Independent softmax: plain exp and division, no log-sum-exp."""
    w = np.exp(np.asarray(logits, dtype=np.float64) - np.max(logits, axis=-1, keepdims=True))
    return w / w.sum(axis=-1, keepdims=True)


def _cd_law_reference(s_e, s_a, alpha, beta, tau=1.0, form="logit"):
    """CD law from its probabilistic form: p_e^(1+b) p_a^(-b) (logit) or p_e p_a^(-b) (ratio)."""
    p_e, p_a = _probs(s_e), _probs(np.asarray(s_a) / tau)
    mask = p_e >= alpha * p_e.max(axis=-1, keepdims=True)
    w = p_e ** (1.0 + beta) if form == "logit" else p_e.copy()
    w = np.where(mask, w * p_a ** (-beta), 0.0)
    return w / w.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------- reference notes §7.6 numbers

def test_plausible_set_keeps_tokens_above_alpha_times_max_theory_7_6():
    # §7.6: threshold log 0.1 + 2 = -0.3026 in logit space keeps {0, 1, 2}.
    np.testing.assert_array_equal(plausible_set(S_E, 0.1), [True, True, True, False, False])
    assert math.log(0.1) + 2.0 == pytest.approx(-0.3026, abs=5e-5)
    p_e = _probs(S_E)
    np.testing.assert_array_equal(plausible_set(S_E, 0.1), p_e >= 0.1 * p_e.max())


@pytest.mark.parametrize("beta, expected", [
    (0.5, [0.705768, 0.223472, 0.070760, 0.0, 0.0]),
    (1.0, [0.819456, 0.135455, 0.045089, 0.0, 0.0]),
    (0.0, [0.558905, 0.338993, 0.102103, 0.0, 0.0]),
])
def test_obrien_lewis_law_matches_theory_7_6(beta, expected):
    law = contrastive(S_E, S_A, plausibility=0.1, contrast=beta, form="logit")
    np.testing.assert_allclose(law, expected, rtol=0, atol=5e-7)  # §7.6, 6 decimals
    np.testing.assert_allclose(law, _cd_law_reference(S_E, S_A, 0.1, beta), rtol=0, atol=1e-13)
    assert np.all(law[3:] == 0.0)


def test_obrien_lewis_scores_equal_raw_logit_scores_up_to_a_constant_theory_7_6():
    # §7.6 prints O'Brien's raw-logit scores (2.5, 1.35, 0.2); §5.2 [D]: log-softmax scores
    # differ from them by one constant on the plausible set.
    scores = contrastive_scores(S_E, S_A, plausibility=0.1, contrast=0.5, form="logit")
    raw = np.array([2.5, 1.35, 0.2])
    np.testing.assert_allclose(1.5 * S_E[:3] - 0.5 * S_A[:3], raw, rtol=0, atol=1e-14)
    shift = scores[:3] - raw
    np.testing.assert_allclose(shift, np.full(3, shift[0]), rtol=0, atol=1e-13)
    assert np.all(scores[3:] == -np.inf)


@pytest.mark.parametrize("tau, expected", [
    (1.0, [0.7993, -0.5007, -0.4007]),
    (0.5, [1.2392, -0.8608, 0.5392]),
])
def test_li_scores_match_theory_7_6(tau, expected):
    # Li et al.'s objective log p_EXP - log p_AMA(tau): contrast = 1, form = "ratio".
    scores = contrastive_scores(S_E, S_A, plausibility=0.1, contrast=1.0,
                                amateur_temperature=tau, form="ratio")
    np.testing.assert_allclose(scores[:3], expected, rtol=0, atol=5e-5)  # §7.6, 4 decimals
    independent = np.log(_probs(S_E)) - np.log(_probs(S_A / tau))
    np.testing.assert_allclose(scores[:3], independent[:3], rtol=0, atol=1e-13)
    assert np.all(scores[3:] == -np.inf)
    np.testing.assert_allclose(
        contrastive(S_E, S_A, 0.1, 1.0, tau, "ratio"),
        _cd_law_reference(S_E, S_A, 0.1, 1.0, tau, "ratio"), rtol=0, atol=1e-13)


@pytest.mark.parametrize("kw", [
    dict(contrast=0.5, form="logit"), dict(contrast=1.0, form="logit"),
    dict(contrast=0.0, form="logit"), dict(contrast=1.0, form="ratio"),
    dict(contrast=1.0, amateur_temperature=0.5, form="ratio"),
])
def test_greedy_contrastive_decoding_picks_token_0_theory_7_6(kw):
    assert int(np.argmax(contrastive_scores(S_E, S_A, plausibility=0.1, **kw))) == 0


def test_scd_step_acceptance_and_residual_theory_7_6():
    target = contrastive(S_E, S_A, plausibility=0.1, contrast=0.5)
    draft = softmax(S_A)
    np.testing.assert_allclose(draft, [0.243606, 0.542155, 0.147755, 0.054356, 0.012128],
                               rtol=0, atol=5e-7)
    lam = scdsim.overlap(target=target, draft=draft)
    assert float(lam) == pytest.approx(0.537838, abs=5e-7)  # §7.6
    assert float(lam) == pytest.approx(float(np.minimum(target, draft).sum()), abs=1e-14)
    np.testing.assert_allclose(scdsim.residual(target, draft), [1, 0, 0, 0, 0], rtol=0, atol=1e-15)
    # SCD is lossless with respect to CD (reference notes §2 [D]): SD's one-step law is the CD law.
    np.testing.assert_allclose(rules.step_law(rules.lossless, target, draft), target,
                               rtol=0, atol=1e-14)


# ---------------------------------------------------------------- edges

def test_plausibility_zero_keeps_exactly_the_expert_support():
    s_e = np.array([0.0, -np.inf, -700.0, 3.0])
    np.testing.assert_array_equal(plausible_set(s_e, 0.0), [True, False, True, True])


def test_plausibility_one_keeps_only_the_expert_modes():
    np.testing.assert_array_equal(plausible_set([1.0, 2.0, 2.0, -1.0], 1.0),
                                  [False, True, True, False])
    law = contrastive([1.0, 2.0, 2.0, -1.0], [0.0, 0.0, np.log(3.0), 0.0], 1.0, contrast=1.0)
    # On the two modes p_e is equal, so the law is ∝ 1/p_a: amateur odds 1:3 -> 3/4, 1/4.
    np.testing.assert_allclose(law, [0.0, 0.75, 0.25, 0.0], rtol=0, atol=1e-14)


def test_amateur_zero_outside_plausible_set_is_allowed():
    s_a = S_A.copy()
    s_a[4] = -np.inf  # token 4 is not plausible, so its amateur probability does not matter
    law = contrastive(S_E, s_a, 0.1, 0.5)
    np.testing.assert_allclose(law, _cd_law_reference(S_E, np.where(np.isinf(s_a), -50, s_a),
                                                      0.1, 0.5), rtol=0, atol=1e-12)


def test_amateur_zero_on_plausible_token_with_zero_contrast_gives_restricted_expert():
    s_a = S_A.copy()
    s_a[0] = -np.inf
    law = contrastive(S_E, s_a, 0.1, contrast=0.0)
    p_e = np.where([1, 1, 1, 0, 0], _probs(S_E), 0.0)
    np.testing.assert_allclose(law, p_e / p_e.sum(), rtol=0, atol=1e-14)


def test_single_token_vocabulary_gives_the_one_hot_law():
    np.testing.assert_array_equal(contrastive([[3.0]], [[-2.0]], 0.1, 0.5), [[1.0]])


def test_batched_expert_broadcasts_against_one_amateur_row():
    rng = np.random.default_rng(0)
    s_e = rng.normal(size=(3, 2, 6)) * 2
    s_a = rng.normal(size=6)
    law = contrastive(s_e, s_a, 0.05, 0.7)
    assert law.shape == (3, 2, 6)
    for i in range(3):
        for j in range(2):
            np.testing.assert_allclose(law[i, j], _cd_law_reference(s_e[i, j], s_a, 0.05, 0.7),
                                       rtol=0, atol=1e-13)


def test_mixed_precision_inputs_are_promoted():
    law = contrastive(S_E.astype(np.float32), S_A, 0.1, 0.5)
    assert law.dtype == np.float64
    np.testing.assert_allclose(law, _cd_law_reference(S_E, S_A, 0.1, 0.5), atol=1e-6)


# ---------------------------------------------------------------- properties

# Logits on a dyadic grid (k/8, |k| <= 160) so that adding an integer constant is exact and the
# plausibility comparison cannot flip by rounding; expert rows may hold -inf (probability-0)
# tokens. The range keeps every plausible CD score within 745 of the best one, so no plausible
# token underflows to probability 0 (largest spread: 4 * 42 + 3 * 82 = 414 nats).
@st.composite
def logit_pairs(draw, allow_masked_expert=True, low=-160, high=160):
    v = draw(st.integers(1, 7))
    b = draw(st.integers(1, 3))
    elem = st.integers(low, high).map(lambda k: k / 8.0)
    if allow_masked_expert:
        elem_e = st.one_of(elem, elem, elem, st.just(-np.inf))
    else:
        elem_e = elem
    s_e = np.array(draw(st.lists(st.lists(elem_e, min_size=v, max_size=v), min_size=b,
                                 max_size=b)))
    s_e[:, 0] = np.where(np.all(np.isinf(s_e), axis=-1), 0.0, s_e[:, 0])  # no empty rows
    s_a = np.array(draw(st.lists(st.lists(elem, min_size=v, max_size=v), min_size=b,
                                 max_size=b)))
    return s_e, s_a


plausibilities = st.one_of(st.just(0.0), st.just(1.0), st.floats(1e-3, 1.0))
contrasts = st.one_of(st.just(0.0), st.floats(0.0, 3.0))
temperatures = st.one_of(st.just(1.0), st.floats(0.5, 4.0))
forms = st.sampled_from(["logit", "ratio"])


@PROPERTY
@given(logit_pairs(), plausibilities, contrasts, temperatures, forms)
def test_law_is_a_distribution_supported_exactly_on_the_plausible_set(pair, alpha, beta, tau,
                                                                       form):
    s_e, s_a = pair
    law = contrastive(s_e, s_a, alpha, beta, tau, form)
    mask = plausible_set(s_e, alpha)
    assert np.all(np.isfinite(law))
    np.testing.assert_allclose(law.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    assert np.all(law[~mask] == 0.0)
    assert np.all(law[mask] > 0.0)  # logit range keeps every plausible score within exp's range
    scores = contrastive_scores(s_e, s_a, alpha, beta, tau, form)
    np.testing.assert_array_equal(np.isfinite(scores), mask)


@PROPERTY
@given(logit_pairs(), plausibilities)
def test_plausible_set_is_alpha_times_max_threshold_and_contains_the_mode(pair, alpha):
    s_e, _ = pair
    mask = plausible_set(s_e, alpha)
    p_e = _probs(s_e)
    modes = s_e == s_e.max(axis=-1, keepdims=True)
    assert np.all(mask[modes])
    if alpha == 0.0:
        np.testing.assert_array_equal(mask, p_e > 0)
    else:
        # Grid logits differ by multiples of 1/8; skip the rare inputs sitting on the threshold.
        gap = np.where(np.isfinite(s_e), s_e - s_e.max(axis=-1, keepdims=True) - math.log(alpha),
                       -np.inf)
        assume(np.all(np.abs(gap) > 1e-9))
        np.testing.assert_array_equal(mask, gap > 0)


@PROPERTY
@given(logit_pairs(), st.floats(1e-3, 1.0), st.floats(1e-3, 1.0))
def test_plausible_set_shrinks_as_plausibility_grows(pair, a1, a2):
    s_e, _ = pair
    lo, hi = min(a1, a2), max(a1, a2)
    assert np.all(plausible_set(s_e, lo) >= plausible_set(s_e, hi))


@PROPERTY
@given(logit_pairs(), plausibilities)
def test_zero_contrast_logit_form_is_expert_softmax_restricted_to_plausible_set(pair, alpha):
    s_e, s_a = pair
    p_e = _probs(s_e)
    restricted = np.where(plausible_set(s_e, alpha), p_e, 0.0)
    restricted /= restricted.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(contrastive(s_e, s_a, alpha, 0.0, form="logit"), restricted,
                               rtol=0, atol=1e-12)


@PROPERTY
@given(logit_pairs(low=-80, high=80), st.floats(1e-3, 1.0), st.floats(0.0, 3.0),
       temperatures, forms)
def test_law_equals_probability_form_of_cd(pair, alpha, beta, tau, form):
    # logit form: ∝ p_e (p_e/p_a)^beta; ratio form: ∝ p_e / p_a(tau)^beta (reference notes §5).
    s_e, s_a = pair
    gap = np.where(np.isfinite(s_e), s_e - s_e.max(axis=-1, keepdims=True) - math.log(alpha),
                   -np.inf)
    assume(np.all(np.abs(gap) > 1e-9))  # away from the threshold, both masks agree
    np.testing.assert_allclose(contrastive(s_e, s_a, alpha, beta, tau, form),
                               _cd_law_reference(s_e, s_a, alpha, beta, tau, form),
                               rtol=1e-9, atol=1e-13)


@PROPERTY
@given(logit_pairs(), plausibilities, contrasts, temperatures, forms,
       st.integers(-1000, 1000), st.integers(-1000, 1000))
def test_law_is_invariant_to_adding_a_constant_to_either_logit_row(pair, alpha, beta, tau, form,
                                                                   ce, ca):
    s_e, s_a = pair
    base = contrastive(s_e, s_a, alpha, beta, tau, form)
    np.testing.assert_array_equal(plausible_set(s_e + ce, alpha), plausible_set(s_e, alpha))
    np.testing.assert_allclose(contrastive(s_e + ce, s_a, alpha, beta, tau, form), base,
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(contrastive(s_e, s_a + ca, alpha, beta, tau, form), base,
                               rtol=1e-9, atol=1e-12)


@pytest.mark.torch
@PROPERTY
@given(logit_pairs(), plausibilities, contrasts, temperatures, forms)
def test_torch_and_numpy_give_the_same_law(pair, alpha, beta, tau, form):
    torch = pytest.importorskip("torch")
    s_e, s_a = pair
    te, ta = torch.tensor(s_e), torch.tensor(s_a)
    law_t = contrastive(te, ta, alpha, beta, tau, form)
    assert isinstance(law_t, torch.Tensor) and law_t.dtype == torch.float64
    np.testing.assert_allclose(law_t.numpy(), contrastive(s_e, s_a, alpha, beta, tau, form),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(plausible_set(te, alpha).numpy(), plausible_set(s_e, alpha))
    sc_t = contrastive_scores(te, ta, alpha, beta, tau, form).numpy()
    sc_n = contrastive_scores(s_e, s_a, alpha, beta, tau, form)
    np.testing.assert_array_equal(np.isinf(sc_t), np.isinf(sc_n))
    np.testing.assert_allclose(np.where(np.isinf(sc_t), 0, sc_t), np.where(np.isinf(sc_n), 0, sc_n),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.torch
def test_torch_float32_law_matches_theory_7_6():
    torch = pytest.importorskip("torch")
    law = contrastive(torch.tensor(S_E, dtype=torch.float32),
                      torch.tensor(S_A, dtype=torch.float32), 0.1, 0.5)
    assert law.dtype == torch.float32
    np.testing.assert_allclose(law.numpy(), [0.705768, 0.223472, 0.070760, 0.0, 0.0], atol=1e-6)
    assert float(law[3]) == 0.0 and float(law[4]) == 0.0


# ---------------------------------------------------------------- error paths

@pytest.mark.parametrize("value", [-0.1, 1.5, math.nan, math.inf])
def test_plausibility_outside_unit_interval_raises(value):
    with pytest.raises(ValueError, match="plausibility"):
        contrastive(S_E, S_A, plausibility=value)
    with pytest.raises(ValueError, match="plausibility"):
        plausible_set(S_E, value)


def test_negative_contrast_raises():
    with pytest.raises(ValueError, match=r"contrast must lie in \[0.0, inf\], got -0.5"):
        contrastive(S_E, S_A, contrast=-0.5)


@pytest.mark.parametrize("tau", [0.0, -1.0])
def test_nonpositive_amateur_temperature_raises(tau):
    with pytest.raises(ValueError, match="amateur_temperature"):
        contrastive_scores(S_E, S_A, amateur_temperature=tau)


def test_unknown_form_raises():
    with pytest.raises(ValueError, match="form must be one of.*'li'"):
        contrastive(S_E, S_A, form="li")


def test_vocabulary_mismatch_raises():
    with pytest.raises(ValueError, match="vocabulary mismatch: expert_logits has V=5, "
                                         "amateur_logits has V=4"):
        contrastive(S_E, S_A[:4])


def test_batch_shapes_that_do_not_broadcast_raise():
    with pytest.raises(ValueError, match="shape mismatch"):
        contrastive(np.zeros((2, 5)), np.zeros((3, 5)))


def test_infinite_score_from_zero_amateur_probability_raises():
    s_a = S_A.copy()
    s_a[1] = -np.inf  # token 1 is plausible (§7.6 mask {0,1,2})
    with pytest.raises(ValueError, match="amateur_logits.*plausible set.*contrast=0.5"):
        contrastive(S_E, s_a, 0.1, 0.5)
    with pytest.raises(ValueError, match="amateur_logits"):
        contrastive_scores(S_E, s_a, 0.1, 1.0, form="ratio")


@pytest.mark.parametrize("bad, match", [
    (np.array([1.0, np.nan, 0.0, 0.0, 0.0]), "contains NaN"),
    (np.array([1.0, np.inf, 0.0, 0.0, 0.0]), r"contains \+inf"),
    (np.full(5, -np.inf), "every token is -inf"),
    (np.zeros(0), "non-empty vocabulary"),
])
def test_invalid_logits_raise_naming_the_argument(bad, match):
    with pytest.raises(ValueError, match="expert_logits.*" + match):
        contrastive(bad, S_A)
    with pytest.raises(ValueError, match="amateur_logits.*" + match):
        contrastive(S_E, bad)
    with pytest.raises(ValueError, match="expert_logits.*" + match):
        plausible_set(bad)


def test_non_numeric_logits_raise_type_error():
    with pytest.raises(TypeError, match="expert_logits"):
        contrastive("abc", S_A)
    with pytest.raises(TypeError, match="amateur_logits"):
        contrastive(S_E, np.array(["a"] * 5))


@pytest.mark.parametrize("name", ["plausibility", "contrast", "amateur_temperature"])
def test_boolean_parameters_raise_type_error(name):
    with pytest.raises(TypeError, match=name):
        contrastive(S_E, S_A, **{name: True})


@pytest.mark.torch
def test_mixing_numpy_and_torch_raises_type_error():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="same library"):
        contrastive(S_E, torch.tensor(S_A))
