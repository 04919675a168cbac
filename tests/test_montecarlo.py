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
* The alias tables that draw every token are checked exactly (the law a table samples, summed
  here from its columns, equals its rows to ~1e-15) and by chi-square on their draws.

theory.md uses Yin et al.'s letters (q = target, p = draft); here target/draft by role.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from scdsim import agreement, chains, reference, rules
from scdsim.chains import MarkovLM, MarkovPair
from scdsim.exact import markov as exact
from scdsim.montecarlo import SimResult, sample_autoregressive, simulate
from scdsim.montecarlo import engine as mc_engine
from scdsim.montecarlo.alias import AliasTable, split
from scdsim.montecarlo.streams import Streams
from scdsim.process import Scheme
from scdsim.rules import Rule, step_law

ALPHA = 1e-6  # per-assert false-fail rate of every statistical assert
Z = agreement.z_threshold(ALPHA)  # 4.89 standard errors
N_LAW = 20_000  # runs per chi-square test

YIN = chains.yin_example()  # reference notes §7.3 (T = 4, V = 3)


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
    """O'Brien & Lewis contrastive law written out (reference notes §5.2):
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


def cell_groups(expected, min_expected=agreement.MIN_EXPECTED):
    """The one pooling policy (``scdsim.agreement.merged_cells``): cells with expected count
    >= 5 stay alone; the rest (zeros included) form one pool, joined to the smallest kept cell
    while the pool is still below 5."""
    return agreement.merged_cells(expected, min_expected)


def chi2_gof(counts, probs):
    """Pearson statistic over merged cells, its df and the ALPHA threshold."""
    t = agreement.chi_square(counts, probs, alpha=ALPHA)
    return t.statistic, t.df, t.threshold, t.groups


def power(probs, bug_probs, N):
    """Power of ``chi2_gof`` with N samples against ``bug_probs``: ncx2 tail at the threshold."""
    return agreement.chi_square_power(probs, bug_probs, N, alpha=ALPHA)


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
    assert mc_engine.chunk_positions(64, 3, 40) == 40
    monkeypatch.setattr(mc_engine, "MIN_CHUNK", 1)
    monkeypatch.setattr(mc_engine, "CHUNK_BYTES", 8 * 64 * 3 * 3)
    assert mc_engine.chunk_positions(64, 3, 40) == 3  # 13 chunks of 3 and one of 1
    chunked = simulate(pair, rules.lossless, 40, gamma=3, runs=64, rng=4)
    for name in ("tokens", "rejections", "target_calls", "draft_tokens", "block_tokens_hist",
                 "position_rejected", "phase_attempts", "phase_accepts"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(chunked, name))


def test_run_i_stream_is_its_lane_of_the_documented_spawned_stream():
    # module docstring: run i = 64 b + l reads outputs 64 t + l (t = n n_slots + slot) of
    # Generator(PCG64DXSM(SeedSequence(seed, spawn_key=(b,)))).random()
    runs, n_slots = 70, 3
    streams = Streams(2024, runs, n_slots)
    u = np.concatenate([streams.uniforms(0, 2).copy(), streams.uniforms(2, 7)])
    assert u.shape == (7, n_slots, runs)
    u = u.reshape(7 * n_slots, runs)
    for i in (0, 5, 63, 64, 69):
        b, lane = divmod(i, 64)
        ss = np.random.SeedSequence(2024, spawn_key=(b,))
        ref = np.random.Generator(np.random.PCG64DXSM(ss)).random(64 * 7 * n_slots)
        np.testing.assert_array_equal(u[:, i], ref[lane::64])
    # that seed sequence is child b of SeedSequence(seed).spawn(...)
    child = np.random.SeedSequence(2024).spawn(2)[1]
    np.testing.assert_array_equal(child.generate_state(4),
                                  np.random.SeedSequence(2024, spawn_key=(1,)).generate_state(4))


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


def _awkward_rows(rng, S, V, kind):
    """Rows with exact zeros, tiny masses, one-hot, uniform or peaked (Dirichlet 0.3) rows."""
    if kind == "uniform":
        return np.full((S, V), 1.0 / V)
    if kind == "onehot":
        rows = np.zeros((S, V))
        rows[np.arange(S), rng.integers(0, V, S)] = 1.0
        return rows
    w = rng.gamma(0.3, size=(S, V))
    w[rng.random((S, V)) < 0.4] = 0.0
    if kind == "tiny":
        w[rng.random((S, V)) < 0.2] = 1e-13
    w[np.arange(S), rng.integers(0, V, S)] += 1e-12  # no empty row
    return w / w.sum(axis=1, keepdims=True)


def _table_law(table):
    """The law an alias table samples, summed here from its columns: column c of row s gives
    c with probability prob and its alias otherwise, each column with probability 1/V."""
    S, V = table.S, table.V
    out = np.zeros(S * V)
    np.add.at(out, np.arange(S * V), table.prob)
    np.add.at(out, np.repeat(np.arange(S) * V, V) + table.alias, 1.0 - table.prob)
    return out.reshape(S, V) / V


@pytest.mark.parametrize("kind", ["peaked", "tiny", "uniform", "onehot"])
def test_alias_tables_sample_every_row_law_exactly_and_never_a_zero(kind):
    rng = np.random.default_rng(5)
    for S, V in [(1, 1), (3, 2), (5, 7), (40, 50), (2, 1000)]:
        rows = _awkward_rows(rng, S, V, kind)
        table = AliasTable(rows, "rows")
        assert table.prob.shape == (S * V,) and np.all((table.prob >= 0) & (table.prob <= 1))
        np.testing.assert_allclose(_table_law(table), rows, rtol=0, atol=1e-14)
        # structurally: a zero-probability token is neither its column's pick nor an alias
        assert np.all(table.prob[rows.ravel() == 0] == 0)
        alias_rows = np.repeat(np.arange(S), V)
        assert np.all(rows[alias_rows, table.alias] > 0)


def test_alias_tables_stay_exact_with_large_row_offsets():
    # the sweep searches all rows at once with row s shifted by s (V + 2): ~1e6 here, where
    # keys round at ulp(1e6) ~ 1.2e-10 of a column (module docstring): ~1e-12 of probability
    rng = np.random.default_rng(8)
    S, V = 20_000, 48
    rows = _awkward_rows(rng, S, V, "tiny")
    table = AliasTable(rows, "rows")
    bound = 4 * np.spacing(S * (V + 2.0)) / V
    np.testing.assert_allclose(_table_law(table), rows, rtol=0, atol=bound)
    assert np.all(rows[np.repeat(np.arange(S), V), table.alias] > 0)


def test_alias_sampling_maps_every_uniform_to_a_token_of_positive_probability():
    # extreme uniforms: 0, the largest double below 1, column edges k / V and a few ulps
    # around them; u V < V for every u < 1, so the column is always a token
    top = 1.0 - 2.0**-53
    for V in (1, 2, 3, 7, 1000, 2**17 + 1):
        rows = np.zeros((2, V))  # zeros at both ends and inside
        rows[0, [V // 2, V - 1]] = 0.5
        rows[1, [0, V - 1]] = 0.5
        rows /= rows.sum(axis=1, keepdims=True)
        table = AliasTable(rows, "rows")
        edges = np.arange(0, V + 1, max(1, V // 50)) / V
        near = (edges[:, None] + np.arange(-3, 4) * 2.0**-53).ravel()
        u = np.clip(np.concatenate([[0.0, 2.0**-53, top], near]), 0.0, top)
        c, f = split(u, V)
        assert c.max() <= V - 1 and np.all((f >= 0) & (f < 1))
        # the draft draw fused with its acceptance picks the same token, and accepts it iff
        # ua < a(token)
        acc = np.random.default_rng(V).random(2 * V)
        table.accepting(acc)
        ua = np.random.default_rng(V + 1).random(u.size)
        for s in (0, 1):
            base = np.full(u.shape, s * V)
            x = table.sample(base, u)
            assert x.min() >= 0 and x.max() < V
            assert np.all(rows[s, x] > 0)
            xa, ok = table.draw_accept(base, c, f, ua)
            np.testing.assert_array_equal(xa, x)
            np.testing.assert_array_equal(ok, ua < acc[s * V + x])


def test_alias_sampling_reproduces_the_row_law_by_chi_square_with_computed_power():
    rng = np.random.default_rng(21)
    rows = _awkward_rows(rng, 3, 9, "peaked")
    # planted bug: the masses of each row's two largest tokens swapped
    bug = rows.copy()
    top2 = np.argsort(rows, axis=1)[:, -2:]
    r = np.arange(3)[:, None]
    bug[r, top2] = rows[r, top2[:, ::-1]]
    N = N_LAW
    good, bad = AliasTable(rows, "rows"), AliasTable(bug, "bug")
    u = np.random.default_rng(22).random(N)
    for s in range(3):
        pw, lam = power(rows[s], bug[s], N)
        assert pw >= 1 - ALPHA, f"row {s}: power {pw:.3g} (lambda {lam:.1f}); raise N"
        assert_law(np.bincount(good.sample(np.full(N, s * 9), u), minlength=9), rows[s],
                   f"alias row {s}")
        stat, _, thr, _ = chi2_gof(np.bincount(bad.sample(np.full(N, s * 9), u),
                                               minlength=9), rows[s])
        assert stat > thr, f"row {s}: planted bug not detected ({stat:.1f} <= {thr:.1f})"


def test_alias_table_refuses_an_invalid_law_by_name():
    with pytest.raises(ValueError, match="draft kernel has negative or non-finite"):
        AliasTable(np.array([[0.5, np.nan]]), "draft kernel")
    with pytest.raises(ValueError, match="draft kernel has negative or non-finite"):
        AliasTable(np.array([[1.5, -0.5]]), "draft kernel")
    with pytest.raises(ValueError, match="draft kernel rows must sum to 1"):
        AliasTable(np.array([[0.5, np.inf]]), "draft kernel")
    with pytest.raises(ValueError, match="draft kernel rows must sum to 1"):
        AliasTable(np.array([[0.5, 0.4]]), "draft kernel")


def _argmax_path(pair, T):
    """The greedy-decoding path of the target, followed here state by state."""
    path, s = [], pair.start
    for n in range(T):
        x = int(np.argmax(pair.target.kernel(n)[s]))
        path.append(x)
        s = pair.state_of[x]
    return np.array(path)


@pytest.mark.parametrize("gamma", [None, 0, 1, 3])
@pytest.mark.parametrize("pair", [YIN, ZEROS], ids=["yin73", "zeros"])
def test_greedy_rule_emits_the_target_argmax_path_in_every_run(pair, gamma):
    # greedy verification keeps a draft iff it is the argmax; recovered and bonus tokens are
    # the argmax too (rules.greedy.bonus), so greedy SD is greedy decoding: every run is the
    # same deterministic path, whatever the blocks
    T = pair.max_horizon
    res = simulate(pair, rules.greedy, T, gamma=gamma, runs=500, rng=4)
    np.testing.assert_array_equal(res.tokens, np.tile(_argmax_path(pair, T), (500, 1)))


@pytest.mark.parametrize("pair", [YIN, ZEROS], ids=["yin73", "zeros"])
def test_greedy_with_gamma_blocks_agrees_with_the_exact_engine_on_the_argmax_path(pair):
    T, gamma = pair.max_horizon, 3
    path = _argmax_path(pair, T)
    marg = exact.output_marginals(pair, rules.greedy, T, gamma, "first")
    np.testing.assert_allclose(marg, np.eye(pair.V)[path], rtol=0, atol=1e-12)
    res = simulate(pair, rules.greedy, T, gamma=gamma, runs=N_LAW, rng=5)
    assert_mean(res.mean_rejections, res.sem_rejections,
                exact.expected_rejections(pair, rules.greedy, T, gamma, "first"),
                "greedy gamma=3 E[rej]")


class UniformBonus(Rule):
    """Lossless verification whose bonus token is uniform over the vocabulary instead of p: the
    engine must draw bonus tokens from ``rule.bonus``."""

    name = "lossless-uniform-bonus"

    def acceptances(self, p, q):
        return rules.lossless.acceptances(p, q)

    def residual(self, p, q):
        return rules.lossless.residual(p, q)

    def bonus(self, p):
        return np.full_like(p, 1.0 / p.shape[-1])


def test_bonus_tokens_are_drawn_from_the_rules_bonus_law():
    # gamma = 0: every position is a bonus position, so every token is uniform
    T, V = 4, YIN.V
    res = simulate(YIN, UniformBonus(), T, gamma=0, runs=N_LAW, rng=13)
    uniform = np.full((V, V), 1.0 / V**2)
    assert_law(joint2_counts(res.tokens, V), uniform, "uniform bonus joint")
    # the statistic tells the uniform bonus from a bonus drawn from the target, and does
    target = joint2_law(_kernels(YIN, "target", 2), YIN.start, YIN.state_of)
    pw, _ = power(uniform, target, N_LAW)
    assert pw >= 1 - ALPHA
    stat, _, thr, _ = chi2_gof(joint2_counts(simulate(YIN, rules.lossless, T, gamma=0,
                                                      runs=N_LAW, rng=13).tokens, V), uniform)
    assert stat > thr


@pytest.mark.parametrize("pair", [YIN, ZEROS], ids=["yin73", "zeros"])
def test_bonus_tokens_inside_blocks_agree_with_the_exact_engine(pair):
    T, gamma = pair.max_horizon, 2
    res = simulate(pair, UniformBonus(), T, gamma=gamma, runs=N_LAW, rng=14)
    marg = exact.output_marginals(pair, UniformBonus(), T, gamma, "first")
    for n in range(T):
        assert_law(marginal_counts(res.tokens, n, pair.V), marg[n], f"uniform bonus {n}")


@pytest.mark.parametrize("rule,by_step", [
    (rules.lossless, True), (rules.greedy, True), (rules.kseq(3).single(), True),
    (rules.over_accept(0.1), False), (rules.lenient(0.5), False), (UniformBonus(), False)],
    ids=["lossless", "greedy", "kseq-single", "over-accept", "lenient", "uniform-bonus"])
def test_bonus_is_drawn_as_a_verification_step_only_when_that_step_has_the_bonus_law(rule,
                                                                                      by_step):
    # a lossless step outputs p (Leviathan et al. §2.3) and a greedy step the argmax of p: their
    # bonus laws; a biased rule's step law is not p (reference notes §1.7), nor is it uniform
    P, Q = ZEROS.kernels(1)
    assert Scheme(rule, gamma=1).laws(P, Q).bonus_is_step is by_step


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
# reference notes §7.3: Yin et al. Thm 1 and the batch variants on the explicit chain


def test_lossless_drafting_to_the_horizon_matches_yin_theorem1_on_the_73_chain():
    res = simulate(YIN, rules.lossless, 4, gamma=None, runs=40_000, rng=73)
    assert_mean(res.mean_rejections, res.sem_rejections,
                reference.YIN_EXAMPLE["expected_rejections"], "E[N_rej] (reference notes §7.3)")


@pytest.mark.parametrize("M,exact", [(M, reference.BATCH_VARIANT_A[M]) for M in (2, 4, 5)])
def test_batch_first_matches_exact_variant_a_on_the_73_chain(M, exact):
    # reference notes §7.3 table "Batch SD variant A", exact to 6 decimals
    res = simulate(YIN, rules.recursive(M), 4, gamma=None, runs=40_000, rng=100 + M,
                   batch="first")
    assert_mean(res.mean_rejections, res.sem_rejections, exact, f"variant A M={M}")


@pytest.mark.parametrize("M,ref,ref_se", reference.BATCH_VARIANT_B_MC)
def test_batch_tree_agrees_with_the_73_chain_monte_carlo_reference(M, ref, ref_se):
    # reference notes §7.3 variant B values are themselves MC estimates (20,000 runs), not exact:
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


def _loop_sd(pair, T, gamma, runs, seed, keep_rejected_draft=False):
    """Leviathan et al. Alg. 1 written as a plain per-run loop (lossless rule, gamma drafts
    per block, bonus from p), independent of the engine. ``keep_rejected_draft`` plants the
    classic off-by-one in the accepted prefix: the block emits ``drafts[:accepted + 1]`` (the
    rejected draft kept) before the recovered token."""
    rng = np.random.default_rng(seed)
    K = [pair.kernels(n) for n in range(T)]

    def draw(law):
        return min(int(np.searchsorted(np.cumsum(law), rng.random(), side="right")),
                   len(law) - 1)

    out = np.empty((runs, T), dtype=np.int64)
    for i in range(runs):
        toks, s = [], pair.start
        while len(toks) < T:
            n0, states, drafts = len(toks), [], []
            for n in range(n0, min(T, n0 + gamma)):
                states.append(s)
                drafts.append(draw(K[n][1][s]))
                s = pair.state_of[drafts[-1]]
            accepted, rejected_at = 0, None
            for j, x in enumerate(drafts):
                P, Q = K[n0 + j][0][states[j]], K[n0 + j][1][states[j]]
                if rng.random() < min(1.0, P[x] / Q[x]):
                    accepted += 1
                else:
                    rejected_at = j
                    break
            if rejected_at is None:
                toks += drafts
                if len(toks) < T:  # bonus from the target after the last accepted draft
                    st = pair.state_of[toks[-1]] if toks else pair.start
                    toks.append(draw(K[len(toks)][0][st]))
            else:
                n = n0 + rejected_at
                P, Q = K[n][0][states[rejected_at]], K[n][1][states[rejected_at]]
                kept = drafts[:accepted + 1] if keep_rejected_draft else drafts[:accepted]
                toks += kept + [draw(rules.lossless.residual(P, Q))]
            toks = toks[:T]
            s = pair.state_of[toks[-1]]
        out[i] = toks
    return out


def test_off_by_one_in_the_accepted_prefix_is_detected_with_computed_power():
    """The output-law check that the engine passes also passes an independent loop
    implementation of Alg. 1, and fails the same loop with the rejected draft kept in the
    prefix (``drafts[:accepted + 1]``), with power computed from the buggy law."""
    T, gamma, N, V = 4, 2, N_LAW, YIN.V
    K = _kernels(YIN, "target", T)
    good = _loop_sd(YIN, T, gamma, N, seed=71)
    _check_output_law(good, K, YIN.start, YIN.state_of, YIN.S, V, gamma, T, "loop Alg. 1")
    # exact law of the first two tokens under the bug: a rejected draft at position 0 is kept
    # and followed by the residual token of position 0; an accepted one is followed by the
    # position-1 draft whether or not it is accepted, i.e. by q itself
    (P0, Q0), Q1 = YIN.kernels(0), YIN.kernels(1)[1]
    q0, a0 = Q0[YIN.start], rules.lossless.acceptances(P0, Q0)[YIN.start, 0]
    r0 = rules.lossless.residual(P0[YIN.start], Q0[YIN.start])
    buggy = (q0 * a0)[:, None] * Q1[YIN.state_of] + (q0 * (1 - a0))[:, None] * r0[None, :]
    target = joint2_law(K, YIN.start, YIN.state_of)
    assert abs(buggy.sum() - 1) < 1e-12 and np.abs(buggy - target).sum() > 1e-3
    pw, lam = power(target, buggy, N)
    assert pw >= 1 - ALPHA, f"power {pw:.3g} (lambda {lam:.1f}) too low; raise N"
    bad = _loop_sd(YIN, T, gamma, N, seed=71, keep_rejected_draft=True)
    with pytest.raises(AssertionError, match="joint"):
        _check_output_law(bad, K, YIN.start, YIN.state_of, YIN.S, V, gamma, T, "off-by-one")
    assert_law(joint2_counts(bad, V), buggy, "off-by-one buggy law")


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


@pytest.mark.parametrize("gamma", [None, 3])
@pytest.mark.parametrize("pair", [YIN, ZEROS], ids=["yin73", "zeros"])
@pytest.mark.parametrize("rule,batch", EXACT_RULES,
                         ids=[f"{r.name}-{b}" for r, b in EXACT_RULES])
def test_monte_carlo_agrees_with_the_exact_engine(rule, batch, pair, gamma):
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
