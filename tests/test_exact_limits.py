"""Fast-forward of homogeneous pairs, and the exact engine's and rules' size limits.

The fast-forward is checked against full propagation computed by a different path: the same
kernels repeated ``T`` times as a time-inhomogeneous pair, which the engine never
fast-forwards (its horizon is bounded by the kernels). Each limit is checked to raise a clear
ValueError naming the limit before allocating (each of these calls took minutes or many GB
before the limit existed).
"""

from __future__ import annotations

import numpy as np
import pytest

from scdsim import chains, rules
from scdsim.chains import MarkovLM, MarkovPair
from scdsim.exact import markov as mk
from scdsim.process import Scheme

ATOL = 1e-12


def _replica(pair, T):
    """The homogeneous ``pair`` as a time-inhomogeneous pair of ``T`` identical positions."""
    def rep(model):
        K = np.broadcast_to(model.kernels, (T,) + model.kernels.shape).copy()
        return MarkovLM(K, start=model.start, state_of=model.state_of)
    return MarkovPair(rep(pair.target), rep(pair.draft))


def _pair(V, S=None, seed=0, lazy=None, cycle=False):
    rng = np.random.default_rng(seed)
    S = V if S is None else S
    P = rng.dirichlet(np.ones(V), size=S)
    Q = 0.6 * P + 0.4 * rng.dirichlet(np.ones(V), size=S)
    if cycle:  # the target moves 0 -> 1 -> 2 -> 0 deterministically: a periodic state law
        P = np.roll(np.eye(V), 1, axis=1)
    if lazy is not None:  # stays in its state with probability 1 - lazy: slow mixing
        P = (1 - lazy) * np.eye(V) + lazy * P
        Q = (1 - lazy) * np.eye(V) + lazy * Q
    state_of = None if S == V else np.arange(V) % S
    return MarkovPair(MarkovLM(P, state_of=state_of), MarkovLM(Q, state_of=state_of))


FAST_CASES = [
    ("V4", lambda: _pair(4), rules.lossless, None, "first"),
    ("V4", lambda: _pair(4), rules.lossless, 3, "first"),
    ("V5-S2", lambda: _pair(5, S=2, seed=1), rules.lossless, 2, "first"),
    ("V4", lambda: _pair(4, seed=2), rules.recursive(2), 3, "first"),
    ("V3", lambda: _pair(3, seed=6), rules.recursive(2), 2, "tree"),
    ("V4", lambda: _pair(4, seed=4), rules.kseq(3), None, "first"),
    ("V4", lambda: _pair(4, seed=5), rules.over_accept(0.05), 2, "first"),
    ("V4", lambda: _pair(4, seed=6), rules.lenient(0.5), 0, "first"),
]


def _assert_same_law(pair, rule, T, gamma, batch):
    ref_pair = _replica(pair, T)
    law = mk.sequence_law(pair, rule, T, gamma, batch)
    ref = mk.sequence_law(ref_pair, rule, T, gamma, batch)
    for name in ("marginals", "position_rejection", "block_starts", "block_end_tokens"):
        a, b = getattr(law, name), getattr(ref, name)
        if b is None:
            assert a is None
        else:  # per-position laws to 1e-12; block counts (sums over T positions) relative
            rtol = ATOL if name == "block_end_tokens" else 0
            np.testing.assert_allclose(a, b, rtol=rtol, atol=ATOL, err_msg=name)
    total = ref.position_rejection.sum()
    assert abs(mk.expected_rejections(pair, rule, T, gamma, batch) - total) <= ATOL * total
    np.testing.assert_allclose(mk.position_rejection(pair, rule, T, gamma, batch),
                               ref.position_rejection, rtol=0, atol=ATOL)
    if gamma is not None:
        fast, slow = (mk.block_stats(p, rule, T, gamma, c=0.1, batch=batch)
                      for p in (pair, ref_pair))
        for name in ("expected_target_calls", "expected_draft_tokens", "tokens_per_call",
                     "expected_rejections", "speedup", "alpha"):
            a, b = getattr(fast, name), getattr(slow, name)
            assert abs(a - b) <= ATOL * max(1.0, abs(b)), name
        np.testing.assert_allclose(fast.tokens_per_call_pmf, slow.tokens_per_call_pmf,
                                   rtol=0, atol=ATOL)


@pytest.mark.parametrize("label, make, rule, gamma, batch", FAST_CASES,
                         ids=[f"{c[0]}-{c[2].name}-g{c[3]}-{c[4]}" for c in FAST_CASES])
def test_fast_forward_equals_full_propagation_to_1e_12(label, make, rule, gamma, batch):
    pair, T = make(), 400
    run = mk._run(mk._Chain(pair, Scheme(rule, gamma, batch).for_horizon(T)), T)
    assert run.tail > 0  # the fast path was taken: the comparison below tests it
    _assert_same_law(pair, rule, T, gamma, batch)


@pytest.mark.parametrize("label, make, rule, gamma", [
    ("periodic target", lambda: _pair(3, cycle=True), rules.lossless, None),
    ("periodic target", lambda: _pair(3, cycle=True), rules.recursive(2), 2),
    ("draft = target, phases cycle", lambda: MarkovPair(*(2 * [MarkovLM(_pair(3).target.kernels)])),
     rules.lossless, 2),
    ("slow mixing", lambda: _pair(3, lazy=0.03), rules.lossless, 3),
], ids=["periodic-lossless", "periodic-recursive2", "draft=target", "slow-mixing"])
def test_fast_forward_is_not_taken_when_the_law_does_not_converge(label, make, rule, gamma):
    pair, T = make(), 300
    run = mk._run(mk._Chain(pair, Scheme(rule, gamma, "first").for_horizon(T)), T)
    assert run.tail == 0
    _assert_same_law(pair, rule, T, gamma, "first")


def test_a_billion_positions_give_the_stationary_rate_without_allocating():
    pair = chains.dirichlet_pair(20, 0.3, seed=3)
    T = 10**9
    rates = mk.stationary_rates(pair, rules.lossless, gamma=4)
    rej = mk.expected_rejections(pair, rules.lossless, T, gamma=4)
    assert abs(rej / T - rates.rejections_per_token) < 1e-9
    stats = mk.block_stats(pair, rules.lossless, T, 4, c=0.1)
    assert abs(stats.tokens_per_call - rates.tokens_per_call) < 1e-8
    assert abs(mk.expected_rejections_theorem1(pair, T)
               - mk.expected_rejections(pair, rules.lossless, T)) <= 1e-12 * T


def test_gamma_beyond_the_horizon_is_drafting_to_the_horizon():
    pair = _pair(3, seed=7)
    for rule in (rules.lossless, rules.recursive(2)):
        a = mk.expected_rejections(pair, rule, 4, gamma=10**9)
        b = mk.expected_rejections(pair, rule, 4, gamma=None)
        assert abs(a - b) <= ATOL
    stats = mk.block_stats(pair, rules.lossless, 4, 10**9)
    assert stats.tokens_per_call_pmf.shape == (4 + 2,)
    assert stats.gamma == 10**9


# ------------------------------------------------------------------------------------------
# limits: raise at once, naming the limit and an alternative


def test_periodic_pair_at_a_huge_horizon_raises_naming_the_work_limit():
    with pytest.raises(ValueError, match="EXACT_MAX_WORK.*stationary_rates.*simulate"):
        mk.expected_rejections(_pair(3, cycle=True), rules.lossless, 10**9)
    with pytest.raises(ValueError, match="EXACT_MAX_WORK.*simulate"):
        mk.expected_rejections_theorem1(_pair(3, cycle=True), 10**9)


def test_rejection_count_law_at_a_long_horizon_raises_naming_the_work_limit():
    with pytest.raises(ValueError, match="rejection-count law.*EXACT_MAX_WORK.*expected_rejections"):
        mk.rejection_distribution(_pair(3), rules.lossless, 10**5)


def test_marginals_above_a_gigabyte_raise_before_allocating():
    pair = _pair(100)
    with pytest.raises(ValueError, match=r"\(T, V\) = \(2000000, 100\) marginals.*EXACT_MAX_BYTES"):
        mk.output_marginals(pair, rules.lossless, 2_000_000)
    with pytest.raises(ValueError, match="per-position values.*EXACT_MAX_BYTES"):
        mk.position_rejection(pair, rules.lossless, 200_000_000)


def test_stationary_rates_refuses_a_dense_system_above_its_limit():
    pair = _pair(500)
    with pytest.raises(ValueError, match="2500x2500.*STATIONARY_MAX_STATES = 2000.*simulate"):
        mk.stationary_rates(pair, rules.lossless, gamma=4)
    with pytest.raises(ValueError, match="STATIONARY_MAX_STATES"):
        mk.stationary_rates(_pair(3), rules.lossless, gamma=10**9)


def test_tree_reading_refuses_many_drafts_before_enumerating():
    pair = _pair(2)
    with pytest.raises(ValueError, match="batch='tree' with M=20 drafts.*TREE_MAX_WORK.*simulate"):
        mk.expected_rejections(pair, rules.recursive(20), 3, batch="tree")


def test_draft_count_limit_of_the_sequential_multi_draft_rules():
    for factory in (rules.recursive, rules.kseq):
        with pytest.raises(ValueError, match="M=1000000 drafts exceeds the limit MAX_DRAFTS"):
            factory(10**6)
        assert factory(rules.MAX_DRAFTS).M == rules.MAX_DRAFTS


def test_optimal_over_a_large_batch_raises_naming_the_subset_limit():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(22), size=64), rng.dirichlet(np.ones(22), size=64)
    with pytest.raises(ValueError, match="64 rows x 2\\^22.*OPTIMAL_MAX_SUBSET_ENTRIES.*at most 8 rows"):
        rules.rejection_prob(rules.optimal(2), p, q)


def test_optimal_broadcasts_a_target_row_against_draft_rows():
    rng = np.random.default_rng(1)
    p, q = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5), size=3)
    for a, b in ((p, q), (q, p)):
        batch = rules.rejection_prob(rules.optimal(3), a, b)
        rows = [rules.rejection_prob(rules.optimal(3), np.broadcast_to(a, (3, 5))[i],
                                     np.broadcast_to(b, (3, 5))[i]) for i in range(3)]
        np.testing.assert_allclose(batch, rows, rtol=0, atol=1e-15)


def test_recursive_residual_is_contiguous_and_is_the_last_of_the_residual_chain():
    rng = np.random.default_rng(2)
    P, Q = rng.dirichlet(np.ones(6), size=4), rng.dirichlet(np.ones(6), size=4)
    rule = rules.recursive(3)
    res = rule.residual(P, Q)
    assert res.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(res, rule.residual_chain(P, Q)[:, -1, :])
