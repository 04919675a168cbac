"""The one-step LPs (scdsim.exact.lp) against the closed forms of Yin et al., SpecTr and Khisti.

Every LP optimum is compared with a value computed independently (half-L1 TV, the straight
line ``max(0, TV - rho)``, the min-cut closed form of ``rules.optimal``, reference notes §7.4/§7.5)
to ``LP_ATOL = 1e-9``: HiGHS solves to feasibility tolerances 1e-10, not to machine precision.
Closed-form quantities (``front_gap``) are held to 1e-12.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import batched_pairs, bernoulli_params, normalise, prob_pairs

from scdsim import rules
from scdsim.exact.lp import (
    LP_ATOL,
    FrontGap,
    ParetoFront,
    front_gap,
    minimum_bias,
    optimal_acceptance_lp,
    pareto_front,
    rejection_lower_bound,
)

EXACT = 1e-12


def half_l1(p, q):
    return 0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum(axis=-1)


EX1 = (np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.3, 0.2]))  # reference notes §7.4 example 1
EX2 = (np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.4, 0.3, 0.2, 0.1]))  # example 2


def test_lp_tolerance_is_1e_9():
    assert LP_ATOL == 1e-9


# ---------------------------------------------------------------------------------------------
# Yin Thm 2: min rejection over unbiased rules = TV


@given(prob_pairs())
def test_rejection_lower_bound_equals_tv(pair):
    target, draft = pair
    bound = rejection_lower_bound(target, draft)
    assert isinstance(bound, float)
    assert bound == pytest.approx(half_l1(target, draft), abs=LP_ATOL)


@given(prob_pairs())
def test_lossless_sd_attains_the_rejection_lower_bound(pair):
    target, draft = pair
    assert rules.rejection_prob(rules.lossless, target, draft) == pytest.approx(
        rejection_lower_bound(target, draft), abs=LP_ATOL)


@settings(max_examples=30)
@given(batched_pairs())
def test_rejection_lower_bound_maps_over_leading_axes(pair):
    target, draft = pair
    bound = rejection_lower_bound(target, draft)
    assert bound.shape == target.shape[:1]
    np.testing.assert_allclose(bound, half_l1(target, draft), rtol=0, atol=LP_ATOL)
    assert rejection_lower_bound(target[None], draft).shape == (1, target.shape[0])


@pytest.mark.parametrize("pair,tv_value", [(EX1, 0.3), (EX2, 0.4)])
def test_rejection_lower_bound_on_section_7_2_pairs(pair, tv_value):
    assert rejection_lower_bound(*pair) == pytest.approx(tv_value, abs=LP_ATOL)


# ---------------------------------------------------------------------------------------------
# Yin Thms 4-5: the Pareto front is the straight line max(0, TV - rho)


@settings(max_examples=40)
@given(prob_pairs(), st.integers(3, 12))
def test_pareto_front_is_the_straight_line_of_theorem_5(pair, n):
    target, draft = pair
    front = pareto_front(target, draft, n=n)
    tv_value = half_l1(target, draft)
    assert front.tv == pytest.approx(tv_value, abs=EXACT)
    assert front.rejection.shape == front.bias.shape == (n,)
    np.testing.assert_allclose(front.bias, np.maximum(0.0, tv_value - front.rejection),
                               rtol=0, atol=LP_ATOL)


@settings(max_examples=40)
@given(prob_pairs(), st.floats(0.0, 1.0))
def test_minimum_bias_at_any_rejection_level_is_the_straight_line(pair, rho):
    target, draft = pair
    assert minimum_bias(target, draft, rho) == pytest.approx(
        max(0.0, half_l1(target, draft) - rho), abs=LP_ATOL)


@settings(max_examples=40)
@given(prob_pairs(), st.integers(3, 12))
def test_pareto_grid_spans_zero_to_one_and_contains_tv_exactly(pair, n):
    front = pareto_front(*pair, n=n)
    r = front.rejection
    assert r[0] == 0.0 and r[-1] == 1.0 and front.tv in r
    assert np.all(np.diff(r) > 0)


@pytest.mark.parametrize("pair,tv_value", [(EX1, 0.3), (EX2, 0.4)])
def test_pareto_front_sums_to_tv_on_the_rejection_interval_of_section_7_4(pair, tv_value):
    front = pareto_front(*pair, n=21)
    on = front.rejection <= tv_value
    np.testing.assert_allclose(front.rejection[on] + front.bias[on], tv_value, rtol=0, atol=LP_ATOL)
    np.testing.assert_allclose(front.bias[~on], 0.0, rtol=0, atol=LP_ATOL)
    assert front.bias[0] == pytest.approx(tv_value, abs=LP_ATOL)  # never reject: bias = TV


SEC74_OPT = [  # reference notes §7.4 (example, form, eps, P(reject), Loss*_TV)
    (EX1, "additive", 0.1, 0.2, 0.1), (EX1, "additive", 0.2, 0.1, 0.2),
    (EX1, "ratio", 0.1, 0.25, 0.05), (EX1, "ratio", 0.4, 0.1, 0.2),
    (EX2, "additive", 0.1, 0.2, 0.2), (EX2, "ratio", 0.1, 0.33, 0.07),
    (EX2, "ratio", 0.2, 0.26, 0.14), (EX2, "ratio", 0.4, 0.14, 0.26),
]


@pytest.mark.parametrize("pair,form,eps,rej,loss", SEC74_OPT)
def test_decoding_opt_points_of_section_7_4_are_lp_optimal(pair, form, eps, rej, loss):
    # the LP's least bias at OPT's rejection level is OPT's bias: nothing beats Thm 4
    rule = rules.over_accept(eps, form=form)
    level = float(rules.rejection_prob(rule, *pair))
    assert level == pytest.approx(rej, abs=EXACT)
    assert minimum_bias(*pair, level) == pytest.approx(loss, abs=LP_ATOL)


def test_pareto_front_is_frozen_and_read_only():
    front = pareto_front(*EX1, n=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        front.tv = 0.0
    with pytest.raises(ValueError, match="read-only"):
        front.bias[0] = 1.0


def test_pareto_front_rejects_batches_and_short_grids():
    target, draft = EX1
    with pytest.raises(ValueError, match=r"one \(V,\) pair, got target \(2, 3\)"):
        pareto_front(np.stack([target, target]), draft)
    with pytest.raises(ValueError, match="n must be >= 3, got 2"):
        pareto_front(target, draft, n=2)
    with pytest.raises(TypeError, match="n must be an integer"):
        pareto_front(target, draft, n=5.0)
    with pytest.raises(ValueError, match="draft rows must sum to 1"):
        pareto_front(target, np.array([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match=r"rejection must lie in \[0\.0, 1\.0\], got 1\.5"):
        minimum_bias(target, draft, 1.5)
    with pytest.raises(ValueError, match=r"minimum_bias takes one \(V,\) pair"):
        minimum_bias(np.stack([target, target]), draft, 0.5)


# ---------------------------------------------------------------------------------------------
# front_gap: OPT and lenient on the front, UNO above it


@given(prob_pairs(), st.sampled_from((0.0, 0.05, 0.1, 0.2, 0.4, 0.8)),
       st.sampled_from(("additive", "ratio")))
def test_decoding_opt_has_zero_front_gap(pair, eps, form):
    gap = front_gap(rules.over_accept(eps, form=form, resample="optimal"), *pair)
    assert isinstance(gap, FrontGap)
    assert gap.gap == pytest.approx(0.0, abs=EXACT)


@given(prob_pairs(), st.sampled_from((1.0, 0.7, 0.3, 0.05)))
def test_lenient_has_zero_front_gap(pair, l):
    assert front_gap(rules.lenient(l), *pair).gap == pytest.approx(0.0, abs=EXACT)


@given(prob_pairs(), st.sampled_from((0.05, 0.1, 0.2, 0.4, 0.8)),
       st.sampled_from(("additive", "ratio")))
def test_decoding_uno_lies_above_the_front_by_at_least_rho_times_covered_mass(pair, eps, form):
    # Derivation: with accepted mass u >= min(p, q) and UNO output u + rho p, the bias is
    # sum [u - (1 - rho) p]_+ while the front is sum [u - p]_+. Every x with q(x) >= p(x) > 0
    # has u(x) >= p(x) and adds rho p(x) to the difference, so gap >= rho * max of such p(x).
    target, draft = pair
    g = front_gap(rules.over_accept(eps, form=form, resample="target"), target, draft)
    covered = (draft >= target) & (target > 0)
    floor = g.rejection * target[covered].max() if covered.any() else 0.0
    assert g.gap >= floor - EXACT
    assert g.gap >= -EXACT


SEC74_UNO = [  # reference notes §7.4 rows with P(reject) > 0: (example, form, eps, rej, OPT, UNO)
    (EX1, "additive", 0.0, 0.3, 0.0, 0.15), (EX1, "additive", 0.1, 0.2, 0.1, 0.20),
    (EX1, "additive", 0.2, 0.1, 0.2, 0.25), (EX1, "ratio", 0.1, 0.25, 0.05, 0.175),
    (EX1, "ratio", 0.2, 0.2, 0.1, 0.20), (EX1, "ratio", 0.4, 0.1, 0.2, 0.25),
    (EX2, "additive", 0.0, 0.4, 0.0, 0.14), (EX2, "additive", 0.1, 0.2, 0.2, 0.26),
    (EX2, "additive", 0.2, 0.1, 0.3, 0.33), (EX2, "ratio", 0.1, 0.33, 0.07, 0.169),
    (EX2, "ratio", 0.2, 0.26, 0.14, 0.218), (EX2, "ratio", 0.4, 0.14, 0.26, 0.302),
]


@pytest.mark.parametrize("pair,form,eps,rej,opt,uno", SEC74_UNO)
def test_front_gap_of_uno_is_the_section_7_4_difference(pair, form, eps, rej, opt, uno):
    g = front_gap(rules.over_accept(eps, form=form, resample="target"), *pair)
    assert g.rejection == pytest.approx(rej, abs=EXACT)
    assert g.front == pytest.approx(opt, abs=EXACT)  # front at rho = Thm 4's Loss*
    assert g.bias == pytest.approx(uno, abs=EXACT)
    assert g.gap == pytest.approx(uno - opt, abs=EXACT) and g.gap > 0.01


@given(batched_pairs())
def test_front_gap_maps_over_leading_axes(pair):
    target, draft = pair
    g = front_gap(rules.over_accept(0.2, resample="target"), target, draft)
    assert g.gap.shape == target.shape[:1]
    for b in range(target.shape[0]):
        assert g.gap[b] == pytest.approx(
            front_gap(rules.over_accept(0.2, resample="target"), target[b], draft[b]).gap,
            abs=EXACT)


def test_front_is_zero_for_rules_that_reject_more_than_tv():
    # greedy on §7.4 example 1 accepts only the target's argmax (token 2, draft mass .2):
    # rejection .8 > TV = .3, so the front is 0 and the whole bias TV(delta_2, p) = .5 is gap
    g = front_gap(rules.greedy, *EX1)
    assert (g.rejection, g.bias, g.front, g.gap) == pytest.approx((0.8, 0.5, 0.0, 0.5), abs=EXACT)


def test_front_gap_refuses_multi_draft_rules_and_non_rules():
    with pytest.raises(ValueError, match="rule 'recursive\\(2\\)' uses M=2 drafts"):
        front_gap(rules.recursive(2), *EX1)
    with pytest.raises(TypeError, match="rule must be a scdsim rule"):
        front_gap("lossless", *EX1)


# ---------------------------------------------------------------------------------------------
# the optimal M-draft coupling (SpecTr LP) vs the min-cut closed form


@settings(max_examples=60)
@given(prob_pairs(max_size=4), st.integers(1, 3))
def test_coupling_lp_equals_the_min_cut_closed_form(pair, M):
    target, draft = pair
    assert optimal_acceptance_lp(target, draft, M) == pytest.approx(
        float(rules.acceptance_prob(rules.optimal(M), target, draft)), abs=LP_ATOL)


@given(prob_pairs(max_size=6))
def test_coupling_lp_with_one_draft_accepts_one_minus_tv(pair):
    target, draft = pair
    assert optimal_acceptance_lp(target, draft, 1) == pytest.approx(
        1 - half_l1(target, draft), abs=LP_ATOL)


@settings(max_examples=30)
@given(bernoulli_params(), st.integers(1, 4))
def test_coupling_lp_matches_the_bernoulli_closed_form(ab, M):
    # reference notes §6.3, Yin letters: draft Ber(a), target Ber(b); OPT = min(1, 2 - b - (1-a)^M)
    # for b > a and, relabelling the tokens, min(1, 1 + b - a^M) for b < a
    a, b = ab
    expected = min(1.0, 2 - b - (1 - a) ** M) if b > a else min(1.0, 1 + b - a**M)
    assert optimal_acceptance_lp(np.array([1 - b, b]), np.array([1 - a, a]), M) == pytest.approx(
        expected, abs=LP_ATOL)


SEC75_OPT = [  # reference notes §7.5 OPT columns, M = 1..4 (target, draft, values)
    (np.array([0.4, 0.6]), np.array([0.8, 0.2]), (0.6, 0.76, 0.888, 0.9904)),
    (np.array([0.1, 0.9]), np.array([0.5, 0.5]), (0.6, 0.85, 0.975, 1.0)),
    (np.array([0.7, 0.3]), np.array([0.3, 0.7]), (0.6, 0.81, 0.957, 1.0)),
    (EX1[0], EX1[1], (0.7, 0.86, 0.988, 1.0)),
    (EX2[0], EX2[1], (0.6, 0.79, 0.871, 0.9439)),
]


@pytest.mark.parametrize("target,draft,values", SEC75_OPT)
def test_coupling_lp_matches_section_7_5(target, draft, values):
    lp = [optimal_acceptance_lp(target, draft, M) for M in range(1, 5)]
    np.testing.assert_allclose(lp, values, rtol=0, atol=LP_ATOL)


def test_coupling_lp_maps_over_leading_axes():
    target = np.stack([EX1[0], EX1[1]])
    out = optimal_acceptance_lp(target, EX1[1], 2)
    assert out.shape == (2,)
    np.testing.assert_allclose(out, [0.86, 1.0], rtol=0, atol=LP_ATOL)


def test_coupling_lp_guards_its_size_naming_v_and_m():
    p = normalise(np.ones(12))
    with pytest.raises(ValueError, match=r"V=12, M=5\), above the limit 2000000"):
        optimal_acceptance_lp(p, p, 5)  # 12^6 = 2985984 variables


def test_coupling_lp_checks_m_and_the_laws():
    target, draft = EX1
    with pytest.raises(ValueError, match="M must be >= 1, got 0"):
        optimal_acceptance_lp(target, draft, 0)
    with pytest.raises(TypeError, match="M must be an integer"):
        optimal_acceptance_lp(target, draft, 1.5)
    with pytest.raises(ValueError, match="target has negative entries"):
        optimal_acceptance_lp(np.array([-0.1, 0.6, 0.5]), draft, 2)
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        rejection_lower_bound(target, np.array([0.5, 0.5]))


def test_result_types_are_the_documented_dataclasses():
    assert isinstance(pareto_front(*EX1, n=3), ParetoFront)
    g = front_gap(rules.lossless, *EX1)
    assert (g.rejection, g.bias, g.front) == pytest.approx((0.3, 0.0, 0.0), abs=EXACT)
