"""Independent tests of the exact sequence-level engine ``scdsim.exact.markov``.

Every expected value comes from theory.md (section cited) or from a reference computed here
by a different code path: a brute-force enumeration of every random outcome of Leviathan et
al.'s Algorithm 1 (and of the two multi-draft readings of Yin et al.'s Algorithm 4, see
/work/notes/semantics.md), with acceptance and residual laws typed from the textbook formulas.
The engine propagates a (phase, state) chain with ``rules.sequential_parts``; the reference
walks the tree of draft tokens, accept/reject decisions, recovered and bonus tokens one
outcome at a time and shares no code with it (only ``scdsim.cost.speedup`` for Leviathan's
Thm 3.8 and the ``MarkovPair`` container).

Letters: p = target, q = draft (Leviathan et al.); Yin et al. use the opposite letters.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import prob_pairs

from scdsim import cost, process, reference, rules
from scdsim.chains import MarkovLM, MarkovPair
from scdsim.exact import markov as mk
from scdsim.process import Scheme

ATOL = 1e-12

# ------------------------------------------------------------------------------------------
# pairs typed in the test


# reference notes §7.3, Yin's tables: Yin's q (target) and p (draft), rows s = 0, 1, 2, n = 1..4.
YIN_TARGET = np.array([
    [[.6, .3, .1], [.2, .5, .3], [.3, .3, .4]],
    [[.5, .4, .1], [.1, .8, .1], [.4, .2, .4]],
    [[.7, .2, .1], [.3, .3, .4], [.2, .6, .2]],
    [[.4, .4, .2], [.25, .25, .5], [.6, .3, .1]],
])
YIN_DRAFT = np.array([
    [[.3, .3, .4], [.4, .4, .2], [.3, .5, .2]],
    [[.5, .2, .3], [.3, .4, .3], [.2, .2, .6]],
    [[.4, .4, .2], [.3, .5, .2], [.5, .3, .2]],
    [[.2, .5, .3], [.25, .5, .25], [.3, .3, .4]],
])


@dataclass(frozen=True)
class Spec:
    """Kernels as plain arrays ((S, V) or (T, S, V)), the reference's own view of a pair."""

    P: np.ndarray
    Q: np.ndarray
    start: int = 0
    state_of: tuple | None = None

    @property
    def V(self):
        return self.P.shape[-1]

    @property
    def states(self):
        return tuple(range(self.V)) if self.state_of is None else self.state_of

    def row(self, K, n, s):
        return K[s] if K.ndim == 2 else K[n, s]

    def pair(self):
        so = None if self.state_of is None else np.asarray(self.state_of, dtype=np.int64)
        return MarkovPair(MarkovLM(self.P, start=self.start, state_of=so),
                          MarkovLM(self.Q, start=self.start, state_of=so))


def _random_law(rng, V, zeros=True):
    w = rng.dirichlet(np.full(V, 0.7))
    if zeros:
        w = np.where(rng.random(V) < 0.3, 0.0, w)
        if w.sum() == 0.0:
            w[rng.integers(V)] = 1.0
    return w / w.sum()


def _random_kernels(rng, shape, zeros=True):
    *lead, V = shape
    return np.array([_random_law(rng, V, zeros) for _ in range(int(np.prod(lead)))]).reshape(shape)


def _spec_small_inhomogeneous():
    """V = 2, T = 4, identity states, exact zeros and a disjoint-support row."""
    rng = np.random.default_rng(11)
    P = _random_kernels(rng, (4, 2, 2))
    Q = _random_kernels(rng, (4, 2, 2))
    P[1, 0], Q[1, 0] = [1.0, 0.0], [0.0, 1.0]  # disjoint supports: always rejected
    return Spec(P, Q)


def _spec_state_map():
    """V = 3, homogeneous, S = 2 states reached through a non-identity map, start 1."""
    rng = np.random.default_rng(12)
    P = _random_kernels(rng, (2, 3))
    Q = _random_kernels(rng, (2, 3))
    Q[0] = [0.0, 0.5, 0.5]
    P[0] = [1.0, 0.0, 0.0]
    return Spec(P, Q, start=1, state_of=(1, 0, 1))


def _spec_one_state_v3():
    rng = np.random.default_rng(13)
    return Spec(_random_kernels(rng, (1, 3)), _random_kernels(rng, (1, 3)), state_of=(0, 0, 0))


SPEC_YIN = Spec(YIN_TARGET, YIN_DRAFT)

# ------------------------------------------------------------------------------------------
# textbook (acceptance, residual) laws, typed from the papers


def _norm_pos(f, fallback):
    pos = np.maximum(f, 0.0)
    s = pos.sum()
    return pos / s if s > 0 else fallback


def _safe_ratio(num, q):
    # tokens with q(x) = 0 are never drafted; their acceptance is irrelevant
    return np.where(q > 0, num / np.where(q > 0, q, 1.0), 1.0)


def lossless_laws(m, p, q):
    """Leviathan §2.3: a = min(1, p/q), r = norm([p - q]_+)."""
    assert m == 1
    return [np.minimum(1.0, _safe_ratio(p, q))], _norm_pos(p - q, p)


def recursive_laws(m, p, q):
    """reference notes §1.6 (our letters): r_0 = p, a_j = min(1, r_{j-1}/q),
    r_j = norm([r_{j-1} - q]_+)."""
    r, acc = p, []
    for _ in range(m):
        acc.append(np.minimum(1.0, _safe_ratio(r, q)))
        r = _norm_pos(r - q, r)
    return acc, r


def over_accept_laws(eps, form, resample):
    """reference notes §1.7: b_eps = min(1, (p+eps)/q) or min(1, p/q + eps); OPT: P* = norm([p - q b]_+),
    UNO: P = p."""

    def laws(m, p, q):
        assert m == 1
        a = _safe_ratio(p + eps, q) if form == "additive" else _safe_ratio(p, q) + eps
        a = np.minimum(1.0, a)
        res = _norm_pos(p - q * a, p) if resample == "optimal" else p
        return [a], res

    return laws


def lenient_laws(l):
    """Leviathan App. A.5: accept with min(1, p/(l q)); residual norm([p - q a]_+) (the
    toolkit's labelled choice)."""

    def laws(m, p, q):
        assert m == 1
        a = np.minimum(1.0, _safe_ratio(p / l, q))
        return [a], _norm_pos(p - q * a, p)

    return laws


def _argmax_onehot(p):
    onehot = np.zeros_like(p)
    onehot[int(np.argmax(p))] = 1.0
    return onehot


def greedy_laws(m, p, q):
    """Greedy verification: accept iff the draft is the target's (first) argmax; else emit it."""
    assert m == 1
    return [_argmax_onehot(p)], _argmax_onehot(p)


def target_bonus(p):
    """Bonus token law of every sampling rule: the target row (Leviathan Alg. 1)."""
    return p


SINGLE_RULES = {  # rule, its textbook (acceptance, residual) laws, its bonus law
    "lossless": (rules.lossless, lossless_laws, target_bonus),
    "oa-add-opt": (rules.over_accept(0.1, "additive", "optimal"),
                   over_accept_laws(0.1, "additive", "optimal"), target_bonus),
    "oa-ratio-uno": (rules.over_accept(0.2, "ratio", "target"),
                     over_accept_laws(0.2, "ratio", "target"), target_bonus),
    "lenient": (rules.lenient(0.5), lenient_laws(0.5), target_bonus),
    # greedy decoding's bonus token is the target's argmax too
    "greedy": (rules.greedy, greedy_laws, _argmax_onehot),
}

# ------------------------------------------------------------------------------------------
# brute force: every random outcome of the block process


@dataclass
class Enumerated:
    joint: dict
    rejection_pmf: np.ndarray
    position_rejection: np.ndarray
    marginals: np.ndarray
    block_starts: np.ndarray
    calls: float
    drafts: float
    blocks_by_tokens: np.ndarray  # expected number of blocks that emitted j tokens
    rule_rejection: float  # sum_n E[P(all M drafts rejected | state at n)]

    def joint_array(self, V, T):
        out = np.zeros((V,) * T)
        for seq, pr in self.joint.items():
            out[seq] += pr
        return out


def enumerate_outcomes(spec, T, gamma, laws, M=1, batch="first", bonus=target_bonus):
    """Walk every outcome of SD on ``spec`` for ``T`` tokens (Leviathan Alg. 1 blocks of ``gamma``
    drafts, ``gamma=None``: draft to the horizon, Yin Alg. 1), one branch at a time.

    At a draft position with ``m`` drafts, every draft tuple ``X ~ q^m`` is listed with its
    probability; drafts are tried in order with the textbook acceptances ``laws(m, p, q)``; the
    first accepted is emitted (``batch="tree"``: the drafts carrying that token stay alive); if all
    are rejected every recovered token is listed. At phase ``k == g`` every bonus token
    ``~ bonus(p)`` (the target row, or its argmax for greedy verification).
    """
    V, states = spec.V, spec.states
    cache = {}

    def outcomes(n, s, m):
        key = (n, s, m)
        if key not in cache:
            p, q = spec.row(spec.P, n, s), spec.row(spec.Q, n, s)
            acc, res = laws(m, p, q)
            out = defaultdict(float)
            for xs in itertools.product(range(V), repeat=m):
                w = math.prod(q[x] for x in xs)
                if w == 0.0:
                    continue
                for j, x in enumerate(xs):
                    out[("acc", x, xs.count(x))] += w * acc[j][x]
                    w *= 1.0 - acc[j][x]
                for y in range(V):
                    out[("rej", y, 0)] += w * res[y]
            cache[key] = [(kind, x, mn, pr) for (kind, x, mn), pr in out.items() if pr > 0.0]
        return cache[key]

    acc_ = dict(calls=0.0, drafts=0.0, rule_rej=0.0)
    joint = defaultdict(float)
    pmf = np.zeros(T + 1)
    pos_rej = np.zeros(T)
    marg = np.zeros((T, V))
    starts = np.zeros(T)
    blocks = np.zeros(T + 2 + (gamma or 0))  # index = tokens a block emitted

    def visit(n, s, seq, prob, nrej, block):
        if n == T:
            if block is not None:  # block cut by the horizon: it emitted k tokens, no bonus
                blocks[block[0]] += prob
            joint[seq] += prob
            pmf[nrej] += prob
            return
        acc_["rule_rej"] += prob * sum(pr for kind, _, _, pr in outcomes(n, s, M) if kind == "rej")
        if block is None:  # a new block: one target call, budget g
            g = T - n if gamma is None else min(gamma, T - n)
            starts[n] += prob
            acc_["calls"] += prob
            acc_["drafts"] += prob * g
            k, m = 0, M
        else:
            k, g, m = block
        if k < g:
            m_rule = m if (batch == "tree" or k == 0) else 1
            for kind, x, mn, pr in outcomes(n, s, m_rule):
                w = prob * pr
                marg[n, x] += w
                if kind == "acc":
                    nxt = (k + 1, g, mn if batch == "tree" else 1)
                    visit(n + 1, states[x], seq + (x,), w, nrej, nxt)
                else:
                    pos_rej[n] += w
                    blocks[k + 1] += w
                    visit(n + 1, states[x], seq + (x,), w, nrej + 1, None)
        else:  # bonus token
            p = bonus(spec.row(spec.P, n, s))
            for y in range(V):
                if p[y] > 0:
                    w = prob * p[y]
                    marg[n, y] += w
                    blocks[k + 1] += w
                    visit(n + 1, states[y], seq + (y,), w, nrej, None)

    visit(0, spec.start, (), 1.0, 0, None)
    return Enumerated(dict(joint), pmf, pos_rej, marg, starts, acc_["calls"], acc_["drafts"],
                      blocks, acc_["rule_rej"])


def target_joint(spec, T):
    """Joint law of T tokens sampled from the target chain, by direct products."""
    out = np.zeros((spec.V,) * T)
    for seq in itertools.product(range(spec.V), repeat=T):
        pr, s = 1.0, spec.start
        for n, x in enumerate(seq):
            pr *= spec.row(spec.P, n, s)[x]
            s = spec.states[x]
        out[seq] = pr
    return out


def theorem1_value(spec, T):
    """Yin Thm 1 (reference notes §1.4): sum_n E_{prefix ~ target}[TV(p_n, q_n)], by enumeration."""
    law = {(): 1.0}
    total = 0.0
    for n in range(T):
        new = defaultdict(float)
        for seq, pr in law.items():
            s = spec.start if not seq else spec.states[seq[-1]]
            p, q = spec.row(spec.P, n, s), spec.row(spec.Q, n, s)
            total += pr * 0.5 * np.abs(p - q).sum()
            for x in range(spec.V):
                new[seq + (x,)] += pr * p[x]
        law = new
    return total


# ------------------------------------------------------------------------------------------
# reference notes §7.3


def test_yin_chain_expected_rejections_is_1_0514():
    # reference notes §7.3: E[N_rej] = 0.30 + 0.26 + 0.25 + 0.2414 = 1.0514 exactly
    pair, yin = SPEC_YIN.pair(), reference.YIN_EXAMPLE
    assert yin["expected_rejections"] == 1.0514
    assert mk.expected_rejections(pair, rules.lossless, 4) == pytest.approx(
        yin["expected_rejections"], abs=ATOL)
    assert mk.expected_rejections_theorem1(pair, 4) == pytest.approx(yin["expected_rejections"],
                                                                      abs=ATOL)
    np.testing.assert_allclose(mk.position_rejection(pair, rules.lossless, 4),
                               yin["per_position_tv"], atol=ATOL)


def test_yin_chain_x4_marginal():
    # reference notes §7.3: x_4 marginal (.4073, .3284, .2643) (exact decimals: products of the tables)
    pair = SPEC_YIN.pair()
    for rule, batch in [(rules.lossless, "first"), (rules.recursive(3), "first"),
                        (rules.recursive(3), "tree")]:
        marg = mk.output_marginals(pair, rule, 4, batch=batch)
        np.testing.assert_allclose(marg[3], reference.YIN_EXAMPLE["x4_marginal"], atol=ATOL)
        np.testing.assert_allclose(marg[2], [.435, .302, .263], atol=ATOL)


@pytest.mark.parametrize("M, expected", sorted(reference.BATCH_VARIANT_A.items()))
def test_yin_chain_variant_a_table(M, expected):
    # reference notes §7.3, "Batch SD variant A (§1.6 recursion), exact", printed to 6 decimals
    got = mk.expected_rejections(SPEC_YIN.pair(), rules.recursive(M), 4, batch="first")
    assert got == pytest.approx(expected, abs=1e-6)


def test_yin_chain_variant_a_limit_is_0_651050():
    # reference notes §1.6 / §7.3: the M -> infinity limit of variant A is 0.651050, not 0
    pair = SPEC_YIN.pair()
    lim = mk.expected_rejections_batch_limit(pair, 4)
    assert lim == pytest.approx(reference.BATCH_VARIANT_A_LIMIT, abs=1e-6) == 0.651050
    # the table converges to it from above
    assert mk.expected_rejections(pair, rules.recursive(64), 4) >= lim - ATOL


@pytest.mark.parametrize("gamma", [None, 2, 3])
def test_variant_a_tends_to_its_batch_limit_for_a_full_support_draft(gamma):
    # reference notes §1.6: with a full-support draft the first position of a block is accepted with
    # probability 1 - R_M -> 1 and emits the target, so variant A tends to the oracle limit;
    # R_M <= (1 - min q)^(M-1) makes the gap at M = 256 negligible
    rng = np.random.default_rng(4)
    spec = Spec(_random_kernels(rng, (3, 3)), _random_kernels(rng, (3, 3), zeros=False))
    pair = spec.pair()
    lim = mk.expected_rejections_batch_limit(pair, 6, gamma)
    vals = [mk.expected_rejections(pair, rules.recursive(M), 6, gamma) for M in (2, 16, 256)]
    assert vals[0] > vals[1] > vals[2] >= lim - ATOL
    assert vals[2] - lim < 1e-6


@pytest.mark.parametrize("M, mc_mean, mc_se", reference.BATCH_VARIANT_B_MC)
def test_yin_chain_variant_b_within_monte_carlo_error(M, mc_mean, mc_se):
    # reference notes §7.3 Monte Carlo of variant B (20,000 runs): a statistical reference only, so
    # 4 standard errors (two-sided false-fail rate 6e-5 for a correct engine and correct MC)
    got = mk.expected_rejections(SPEC_YIN.pair(), rules.recursive(M), 4, batch="tree")
    assert abs(got - mc_mean) <= 4 * mc_se
    # variant B never rejects more than variant A (every consistent draft is tried)
    assert got <= mk.expected_rejections(SPEC_YIN.pair(), rules.recursive(M), 4) + ATOL


def test_batch_curve_reports_variant_a_improvements():
    # reference notes §7.3 variant-A table; improvement = E[N_rej](M=1) - E[N_rej](M) (Yin Fig. 3)
    out = mk.batch_curve(SPEC_YIN.pair(), 4, [1, 2, 4, 64])
    table = np.array([reference.BATCH_VARIANT_A[M] for M in (1, 2, 4, 64)])
    np.testing.assert_array_equal(out["M"], [1, 2, 4, 64])
    np.testing.assert_allclose(out["rejections"], table, atol=1e-6)
    np.testing.assert_allclose(out["improvement"], table[0] - table, atol=1e-6)


# ------------------------------------------------------------------------------------------
# brute force vs engine


def _assert_engine_matches(spec, T, gamma, rule, laws, M=1, batch="first", c=0.07,
                           bonus=target_bonus):
    pair = spec.pair()
    ref = enumerate_outcomes(spec, T, gamma, laws, M=M, batch=batch, bonus=bonus)
    # the reference is a law
    assert sum(ref.joint.values()) == pytest.approx(1.0, abs=ATOL)

    np.testing.assert_allclose(mk.rejection_distribution(pair, rule, T, gamma, batch),
                               ref.rejection_pmf, atol=ATOL, rtol=0)
    np.testing.assert_allclose(mk.exact_joint_law(pair, rule, T, gamma, batch),
                               ref.joint_array(spec.V, T), atol=ATOL, rtol=0)
    law = mk.sequence_law(pair, rule, T, gamma, batch)
    np.testing.assert_allclose(law.marginals, ref.marginals, atol=ATOL, rtol=0)
    np.testing.assert_allclose(law.position_rejection, ref.position_rejection, atol=ATOL, rtol=0)
    np.testing.assert_allclose(law.block_starts, ref.block_starts, atol=ATOL, rtol=0)
    assert mk.expected_rejections(pair, rule, T, gamma, batch) == pytest.approx(
        ref.position_rejection.sum(), abs=ATOL)
    if gamma is None:
        return
    bs = mk.block_stats(pair, rule, T, gamma, c=c, batch=batch)
    assert bs.expected_target_calls == pytest.approx(ref.calls, abs=ATOL)
    assert bs.expected_draft_tokens == pytest.approx(ref.drafts, abs=ATOL)
    assert bs.expected_rejections == pytest.approx(ref.position_rejection.sum(), abs=ATOL)
    # every block emits between 1 and gamma + 1 tokens
    assert np.all(ref.blocks_by_tokens[gamma + 2:] == 0.0) and ref.blocks_by_tokens[0] == 0.0
    assert ref.blocks_by_tokens.sum() == pytest.approx(ref.calls, abs=ATOL)
    np.testing.assert_allclose(bs.tokens_per_call_pmf,
                               ref.blocks_by_tokens[:gamma + 2] / ref.blocks_by_tokens.sum(),
                               atol=ATOL, rtol=0)
    assert bs.tokens_per_call == pytest.approx(T / ref.calls, abs=ATOL)
    assert bs.speedup == pytest.approx(T / (ref.calls + c * ref.drafts), abs=ATOL)
    alpha = min(1.0, max(0.0, 1.0 - ref.rule_rejection / T))  # rounding
    assert bs.alpha == pytest.approx(alpha, abs=ATOL)
    assert bs.iid_speedup == pytest.approx(cost.speedup(alpha, gamma, c), abs=ATOL)
    assert bs.iid_gap == pytest.approx(bs.speedup - bs.iid_speedup, abs=ATOL)


SINGLE_SPECS = {
    "yin-T4": (SPEC_YIN, 4),
    "v2-inhomogeneous-T4": (_spec_small_inhomogeneous(), 4),
    "v3-state-map-T3": (_spec_state_map(), 3),
}


@pytest.mark.parametrize("gamma", [None, 0, 1, 2, 3])
@pytest.mark.parametrize("rule_name", list(SINGLE_RULES))
@pytest.mark.parametrize("spec_name", list(SINGLE_SPECS))
def test_single_draft_engine_equals_enumeration_of_algorithm_1(spec_name, rule_name, gamma):
    spec, T = SINGLE_SPECS[spec_name]
    rule, laws, bonus = SINGLE_RULES[rule_name]
    _assert_engine_matches(spec, T, gamma, rule, laws, bonus=bonus)


MULTI_SPECS = {
    "yin-T3": (SPEC_YIN, 3),
    "v2-inhomogeneous-T3": (_spec_small_inhomogeneous(), 3),
    "v3-one-state-T3": (_spec_one_state_v3(), 3),
    "v3-state-map-T2": (_spec_state_map(), 2),
}


@pytest.mark.parametrize("gamma", [None, 0, 1, 2])
@pytest.mark.parametrize("batch", ["first", "tree"])
@pytest.mark.parametrize("M", [2, 3])
@pytest.mark.parametrize("spec_name", list(MULTI_SPECS))
def test_multi_draft_engine_equals_enumeration_of_batch_sd(spec_name, M, batch, gamma):
    spec, T = MULTI_SPECS[spec_name]
    _assert_engine_matches(spec, T, gamma, rules.recursive(M), recursive_laws, M=M, batch=batch)


@pytest.mark.parametrize("gamma", [None, 0, 1, 2])
def test_greedy_verification_is_greedy_decoding(gamma):
    # greedy verification emits the target's argmax at every position, bonus positions included,
    # so the joint law is the point mass on the argmax path of the target chain
    spec, T = SPEC_YIN, 4
    path, s = [], spec.start
    for n in range(T):
        path.append(int(np.argmax(spec.P[n, s])))
        s = path[-1]
    want = np.zeros((3,) * T)
    want[tuple(path)] = 1.0
    np.testing.assert_allclose(mk.exact_joint_law(spec.pair(), rules.greedy, T, gamma), want,
                               atol=ATOL, rtol=0)


def test_enumeration_reference_has_power_against_a_planted_bug():
    # Negative control for the reference itself: a residual drawn from p instead of
    # norm([p - q]_+) (the classic bug) changes the enumerated joint law by far more than 1e-12,
    # so agreement with the engine above is informative.
    def buggy(m, p, q):
        a, _ = lossless_laws(m, p, q)
        return a, p

    good = enumerate_outcomes(SPEC_YIN, 3, None, lossless_laws).joint_array(3, 3)
    bad = enumerate_outcomes(SPEC_YIN, 3, None, buggy).joint_array(3, 3)
    np.testing.assert_allclose(good, target_joint(SPEC_YIN, 3), atol=ATOL, rtol=0)
    assert 0.5 * np.abs(bad - good).sum() > 1e-2


# ------------------------------------------------------------------------------------------
# unbiasedness (hypothesis: exact zeros, disjoint supports, one-hot, tiny masses)


@st.composite
def small_specs(draw, max_V=3, max_T=4):
    V = draw(st.integers(2, max_V))
    T = draw(st.integers(1, max_T))
    homogeneous = draw(st.booleans())
    mode = draw(st.sampled_from(["identity", "one-state", "map"]))
    if mode == "identity":
        S, state_of = V, None
    elif mode == "one-state":
        S, state_of = 1, (0,) * V
    else:
        S = draw(st.integers(1, V))
        state_of = tuple(draw(st.lists(st.integers(0, S - 1), min_size=V, max_size=V)))
    n_pos = 1 if homogeneous else T
    rows = [draw(prob_pairs(size=V)) for _ in range(n_pos * S)]
    shape = (S, V) if homogeneous else (T, S, V)
    P = np.array([r[0] for r in rows]).reshape(shape)
    Q = np.array([r[1] for r in rows]).reshape(shape)
    start = draw(st.integers(0, S - 1))
    return Spec(P, Q, start=start, state_of=state_of), T


UNBIASED = [
    (rules.lossless, "first"),
    (rules.recursive(2), "first"),
    (rules.recursive(3), "tree"),
    (rules.kseq(2), "first"),
    (rules.kseq(3), "tree"),
]


@given(case=small_specs(), gamma=st.sampled_from([None, 0, 1, 2]))
def test_unbiased_rules_reproduce_the_target_joint_law(case, gamma):
    spec, T = case
    pair = spec.pair()
    want = target_joint(spec, T)
    want_marg = [want.sum(axis=tuple(i for i in range(T) if i != n)) for n in range(T)]
    for rule, batch in UNBIASED:
        joint = mk.exact_joint_law(pair, rule, T, gamma, batch)
        np.testing.assert_allclose(joint, want, atol=ATOL, rtol=0, err_msg=f"{rule} {batch}")
        np.testing.assert_allclose(mk.output_marginals(pair, rule, T, gamma, batch), want_marg,
                                   atol=ATOL, rtol=0, err_msg=f"{rule} {batch}")
        assert mk.joint_tv_to_target(pair, rule, T, gamma, batch) <= ATOL


def _contrastive_row(pe, pa, plausibility, contrast):
    """O'Brien & Lewis §2 (reference notes §5.2): p_CD ∝ p_e (p_e/p_a)^beta on the plausible set
    {p_e >= alpha max p_e}."""
    keep = pe >= plausibility * pe.max()
    w = np.zeros_like(pe)
    w[keep] = np.exp((1 + contrast) * np.log(pe[keep]) - contrast * np.log(pa[keep]))
    return w / w.sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scd_is_exact_for_the_contrastive_chain_not_the_expert(seed):
    # SCD = lossless SD whose target is the contrasted chain (reference notes §2; DESIGN §1)
    from scdsim.chains import scd_pair

    rng = np.random.default_rng(seed)
    T, V = 3, 3
    expert = _random_kernels(rng, (T, V, V))
    amateur = _random_kernels(rng, (T, V, V), zeros=False)
    plaus, beta = 0.2, 0.5
    cd = np.array([[_contrastive_row(expert[n, s], amateur[n, s], plaus, beta) for s in range(V)]
                   for n in range(T)])
    pair = scd_pair(MarkovLM(expert), MarkovLM(amateur), plausibility=plaus, contrast=beta)
    for rule, batch, gamma in [(rules.lossless, "first", None), (rules.lossless, "first", 2),
                               (rules.recursive(2), "tree", 1)]:
        joint = mk.exact_joint_law(pair, rule, T, gamma, batch)
        np.testing.assert_allclose(joint, target_joint(Spec(cd, amateur), T), atol=ATOL, rtol=0)
    # and it is not the expert's law (the test would be void if contrast changed nothing)
    expert_joint = target_joint(Spec(expert, amateur), T)
    assert 0.5 * np.abs(mk.exact_joint_law(pair, rules.lossless, T) - expert_joint).sum() > 1e-3


# ------------------------------------------------------------------------------------------
# lossy rules


ONE_STEP = [  # reference notes §7.4, our letters: target (.2,.3,.5), draft (.5,.3,.2) (Yin's q, p)
    ((.2, .3, .5), (.5, .3, .2), 0.1, "additive", 0.2, 0.1, 0.20),
    ((.2, .3, .5), (.5, .3, .2), 0.2, "additive", 0.1, 0.2, 0.25),
    ((.2, .3, .5), (.5, .3, .2), 0.4, "additive", 0.0, 0.3, 0.30),
    ((.2, .3, .5), (.5, .3, .2), 0.1, "ratio", 0.25, 0.05, 0.175),
    ((.2, .3, .5), (.5, .3, .2), 0.4, "ratio", 0.1, 0.2, 0.25),
    ((.1, .2, .3, .4), (.4, .3, .2, .1), 0.1, "additive", 0.2, 0.2, 0.26),
    ((.1, .2, .3, .4), (.4, .3, .2, .1), 0.1, "ratio", 0.33, 0.07, 0.169),
    ((.1, .2, .3, .4), (.4, .3, .2, .1), 0.4, "ratio", 0.14, 0.26, 0.302),
]


@pytest.mark.parametrize("target, draft, eps, form, reject, loss, uno", ONE_STEP)
def test_one_step_over_accept_sits_on_the_pareto_front(target, draft, eps, form, reject, loss,
                                                        uno):
    # reference notes §7.4 tables (Yin Thms 4-5): P(reject) + Loss*_TV = TV for Decoding-OPT,
    # UNO (resample from the target) lies above the front
    V = len(target)
    so = np.zeros(V, dtype=np.int64)
    pair = MarkovPair(MarkovLM([target], state_of=so), MarkovLM([draft], state_of=so))
    tv = 0.5 * np.abs(np.subtract(target, draft)).sum()
    opt = rules.over_accept(eps, form, "optimal")
    assert mk.expected_rejections(pair, opt, 1) == pytest.approx(reject, abs=1e-9)
    assert mk.joint_tv_to_target(pair, opt, 1) == pytest.approx(loss, abs=1e-9)
    assert mk.expected_rejections(pair, opt, 1) + mk.joint_tv_to_target(pair, opt, 1) == \
        pytest.approx(tv, abs=ATOL)
    una = rules.over_accept(eps, form, "target")
    assert mk.joint_tv_to_target(pair, una, 1) == pytest.approx(uno, abs=1e-9)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("eps, form", [(0.05, "additive"), (0.3, "additive"), (0.1, "ratio"),
                                       (0.5, "ratio")])
def test_one_position_rejection_plus_bias_equals_tv(seed, eps, form):
    # Yin Thm 5 at T = 1 from any start state, with the textbook b_eps: rejection
    # 1 - sum q b, bias sum [q b - p]_+, sum = TV; and over-acceptance never rejects more
    rng = np.random.default_rng(100 + seed)
    spec = Spec(_random_kernels(rng, (3, 3)), _random_kernels(rng, (3, 3)), start=seed % 3)
    pair = spec.pair()
    p, q = spec.P[spec.start], spec.Q[spec.start]
    (a,), _ = over_accept_laws(eps, form, "optimal")(1, p, q)
    rule = rules.over_accept(eps, form, "optimal")
    rej, bias = mk.expected_rejections(pair, rule, 1), mk.joint_tv_to_target(pair, rule, 1)
    assert rej == pytest.approx(1.0 - (q * a).sum(), abs=ATOL)
    assert bias == pytest.approx(np.maximum(q * a - p, 0.0).sum(), abs=ATOL)
    assert rej + bias == pytest.approx(0.5 * np.abs(p - q).sum(), abs=ATOL)
    assert rej <= mk.expected_rejections(pair, rules.lossless, 1) + ATOL


@pytest.mark.parametrize("l, alpha", [(1.0, 0.70), (0.5, 0.90), (0.3, 1.00), (0.1, 1.00)])
def test_lenient_one_step_acceptance_matches_theory(l, alpha):
    # reference notes §7.1 (Leviathan App. A.5, Leviathan letters): target (.5,.3,.2), draft
    # (.2,.3,.5), alpha_l = sum min(p/l, q)
    so = np.zeros(3, dtype=np.int64)
    pair = MarkovPair(MarkovLM([[.5, .3, .2]], state_of=so), MarkovLM([[.2, .3, .5]], state_of=so))
    assert mk.expected_rejections(pair, rules.lenient(l), 1) == pytest.approx(1 - alpha, abs=ATOL)
    # drafting to the horizon with one state, every position rejects with the same probability
    assert mk.expected_rejections(pair, rules.lenient(l), 6) == pytest.approx(6 * (1 - alpha),
                                                                             abs=1e-11)


@pytest.mark.parametrize("eps, form, resample", [(0.1, "additive", "optimal"),
                                                 (0.3, "ratio", "optimal"),
                                                 (0.2, "additive", "target")])
def test_over_accept_rejects_less_than_lossless_on_state_independent_pairs(eps, form, resample):
    # With one state every position has the same draft/target laws, so drafting to the horizon
    # E[N_rej] = T * rejection_prob, and b_eps >= min(1, p/q) makes that smaller (Yin Thm 5)
    rng = np.random.default_rng(7)
    spec = Spec(_random_kernels(rng, (1, 4)), _random_kernels(rng, (1, 4)), state_of=(0,) * 4)
    pair = spec.pair()
    (a,), _ = over_accept_laws(eps, form, resample)(1, spec.P[0], spec.Q[0])
    for T in (1, 5, 20):
        oa = mk.expected_rejections(pair, rules.over_accept(eps, form, resample), T)
        assert oa == pytest.approx(T * (1.0 - (spec.Q[0] * a).sum()), abs=1e-10)
        assert oa <= mk.expected_rejections(pair, rules.lossless, T) + ATOL


def test_over_accept_can_reject_more_than_lossless_on_a_state_dependent_chain():
    # FINDING: at sequence level over-acceptance (Decoding-OPT, additive eps = 0.1) can cost MORE
    # rejections than lossless SD: its bias leads the prefix into states the target never visits.
    # Hand derivation (V = 2, state = previous token, start 0):
    #   lossless: n=0 rejects TV((0,1),(.4,.6)) = .4 and emits 1; then p = q at state 1 -> 0.4.
    #   OA: n=0: b = (.25, 1), q b = (.1, .6), reject .3, emits 0 w.p. .1 (target never does);
    #       n=1 at state 0: b(1) = .2, reject .8 -> .08, recovered token 0 -> state 0 w.p. .08;
    #       n=2 at state 0: q b = (.1, .1), reject .8 -> .064.  Total .444 > .4.
    P = np.array([[[0.0, 1.0], [0.8, 0.2]], [[0.9, 0.1], [0.0, 1.0]], [[1.0, 0.0], [0.1, 0.9]]])
    Q = np.array([[[0.4, 0.6], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]], [[0.1, 0.9], [0.1, 0.9]]])
    spec = Spec(P, Q)
    pair = spec.pair()
    rule = rules.over_accept(0.1, "additive", "optimal")
    assert mk.expected_rejections(pair, rules.lossless, 3) == pytest.approx(0.4, abs=ATOL)
    assert mk.expected_rejections(pair, rule, 3) == pytest.approx(0.444, abs=ATOL)
    ref = enumerate_outcomes(spec, 3, None, over_accept_laws(0.1, "additive", "optimal"))
    assert ref.position_rejection.sum() == pytest.approx(0.444, abs=ATOL)


# ------------------------------------------------------------------------------------------
# Theorem 1 and block budgets


def _random_spec(seed, V, T=None, S=None):
    rng = np.random.default_rng(seed)
    S = V if S is None else S
    shape = (S, V) if T is None else (T, S, V)
    so = None if S == V else tuple(int(x) for x in rng.integers(0, S, V))
    return Spec(_random_kernels(rng, shape), _random_kernels(rng, shape), state_of=so)


THM1_SPECS = [_random_spec(1, 3), _random_spec(2, 4, T=5), _random_spec(3, 4, S=2),
              _random_spec(4, 2, T=6, S=1), SPEC_YIN]


@pytest.mark.parametrize("spec", THM1_SPECS)
def test_lossless_to_the_horizon_equals_theorem_1(spec):
    # Yin Thm 1 (reference notes §1.4), the sum computed here by enumerating target prefixes
    T = 4 if spec.P.ndim == 2 else min(spec.P.shape[0], 5)
    pair = spec.pair()
    want = theorem1_value(spec, T)
    assert mk.expected_rejections(pair, rules.lossless, T) == pytest.approx(want, abs=ATOL)
    assert mk.expected_rejections_theorem1(pair, T) == pytest.approx(want, abs=ATOL)
    # finite blocks: bonus positions are never rejected (reference notes §1.3)
    for gamma in (1, 2, 3, 7):
        assert mk.expected_rejections(pair, rules.lossless, T, gamma) <= want + ATOL
    # gamma = 0 is autoregressive decoding: no rejection, T target calls, no drafts
    assert mk.expected_rejections(pair, rules.lossless, T, 0) == 0.0
    np.testing.assert_allclose(mk.rejection_distribution(pair, rules.lossless, T, 0),
                               np.eye(T + 1)[0], atol=ATOL)
    bs = mk.block_stats(pair, rules.lossless, T, 0, c=0.3)
    assert bs.expected_target_calls == pytest.approx(T, abs=ATOL)
    assert bs.expected_draft_tokens == 0.0 and bs.speedup == pytest.approx(1.0, abs=ATOL)


@pytest.mark.parametrize("rule, batch", [(rules.lossless, "first"), (rules.recursive(2), "first"),
                                         (rules.recursive(3), "tree"),
                                         (rules.lenient(0.4), "first")])
@pytest.mark.parametrize("gamma", [None, 0, 2])
@pytest.mark.parametrize("seed, S", [(5, None), (3, 2)])  # identity and 4 tokens -> 2 states
def test_rejection_pmf_is_a_law_consistent_with_the_mean(rule, batch, gamma, seed, S):
    pair = _random_spec(seed, 4, S=S).pair() if S else _random_spec(seed, 3).pair()
    T = 9
    pmf = mk.rejection_distribution(pair, rule, T, gamma, batch)
    assert pmf.shape == (T + 1,) and np.all(pmf >= 0.0)
    assert pmf.sum() == pytest.approx(1.0, abs=ATOL)
    mean = mk.expected_rejections(pair, rule, T, gamma, batch)
    assert pmf @ np.arange(T + 1) == pytest.approx(mean, abs=1e-11)
    pos = mk.position_rejection(pair, rule, T, gamma, batch)
    assert pos.sum() == pytest.approx(mean, abs=1e-11)


# ------------------------------------------------------------------------------------------
# block statistics vs Leviathan Thm 3.8, stationary rates


def _one_state_pair():
    # S = 1: acceptances are i.i.d. with alpha = 1 - TV = 0.7 (reference notes §7.2's laws)
    so = np.zeros(3, dtype=np.int64)
    return MarkovPair(MarkovLM([[.2, .3, .5]], state_of=so), MarkovLM([[.5, .3, .2]], state_of=so))


def test_iid_speedup_is_the_long_horizon_limit_for_a_state_independent_pair():
    # Leviathan Thm 3.8 assumes i.i.d. acceptances and long generations; with one state the
    # first holds exactly, so the exact speedup tends to it, the gap (the truncated last block)
    # shrinking like 1/T
    pair, gamma, c = _one_state_pair(), 3, 0.05
    limit = cost.speedup(0.7, gamma, c)
    gaps = []
    for T in (250, 500, 1000, 2000):
        bs = mk.block_stats(pair, rules.lossless, T, gamma, c=c)
        assert bs.alpha == pytest.approx(0.7, abs=ATOL)
        assert bs.iid_speedup == pytest.approx(limit, abs=ATOL)
        gaps.append(bs.speedup - limit)
    gaps = np.abs(gaps)
    assert gaps[-1] < 2e-3
    np.testing.assert_allclose(gaps[:-1] / gaps[1:], 2.0, rtol=0.02)  # halves when T doubles


def test_iid_formula_misses_the_speedup_of_a_state_dependent_pair():
    # FINDING: when acceptance depends on the state (sticky state 0 with p = q, state 1 with
    # TV = 0.9), acceptances are correlated and Thm 3.8 at the average alpha is off by a
    # horizon-independent amount, unlike the 1/T gap above
    P = np.array([[0.95, 0.05], [0.05, 0.95]])
    Q = np.array([[0.95, 0.05], [0.95, 0.05]])
    pair = MarkovPair(MarkovLM(P), MarkovLM(Q))
    gaps = [mk.block_stats(pair, rules.lossless, T, 4, c=0.02).iid_gap for T in (2000, 4000)]
    assert abs(gaps[0]) > 1e-3 and abs(gaps[1]) > 1e-3
    assert abs(gaps[1] - gaps[0]) < 0.05 * abs(gaps[0])


def test_block_stats_of_a_never_accepting_pair_has_alpha_zero():
    # Disjoint supports in every state: every draft is rejected, alpha = 0, one token per call.
    # Regression: rounding in the state law made 1 - mean rejection = -2.2e-16 and
    # cost.speedup raised "alpha must lie in [0, 1]" on this valid pair.
    P = np.array([[0.8247080250460409, 0.1752919749539592, 0.0],
                  [0.35663443154616936, 0.6433655684538307, 0.0],
                  [0.6494707457685377, 0.35052925423146225, 0.0]])
    Q = np.array([[0.0, 0.0, 1.0]] * 3)
    pair = MarkovPair(MarkovLM(P), MarkovLM(Q))
    for T, gamma in [(3, 0), (3, 2), (5, 1), (7, 3)]:
        bs = mk.block_stats(pair, rules.lossless, T, gamma, c=0.1)
        assert bs.alpha == pytest.approx(0.0, abs=ATOL) and 0.0 <= bs.alpha <= 1.0
        assert bs.tokens_per_call == pytest.approx(1.0, abs=ATOL)
        assert bs.iid_speedup == pytest.approx(1.0 / (1.0 + 0.1 * gamma), abs=ATOL)


@pytest.mark.parametrize("gamma", [1, 3, 6])
def test_stationary_rates_of_a_state_independent_pair_match_the_renewal_formulas(gamma):
    # i.i.d. acceptance alpha: a block emits (1 - alpha^(g+1))/(1 - alpha) tokens (Leviathan
    # Eq. 1) and ends with a rejection w.p. 1 - alpha^g; a draft position is any but the bonus
    a = 0.7
    tokens = (1 - a ** (gamma + 1)) / (1 - a)
    r = mk.stationary_rates(_one_state_pair(), rules.lossless, gamma)
    assert r.tokens_per_call == pytest.approx(tokens, abs=1e-12)
    assert r.calls_per_token == pytest.approx(1 / tokens, abs=1e-12)
    assert r.rejections_per_token == pytest.approx((1 - a ** gamma) / tokens, abs=1e-12)
    assert r.draft_positions_per_token == pytest.approx((tokens - a ** gamma) / tokens, abs=1e-12)
    r_inf = mk.stationary_rates(_one_state_pair(), rules.lossless, None)
    assert r_inf.rejections_per_token == pytest.approx(0.3, abs=1e-12)


@pytest.mark.parametrize("rule, batch, gamma", [(rules.lossless, "first", None),
                                                (rules.lossless, "first", 3),
                                                (rules.recursive(2), "first", 2),
                                                (rules.recursive(2), "tree", 2)])
def test_finite_horizon_rates_converge_to_the_stationary_rates(rule, batch, gamma):
    spec = _random_spec(21, 5)
    spec = Spec(spec.P * 0.9 + 0.02, spec.Q)  # full-support target rows: aperiodic, irreducible
    pair = spec.pair()
    rates = mk.stationary_rates(pair, rule, gamma, batch)
    rej_gap, tok_gap = [], []
    for T in (250, 500, 1000, 2000):
        law = mk.sequence_law(pair, rule, T, gamma, batch)
        rej_gap.append(abs(law.position_rejection.sum() / T - rates.rejections_per_token))
        calls = law.block_starts.sum()
        tok_gap.append(abs(T / calls - 1 / rates.calls_per_token))
    for gaps in (rej_gap, tok_gap):
        assert gaps[-1] < 1e-3
        assert all(b < a for a, b in zip(gaps, gaps[1:]))


# ------------------------------------------------------------------------------------------
# error paths


def test_bad_input_raises_naming_the_argument():
    yin = SPEC_YIN.pair()
    hom = _random_spec(5, 3).pair()
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        mk.expected_rejections(yin, rules.lossless, 0)
    with pytest.raises(ValueError, match="horizon=5 exceeds the 4 positions"):
        mk.expected_rejections(yin, rules.lossless, 5)
    with pytest.raises(ValueError, match="horizon=5 exceeds"):
        mk.expected_rejections_theorem1(yin, 5)
    with pytest.raises(ValueError, match="gamma must be >= 0, got -1"):
        mk.rejection_distribution(yin, rules.lossless, 3, gamma=-1)
    with pytest.raises(TypeError, match="gamma must be an integer, got 1.5"):
        mk.expected_rejections(yin, rules.lossless, 3, gamma=1.5)
    with pytest.raises(TypeError, match="gamma must be an integer, got None"):
        mk.block_stats(yin, rules.lossless, 3, None)
    with pytest.raises(ValueError, match="c must lie in"):
        mk.block_stats(yin, rules.lossless, 3, 2, c=-0.1)
    with pytest.raises(ValueError, match="batch must be one of .*'depth'"):
        mk.expected_rejections(yin, rules.recursive(2), 3, batch="depth")
    with pytest.raises(TypeError, match="pair must be a scdsim.MarkovPair, got ndarray"):
        mk.expected_rejections(YIN_TARGET, rules.lossless, 3)
    with pytest.raises(TypeError, match="pair must be a scdsim.MarkovPair"):
        mk.expected_rejections_theorem1("yin", 3)
    with pytest.raises(TypeError, match="rule must be a scdsim rule"):
        mk.output_marginals(yin, "lossless", 3)
    with pytest.raises(TypeError, match="optimal\\(2\\) has no sequential"):
        mk.expected_rejections(yin, rules.optimal(2), 3)
    big = MarkovPair(MarkovLM(np.full((10, 10), 0.1)), MarkovLM(np.full((10, 10), 0.1)))
    with pytest.raises(ValueError, match="batch='tree' enumerates V\\^M draft tuples"):
        mk.expected_rejections(big, rules.recursive(6), 2, batch="tree")
    with pytest.raises(ValueError, match="exact_joint_law enumerates V\\^T = 3\\^14"):
        mk.exact_joint_law(hom, rules.lossless, 14)
    with pytest.raises(ValueError, match="exact_joint_law enumerates"):
        mk.joint_tv_to_target(hom, rules.lossless, 14)
    with pytest.raises(ValueError, match="V\\^T = 3\\^14 sequences exceed"):
        mk.target_joint_law(hom, 14)
    with pytest.raises(ValueError, match="stationary_rates needs a homogeneous MarkovPair"):
        mk.stationary_rates(yin, rules.lossless)
    with pytest.raises(ValueError, match="M must be >= 1, got 0"):
        mk.batch_curve(hom, 3, [2, 0])


# --------------------------------------------------------------------------------------------
# the bonus fold: an optimisation that must not change a number


@pytest.mark.parametrize("rule,folds", [(rules.lossless, True), (rules.greedy, True),
                                        (rules.recursive(2), True),
                                        (rules.over_accept(0.1), False), (rules.lenient(0.5), False)],
                         ids=lambda x: getattr(x, "name", str(x)))
def test_bonus_fold_is_taken_only_when_exact_and_changes_no_number(rule, folds, monkeypatch):
    """When the bonus law equals the single-draft step law, the engine folds the bonus phase
    into the verification products (two operators per position instead of three); the
    sequence law is the same as without the fold to 1e-14, and lossy rules never fold."""
    rng = np.random.default_rng(5)
    pair = MarkovPair(MarkovLM(rng.dirichlet(np.full(6, 0.5), size=6)),
                      MarkovLM(rng.dirichlet(np.full(6, 0.5), size=6)))
    chain = mk._Chain(pair, Scheme(rule, 3, "first"))
    groups = chain.operators(0)
    assert any(g.quiet for g in groups) == folds
    law = mk.sequence_law(pair, rule, 12, 3, "first")
    monkeypatch.setattr(process, "BONUS_STEP_ATOL", -1.0)  # a fold never qualifies
    assert not any(g.quiet for g in mk._Chain(pair, Scheme(rule, 3, "first")).operators(0))
    ref = mk.sequence_law(pair, rule, 12, 3, "first")
    for name in ("marginals", "position_rejection", "block_starts", "block_end_tokens"):
        np.testing.assert_allclose(getattr(law, name), getattr(ref, name), rtol=0, atol=1e-14,
                                   err_msg=name)
