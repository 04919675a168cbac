"""The decoding process (scdsim.process): one validated Scheme, a rule's outputs checked once per
position on the path every engine takes, gamma clipped to the horizon, rule specs."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from scdsim import chains, rules
from scdsim.exact import markov as mk
from scdsim.montecarlo import simulate
from scdsim.process import BONUS_STEP_ATOL, Scheme
from scdsim.rules import Rule, rejection_prob, step_law

P3, Q3 = np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.3, 0.2])
YIN = chains.yin_example()


# --------------------------------------------------------------------------------------------
# user-written rules with malformed outputs: refused by name on every path


class NoMAxis(Rule):
    """Lossless acceptances without the M axis: (..., V) instead of (..., 1, V)."""

    name = "no-m-axis"

    def acceptances(self, p, q):
        return rules.lossless.acceptances(p, q)[..., 0, :]

    def residual(self, p, q):
        return rules.lossless.residual(p, q)


class AboveOne(Rule):
    name = "above-one"

    def acceptances(self, p, q):
        return 2.0 * rules.lossless.acceptances(p, q)

    def residual(self, p, q):
        return rules.lossless.residual(p, q)


class NaNAcceptance(Rule):
    name = "nan-acceptance"

    def acceptances(self, p, q):
        a = np.array(rules.lossless.acceptances(p, q))
        a[..., 0] = np.nan
        return a

    def residual(self, p, q):
        return rules.lossless.residual(p, q)


class HalfResidual(Rule):
    """The classic bug: the positive part ``[p - q]_+`` used without normalising."""

    name = "unnormalised-residual"

    def acceptances(self, p, q):
        return rules.lossless.acceptances(p, q)

    def residual(self, p, q):
        return np.clip(p - q, 0.0, None)


class NegativeResidual(Rule):
    """``p - q`` without the positive part, renormalised: sums to 1 but has negative entries."""

    name = "negative-residual"

    def acceptances(self, p, q):
        return rules.lossless.acceptances(p, q)

    def residual(self, p, q):
        r = p - q
        r[..., -1] += 1.0 - r.sum(axis=-1)
        return r


class BadBonus(Rule):
    name = "bad-bonus"

    def acceptances(self, p, q):
        return rules.lossless.acceptances(p, q)

    def residual(self, p, q):
        return rules.lossless.residual(p, q)

    def bonus(self, p):
        return 0.5 * p


BAD = [
    (NoMAxis(), r"no-m-axis: acceptances must have shape \(\.\.\., M, V\)"),
    (AboveOne(), r"above-one: acceptance probabilities must lie in \[0, 1\]"),
    (NaNAcceptance(), r"nan-acceptance: acceptance probabilities must lie in \[0, 1\]"),
    (HalfResidual(), r"unnormalised-residual: residual rows must sum to 1"),
    (NegativeResidual(), r"negative-residual: residual law has negative entries"),
]
IDS = [r.name for r, _ in BAD]


@pytest.mark.parametrize("rule,match", BAD, ids=IDS)
def test_step_law_refuses_a_malformed_rule_by_name(rule, match):
    with pytest.raises(ValueError, match=match):
        step_law(rule, P3, Q3)


@pytest.mark.parametrize("rule,match", BAD, ids=IDS)
def test_rejection_prob_refuses_a_malformed_rule_by_name(rule, match):
    with pytest.raises(ValueError, match=match):
        rejection_prob(rule, P3, Q3)


@pytest.mark.parametrize("rule,match", BAD, ids=IDS)
@pytest.mark.parametrize("gamma", [None, 2])
def test_exact_engine_refuses_a_malformed_rule_by_name(rule, match, gamma):
    with pytest.raises(ValueError, match=match):
        mk.expected_rejections(YIN, rule, 4, gamma=gamma)
    with pytest.raises(ValueError, match=match):
        mk.exact_joint_law(YIN, rule, 3, gamma=gamma)


@pytest.mark.parametrize("rule,match", BAD, ids=IDS)
def test_monte_carlo_engine_refuses_a_malformed_rule_by_name(rule, match):
    with pytest.raises(ValueError, match=match):
        simulate(YIN, rule, 4, runs=64, rng=0)


def test_a_bonus_law_that_is_not_a_law_is_refused_by_both_engines():
    with pytest.raises(ValueError, match="bad-bonus: bonus rows must sum to 1"):
        mk.expected_rejections(YIN, BadBonus(), 4, gamma=1)
    with pytest.raises(ValueError, match="bad-bonus: bonus rows must sum to 1"):
        simulate(YIN, BadBonus(), 4, gamma=1, runs=64, rng=0)
    # drafting to the horizon never draws a bonus token: the bonus law is not asked for
    assert mk.expected_rejections(YIN, BadBonus(), 4) == pytest.approx(
        mk.expected_rejections(YIN, rules.lossless, 4), abs=1e-15)


def test_a_rule_returning_something_that_is_no_array_is_named():
    class ListRule(Rule):
        name = "list-rule"

        def acceptances(self, p, q):
            return [[1.0, 1.0, 1.0]]

        def residual(self, p, q):
            return None

    with pytest.raises(ValueError, match="list-rule: acceptances .* got a list, not an array"):
        step_law(ListRule(), P3, Q3)


def test_the_malformed_rules_would_give_wrong_numbers_unchecked():
    """Negative control for the checks: computed by hand, each malformed rule's step law is
    not a law or not the target, so a silent pass would be a wrong number."""
    a = np.minimum(1.0, P3 / Q3)
    half = np.clip(P3 - Q3, 0.0, None)
    step_half = Q3 * a + (1 - np.sum(Q3 * a)) * half
    assert abs(step_half.sum() - 1.0) > 0.1
    step_above = np.minimum(1.0, Q3 * 2 * a)
    assert np.abs(step_above - P3).max() > 0.1


def test_a_bare_rule_says_what_to_implement():
    with pytest.raises(NotImplementedError, match=r"Rule.acceptances\(p, q\) is not implemented.*"
                                                  r"shape \(\.\.\., M, V\)"):
        Rule().acceptances(P3, Q3)
    with pytest.raises(NotImplementedError, match=r"residual\(p, q\) is not implemented.*sum to 1"):
        Rule().residual(P3, Q3)
    with pytest.raises(NotImplementedError, match="acceptances"):
        step_law(Rule(), P3, Q3)


def test_a_rule_returning_rows_that_broadcast_is_accepted_and_exact():
    class SharedRows(Rule):
        name = "shared-rows"

        def acceptances(self, p, q):
            return rules.lossless.acceptances(p, q)

        def residual(self, p, q):
            return rules.lossless.residual(p, q)[:1] + 0 * p[:1]  # (1, V) for every row

    P = np.array([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5]])
    Q = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
    np.testing.assert_allclose(step_law(SharedRows(), P, Q), P, rtol=0, atol=1e-15)


# --------------------------------------------------------------------------------------------
# the Scheme


def test_scheme_modes_and_draft_counts():
    assert Scheme(rules.lossless, batch="tree").mode == "single"
    assert Scheme(rules.recursive(3)).draft_counts == (1, 3)
    assert Scheme(rules.recursive(3), batch="tree").draft_counts == (1, 2, 3)
    assert Scheme(rules.recursive(3), batch="tree").rule_for(2) == rules.recursive(2)
    assert Scheme(rules.kseq(2)).rule_for(1) == rules.kseq(1)
    with pytest.raises(ValueError, match="never verifies 2 drafts"):
        Scheme(rules.recursive(3)).rule_for(2)
    assert repr(Scheme(rules.recursive(2), 4)) == "Scheme(rules.recursive(2), gamma=4, batch='first')"


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(rule="lossless"), TypeError, "rule must be a scdsim rule"),
    (dict(rule=rules.optimal(2)), TypeError, r"optimal\(2\) has no sequential"),
    (dict(rule=rules.lossless, gamma=-1), ValueError, "gamma must be >= 0, got -1"),
    (dict(rule=rules.lossless, gamma=1.5), TypeError, "gamma must be an integer"),
    (dict(rule=rules.lossless, batch="depth"), ValueError, "batch must be one of"),
])
def test_scheme_is_validated_once_with_clear_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Scheme(**kwargs)


def test_scheme_is_frozen_and_compares_by_value():
    s = Scheme(rules.recursive(2), 3)
    assert s == Scheme(rules.recursive(2), 3) != Scheme(rules.recursive(2), 4)
    with pytest.raises(AttributeError):
        s.gamma = 5


def test_bonus_step_tolerance_is_one_number_for_both_engines():
    from scdsim import montecarlo
    from scdsim.exact import markov

    assert BONUS_STEP_ATOL == 1e-14
    for mod in (montecarlo, markov):
        assert not any(n in vars(mod) for n in ("_FOLD_ATOL", "_STEP_ATOL"))


@pytest.mark.parametrize("gamma", [10**6, 10**9])
def test_a_gamma_past_the_horizon_is_clipped_not_built(gamma):
    pair = chains.dirichlet_pair(6, 0.3, seed=2)
    ref_e = mk.expected_rejections(pair, rules.lossless, 4, gamma=4)
    t0 = time.perf_counter()
    assert mk.expected_rejections(pair, rules.lossless, 4, gamma=gamma) == pytest.approx(
        ref_e, abs=1e-15)
    bs, ref = mk.block_stats(pair, rules.lossless, 4, gamma), mk.block_stats(pair, rules.lossless,
                                                                             4, 4)
    assert bs.expected_target_calls == pytest.approx(ref.expected_target_calls, abs=1e-15)
    assert bs.expected_draft_tokens == pytest.approx(ref.expected_draft_tokens, abs=1e-12)
    a = simulate(pair, rules.lossless, 4, gamma=gamma, runs=500, rng=3)
    b = simulate(pair, rules.lossless, 4, gamma=4, runs=500, rng=3)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.draft_tokens, b.draft_tokens)
    assert a.gamma == gamma  # the result reports what was asked
    assert time.perf_counter() - t0 < 10.0


# --------------------------------------------------------------------------------------------
# rule specs and class-level attributes

ALL_RULES = [rules.lossless, rules.greedy, rules.recursive(3), rules.kseq(2), rules.optimal(2),
             rules.over_accept(0.2), rules.over_accept(0.1, form="ratio", resample="target"),
             rules.lenient(0.5), rules.typical(0.09, 0.3), rules.over_accept(1 / 3)]


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.name)
def test_spec_round_trips_and_repr_rebuilds_the_rule(rule):
    assert rules.from_spec(rules.spec(rule)) == rule
    assert eval(repr(rule), {"rules": rules}) == rule  # noqa: S307 - our own repr
    assert repr(rule).startswith("rules.")


def test_from_spec_parses_exactly_the_cli_specs():
    from scdsim.cli import parse_rule

    for spec in ["lossless", "recursive:3", "over_accept:0.2:ratio:target", "typical:0.09:0.3"]:
        assert parse_rule(spec) == rules.from_spec(spec)


@pytest.mark.parametrize("spec,match", [
    ("nope", "is not understood"), ("recursive", "is not understood"),
    ("recursive:x", "M must be an integer, got 'x'"), ("recursive:0", "M must be >= 1"),
    ("over_accept:0.1:target:optimal", "resample given twice"),
    ("over_accept:0.1:ratio:additive", "form given twice"),
    ("over_accept:0.1:sideways", "option 'sideways'"), ("lenient:abc", "L must be a number"),
])
def test_from_spec_refuses_bad_specs_quoting_them(spec, match):
    with pytest.raises(ValueError, match=f"rule spec '{spec}'.*{match}|{match}"):
        rules.from_spec(spec)


def test_name_lossy_samplable_are_class_level_not_constructor_fields():
    import dataclasses

    for rule in ALL_RULES:
        fields = {f.name for f in dataclasses.fields(rule)}
        assert not fields & {"name", "lossy", "samplable"}, rule
    with pytest.raises(TypeError):
        type(rules.over_accept(0.1))(eps=0.1, lossy=False)  # no way to mislabel a lossy rule
    assert rules.over_accept(0.1).lossy and not rules.recursive(2).lossy
    assert not rules.optimal(2).samplable and rules.kseq(2).samplable


# --------------------------------------------------------------------------------------------
# the papers' numbers, once


def test_reference_numbers_are_data_read_by_the_theory_table():
    """Every expected value of ``scdsim theory`` comes from ``scdsim.reference``: the table's
    module holds no typed paper number of its own (a float literal with 3+ decimals, other
    than tolerances 0.00x)."""
    import inspect

    from scdsim import checks, reference

    src = inspect.getsource(checks)
    assert not re.findall(r"(?<![\w.])\d\.(?!00)\d{3,}", src.replace("4.891638475698", ""))
    assert reference.YIN_EXAMPLE["expected_rejections"] == 1.0514
    assert set(reference.SOURCES) <= set(reference.__all__)
    assert sum(reference.YIN_EXAMPLE["per_position_tv"]) == pytest.approx(1.0514, abs=1e-15)


# --------------------------------------------------------------------------------------------
# rules whose cost grew faster than their input


def test_recursive_residual_chain_stops_at_its_fixed_point_and_changes_no_number(monkeypatch):
    rng = np.random.default_rng(3)
    P, Q = rng.dirichlet(np.full(6, 0.5), size=5), rng.dirichlet(np.full(6, 0.5), size=5)
    rule = rules.recursive(40)
    chain = rule.residual_chain(P, Q)
    r, ref = P.copy(), [P.copy()]
    for _ in range(40):  # the recursion written out, no early exit
        pos = np.clip(r - Q, 0.0, None)
        mass = pos.sum(axis=-1, keepdims=True)
        r = np.where(mass > 0, pos / np.where(mass > 0, mass, 1.0), r)
        ref.append(r)
    np.testing.assert_allclose(chain, np.stack(ref, axis=-2), rtol=0, atol=1e-15)
    # far above the factories' MAX_DRAFTS (10,000, a memory guard): without the early exit
    # the chain would take 10**6 steps
    monkeypatch.setattr(rules, "MAX_DRAFTS", 10**6)
    t0 = time.perf_counter()
    assert float(rejection_prob(rules.recursive(10**6), P3, Q3)) < 1e-300
    assert time.perf_counter() - t0 < 10.0


def test_acceptances_too_large_for_memory_are_refused_before_they_are_built():
    P = np.full((1000, 1000), 1e-3)
    with pytest.raises(ValueError, match=r"recursive\(100\): its acceptances .* above the limit"
                                         r".*expected_rejections_batch_limit"):
        rejection_prob(rules.recursive(100), P, P)


def test_optimal_over_a_batch_in_row_chunks_equals_row_by_row(monkeypatch):
    rng = np.random.default_rng(8)
    P, Q = rng.dirichlet(np.ones(7), size=(3, 4)), rng.dirichlet(np.ones(7), size=(3, 4))
    whole = rejection_prob(rules.optimal(3), P, Q)
    monkeypatch.setattr(rules, "OPTIMAL_CHUNK_ENTRIES", 1 << 8)  # two rows of 2^7 at a time
    chunked = rejection_prob(rules.optimal(3), P, Q)
    rows = np.array([[float(rejection_prob(rules.optimal(3), P[i, j], Q[i, j])) for j in range(4)]
                     for i in range(3)])
    assert chunked.shape == whole.shape == (3, 4)
    np.testing.assert_array_equal(chunked, whole)
    np.testing.assert_array_equal(rows, whole)


def test_bonus_step_tolerance_is_the_same_number_of_ulps_in_float32_and_no_looser_below():
    from scdsim.process import bonus_step_atol

    assert bonus_step_atol(np.float64) == BONUS_STEP_ATOL
    ulps = BONUS_STEP_ATOL / np.finfo(np.float64).eps
    assert bonus_step_atol(np.float32) == pytest.approx(ulps * np.finfo(np.float32).eps)
    assert bonus_step_atol(np.float16) == bonus_step_atol(np.float32)
    # a float32 lossless or k-SEQ step is its bonus law (rounding only), a lossy one is not
    P = np.array([[0.2, 0.3, 0.5], [0.6, 0.4, 0.0]], dtype=np.float32)
    Q = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]], dtype=np.float32)
    for rule, by_step in [(rules.lossless, True), (rules.kseq(2), True),
                          (rules.over_accept(0.1), False), (rules.typical(0.09, 0.3), False)]:
        assert Scheme(rule, gamma=2).laws(P, Q).bonus_is_step is by_step, rule
