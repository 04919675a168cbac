"""Exact properties of the verification rules (scdsim.rules), in float64.

Expected numbers come from theory.md (section cited beside each) or from an independent
computation written out in this file (half-L1 total variation, a plain loop for the recursive
residual chain, the Bernoulli closed forms). theory.md uses Yin et al.'s letters (q = target,
p = draft); the conversion to our (target, draft) order is spelled out at each table.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import entr
from strategies import batched_pairs, bernoulli_params, normalise, prob_pairs

from scdsim import rules
from scdsim.rules import acceptance_prob, rejection_prob, sequential_parts, step_law

EXACT = 1e-12  # float64 identities
TABLE6 = 5e-7 + 1e-12  # theory.md prints 6 decimals: half a unit of the last digit
TABLE4 = 5e-5 + 1e-12  # rho* is printed with 4 decimals


def tv_half_l1(p, q):
    """TV as half the L1 distance: a different formula from the library's 1 - sum min."""
    return 0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum(axis=-1)


def rrs_rejection_loop(target, draft, M):
    """All-reject probability of recursive rejection sampling, by a plain loop (reference notes §6.3).

    ``R_M = prod_m TV(q, r_{m-1})`` with ``r_0 = p`` and ``r_m = norm([r_{m-1} - q]_+)``.
    """
    r = np.array(target, dtype=float)
    q = np.asarray(draft, dtype=float)
    prod = 1.0
    for _ in range(M):
        prod *= tv_half_l1(r, q)
        pos = np.maximum(r - q, 0.0)
        if pos.sum() == 0.0:  # r <= q everywhere: the next draft is accepted surely
            return 0.0
        r = pos / pos.sum()
    return prod


def ber(success):
    """Bernoulli law as a vector ``(P(0), P(1))``."""
    return np.array([1.0 - success, success])


# Edge-case pairs that must not produce NaN or divide by zero.
EDGE_PAIRS = {
    "equal": (np.array([0.2, 0.3, 0.5]), np.array([0.2, 0.3, 0.5])),
    "draft_zero_where_target_positive": (np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.5, 0.5])),
    "disjoint": (np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.4, 0.6])),
    "one_hot_equal": (np.array([0.0, 1.0]), np.array([0.0, 1.0])),
    "V1": (np.array([1.0]), np.array([1.0])),
}

SAMPLABLE = [
    rules.lossless,
    rules.greedy,
    rules.over_accept(0.1),
    rules.over_accept(0.2, form="ratio"),
    rules.over_accept(0.1, resample="target"),
    rules.over_accept(0.4, form="ratio", resample="target"),
    rules.lenient(0.5),
    rules.typical(0.09, 0.3),
    rules.recursive(1),
    rules.recursive(3),
    rules.kseq(1),
    rules.kseq(3),
]
EPS_GRID = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.5)


# ---------------------------------------------------------------------------------------------
# lossless SD (Leviathan §2.3, App. A.1; Yin Thm 1-2)


@given(prob_pairs())
def test_lossless_step_law_equals_target(pair):
    target, draft = pair
    np.testing.assert_allclose(step_law(rules.lossless, target, draft), target, rtol=0, atol=EXACT)


@given(prob_pairs())
def test_lossless_rejection_equals_tv(pair):
    target, draft = pair
    np.testing.assert_allclose(rejection_prob(rules.lossless, target, draft),
                               tv_half_l1(target, draft), rtol=0, atol=EXACT)


@given(batched_pairs())
def test_lossless_batched_rows_match_single_rows(pair):
    target, draft = pair
    law = step_law(rules.lossless, target, draft)
    rej = rejection_prob(rules.lossless, target, draft)
    assert law.shape == target.shape and rej.shape == target.shape[:1]
    for b in range(target.shape[0]):
        np.testing.assert_array_equal(law[b], step_law(rules.lossless, target[b], draft[b]))
        np.testing.assert_array_equal(rej[b], rejection_prob(rules.lossless, target[b], draft[b]))


def test_lossless_broadcasts_one_draft_against_a_batch_of_targets():
    target = np.array([[0.2, 0.3, 0.5], [0.6, 0.4, 0.0]])
    draft = np.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(rejection_prob(rules.lossless, target, draft), [0.3, 0.2],
                               rtol=0, atol=EXACT)
    np.testing.assert_allclose(step_law(rules.lossless, target, draft), target, rtol=0, atol=EXACT)


@pytest.mark.parametrize("name", sorted(EDGE_PAIRS))
def test_lossless_edge_pairs_are_finite_and_exact_without_dividing_by_zero(name):
    target, draft = EDGE_PAIRS[name]
    with np.errstate(all="raise"):  # any 0/0 or x/0 inside the kernel raises here
        law = step_law(rules.lossless, target, draft)
        parts = sequential_parts(rules.lossless, target, draft)
        acc, rho, resid, all_reject = parts.accepted, parts.rho, parts.residual, parts.all_reject
    for arr in (law, acc, rho, resid, all_reject):
        assert np.all(np.isfinite(arr))
    np.testing.assert_allclose(law, target, rtol=0, atol=EXACT)
    np.testing.assert_allclose(all_reject, tv_half_l1(target, draft), rtol=0, atol=EXACT)


def test_lossless_equal_pair_never_rejects():
    p = np.array([0.2, 0.3, 0.5])
    assert rejection_prob(rules.lossless, p, p) == 0.0
    np.testing.assert_array_equal(rules.lossless.acceptances(p, p), np.ones((1, 3)))


def test_lossless_draft_token_impossible_under_target_is_always_rejected():
    # q(x) > 0 = p(x): the token is accepted with probability exactly 0
    a = rules.lossless.acceptances(np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.5, 0.5]))
    assert a[0, 2] == 0.0


# reference notes §7.2 (Yin letters p_draft, q_target -> target = q, draft = p)
SEC72 = [
    # target, draft, TV, residual norm([target - draft]_+)
    ((0.2, 0.3, 0.5), (0.5, 0.3, 0.2), 0.3, (0.0, 0.0, 1.0)),
    ((0.1, 0.2, 0.3, 0.4), (0.4, 0.3, 0.2, 0.1), 0.4, (0.0, 0.0, 0.25, 0.75)),
]


@pytest.mark.parametrize("target,draft,tv_value,resid", SEC72)
def test_lossless_single_step_identities_of_section_7_2(target, draft, tv_value, resid):
    assert rejection_prob(rules.lossless, target, draft) == pytest.approx(tv_value, abs=EXACT)
    assert acceptance_prob(rules.lossless, target, draft) == pytest.approx(1 - tv_value, abs=EXACT)
    np.testing.assert_allclose(rules.lossless.residual(np.array(target), np.array(draft)), resid,
                               rtol=0, atol=EXACT)


# ---------------------------------------------------------------------------------------------
# over-acceptance: Decoding-OPT and Decoding-UNO (Yin Thms 4-5)


@given(prob_pairs(), st.sampled_from(EPS_GRID), st.sampled_from(("additive", "ratio")))
def test_over_accept_opt_lies_exactly_on_the_pareto_front(pair, eps, form):
    # Yin Thm 5: P(reject) + Loss*_TV = TV(p, q) for over-accepting b with Thm 4's residual
    target, draft = pair
    rule = rules.over_accept(eps, form=form, resample="optimal")
    bias = tv_half_l1(step_law(rule, target, draft), target)
    assert rejection_prob(rule, target, draft) + bias == pytest.approx(
        tv_half_l1(target, draft), abs=EXACT)


@given(prob_pairs(), st.sampled_from(("additive", "ratio")))
def test_over_accept_opt_with_eps_zero_is_lossless(pair, form):
    target, draft = pair
    rule = rules.over_accept(0.0, form=form)
    np.testing.assert_array_equal(rule.acceptances(target, draft),
                                  rules.lossless.acceptances(target, draft))
    np.testing.assert_allclose(step_law(rule, target, draft), target, rtol=0, atol=EXACT)


@given(prob_pairs(), st.sampled_from(EPS_GRID), st.sampled_from(("additive", "ratio")))
def test_over_accept_uno_never_beats_the_front_and_shares_opts_rejection(pair, eps, form):
    target, draft = pair
    opt = rules.over_accept(eps, form=form, resample="optimal")
    uno = rules.over_accept(eps, form=form, resample="target")
    rej = rejection_prob(uno, target, draft)
    assert rej == rejection_prob(opt, target, draft)
    uno_bias = tv_half_l1(step_law(uno, target, draft), target)
    assert uno_bias >= tv_half_l1(target, draft) - rej - EXACT


# reference notes §7.4. Yin's b_eps in their letters: min{1,(q+eps)/p} is our form="additive",
# min{1, q/p + eps} our form="ratio" (their q = our target, their p = our draft).
EX1 = ((0.2, 0.3, 0.5), (0.5, 0.3, 0.2), (0.0, 0.0, 1.0))  # target, draft, P*
EX2 = ((0.1, 0.2, 0.3, 0.4), (0.4, 0.3, 0.2, 0.1), (0.0, 0.0, 0.25, 0.75))
SEC74 = [
    # example, form, eps, P(reject), Loss*_TV (OPT), Loss_TV with P = target (UNO)
    (EX1, "additive", 0.0, 0.3, 0.0, 0.15),
    (EX1, "additive", 0.1, 0.2, 0.1, 0.20),
    (EX1, "additive", 0.2, 0.1, 0.2, 0.25),
    (EX1, "additive", 0.4, 0.0, 0.3, 0.30),
    (EX1, "additive", 0.8, 0.0, 0.3, 0.30),
    (EX1, "ratio", 0.1, 0.25, 0.05, 0.175),
    (EX1, "ratio", 0.2, 0.2, 0.1, 0.20),
    (EX1, "ratio", 0.4, 0.1, 0.2, 0.25),
    (EX1, "ratio", 0.8, 0.0, 0.3, 0.30),
    (EX2, "additive", 0.0, 0.4, 0.0, 0.14),
    (EX2, "additive", 0.1, 0.2, 0.2, 0.26),
    (EX2, "additive", 0.2, 0.1, 0.3, 0.33),
    (EX2, "additive", 0.4, 0.0, 0.4, 0.40),
    (EX2, "ratio", 0.1, 0.33, 0.07, 0.169),
    (EX2, "ratio", 0.2, 0.26, 0.14, 0.218),
    (EX2, "ratio", 0.4, 0.14, 0.26, 0.302),
    (EX2, "ratio", 0.8, 0.0, 0.4, 0.40),
]


@pytest.mark.parametrize("example,form,eps,rej,loss_opt,loss_uno", SEC74)
def test_over_accept_reproduces_section_7_4(example, form, eps, rej, loss_opt, loss_uno):
    target, draft, p_star = (np.array(v) for v in example)
    opt = rules.over_accept(eps, form=form, resample="optimal")
    uno = rules.over_accept(eps, form=form, resample="target")
    assert rejection_prob(opt, target, draft) == pytest.approx(rej, abs=EXACT)
    assert rejection_prob(uno, target, draft) == pytest.approx(rej, abs=EXACT)
    assert tv_half_l1(step_law(opt, target, draft), target) == pytest.approx(loss_opt, abs=EXACT)
    assert tv_half_l1(step_law(uno, target, draft), target) == pytest.approx(loss_uno, abs=EXACT)
    if rej > 0:  # Thm 4's optimal residual; it is never used when nothing is rejected
        np.testing.assert_allclose(opt.residual(target, draft), p_star, rtol=0, atol=EXACT)
        # UNO is strictly above the front wherever it rejects at all
        assert loss_uno > loss_opt + 0.01


# ---------------------------------------------------------------------------------------------
# lenient SD (Leviathan App. A.5)


@given(prob_pairs(), st.sampled_from((1.0, 0.9, 0.5, 0.3, 0.1, 1e-3)))
def test_lenient_lies_on_the_pareto_front(pair, l):
    target, draft = pair
    rule = rules.lenient(l)
    bias = tv_half_l1(step_law(rule, target, draft), target)
    assert rejection_prob(rule, target, draft) + bias == pytest.approx(
        tv_half_l1(target, draft), abs=EXACT)


@given(prob_pairs(), st.sampled_from((1.0, 0.9, 0.5, 0.3, 0.1, 1e-3)))
def test_lenient_acceptance_is_sum_of_min_target_over_l_and_draft(pair, l):
    target, draft = pair
    expected = sum(min(pt / l, qd) for pt, qd in zip(target, draft))
    assert acceptance_prob(rules.lenient(l), target, draft) == pytest.approx(expected, abs=EXACT)


@pytest.mark.parametrize("l,alpha", [(1.0, 0.70), (0.5, 0.90), (0.3, 1.00), (0.1, 1.00)])
def test_lenient_acceptance_matches_section_7_1(l, alpha):
    # reference notes §7.1, Leviathan letters: target P = (.5,.3,.2), draft Q = (.2,.3,.5)
    target, draft = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])
    assert acceptance_prob(rules.lenient(l), target, draft) == pytest.approx(alpha, abs=EXACT)


@given(prob_pairs())
def test_lenient_with_l_one_is_lossless(pair):
    target, draft = pair
    np.testing.assert_allclose(step_law(rules.lenient(1.0), target, draft), target,
                               rtol=0, atol=EXACT)


# ---------------------------------------------------------------------------------------------
# recursive rejection sampling (SpecInfer; reference notes §1.6, §6.3)


@given(prob_pairs(), st.integers(1, 5))
def test_recursive_is_unbiased(pair, M):
    target, draft = pair
    np.testing.assert_allclose(step_law(rules.recursive(M), target, draft), target,
                               rtol=0, atol=EXACT)


@given(prob_pairs(), st.integers(1, 5))
def test_recursive_rejection_is_the_product_formula(pair, M):
    target, draft = pair
    assert rejection_prob(rules.recursive(M), target, draft) == pytest.approx(
        rrs_rejection_loop(target, draft, M), abs=EXACT)


@given(batched_pairs(), st.integers(1, 4))
def test_recursive_batched_rows_match_single_rows(pair, M):
    target, draft = pair
    rej = rejection_prob(rules.recursive(M), target, draft)
    for b in range(target.shape[0]):
        assert rej[b] == pytest.approx(rrs_rejection_loop(target[b], draft[b], M), abs=EXACT)


@given(bernoulli_params(), st.integers(1, 6))
def test_recursive_and_optimal_match_the_bernoulli_closed_forms(ab, M):
    # reference notes §1.6 / §6.3 in Yin letters: draft p = Ber(a), target q = Ber(b)
    a, b = ab
    target, draft = ber(b), ber(a)
    if b > a:
        R = (b - a) * (1 - a) ** (M - 1)
        BI = (b - a) * (1 - (1 - a) ** (M - 1))
        opt = min(1.0, 2 - b - (1 - a) ** M)
    else:  # relabel the two tokens: a -> 1 - a, b -> 1 - b
        R = (a - b) * a ** (M - 1)
        BI = (a - b) * (1 - a ** (M - 1))
        opt = min(1.0, 1 + b - a**M)
    rrs_rejection = rejection_prob(rules.recursive(M), target, draft)
    assert rrs_rejection == pytest.approx(R, abs=EXACT)
    assert abs(b - a) - rrs_rejection == pytest.approx(BI, abs=EXACT)
    opt_acceptance = acceptance_prob(rules.optimal(M), target, draft)
    assert opt_acceptance == pytest.approx(opt, abs=EXACT)
    if b > a and opt < 1:  # §6.3: OPT - RRS = (1 - b)(1 - (1 - a)^(M-1)) below saturation
        assert opt_acceptance - (1 - rrs_rejection) == pytest.approx(
            (1 - b) * (1 - (1 - a) ** (M - 1)), abs=EXACT)


# reference notes §7.5, Yin letters: "p = Ber(x) draft, q = Ber(y) target" -> target ber(y), draft ber(x)
BERNOULLI_TABLES = {
    (0.2, 0.6): dict(
        R=(0.4, 0.32, 0.256, 0.2048, 0.16384),
        BI=(0.0, 0.08, 0.144, 0.1952, 0.23616),
        RRS=(0.6, 0.68, 0.744, 0.7952, 0.83616),
        OPT=(0.6, 0.76, 0.888, 0.9904, 1.0),
        KSEQ=(0.6, 0.708062, 0.789674, 0.850077, 0.894194),
        RHO=(1.0, 1.5403, 1.9484, 2.2504, 2.4710),
    ),
    (0.5, 0.9): dict(
        R=(0.4, 0.2, 0.1, 0.05, 0.025),
        BI=(0.0, 0.2, 0.3, 0.35, 0.375),
        RRS=(0.6, 0.8, 0.9, 0.95, 0.975),
        OPT=(0.6, 0.85, 0.975, 1.0, 1.0),
        KSEQ=(0.6, 0.815037, 0.915573, 0.961838, 0.982868),
    ),
    (0.7, 0.3): dict(
        R=(0.4, 0.28, 0.196, 0.1372, 0.09604),
        BI=(0.0, 0.12, 0.204, 0.2628, 0.30396),
        RRS=(0.6, 0.72, 0.804, 0.8628, 0.90396),
        OPT=(0.6, 0.81, 0.957, 1.0, 1.0),
        KSEQ=(0.6, 0.75, 0.846578, 0.907290, 0.944727),
    ),
}
# draft p = (.5,.3,.2), target q = (.2,.3,.5) and draft (.4,.3,.2,.1), target (.1,.2,.3,.4)
CATEGORICAL_TABLES = {
    "three": dict(
        target=(0.2, 0.3, 0.5), draft=(0.5, 0.3, 0.2), tv=0.3,
        R=(0.3, 0.24, 0.192, 0.1536, 0.12288),
        BI=(0.0, 0.06, 0.108, 0.1464, 0.17712),
        OPT=(0.7, 0.86, 0.988, 1.0, 1.0),
        KSEQ=(0.7, 0.791355, 0.858519, 0.906007, 0.938730),
    ),
    "four": dict(
        target=(0.1, 0.2, 0.3, 0.4), draft=(0.4, 0.3, 0.2, 0.1), tv=0.4,
        R=(0.4, 0.28, 0.232, 0.2088, 0.18792),
        OPT=(0.6, 0.79, 0.871, 0.9439, 1.0),
        KSEQ=(0.6, 0.75, 0.793950, 0.831438, 0.863053),
    ),
}


def _section_7_5_cases():
    for (a, b), table in BERNOULLI_TABLES.items():
        yield f"Ber{a}->Ber{b}", ber(b), ber(a), 0.4, table
    for name, table in CATEGORICAL_TABLES.items():
        yield name, np.array(table["target"]), np.array(table["draft"]), table["tv"], table


SEC75 = list(_section_7_5_cases())
SEC75_IDS = [case[0] for case in SEC75]


@pytest.mark.parametrize("name,target,draft,tv_value,table", SEC75, ids=SEC75_IDS)
@pytest.mark.parametrize("M", [1, 2, 3, 4, 5])
def test_recursive_matches_section_7_5(name, target, draft, tv_value, table, M):
    R = rejection_prob(rules.recursive(M), target, draft)
    assert tv_half_l1(target, draft) == pytest.approx(tv_value, abs=EXACT)
    assert R == pytest.approx(table["R"][M - 1], abs=EXACT)
    if "BI" in table:
        assert tv_value - R == pytest.approx(table["BI"][M - 1], abs=EXACT)
    if "RRS" in table:
        assert 1 - R == pytest.approx(table["RRS"][M - 1], abs=EXACT)


@pytest.mark.parametrize("name,target,draft,tv_value,table", SEC75, ids=SEC75_IDS)
@pytest.mark.parametrize("M", [1, 2, 3, 4, 5])
def test_optimal_matches_section_7_5(name, target, draft, tv_value, table, M):
    assert acceptance_prob(rules.optimal(M), target, draft) == pytest.approx(
        table["OPT"][M - 1], abs=EXACT)


@pytest.mark.parametrize("name,target,draft,tv_value,table", SEC75, ids=SEC75_IDS)
@pytest.mark.parametrize("M", [1, 2, 3, 4, 5])
def test_kseq_matches_section_7_5(name, target, draft, tv_value, table, M):
    rule = rules.kseq(M)
    assert acceptance_prob(rule, target, draft) == pytest.approx(table["KSEQ"][M - 1], abs=TABLE6)
    if "RHO" in table:
        assert float(rule.rho(target, draft)) == pytest.approx(table["RHO"][M - 1], abs=TABLE4)


def test_recursive_per_draft_rejections_match_section_7_5():
    # reference notes §7.5 four-token case: per-draft RRS rejection probabilities .4, .7, .828571, .9
    target, draft = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.4, 0.3, 0.2, 0.1])
    rho = sequential_parts(rules.recursive(4), target, draft).rho
    np.testing.assert_allclose(rho, [0.4, 0.7, 0.828571, 0.9], rtol=0, atol=TABLE6)
    np.testing.assert_allclose(rho[2], 0.58 / 0.7, rtol=0, atol=EXACT)  # = .828571...


def test_recursive_residual_chain_matches_section_7_5():
    # reference notes §7.5 three-token case: r_0 = target, then r_1 = r_2 = r_3 = delta_2
    target, draft = np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.3, 0.2])
    chain = rules.recursive(3).residual_chain(target, draft)
    np.testing.assert_allclose(chain, [target, [0, 0, 1], [0, 0, 1], [0, 0, 1]], rtol=0, atol=EXACT)


# reference notes §7.5 uniform table: draft p = Unif(V), target q = delta_0; BI_M for M = 1..5
UNIFORM_BI = {
    2: (0.0, 0.25, 0.375, 0.4375, 0.46875),
    4: (0.0, 0.1875, 0.328125, 0.433594, 0.512695),
    8: (0.0, 0.109375, 0.205078, 0.288818, 0.362091),
    16: (0.0, 0.058594, 0.113525, 0.165024, 0.213304),
    32: (0.0, 0.030273, 0.059601, 0.088012, 0.115535),
}


@pytest.mark.parametrize("V", sorted(UNIFORM_BI))
@pytest.mark.parametrize("M", [1, 2, 3, 4, 5])
def test_recursive_batch_improvement_matches_uniform_table(V, M):
    target, draft = np.eye(V)[0], np.full(V, 1.0 / V)
    bi = (1 - 1 / V) - rejection_prob(rules.recursive(M), target, draft)
    assert bi == pytest.approx(UNIFORM_BI[V][M - 1], abs=TABLE6)
    # reference notes §1.6 closed form BI_M = (1 - 1/V)(1 - (1 - 1/V)^(M-1))
    assert bi == pytest.approx((1 - 1 / V) * (1 - (1 - 1 / V) ** (M - 1)), abs=EXACT)


# ---------------------------------------------------------------------------------------------
# k-SEQ (SpecTr; reference notes §6.1)


def kseq_parts(target, draft, rho, M):
    """beta(rho), acceptance and the unnormalised residual of reference notes §6.1 (our letters)."""
    m = np.minimum(draft, target / rho)
    beta = m.sum()
    accept = 1 - (1 - beta) ** M
    resid = target - m * (accept / beta if beta > 0 else 0.0)
    return beta, accept, resid


@given(prob_pairs(), st.integers(1, 5))
def test_kseq_is_unbiased(pair, M):
    target, draft = pair
    np.testing.assert_allclose(step_law(rules.kseq(M), target, draft), target, rtol=0, atol=EXACT)


@given(prob_pairs(), st.integers(1, 5))
def test_kseq_rho_is_valid_and_its_residual_nonnegative(pair, M):
    target, draft = pair
    rule = rules.kseq(M)
    rho = float(rule.rho(target, draft))
    assert 1.0 <= rho <= M
    beta, accept, resid = kseq_parts(target, draft, rho, M)
    assert accept <= rho * beta + EXACT  # validity condition of §6.1
    assert resid.min() >= -EXACT
    assert acceptance_prob(rule, target, draft) == pytest.approx(accept, abs=EXACT)


def test_kseq_rho_is_the_smallest_valid_division_factor():
    # Ber(0.2) draft, Ber(0.6) target (§7.5): just below rho* the validity condition fails
    target, draft = ber(0.6), ber(0.2)
    for M in (2, 3, 4, 5):
        rho = float(rules.kseq(M).rho(target, draft))
        beta, accept, _ = kseq_parts(target, draft, rho - 1e-6, M)
        assert accept > (rho - 1e-6) * beta


# ---------------------------------------------------------------------------------------------
# the optimal coupling (SpecTr OTM-k, Khisti et al.)


@given(prob_pairs(max_size=8), st.integers(1, 4))
def test_optimal_acceptance_dominates_recursive_and_kseq(pair, M):
    target, draft = pair
    opt = acceptance_prob(rules.optimal(M), target, draft)
    assert opt >= acceptance_prob(rules.recursive(M), target, draft) - EXACT
    assert opt >= acceptance_prob(rules.kseq(M), target, draft) - EXACT


@given(prob_pairs())
def test_optimal_with_one_draft_accepts_with_one_minus_tv(pair):
    target, draft = pair
    assert acceptance_prob(rules.optimal(1), target, draft) == pytest.approx(
        1 - tv_half_l1(target, draft), abs=EXACT)


@given(prob_pairs(max_size=8), st.integers(1, 4))
def test_optimal_step_law_is_the_target(pair, M):
    target, draft = pair
    np.testing.assert_array_equal(step_law(rules.optimal(M), target, draft), target)


def test_optimal_refuses_vocabularies_above_22():
    p = normalise(np.ones(23))
    with pytest.raises(ValueError, match="V=23 exceeds the limit 22"):
        rejection_prob(rules.optimal(2), p, p)


def test_optimal_has_no_sequential_form():
    p = np.array([0.5, 0.5])
    with pytest.raises(TypeError, match="no sequential acceptance form"):
        rules.optimal(2).acceptances(p, p)
    with pytest.raises(TypeError, match="no residual law"):
        rules.optimal(2).residual(p, p)


# ---------------------------------------------------------------------------------------------
# greedy and typical acceptance


@given(prob_pairs())
def test_greedy_step_law_is_the_one_hot_argmax_of_the_target(pair):
    target, draft = pair
    top = int(np.flatnonzero(target == target.max())[0])  # first index on ties
    np.testing.assert_array_equal(step_law(rules.greedy, target, draft), np.eye(len(target))[top])
    assert rejection_prob(rules.greedy, target, draft) == pytest.approx(1 - draft[top], abs=EXACT)


@given(prob_pairs(), st.sampled_from((0.0, 0.05, 0.09, 0.3, 1.0)), st.sampled_from((0.0, 0.3, 2.0)))
def test_typical_acceptance_is_the_documented_indicator(pair, eps, delta):
    # Medusa: accept x iff p(x) > min(eps, delta exp(-H(p))), H in nats; on rejection draw p
    target, draft = pair
    H = entr(target).sum()
    accept = (target > min(eps, delta * math.exp(-H))).astype(float)
    rule = rules.typical(eps, delta)
    alpha = float((draft * accept).sum())
    assert acceptance_prob(rule, target, draft) == pytest.approx(alpha, abs=EXACT)
    np.testing.assert_allclose(step_law(rule, target, draft),
                               draft * accept + (1 - alpha) * target, rtol=0, atol=EXACT)


# ---------------------------------------------------------------------------------------------
# one implementation for numpy and torch


@pytest.mark.torch
@pytest.mark.parametrize("rule", SAMPLABLE + [rules.optimal(3)], ids=str)
@given(pair=batched_pairs(max_batch=3, max_size=6))
def test_torch_float64_matches_numpy(rule, pair):
    torch = pytest.importorskip("torch")
    target, draft = pair
    tt, td = torch.tensor(target, dtype=torch.float64), torch.tensor(draft, dtype=torch.float64)
    law, rej = step_law(rule, tt, td), rejection_prob(rule, tt, td)
    assert isinstance(law, torch.Tensor) and law.dtype == torch.float64
    np.testing.assert_allclose(law.numpy(), step_law(rule, target, draft), rtol=0, atol=EXACT)
    np.testing.assert_allclose(rej.numpy(), rejection_prob(rule, target, draft), rtol=0, atol=EXACT)


# ---------------------------------------------------------------------------------------------
# error paths


GOOD = np.array([0.2, 0.3, 0.5])


@pytest.mark.parametrize("bad,msg", [
    (np.array([-0.1, 0.6, 0.5]), "has negative entries"),
    (np.array([np.nan, 0.5, 0.5]), "contains NaN or infinite"),
    (np.array([0.2, 0.3, 0.6]), "rows must sum to 1"),
    (np.array([np.inf, 0.0, 0.0]), "contains NaN or infinite"),
])
@pytest.mark.parametrize("role", ["target", "draft"])
def test_bad_probabilities_are_rejected_naming_the_argument(bad, msg, role):
    args = (bad, GOOD) if role == "target" else (GOOD, bad)
    for fn in (step_law, rejection_prob):
        with pytest.raises(ValueError, match=f"{role} {msg}"):
            fn(rules.lossless, *args)


def test_vocabulary_mismatch_is_rejected():
    with pytest.raises(ValueError, match="vocabulary mismatch: target has V=3, draft has V=2"):
        step_law(rules.lossless, GOOD, np.array([0.5, 0.5]))


def test_non_broadcasting_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"shape mismatch: target \(2, 3\) and draft \(3, 3\)"):
        rejection_prob(rules.lossless, np.tile(GOOD, (2, 1)), np.tile(GOOD, (3, 1)))


def test_non_array_probabilities_are_rejected():
    with pytest.raises(TypeError, match="draft must be an array of probabilities"):
        step_law(rules.lossless, GOOD, "uniform")


@pytest.mark.parametrize("factory", [rules.recursive, rules.kseq, rules.optimal])
def test_number_of_drafts_must_be_a_positive_integer(factory):
    with pytest.raises(ValueError, match="M must be >= 1, got 0"):
        factory(0)
    with pytest.raises(TypeError, match=r"M must be an integer, got 2\.0"):
        factory(2.0)
    with pytest.raises(TypeError, match="M must be an integer, got True"):
        factory(True)


def test_over_accept_parameters_are_checked():
    with pytest.raises(ValueError, match=r"eps must lie in \[0\.0, inf\], got -0\.1"):
        rules.over_accept(-0.1)
    with pytest.raises(ValueError, match="eps must be finite"):
        rules.over_accept(math.nan)
    with pytest.raises(ValueError, match="form must be one of .*got 'multiplicative'"):
        rules.over_accept(0.1, form="multiplicative")
    with pytest.raises(ValueError, match="resample must be one of .*got 'draft'"):
        rules.over_accept(0.1, resample="draft")


@pytest.mark.parametrize("l", [0.0, -0.5, 1.5])
def test_lenience_must_lie_in_the_half_open_unit_interval(l):
    with pytest.raises(ValueError, match=rf"l must lie in \(0\.0, 1\.0\], got {l}"):
        rules.lenient(l)


def test_typical_parameters_are_checked():
    with pytest.raises(ValueError, match="eps must lie in"):
        rules.typical(1.5, 0.3)
    with pytest.raises(ValueError, match="delta must lie in"):
        rules.typical(0.09, -1.0)


@pytest.mark.parametrize("fn", [step_law, rejection_prob, acceptance_prob])
@pytest.mark.parametrize("not_a_rule", ["lossless", rules.recursive, None])
def test_a_non_rule_is_rejected(fn, not_a_rule):
    with pytest.raises(TypeError, match="rule must be a scdsim rule"):
        fn(not_a_rule, GOOD, GOOD)


def test_single_draft_rules_refuse_other_draft_counts():
    assert rules.lossless.with_drafts(1) is rules.lossless
    with pytest.raises(ValueError, match="defined for M=1 drafts only, not 3"):
        rules.lossless.with_drafts(3)
    assert rules.recursive(2).with_drafts(4) == rules.recursive(4)
