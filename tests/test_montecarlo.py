"""Monte Carlo engine (scdsim.montecarlo): streams, invariants, unbiasedness and its power.

Statistical design (peers.md §7, DESIGN.md §6)
---------------------------------------------
* Laws: Pearson chi-square of observed counts against an exact float64 law computed in this file
  by plain numpy (products of kernels), cells merged to an expected count >= 5, rejected at
  ``chi2.isf(ALPHA, df)`` with ``ALPHA = 1e-6``: each assert fails falsely with probability
  <= 1e-6 whatever the random stream; the seeds only make a failure reproducible.
* Zero-probability cells must hold no count at all (a deterministic check).
* Means: ``|MC - expected| <= Z * SE`` with ``Z = norm.isf(ALPHA / 2) = 4.89`` (two-sided tail
  1e-6; the brief's 4 SE would be a 6e-5 per-assert false-fail rate).
* Negative controls: each planted bug (a small Rule subclass defined here, never a switch in
  the library) must be detected. The power is computed in the test from the non-centrality
  ``lambda = N sum_cells (P_bug - P)^2 / P`` over the merged cells, with ``P_bug`` from an exact
  one-step computation (``rules.step_law`` of the buggy rule chained over two positions by
  numpy), and asserted >= 1 - 1e-6.
* Null bracket: plain autoregressive samples through the same statistic pass.

theory.md uses Yin et al.'s letters (q = target, p = draft); here target/draft by role.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import stats

from scdsim import chains, montecarlo, rules
from scdsim.chains import MarkovLM, MarkovPair
from scdsim.montecarlo import SimResult, sample_autoregressive, simulate
from scdsim.rules import Rule, step_law

ALPHA = 1e-6  # per-assert false-fail rate of every statistical assert
Z = float(stats.norm.isf(ALPHA / 2))  # 4.89 standard errors
N_LAW = 20_000  # runs per chi-square test

YIN = chains.yin_example()  # theory.md §7.3 (T = 4, V = 3)


# --------------------------------------------------------------------------------------------
# pairs built here


def _zeros_pair(V=6, T=4, seed=7):
    """Time-inhomogeneous bigram pair with exact zeros in both models (q = 0 where p > 0 and
    the reverse), one disjoint-support row and one row where target == draft."""
    rng = np.random.default_rng(seed)

    def law():
        w = rng.gamma(1.0, size=(T, V, V))
        w[rng.random((T, V, V)) < 0.35] = 0.0
        empty = w.sum(axis=-1) == 0
        w[empty, 0] = 1.0
        return w / w.sum(axis=-1, keepdims=True)

    target, draft = law(), law()
    target[1, 2] = [0.5, 0.5, 0, 0, 0, 0]  # disjoint supports at n = 1, state 2
    draft[1, 2] = [0, 0, 0.25, 0.75, 0, 0]
    draft[2, 3] = target[2, 3]  # equal laws at n = 2, state 3 (residual 0/0 guarded)
    return MarkovPair(MarkovLM(target), MarkovLM(draft), name="zeros")


ZEROS = _zeros_pair()


def _one_state_pair(p, q):
    so = np.zeros(len(p), dtype=np.int64)
    return MarkovPair(MarkovLM([p], state_of=so), MarkovLM([q], state_of=so))


def _cd_law(expert, amateur, plausibility, contrast):
    """O'Brien & Lewis contrastive law written out (theory.md §5.2):
    ``p_CD ∝ p_e (p_e / p_a)^beta`` on ``{p_e >= alpha max p_e}``, 0 elsewhere."""
    mask = expert >= plausibility * expert.max(axis=-1, keepdims=True)
    w = np.where(mask, expert ** (1 + contrast) * amateur ** (-contrast), 0.0)
    return w / w.sum(axis=-1, keepdims=True)


def _scd_case():
    """(SCD pair, its contrasted kernel written out here, the expert kernel): V = 6 bigrams."""
    rng = np.random.default_rng(11)
    expert = rng.dirichlet(np.full(6, 0.7), size=6)
    amateur = rng.dirichlet(np.full(6, 1.5), size=6)
    pair = chains.scd_pair(MarkovLM(expert), MarkovLM(amateur), plausibility=0.1, contrast=0.5)
    return pair, _cd_law(expert, amateur, 0.1, 0.5), expert


SCD, SCD_TARGET, SCD_EXPERT = _scd_case()


# --------------------------------------------------------------------------------------------
# exact laws by plain numpy, and the chi-square machinery


def _kernels(pair, which, T):
    model = pair.target if which == "target" else pair.draft
    return [model.kernel(n) for n in range(T)]


def joint2_law(K, start, state_of):
    """Law of the first two tokens of a chain with kernels ``K[n] (S, V)``: ``(V, V)``."""
    return K[0][start][:, None] * K[1][state_of]


def marginal_laws(K, start, state_of, S):
    """Law of each token ``n`` of the chain: ``(T, V)``."""
    dist = np.zeros(S)
    dist[start] = 1.0
    out = []
    for Kn in K:
        m = dist @ Kn
        out.append(m)
        dist = np.bincount(state_of, weights=m, minlength=S)
    return np.array(out)


def cell_groups(expected, min_expected=5.0):
    """Cells with expected count >= 5 stay alone; the rest (zeros included) form one pool,
    joined to the smallest kept cell while the pool is still below 5."""
    groups = [[int(i)] for i in np.flatnonzero(expected >= min_expected)]
    pool = [int(i) for i in np.flatnonzero(expected < min_expected)]
    if pool:
        if expected[pool].sum() < min_expected and groups:
            j = min(range(len(groups)), key=lambda g: expected[groups[g]].sum())
            pool += groups.pop(j)
        groups.append(pool)
    return groups


def chi2_gof(counts, probs):
    """Pearson statistic over merged cells, its df and the ALPHA threshold."""
    counts = np.asarray(counts, dtype=float).ravel()
    probs = np.asarray(probs, dtype=float).ravel()
    N = counts.sum()
    groups = cell_groups(N * probs)
    O = np.array([counts[g].sum() for g in groups])
    E = np.array([N * probs[g].sum() for g in groups])
    stat = float(np.sum((O - E) ** 2 / E))
    df = len(groups) - 1
    return stat, df, float(stats.chi2.isf(ALPHA, df)), groups


def power(probs, bug_probs, N):
    """Power of ``chi2_gof`` with N samples against ``bug_probs``: ncx2 tail at the threshold."""
    probs = np.asarray(probs, dtype=float).ravel()
    bug = np.asarray(bug_probs, dtype=float).ravel()
    groups = cell_groups(N * probs)
    assert len(groups) >= 2, "too few cells for a chi-square test; raise N"
    P = np.array([probs[g].sum() for g in groups])
    B = np.array([bug[g].sum() for g in groups])
    lam = N * float(np.sum((B - P) ** 2 / P))
    df = len(groups) - 1
    return float(stats.ncx2.sf(stats.chi2.isf(ALPHA, df), df, lam)), lam


def assert_law(counts, probs, what):
    counts = np.asarray(counts).ravel()
    probs = np.asarray(probs).ravel()
    assert counts[probs == 0].sum() == 0, f"{what}: a zero-probability cell was drawn"
    if len(cell_groups(counts.sum() * probs)) < 2:
        return  # (near-)deterministic law: the zero-cell check above is the whole test
    stat, df, thr, _ = chi2_gof(counts, probs)
    assert stat <= thr, f"{what}: chi2 = {stat:.1f} > {thr:.1f} (df = {df})"


def joint2_counts(tokens, V):
    return np.bincount(tokens[:, 0] * V + tokens[:, 1], minlength=V * V)


def marginal_counts(tokens, n, V):
    return np.bincount(tokens[:, n], minlength=V)


def assert_mean(sample_mean, se, expected, what):
    assert abs(sample_mean - expected) <= Z * se + 1e-12, (
        f"{what}: MC {sample_mean:.5f} vs {expected:.5f} ({(sample_mean - expected) / se:.2f} SE)")


# --------------------------------------------------------------------------------------------
# planted bugs (negative controls): small Rule subclasses, never library switches


class AlwaysAccept(Rule):
    """(i) every draft accepted: the output is the draft's law."""

    name = "bug:always-accept"

    def acceptances(self, p, q):
        return np.ones_like(q)[..., None, :]

    def residual(self, p, q):
        return rules.lossless.residual(p, q)


class ResampleTarget(Rule):
    """(ii) recovered token drawn from the target p instead of the residual."""

    name = "bug:resample-target"

    def acceptances(self, p, q):
        return rules.lossless.acceptances(p, q)

    def residual(self, p, q):
        return p + np.zeros_like(q)


class UnnormalisedResidual(Rule):
    """(iii) the classic un-renormalised residual: ``[p - q]_+`` used as is. To hand the
    engine a valid law the missing mass ``1 - TV`` is put on token 0 (what sampling an
    unnormalised cumulative table with an index clipped to 0 would do)."""

    name = "bug:unnormalised-residual"

    def acceptances(self, p, q):
        return rules.lossless.acceptances(p, q)

    def residual(self, p, q):
        r = np.clip(p - q, 0.0, None)
        r[..., 0] += 1.0 - r.sum(axis=-1)
        return r


def _temper(q, temperature):
    w = q ** (1.0 / temperature)
    return w / w.sum(axis=-1, keepdims=True)


class WrongDraftLaw(Rule):
    """(iv) the rule believes the draft law is q at temperature 0.5 while the tokens are
    drawn from q (peers.md §8.1: q must be the exact law the draft token came from)."""

    name = "bug:draft-law-mismatch"

    def acceptances(self, p, q):
        return rules.lossless.acceptances(p, _temper(q, 0.5))

    def residual(self, p, q):
        return rules.lossless.residual(p, _temper(q, 0.5))


class NextPositionResidual(Rule):
    """(v) off-by-one: the recovered token at position n is drawn from the residual of position
    n+1's laws (at the same state), as when the target's logits are indexed one step late.
    The engine hands rules whole (S, V) kernels, so the position is recognised from them."""

    name = "bug:next-position-residual"

    def __init__(self, pair, T):
        self.K = [pair.kernels(n) for n in range(T)]

    def acceptances(self, p, q):
        return rules.lossless.acceptances(p, q)

    def residual(self, p, q):
        for n, (P, Q) in enumerate(self.K):
            if np.array_equal(P, p) and np.array_equal(Q, q):
                P1, Q1 = self.K[min(n + 1, len(self.K) - 1)]
                return rules.lossless.residual(P1, Q1)
        raise AssertionError("called on kernels that are not a position's")


# ============================================================================================
# randomness and reproducibility


def test_same_seed_gives_identical_result_and_different_seeds_differ():
    a = simulate(ZEROS, rules.recursive(2), 4, gamma=2, runs=300, rng=5, batch="tree")
    b = simulate(ZEROS, rules.recursive(2), 4, gamma=2, runs=300, rng=5, batch="tree")
    c = simulate(ZEROS, rules.recursive(2), 4, gamma=2, runs=300, rng=6, batch="tree")
    for f in ("tokens", "rejections", "target_calls", "draft_tokens", "block_tokens_hist",
              "position_rejected", "phase_attempts", "phase_accepts"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.tokens, c.tokens)
    assert a.seed == 5 and c.seed == 6


def test_run_i_does_not_depend_on_the_number_of_runs():
    small = simulate(YIN, rules.kseq(3), 4, gamma=None, runs=50, rng=9)
    large = simulate(YIN, rules.kseq(3), 4, gamma=None, runs=200, rng=9)
    np.testing.assert_array_equal(small.tokens, large.tokens[:50])
    np.testing.assert_array_equal(small.rejections, large.rejections[:50])
    np.testing.assert_array_equal(small.target_calls, large.target_calls[:50])
    np.testing.assert_array_equal(small.block_tokens_hist, large.block_tokens_hist[:50])


def test_run_i_does_not_depend_on_how_positions_are_chunked(monkeypatch):
    pair = chains.dirichlet_pair(8, 0.4, seed=3)
    whole = simulate(pair, rules.lossless, 40, gamma=3, runs=64, rng=4)
    monkeypatch.setattr(montecarlo, "_CHUNK_BYTES", 64 * 10 * 8 * 3)  # chunks of 3 positions
    chunked = simulate(pair, rules.lossless, 40, gamma=3, runs=64, rng=4)
    np.testing.assert_array_equal(whole.tokens, chunked.tokens)
    np.testing.assert_array_equal(whole.block_tokens_hist, chunked.block_tokens_hist)


def test_run_i_stream_is_the_documented_philox_stream():
    # module docstring: run i reads Generator(Philox(key=[w0, i], counter=[0, 0, 0, w1])).random()
    streams = montecarlo._Streams(2024, 3, 5)
    u = np.concatenate([streams.uniforms(0, 2).copy(), streams.uniforms(2, 7)], axis=1)
    w0, w1 = np.random.SeedSequence(2024).generate_state(2, np.uint64)
    for i in range(3):
        bg = np.random.Philox(key=np.array([w0, i], dtype=np.uint64),
                              counter=np.array([0, 0, 0, w1], dtype=np.uint64))
        np.testing.assert_array_equal(u[i], np.random.Generator(bg).random(35))


def test_generator_rng_is_turned_into_a_recorded_seed():
    res = simulate(YIN, rules.lossless, 4, runs=100, rng=np.random.default_rng(1))
    again = simulate(YIN, rules.lossless, 4, runs=100, rng=res.seed)
    np.testing.assert_array_equal(res.tokens, again.tokens)
    fresh = simulate(YIN, rules.lossless, 4, runs=100, rng=None)
    assert isinstance(fresh.seed, int) and fresh.seed >= 0


# ============================================================================================
# invariants and deterministic edge cases

INVARIANT_CASES = [
    (rules.lossless, None, "first"),
    (rules.lossless, 3, "first"),
    (rules.greedy, 1, "first"),
    (rules.typical(0.2, 0.3), 2, "first"),
    (rules.recursive(3), 3, "tree"),
    (rules.kseq(3), None, "first"),
]


@pytest.mark.parametrize("rule,gamma,batch", INVARIANT_CASES,
                         ids=lambda v: getattr(v, "name", str(v)))
def test_bookkeeping_invariants_hold_run_by_run(rule, gamma, batch):
    T = ZEROS.max_horizon
    res = simulate(ZEROS, rule, T, gamma=gamma, runs=2000, rng=3, batch=batch)
    L = (T if gamma is None else gamma) + 2
    assert isinstance(res, SimResult)
    assert res.tokens.shape == (2000, T) and res.tokens.dtype == np.int64
    assert res.tokens.min() >= 0 and res.tokens.max() < ZEROS.V
    assert np.all(res.rejections <= res.target_calls)
    assert res.block_tokens_hist.shape == (2000, L)
    np.testing.assert_array_equal(res.block_tokens_hist.sum(axis=1), res.target_calls)
    np.testing.assert_array_equal(res.block_tokens_hist @ np.arange(L), np.full(2000, T))
    assert res.block_tokens_hist[:, 0].sum() == 0  # every block emits a token
    # every draft position either accepts or ends its block with a rejection
    assert res.phase_attempts.sum() == res.phase_accepts.sum() + res.rejections.sum()
    assert np.all(res.phase_accepts <= res.phase_attempts)
    assert round(res.position_rejected.sum() * res.runs) == res.rejections.sum()
    assert res.tokens_per_call == pytest.approx(T * 2000 / res.target_calls.sum(), rel=1e-15)
    if gamma is not None:
        assert np.all(res.draft_tokens <= gamma * res.target_calls)
    # inputs are recorded; arrays are read-only
    assert (res.rule, res.gamma, res.batch, res.horizon, res.runs) == (rule.name, gamma, batch,
                                                                       T, 2000)
    with pytest.raises(ValueError, match="read-only"):
        res.tokens[0, 0] = 1


def _prev_states(pair, tokens):
    prev = np.empty_like(tokens)
    prev[:, 0] = pair.start
    prev[:, 1:] = pair.state_of[tokens[:, :-1]]
    return prev


@pytest.mark.parametrize("rule,gamma,batch", [
    (rules.lossless, None, "first"), (rules.lossless, 2, "first"),
    (rules.recursive(3), 2, "tree"), (rules.kseq(2), None, "first")],
    ids=["lossless-horizon", "lossless-g2", "recursive3-tree", "kseq2-first"])
def test_lossless_rules_never_emit_a_token_of_target_probability_zero(rule, gamma, batch):
    T = ZEROS.max_horizon
    res = simulate(ZEROS, rule, T, gamma=gamma, runs=5000, rng=8, batch=batch)
    prev = _prev_states(ZEROS, res.tokens)
    K = np.stack(_kernels(ZEROS, "target", T))
    probs = K[np.arange(T)[None, :], prev, res.tokens]
    assert np.all(probs > 0)


def test_draft_sampler_never_draws_a_token_of_draft_probability_zero():
    # with every draft accepted and no bonus (gamma=None), each emitted token is a draft token
    T = ZEROS.max_horizon
    res = simulate(ZEROS, AlwaysAccept(), T, gamma=None, runs=5000, rng=8)
    prev = _prev_states(ZEROS, res.tokens)
    K = np.stack(_kernels(ZEROS, "draft", T))
    assert np.all(K[np.arange(T)[None, :], prev, res.tokens] > 0)
    assert res.rejections.sum() == 0 and np.all(res.target_calls == 1)


def test_row_sampler_guards_boundaries_zeros_and_rounding():
    rows = np.array([[0.0, 0.5, 0.0, 0.5, 0.0],   # zeros at both ends and inside
                     [1.0, 0.0, 0.0, 0.0, 0.0],
                     [0.0, 0.0, 0.0, 0.0, 1.0]])
    samp = montecarlo._RowSampler(rows, "rows")
    top = 1.0 - 2.0**-53  # largest uniform in [0, 1)
    s = np.array([0, 0, 0, 1, 1, 2, 2])
    u = np.array([0.0, 0.5, top, 0.0, top, 0.0, top])
    np.testing.assert_array_equal(samp.sample(s, u), [1, 3, 3, 0, 0, 4, 4])
    # a large state offset: s + u rounds on a coarser grid (it can even reach s + 1); the
    # token must stay in the row's support whatever the rounding
    many = np.tile(rows[:1], (5000, 1))
    big = montecarlo._RowSampler(many, "rows")
    u = np.concatenate([[0.0, top], 0.5 + np.arange(-50, 50) * 2.0**-53,
                        1 - 2.0 ** -np.arange(40, 54)])
    out = big.sample(np.full(u.shape, 4999), u)
    assert set(out.tolist()) <= {1, 3}
    assert out[0] == 1 and out[1] == 3


def test_guided_search_returns_the_same_token_as_the_plain_search():
    # the guide table is an accelerator only: same token for every (state, u), zeros included,
    # with u on bucket edges, on cumulative boundaries and one or two ulps around them
    rng = np.random.default_rng(1)
    for trial in range(40):
        S, V = int(rng.integers(1, 30)), int(rng.integers(1, 200))
        w = rng.gamma(0.3, size=(S, V))
        w[rng.random((S, V)) < 0.4] = 0.0
        w[:, int(rng.integers(0, V))] += 1e-12
        w[rng.random((S, V)) < 0.05] *= 1e-13  # tiny masses
        if trial % 5 == 0:
            w[:] = 1.0  # uniform rows: every boundary sits on a bucket edge
        rows = w / w.sum(axis=1, keepdims=True)
        plain = montecarlo._RowSampler(rows, "rows")
        plain._queries = -(10**12)  # never builds its guide
        guided = montecarlo._RowSampler(rows, "rows")
        guided._build_guide()
        n = 5000
        s = rng.integers(0, S, 3 * n)
        ulps = rng.integers(-3, 4, 3 * n) * 2.0**-53
        u = np.concatenate([rng.random(n), np.arange(V + 1)[rng.integers(0, V + 1, n)] / V,
                            np.cumsum(rows, axis=1)[s[2 * n:], rng.integers(0, V, n)]])
        u = np.clip(u + ulps, 0.0, 1.0 - 2.0**-53)
        a, b = plain.sample(s, u), guided.sample(s, u)
        assert plain._guide is None
        np.testing.assert_array_equal(a, b)
        assert np.all(rows[s, a] > 0)


def test_greedy_rule_emits_the_target_argmax_chain_deterministically():
    # drafting to the horizon there is no bonus token (a bonus is drawn from p by the shared
    # semantics, also for greedy), so every token is accepted-or-recovered argmax
    T = ZEROS.max_horizon
    res = simulate(ZEROS, rules.greedy, T, gamma=None, runs=500, rng=4)
    prev = _prev_states(ZEROS, res.tokens)
    K = np.stack(_kernels(ZEROS, "target", T))
    np.testing.assert_array_equal(res.tokens, np.argmax(K[np.arange(T)[None, :], prev], axis=-1))


def test_progress_bar_does_not_change_the_result(capsys):
    quiet = simulate(YIN, rules.lossless, 4, runs=100, rng=2)
    shown = simulate(YIN, rules.lossless, 4, runs=100, rng=2, progress=True)
    np.testing.assert_array_equal(quiet.tokens, shown.tokens)
    assert "simulate lossless" in capsys.readouterr().err


def test_equal_models_accept_every_draft_with_exact_block_counts():
    pair = _one_state_pair([0.2, 0.3, 0.5], [0.2, 0.3, 0.5])
    res = simulate(pair, rules.lossless, 5, gamma=2, runs=200, rng=1)
    # blocks: [0,1 drafted, bonus at 2], [3,4 drafted, horizon]: 2 calls, budget 2 + 2
    np.testing.assert_array_equal(res.target_calls, 2)
    np.testing.assert_array_equal(res.draft_tokens, 4)
    np.testing.assert_array_equal(res.rejections, 0)
    np.testing.assert_array_equal(res.block_tokens_hist, np.tile([0, 0, 1, 1], (200, 1)))
    np.testing.assert_array_equal(res.phase_attempts, [400, 400])
    np.testing.assert_array_equal(res.acceptance_by_phase(), [1.0, 1.0])
    horizon = simulate(pair, rules.lossless, 5, gamma=None, runs=200, rng=1)
    np.testing.assert_array_equal(horizon.target_calls, 1)
    np.testing.assert_array_equal(horizon.draft_tokens, 5)
    assert horizon.block_tokens_hist[:, 5].sum() == 200


def test_disjoint_supports_reject_every_draft():
    pair = _one_state_pair([0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5])
    T = 6
    res = simulate(pair, rules.lossless, T, gamma=None, runs=300, rng=2)
    np.testing.assert_array_equal(res.rejections, T)
    np.testing.assert_array_equal(res.target_calls, T)
    np.testing.assert_array_equal(res.draft_tokens, T * (T + 1) // 2)  # sum of T - n0
    np.testing.assert_array_equal(res.position_rejected, np.ones(T))
    assert res.tokens.max() <= 1
    np.testing.assert_array_equal(res.acceptance_by_phase()[0], 0.0)
    assert np.all(np.isnan(res.acceptance_by_phase()[1:]))  # phases never reached


def test_single_token_vocabulary_and_single_run():
    pair = _one_state_pair([1.0], [1.0])
    res = simulate(pair, rules.recursive(2), 3, gamma=1, runs=1, rng=0, batch="tree")
    np.testing.assert_array_equal(res.tokens, [[0, 0, 0]])
    assert np.isnan(res.sem_rejections)  # undefined for one run


def test_gamma_zero_is_autoregressive_sampling_with_one_call_per_token():
    T = 4
    res = simulate(YIN, rules.lossless, T, gamma=0, runs=N_LAW, rng=12)
    np.testing.assert_array_equal(res.target_calls, T)
    np.testing.assert_array_equal(res.rejections, 0)
    np.testing.assert_array_equal(res.draft_tokens, 0)
    assert res.phase_attempts.shape == (0,)
    K = _kernels(YIN, "target", T)
    assert_law(joint2_counts(res.tokens, 3), joint2_law(K, YIN.start, YIN.state_of), "gamma=0")
    marg = marginal_laws(K, YIN.start, YIN.state_of, YIN.S)
    for n in range(T):
        assert_law(marginal_counts(res.tokens, n, 3), marg[n], f"gamma=0 position {n + 1}")


def test_large_vocabulary_with_state_map_is_fast_and_respects_supports():
    base = chains.zipf_pair(50_000, S=16, mean_tv=0.3, seed=1)
    rng = np.random.default_rng(0)

    def sparse(K):
        K = K * (rng.random(K.shape) < 0.5)
        K[:, 0] += 1e-3  # every row keeps a token
        return K / K.sum(axis=1, keepdims=True)

    so = base.state_of
    pair = MarkovPair(MarkovLM(sparse(base.target.kernels), state_of=so),
                      MarkovLM(sparse(base.draft.kernels), state_of=so))
    t0 = time.perf_counter()
    res = simulate(pair, rules.lossless, 32, gamma=4, runs=2000, rng=5)
    elapsed = time.perf_counter() - t0
    prev = _prev_states(pair, res.tokens)
    assert np.all(pair.target.kernels[prev, res.tokens] > 0)
    assert res.mean_rejections > 0
    assert elapsed < 10.0  # generous: ~0.1 s on a shared 2-core machine


# ============================================================================================
# theory.md §7.3: Yin et al. Thm 1 and the batch variants on the explicit chain


def test_lossless_drafting_to_the_horizon_matches_yin_theorem1_on_the_73_chain():
    res = simulate(YIN, rules.lossless, 4, gamma=None, runs=40_000, rng=73)
    assert_mean(res.mean_rejections, res.sem_rejections, 1.0514, "E[N_rej] (theory.md §7.3)")


@pytest.mark.parametrize("M,exact", [(2, 0.926388), (4, 0.785812), (5, 0.746647)])
def test_batch_first_matches_exact_variant_a_on_the_73_chain(M, exact):
    # theory.md §7.3 table "Batch SD variant A", exact to 6 decimals
    res = simulate(YIN, rules.recursive(M), 4, gamma=None, runs=40_000, rng=100 + M,
                   batch="first")
    assert_mean(res.mean_rejections, res.sem_rejections, exact, f"variant A M={M}")


@pytest.mark.parametrize("M,ref,ref_se", [(2, 0.8888, 0.0055), (4, 0.6970, 0.0048),
                                          (5, 0.6400, 0.0045)])
def test_batch_tree_agrees_with_the_73_chain_monte_carlo_reference(M, ref, ref_se):
    # theory.md §7.3 variant B values are themselves MC estimates (20,000 runs), not exact:
    # compare within 5 combined standard errors
    res = simulate(YIN, rules.recursive(M), 4, gamma=None, runs=40_000, rng=200 + M,
                   batch="tree")
    se = float(np.hypot(res.sem_rejections, ref_se))
    assert abs(res.mean_rejections - ref) <= 5 * se, (res.mean_rejections, ref, se)


# ============================================================================================
# unbiasedness: the emitted law is the target's (joint of two tokens + per-position marginals)

LAW_CASES = [
    ("lossless-horizon", rules.lossless, None, "first"),
    ("lossless-gamma2", rules.lossless, 2, "first"),
    ("recursive3-first", rules.recursive(3), 2, "first"),
    ("recursive3-tree", rules.recursive(3), 2, "tree"),
    ("recursive3-tree-horizon", rules.recursive(3), None, "tree"),
    ("kseq3-first", rules.kseq(3), None, "first"),
    ("kseq3-tree", rules.kseq(3), 2, "tree"),
]


def _check_output_law(tokens, K, start, state_of, S, V, gamma, T, what):
    """Joint law of the first two tokens and the marginals at positions 1..gamma+1 (1..T when
    drafting to the horizon) against the chain with kernels ``K``."""
    assert_law(joint2_counts(tokens, V), joint2_law(K, start, state_of), f"{what} joint")
    marg = marginal_laws(K, start, state_of, S)
    last = T if gamma is None else min(T, gamma + 1)
    for n in range(last):
        assert_law(marginal_counts(tokens, n, V), marg[n], f"{what} position {n + 1}")


@pytest.mark.parametrize("pair", [YIN, ZEROS], ids=["yin73", "zeros"])
@pytest.mark.parametrize("label,rule,gamma,batch", LAW_CASES, ids=[c[0] for c in LAW_CASES])
def test_lossless_rules_emit_the_target_law(pair, label, rule, gamma, batch):
    T = pair.max_horizon
    res = simulate(pair, rule, T, gamma=gamma, runs=N_LAW, rng=31, batch=batch)
    K = _kernels(pair, "target", T)
    _check_output_law(res.tokens, K, pair.start, pair.state_of, pair.S, pair.V, gamma, T, label)


@pytest.mark.parametrize("gamma", [None, 2])
def test_scd_emits_the_contrastive_law_not_the_expert(gamma):
    T = 4
    res = simulate(SCD, rules.lossless, T, gamma=gamma, runs=N_LAW, rng=41)
    K = [SCD_TARGET] * T  # O'Brien & Lewis law written out in this file
    _check_output_law(res.tokens, K, SCD.start, SCD.state_of, SCD.S, SCD.V, gamma, T, "SCD")
    # SCD is exact for the contrastive law, not the expert's: the same statistic has the power
    # to tell the two apart, and does
    cd = joint2_law(K, SCD.start, SCD.state_of)
    ex = joint2_law([SCD_EXPERT] * 2, SCD.start, SCD.state_of)
    pw, _ = power(ex, cd, N_LAW)
    assert pw >= 1 - ALPHA
    stat, _, thr, _ = chi2_gof(joint2_counts(res.tokens, SCD.V), ex)
    assert stat > thr


def test_null_bracket_autoregressive_samples_pass_the_same_statistic():
    T = 4
    for pair in (YIN, ZEROS):
        tok = sample_autoregressive(pair.target, T, runs=N_LAW, rng=55)
        K = _kernels(pair, "target", T)
        _check_output_law(tok, K, pair.start, pair.state_of, pair.S, pair.V, None, T,
                          "autoregressive")


def test_sample_autoregressive_is_reproducible_per_run():
    a = sample_autoregressive(ZEROS.target, 4, runs=30, rng=3)
    b = sample_autoregressive(ZEROS.target, 4, runs=90, rng=3)
    np.testing.assert_array_equal(a, b[:30])
    hom = chains.dirichlet_pair(5, 0.2, seed=1).target
    tok = sample_autoregressive(hom, 50, runs=20, rng=np.random.default_rng(0))
    assert tok.shape == (20, 50) and tok.max() < 5


# ============================================================================================
# negative controls: planted bugs are detected, with power computed here

BUGS = [
    ("always-accept", lambda: AlwaysAccept()),
    ("resample-target", lambda: ResampleTarget()),
    ("unnormalised-residual", lambda: UnnormalisedResidual()),
    ("draft-law-mismatch", lambda: WrongDraftLaw()),
    ("off-by-one-position", lambda: NextPositionResidual(YIN, 4)),
]


@pytest.mark.parametrize("label,make", BUGS, ids=[b[0] for b in BUGS])
def test_planted_bug_is_detected_with_computed_power(label, make):
    bug = make()
    T, V = 4, YIN.V
    P0, Q0 = YIN.kernels(0)
    P1, Q1 = YIN.kernels(1)
    target = joint2_law([P0, P1], YIN.start, YIN.state_of)
    # exact law of the buggy rule: positions 0 and 1 are draft positions when drafting to the
    # horizon, so the first two tokens follow the rule's one-step laws chained over the states
    buggy = joint2_law([step_law(bug, P0, Q0), step_law(bug, P1, Q1)], YIN.start, YIN.state_of)
    assert np.abs(buggy - target).sum() > 1e-3  # the bug does change the law
    N = N_LAW
    pw, lam = power(target, buggy, N)
    assert pw >= 1 - ALPHA, f"{label}: power {pw:.3g} (lambda {lam:.1f}) too low; raise N"
    res = simulate(YIN, bug, T, gamma=None, runs=N, rng=61)
    stat, df, thr, _ = chi2_gof(joint2_counts(res.tokens, V), target)
    assert stat > thr, f"{label} not detected: chi2 = {stat:.1f} <= {thr:.1f}"
    # the exact buggy law itself is what the engine produced (the bug, not noise, was seen)
    assert_law(joint2_counts(res.tokens, V), buggy, f"{label} buggy law")


# ============================================================================================
# error paths


def test_invalid_arguments_raise_naming_the_argument():
    with pytest.raises(TypeError, match="pair"):
        simulate("pair", rules.lossless, 3)
    with pytest.raises(TypeError, match="rule"):
        simulate(YIN, "lossless", 3)
    with pytest.raises(TypeError, match=r"optimal\(2\)"):
        simulate(YIN, rules.optimal(2), 3)
    with pytest.raises(ValueError, match="horizon"):
        simulate(YIN, rules.lossless, 0)
    with pytest.raises(ValueError, match="horizon=5 exceeds"):
        simulate(YIN, rules.lossless, 5)
    with pytest.raises(TypeError, match="horizon"):
        simulate(YIN, rules.lossless, 2.0)
    with pytest.raises(ValueError, match="gamma"):
        simulate(YIN, rules.lossless, 3, gamma=-1)
    with pytest.raises(TypeError, match="gamma"):
        simulate(YIN, rules.lossless, 3, gamma=1.5)
    with pytest.raises(ValueError, match="runs"):
        simulate(YIN, rules.lossless, 3, runs=0)
    with pytest.raises(ValueError, match="batch"):
        simulate(YIN, rules.recursive(2), 3, batch="dfs")
    with pytest.raises(TypeError, match="rng"):
        simulate(YIN, rules.lossless, 3, rng="seed")
    with pytest.raises(ValueError, match="rng"):
        simulate(YIN, rules.lossless, 3, rng=-1)
    with pytest.raises(TypeError, match="model"):
        sample_autoregressive(YIN, 3)
    with pytest.raises(ValueError, match="horizon"):
        sample_autoregressive(YIN.target, 9)
    with pytest.raises(ValueError, match="runs"):
        sample_autoregressive(YIN.target, 3, runs=0)


class _BadResidual(Rule):
    name = "bad-residual"

    def acceptances(self, p, q):
        return rules.lossless.acceptances(p, q)

    def residual(self, p, q):
        return 0.5 * p


class _BadAcceptance(Rule):
    name = "bad-acceptance"

    def acceptances(self, p, q):
        return 2.0 * np.ones_like(q)[..., None, :]

    def residual(self, p, q):
        return p


class _NoSmallerRule(Rule):
    name = "fixed-two"
    M = 2

    def acceptances(self, p, q):
        return np.stack([rules.lossless.acceptances(p, q)[..., 0, :]] * 2, axis=-2)

    def residual(self, p, q):
        return p


def test_a_rule_returning_an_invalid_law_is_refused_by_name():
    pair = _one_state_pair([0.5, 0.5], [0.0, 1.0])  # the residual is needed (TV = 0.5)
    with pytest.raises(ValueError, match="bad-residual: residual rows must sum to 1"):
        simulate(pair, _BadResidual(), 3, runs=50, rng=0)
    with pytest.raises(ValueError, match=r"bad-acceptance: acceptance probabilities .*\[0, 1\]"):
        simulate(pair, _BadAcceptance(), 3, runs=50, rng=0)
    with pytest.raises(ValueError, match="fixed-two"):
        simulate(pair, _NoSmallerRule(), 3, runs=50, rng=0, batch="tree")


# ============================================================================================
# agreement with the exact engine (scdsim.exact.markov)
# Guarded while the exact engine is being written; remove the guard once it has landed.

EXACT_RULES = [
    (rules.lossless, "first"),
    (rules.greedy, "first"),
    (rules.over_accept(0.1), "first"),
    (rules.over_accept(0.2, "ratio", "target"), "first"),
    (rules.lenient(0.5), "first"),
    (rules.typical(0.2, 0.3), "first"),
    (rules.recursive(3), "first"),
    (rules.recursive(3), "tree"),
    (rules.kseq(3), "first"),
    (rules.kseq(3), "tree"),
]


@pytest.fixture(scope="module")
def exact():
    return pytest.importorskip("scdsim.exact.markov")


@pytest.mark.parametrize("gamma", [None, 3])
@pytest.mark.parametrize("pair", [YIN, ZEROS], ids=["yin73", "zeros"])
@pytest.mark.parametrize("rule,batch", EXACT_RULES,
                         ids=[f"{r.name}-{b}" for r, b in EXACT_RULES])
def test_monte_carlo_agrees_with_the_exact_engine(exact, rule, batch, pair, gamma):
    T, N = 4, N_LAW
    res = simulate(pair, rule, T, gamma=gamma, runs=N, rng=77, batch=batch)
    what = f"{rule.name} {batch} gamma={gamma}"
    assert_mean(res.mean_rejections, res.sem_rejections,
                exact.expected_rejections(pair, rule, T, gamma, batch), f"{what} E[rej]")
    pos = exact.position_rejection(pair, rule, T, gamma, batch)
    for n in range(T):
        se = np.sqrt(pos[n] * (1 - pos[n]) / N)
        assert_mean(res.position_rejected[n], se, pos[n], f"{what} rejection at {n}")
    # a block starts at n = 0 and after every rejection before the last position (gamma=None);
    # with gamma blocks, block_stats gives the expected number of calls
    if gamma is None:
        calls = 1.0 + float(pos[:-1].sum())
    else:
        bs = exact.block_stats(pair, rule, T, gamma, batch=batch)
        calls = bs.expected_target_calls
        assert_mean(res.mean_draft_tokens, res.draft_tokens.std(ddof=1) / np.sqrt(N),
                    bs.expected_draft_tokens, f"{what} draft tokens")
        # blocks within a run are dependent, runs are not: compare per-run means of each column
        expected_blocks = bs.tokens_per_call_pmf * bs.expected_target_calls
        for j in range(gamma + 2):
            col = res.block_tokens_hist[:, j]
            assert_mean(col.mean(), col.std(ddof=1) / np.sqrt(N), expected_blocks[j],
                        f"{what} blocks of {j} tokens")
    assert_mean(res.mean_target_calls, res.sem_target_calls, calls, f"{what} target calls")
    pmf = exact.rejection_distribution(pair, rule, T, gamma, batch)
    assert_law(np.bincount(res.rejections, minlength=T + 1), pmf, f"{what} rejection law")
    marg = exact.output_marginals(pair, rule, T, gamma, batch)
    for n in range(T):
        assert_law(marginal_counts(res.tokens, n, pair.V), marg[n], f"{what} marginal {n}")
    joint = exact.exact_joint_law(pair, rule, T, gamma, batch).sum(axis=(2, 3))
    assert_law(joint2_counts(res.tokens, pair.V), joint, f"{what} joint law")
