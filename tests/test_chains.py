"""Tests for scdsim.chains: MarkovLM/MarkovPair validation and immutability; every pair family.

Expected numbers come from theory.md (section cited) or from a derivation written out in the test;
TVs are recomputed here as ``1/2 sum |p - q|`` rather than taken from scdsim.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter

import numpy as np
import pytest

from scdsim import chains, rules
from scdsim.chains import MarkovLM, MarkovPair


def tv_rows(p, q):
    """Row-wise total variation, written out independently of scdsim.distributions."""
    return 0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum(axis=-1)


def pydoc_text():
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def assert_valid_laws(m: MarkovLM):
    assert np.all(m.kernels >= 0)
    np.testing.assert_allclose(m.kernels.sum(axis=-1), 1.0, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------
# MarkovLM / MarkovPair construction
# ------------------------------------------------------------------------------------------

U3 = np.full((3, 3), 1 / 3)


@pytest.mark.parametrize("kernels", [np.full(3, 1 / 3), np.full((1, 1, 3, 3), 1 / 3)])
def test_markovlm_rejects_kernels_that_are_not_2d_or_3d(kernels):
    with pytest.raises(ValueError, match=r"kernels must have shape \(S, V\) or \(T, S, V\)"):
        MarkovLM(kernels)


@pytest.mark.parametrize("shape", [(0, 3), (0, 2, 2)])
def test_markovlm_rejects_empty_state_or_time_axis(shape):
    with pytest.raises(ValueError, match="kernels must have at least one position"):
        MarkovLM(np.zeros(shape))


@pytest.mark.parametrize(
    ("kernels", "message"),
    [
        (np.array([[0.5, 0.6], [0.5, 0.5]]), "kernels rows must sum to 1"),
        (np.array([[1.5, -0.5], [0.5, 0.5]]), "kernels has negative entries"),
        (np.array([[np.nan, 1.0], [0.5, 0.5]]), "kernels contains NaN"),
    ],
)
def test_markovlm_rejects_rows_that_are_not_laws(kernels, message):
    with pytest.raises(ValueError, match=message):
        MarkovLM(kernels)


def test_markovlm_rejects_start_outside_the_states():
    with pytest.raises(ValueError, match=r"start must be a state in \[0, 3\), got 3"):
        MarkovLM(U3, start=3)
    with pytest.raises(ValueError, match="start must be >= 0, got -1"):
        MarkovLM(U3, start=-1)
    with pytest.raises(TypeError, match="start must be an integer"):
        MarkovLM(U3, start=1.0)


@pytest.mark.parametrize(
    "state_of",
    [[0, 1], np.array([0.0, 1.0, 0.0]), np.array([True, False, True]), [[0, 1, 0]]],
    ids=["short", "float", "bool", "2d"],
)
def test_markovlm_rejects_state_map_of_wrong_shape_or_dtype(state_of):
    with pytest.raises(ValueError, match=r"state_of must be an integer array of shape \(3,\)"):
        MarkovLM(np.full((2, 3), 1 / 3), state_of=state_of)


@pytest.mark.parametrize("state_of", [[0, 1, 2], [-1, 0, 1]])
def test_markovlm_rejects_state_map_values_outside_the_states(state_of):
    with pytest.raises(ValueError, match=r"state_of values must lie in \[0, 2\)"):
        MarkovLM(np.full((2, 3), 1 / 3), state_of=state_of)


def test_markovlm_requires_state_map_when_states_differ_from_tokens():
    with pytest.raises(ValueError, match="state_of is required when the number of states S=2 "
                                         "differs from V=3"):
        MarkovLM(np.full((2, 3), 1 / 3))


def test_markovlm_default_state_map_is_the_identity_and_shapes_are_reported():
    m = MarkovLM(np.full((4, 3, 3), 1 / 3), start=2)
    np.testing.assert_array_equal(m.state_of, [0, 1, 2])
    assert (m.V, m.S, m.max_horizon, m.homogeneous, m.start) == (3, 3, 4, False, 2)
    np.testing.assert_array_equal(m.state_matrix(), np.eye(3))
    h = MarkovLM(np.full((2, 3), 1 / 3), state_of=[1, 0, 1])
    assert (h.V, h.S, h.max_horizon, h.homogeneous) == (3, 2, None, True)
    np.testing.assert_array_equal(h.state_matrix(), [[0, 1], [1, 0], [0, 1]])


def test_kernel_rejects_positions_outside_the_horizon():
    m = chains.yin_example().target
    np.testing.assert_array_equal(m.kernel(3), m.kernels[3])
    for n in (4, -1):
        with pytest.raises(ValueError, match=rf"position n={n} is outside"):
            m.kernel(n)
    h = MarkovLM(U3)
    assert h.kernel(10**6) is h.kernels
    with pytest.raises(ValueError, match="position n=-1 is outside"):
        h.kernel(-1)


def test_markovlm_kernels_and_state_map_are_read_only():
    m = MarkovLM(U3)
    assert not m.kernels.flags.writeable and not m.state_of.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        m.kernels[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        m.state_of[0] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.start = 1


def test_markovlm_copies_its_inputs_so_the_caller_cannot_change_it():
    k = np.eye(3)
    so = np.array([0, 1, 1])
    m = MarkovLM(np.full((2, 3), 1 / 3), state_of=so)
    so[0] = 1
    e = MarkovLM(k)
    k[0] = [0.0, 1.0, 0.0]  # the caller's array stays writable...
    np.testing.assert_array_equal(e.kernels[0], [1.0, 0.0, 0.0])  # ...and the model unchanged
    np.testing.assert_array_equal(m.state_of, [0, 1, 1])


def test_markovpair_rejects_mismatched_models():
    two = np.full((2, 3), 1 / 3)
    with pytest.raises(TypeError, match="target must be a MarkovLM, got ndarray"):
        MarkovPair(U3, MarkovLM(U3))
    with pytest.raises(TypeError, match="draft must be a MarkovLM, got ndarray"):
        MarkovPair(MarkovLM(U3), U3)
    with pytest.raises(ValueError, match="vocabulary mismatch: target V=3, draft V=2"):
        MarkovPair(MarkovLM(U3), MarkovLM(np.full((2, 2), 0.5)))
    with pytest.raises(ValueError, match="state-space mismatch: target S=2, draft S=1"):
        MarkovPair(MarkovLM(two, state_of=[0, 1, 1]), MarkovLM(two[:1], state_of=[0, 0, 0]))
    with pytest.raises(ValueError, match="start state mismatch: target start=0, draft start=1"):
        MarkovPair(MarkovLM(U3), MarkovLM(U3, start=1))
    with pytest.raises(ValueError, match=r"state map mismatch: target and draft differ first at "
                                         r"token 2 \(1 vs 0\)"):
        MarkovPair(MarkovLM(two, state_of=[0, 1, 1]), MarkovLM(two, state_of=[0, 1, 0]))
    with pytest.raises(TypeError, match="meta must be a mapping or None, got list"):
        MarkovPair(MarkovLM(U3), MarkovLM(U3), meta=[1])


def test_markovpair_horizon_is_the_shortest_model_and_enforced():
    yin = chains.yin_example()
    assert yin.max_horizon == 4 and not yin.homogeneous
    assert yin.check_horizon(4) == 4
    with pytest.raises(ValueError, match="horizon=5 exceeds the 4 positions the kernels define"):
        yin.check_horizon(5)
    with pytest.raises(ValueError, match="horizon must be >= 1, got 0"):
        yin.check_horizon(0)
    mixed = MarkovPair(MarkovLM(yin.target.kernels[:3]), MarkovLM(U3))
    assert mixed.max_horizon == 3
    with pytest.raises(ValueError, match="horizon=4 exceeds the 3 positions"):
        mixed.check_horizon(4)
    homog = MarkovPair(MarkovLM(U3), MarkovLM(np.eye(3)))
    assert homog.homogeneous and homog.max_horizon is None and homog.check_horizon(10**6) == 10**6


def test_markovpair_meta_is_a_read_only_copy():
    src = {"a": 1}
    pair = MarkovPair(MarkovLM(U3), MarkovLM(U3), meta=src)
    src["a"] = 2
    assert pair.meta["a"] == 1
    with pytest.raises(TypeError):
        pair.meta["a"] = 3
    assert MarkovPair(MarkovLM(U3), MarkovLM(U3)).meta is None


# ------------------------------------------------------------------------------------------
# yin_example (reference notes §7.3)
# ------------------------------------------------------------------------------------------

def test_yin_example_matches_the_theory_tables():
    pair = chains.yin_example()
    assert (pair.V, pair.S, pair.start, pair.max_horizon) == (3, 3, 0, 4)
    assert pair.name
    # reference notes §7.3, TV_n(s) for s = 0, 1, 2.
    expected_tv = [[0.3, 0.2, 0.2], [0.2, 0.4, 0.2], [0.3, 0.2, 0.3], [0.2, 0.25, 0.3]]
    np.testing.assert_allclose(tv_rows(pair.target.kernels, pair.draft.kernels), expected_tv,
                               rtol=0, atol=1e-12)
    # Target = Yin's q table (Yin's letters are swapped: q = target): first rows of §7.3.
    np.testing.assert_array_equal(pair.target.kernels[0, 0], [0.6, 0.3, 0.1])
    np.testing.assert_array_equal(pair.draft.kernels[0, 0], [0.3, 0.3, 0.4])


def test_yin_example_marginals_and_expected_rejections():
    pair = chains.yin_example()
    state_law = np.eye(pair.S)[pair.start]
    prev_marginals, terms = [], []
    for n in range(4):  # plain forward propagation of the target chain
        prev_marginals.append(state_law)
        p, q = pair.kernels(n)
        terms.append(state_law @ tv_rows(p, q))
        token_law = state_law @ p
        state_law = token_law @ pair.target.state_matrix()
    # reference notes §7.3: q-marginals of x_{n-1}, the x_4 marginal, and E[N_rej] term by term.
    np.testing.assert_allclose(
        prev_marginals,
        [[1, 0, 0], [0.6, 0.3, 0.1], [0.37, 0.5, 0.13], [0.435, 0.302, 0.263]],
        rtol=0, atol=1e-12)
    np.testing.assert_allclose(token_law, [0.4073, 0.3284, 0.2643], rtol=0, atol=1e-12)
    np.testing.assert_allclose(terms, [0.30, 0.26, 0.25, 0.2414], rtol=0, atol=1e-12)
    assert abs(sum(terms) - 1.0514) < 1e-12  # exact, as §7.3 says (brief asked 1e-4)


# ------------------------------------------------------------------------------------------
# Bernoulli and uniform pairs (Yin Fig. 3; reference notes §1.6, §7.5)
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("b", "a"), [(0.6, 0.2), (0.3, 0.7), (0.9, 0.5), (0.0, 1.0), (0.4, 0.4)])
def test_bernoulli_pair_laws_and_tv(b, a):
    pair = chains.bernoulli_pair(b, a)
    assert (pair.V, pair.S, pair.homogeneous) == (2, 1, True)
    np.testing.assert_array_equal(pair.state_of, [0, 0])
    np.testing.assert_array_equal(pair.target.kernels, [[1 - b, b]])
    np.testing.assert_array_equal(pair.draft.kernels, [[1 - a, a]])
    np.testing.assert_allclose(tv_rows(pair.target.kernels, pair.draft.kernels), [abs(b - a)],
                               rtol=0, atol=1e-15)


def test_bernoulli_pair_orientation_against_recursive_rejection():
    # reference notes §7.5: draft Ber(0.2), target Ber(0.6) gives R_2 = .32, R_3 = .256; with the
    # roles swapped it would be (a - b) a^{M-1} = .24, .144 (§1.6), so order matters here.
    pair = chains.bernoulli_pair(target_prob=0.6, draft_prob=0.2)
    p, q = pair.kernels(0)
    for M, expected in [(2, 0.32), (3, 0.256)]:
        np.testing.assert_allclose(rules.rejection_prob(rules.recursive(M), p, q), [expected],
                                   rtol=0, atol=1e-12)


def test_bernoulli_pair_rejects_probabilities_outside_unit_interval():
    with pytest.raises(ValueError, match=r"target_prob must lie in \[0.0, 1.0\], got 1.5"):
        chains.bernoulli_pair(1.5, 0.2)
    with pytest.raises(ValueError, match=r"draft_prob must lie in \[0.0, 1.0\], got -0.1"):
        chains.bernoulli_pair(0.5, -0.1)


@pytest.mark.parametrize("V", [1, 2, 5, 32])
def test_uniform_pair_laws_and_tv(V):
    pair = chains.uniform_pair(V)
    assert (pair.V, pair.S) == (V, 1)
    np.testing.assert_array_equal(pair.state_of, np.zeros(V))
    np.testing.assert_array_equal(pair.target.kernels, [np.eye(V)[0]])
    np.testing.assert_allclose(pair.draft.kernels, np.full((1, V), 1 / V), rtol=0, atol=1e-15)
    np.testing.assert_allclose(tv_rows(*pair.kernels(0)), [1 - 1 / V], rtol=0, atol=1e-15)


def test_uniform_pair_batch_improvement_matches_theory():
    # reference notes §7.5 table: V = 4, BI_2 = .1875, BI_3 = .328125 (BI_M = TV - R_M).
    p, q = chains.uniform_pair(4).kernels(0)
    for M, bi in [(2, 0.1875), (3, 0.328125)]:
        np.testing.assert_allclose(rules.rejection_prob(rules.recursive(M), p, q), [0.75 - bi],
                                   rtol=0, atol=1e-12)


def test_uniform_pair_rejects_empty_vocabulary():
    with pytest.raises(ValueError, match="V must be >= 1, got 0"):
        chains.uniform_pair(0)


# ------------------------------------------------------------------------------------------
# dirichlet_pair
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 17])
@pytest.mark.parametrize(("V", "S", "mean_tv", "concentration"),
                         [(5, None, 0.2, 1.0), (50, 7, 0.4, 1.0), (20, 1, 0.05, 0.1),
                          (8, 8, 0.15, 5.0)])
def test_dirichlet_pair_hits_mean_tv_exactly(seed, V, S, mean_tv, concentration):
    pair = chains.dirichlet_pair(V, mean_tv, S=S, concentration=concentration, seed=seed)
    assert_valid_laws(pair.target)
    assert_valid_laws(pair.draft)
    assert pair.V == V and pair.S == (V if S is None else S) and pair.homogeneous
    assert abs(tv_rows(pair.target.kernels, pair.draft.kernels).mean() - mean_tv) < 1e-12


def test_dirichlet_pair_state_map_identity_or_covering():
    np.testing.assert_array_equal(chains.dirichlet_pair(6, 0.1).state_of, np.arange(6))
    np.testing.assert_array_equal(chains.dirichlet_pair(6, 0.1, S=6).state_of, np.arange(6))
    so = chains.dirichlet_pair(23, 0.1, S=5, seed=3).state_of
    sizes = np.bincount(so, minlength=5)
    assert len(sizes) == 5 and sizes.min() >= 1 and sizes.max() - sizes.min() <= 1


def test_dirichlet_pair_is_reproducible_and_seed_dependent():
    a, b = chains.dirichlet_pair(30, 0.3, S=4, seed=5), chains.dirichlet_pair(30, 0.3, S=4, seed=5)
    c = chains.dirichlet_pair(30, 0.3, S=4, seed=6)
    np.testing.assert_array_equal(a.target.kernels, b.target.kernels)
    np.testing.assert_array_equal(a.draft.kernels, b.draft.kernels)
    np.testing.assert_array_equal(a.state_of, b.state_of)
    assert not np.array_equal(a.target.kernels, c.target.kernels)
    assert not np.array_equal(a.draft.kernels, c.draft.kernels)
    assert not np.array_equal(a.state_of, c.state_of)
    assert a.name == b.name != c.name


def test_dirichlet_pair_zero_tv_gives_identical_models():
    pair = chains.dirichlet_pair(10, 0.0, seed=2)
    np.testing.assert_array_equal(pair.target.kernels, pair.draft.kernels)


def test_dirichlet_pair_rejects_unreachable_tv_and_bad_arguments():
    # TV(t, o) < 1 for Dirichlet rows (full support almost surely), so 1.0 is out of reach.
    with pytest.raises(ValueError, match=r"mean_tv=1.0 is unreachable for this dirichlet_pair: "
                                         r"the largest mean TV it can give is 0\."):
        chains.dirichlet_pair(50, 1.0)
    with pytest.raises(ValueError, match=r"mean_tv must lie in \[0.0, 1.0\], got 1.2"):
        chains.dirichlet_pair(5, 1.2)
    with pytest.raises(ValueError, match="S=4 states cannot all be reached from V=3 tokens"):
        chains.dirichlet_pair(3, 0.1, S=4)
    with pytest.raises(ValueError, match=r"concentration must lie in \(0.0, inf\], got 0.0"):
        chains.dirichlet_pair(3, 0.1, concentration=0.0)
    with pytest.raises(TypeError, match="seed must be an integer"):
        chains.dirichlet_pair(3, 0.1, seed=1.5)
    with pytest.raises(ValueError, match="exceeds 20,000,000 kernel entries"):
        chains.dirichlet_pair(5000, 0.1)


# ------------------------------------------------------------------------------------------
# zipf_pair
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 4])
@pytest.mark.parametrize(("V", "S", "exponent", "mean_tv"),
                         [(1000, 16, 1.1, 0.3), (40, 40, 1.5, 0.25), (300, 3, 0.8, 0.5)])
def test_zipf_pair_hits_mean_tv_and_has_zipf_rows(seed, V, S, exponent, mean_tv):
    pair = chains.zipf_pair(V, S=S, exponent=exponent, mean_tv=mean_tv, seed=seed)
    assert (pair.V, pair.S) == (V, S)
    assert_valid_laws(pair.target)
    assert_valid_laws(pair.draft)
    assert abs(tv_rows(pair.target.kernels, pair.draft.kernels).mean() - mean_tv) < 1e-12
    zipf = np.arange(1, V + 1, dtype=float) ** -exponent
    zipf /= zipf.sum()
    np.testing.assert_allclose(-np.sort(-pair.target.kernels, axis=1), np.tile(zipf, (S, 1)),
                               rtol=1e-12, atol=0)
    # Per-state permutations: different states put their top token on different tokens.
    assert len(set(np.argmax(pair.target.kernels, axis=1))) > 1
    assert np.bincount(pair.state_of, minlength=S).min() >= 1


def test_zipf_pair_builds_a_50k_vocabulary_with_few_states():
    # speed is a benchmark concern, not asserted here
    pair = chains.zipf_pair(50_000, S=16, seed=1)
    assert (pair.V, pair.S) == (50_000, 16)
    assert abs(tv_rows(pair.target.kernels, pair.draft.kernels).mean() - 0.3) < 1e-12


def test_zipf_pair_is_reproducible_and_seed_dependent():
    a, b, c = (chains.zipf_pair(500, S=8, seed=s) for s in (3, 3, 9))
    np.testing.assert_array_equal(a.target.kernels, b.target.kernels)
    np.testing.assert_array_equal(a.draft.kernels, b.draft.kernels)
    assert not np.array_equal(a.target.kernels, c.target.kernels)
    assert not np.array_equal(a.draft.kernels, c.draft.kernels)


def test_zipf_pair_rejects_oversized_and_bad_arguments():
    with pytest.raises(ValueError, match=r"zipf_pair: S\*V = 10000\*10000 = 100,000,000 exceeds "
                                         r"20,000,000 kernel entries"):
        chains.zipf_pair(10_000, S=10_000)
    with pytest.raises(ValueError, match="S=20 states cannot all be reached from V=10 tokens"):
        chains.zipf_pair(10, S=20)
    with pytest.raises(ValueError, match=r"mean_tv=0.1 is unreachable for this zipf_pair"):
        chains.zipf_pair(100, S=4, exponent=0.0, mean_tv=0.1)  # uniform rows: TV(t, o) = 0
    with pytest.raises(ValueError, match=r"exponent must lie in \[0.0, inf\], got -1.0"):
        chains.zipf_pair(100, exponent=-1.0)


# ------------------------------------------------------------------------------------------
# bigram_pair
# ------------------------------------------------------------------------------------------

def _write(tmp_path, text):
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_bigram_pair_exact_counts_on_a_tiny_word_corpus(tmp_path):
    path = _write(tmp_path, "A b a. B a c! a b")
    # Tokens: a b a . b a c ! a b (N = 10); counts a:4 b:3 and '.', 'c', '!' once each.
    # vocab_size=4 keeps a, b and, of the count-1 ties, the smallest string '!' -> <unk> = 3.
    # ids: 0 1 0 3 1 0 3 2 0 1. Sentence starts: 'a' (text start), 'b' (after '. '),
    # 'a' (after '! ') -> start token 'a'.
    C = np.array([[0, 2, 0, 2], [2, 0, 0, 0], [1, 0, 0, 0], [0, 1, 1, 0]], dtype=float)
    c = np.array([4, 3, 1, 2], dtype=float)
    kt, kd = 0.01, 1.0
    pair = chains.bigram_pair(4, level="word", source=str(path))
    assert pair.meta["vocabulary"] == ("a", "b", "!", "<unk>")
    assert (pair.meta["unk"], pair.meta["start_token"], pair.meta["n_tokens"]) == (3, "a", 10)
    assert (pair.meta["level"], pair.meta["source"]) == ("word", str(path))
    assert (pair.V, pair.S, pair.start) == (4, 4, 0)
    np.testing.assert_allclose(pair.target.kernels, (C + kt) / (C.sum(1, keepdims=True) + 4 * kt),
                               rtol=1e-13, atol=0)
    np.testing.assert_allclose(pair.draft.kernels, np.tile((c + kd) / (10 + 4 * kd), (4, 1)),
                               rtol=1e-13, atol=0)
    smooth = chains.bigram_pair(4, draft="smoothed", target_smoothing=0.5, draft_smoothing=2.0,
                                source=path)  # a PathLike works too
    np.testing.assert_allclose(smooth.target.kernels, (C + 0.5) / (C.sum(1, keepdims=True) + 2),
                               rtol=1e-13, atol=0)
    np.testing.assert_allclose(smooth.draft.kernels, (C + 2.0) / (C.sum(1, keepdims=True) + 8),
                               rtol=1e-13, atol=0)


def test_bigram_pair_exact_counts_on_a_tiny_char_corpus(tmp_path):
    path = _write(tmp_path, "ab. ba")
    # Characters a b . ' ' b a: 4 distinct, so V = 5 < vocab_size; order a, b (count 2), then
    # ' ' < '.' (count 1), then <unk>. Starts 'a' and 'b' tie -> the smaller string 'a'.
    pair = chains.bigram_pair(10, level="char", target_smoothing=1.0, source=path)
    assert pair.meta["vocabulary"] == ("a", "b", " ", ".", "<unk>")
    assert (pair.V, pair.start, pair.meta["start_token"]) == (5, 0, "a")
    C = np.zeros((5, 5))
    for s, x in [(0, 1), (1, 3), (3, 2), (2, 1), (1, 0)]:  # ab, b., '. ', ' b', ba
        C[s, x] += 1
    np.testing.assert_allclose(pair.target.kernels, (C + 1) / (C.sum(1, keepdims=True) + 5),
                               rtol=1e-13, atol=0)


def test_bigram_pair_start_is_unk_when_the_usual_first_token_is_rare(tmp_path):
    # Tokens z a a . z b . b b a a: a:4 b:3 then '.' and z tie at 2, so vocab_size=3 keeps a, b.
    # Sentence starts: z (after the leading whitespace), z, b -> 'z', out of vocabulary.
    pair = chains.bigram_pair(3, source=_write(tmp_path, "\n  z a a. z b. b b a a"))
    assert pair.meta["vocabulary"] == ("a", "b", "<unk>")
    assert (pair.start, pair.meta["start_token"]) == (2, "<unk>")


def _empirical_tv(pair, ids):
    """State-frequency-weighted TV of each model's rows to the unsmoothed empirical bigram."""
    V = pair.V
    C = np.zeros((V, V))
    np.add.at(C, (ids[:-1], ids[1:]), 1.0)
    n = C.sum(1)
    seen = n > 0
    emp = C[seen] / n[seen, None]
    w = n[seen] / n.sum()
    return (w @ tv_rows(emp, pair.target.kernels[seen]),
            w @ tv_rows(emp, pair.draft.kernels[seen]))


@pytest.mark.parametrize("draft", ["unigram", "smoothed"])
def test_bigram_pair_word_level_on_pydoc(draft):
    pair = chains.bigram_pair(200, level="word", draft=draft)
    assert (pair.V, pair.S) == (200, 200)
    assert_valid_laws(pair.target)
    assert_valid_laws(pair.draft)
    if draft == "unigram":
        np.testing.assert_array_equal(pair.draft.kernels, np.tile(pair.draft.kernels[0], (200, 1)))
    else:
        assert not np.array_equal(pair.draft.kernels[0], pair.draft.kernels[1])
    # Independent tokenisation (the documented rule: lowercase, \w+ or one non-space symbol).
    tokens = re.findall(r"\w+|[^\w\s]", pydoc_text().lower())
    counts = Counter(tokens)
    vocab = pair.meta["vocabulary"]
    assert vocab[-1] == "<unk>" and len(set(vocab)) == 200 and pair.meta["n_tokens"] == len(tokens)
    kept = [counts[t] for t in vocab[:-1]]
    assert kept == sorted(kept, reverse=True)  # by decreasing frequency
    assert max(c for t, c in counts.items() if t not in set(vocab)) <= kept[-1]
    index = {t: i for i, t in enumerate(vocab[:-1])}
    ids = np.array([index.get(t, 199) for t in tokens])
    target_gap, draft_gap = _empirical_tv(pair, ids)
    assert target_gap < draft_gap
    assert pair.meta["start_token"] == vocab[pair.start]


def test_bigram_pair_char_level_on_pydoc():
    text = pydoc_text()
    pair = chains.bigram_pair(200, level="char")
    assert pair.V == min(200, len(set(text)) + 1)
    small = chains.bigram_pair(30, level="char")
    assert small.V == 30 and small.meta["level"] == "char"
    for p in (pair, small):
        assert_valid_laws(p.target)
        assert_valid_laws(p.draft)
    vocab = small.meta["vocabulary"]
    index = {t: i for i, t in enumerate(vocab[:-1])}
    ids = np.array([index.get(ch, 29) for ch in text])
    target_gap, draft_gap = _empirical_tv(small, ids)
    assert target_gap < draft_gap


def test_bigram_pair_caches_tokenised_text():
    chains.bigram_pair(50)
    hits = chains._corpus.cache_info().hits
    chains.bigram_pair(60)
    assert chains._corpus.cache_info().hits == hits + 1


def test_bigram_pair_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"level must be one of \['char', 'word'\], got 'byte'"):
        chains.bigram_pair(level="byte")
    with pytest.raises(ValueError, match="draft must be one of"):
        chains.bigram_pair(draft="trigram")
    with pytest.raises(ValueError, match=r"target_smoothing must lie in \(0.0, inf\], got 0.0"):
        chains.bigram_pair(target_smoothing=0.0)
    with pytest.raises(ValueError, match=r"draft_smoothing must lie in \(0.0, inf\], got -1.0"):
        chains.bigram_pair(draft_smoothing=-1.0)
    with pytest.raises(ValueError, match="vocab_size must be >= 2, got 1"):
        chains.bigram_pair(1)
    with pytest.raises(ValueError, match="exceeds 20,000,000 kernel entries"):
        chains.bigram_pair(5000)
    with pytest.raises(TypeError, match="source must be a path or None, got int"):
        chains.bigram_pair(source=3)
    with pytest.raises(ValueError, match="source=.*missing.txt.* cannot be read"):
        chains.bigram_pair(source=str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="has 1 word token"):
        chains.bigram_pair(source=_write(tmp_path, "hello"))


# ------------------------------------------------------------------------------------------
# contrast_chain / scd_pair (reference notes §5, §7.6)
# ------------------------------------------------------------------------------------------

def _one_state(row):
    row = np.asarray(row, dtype=float)
    return MarkovLM(row[None], state_of=np.zeros(row.size, dtype=np.int64))


def _softmax(s):
    e = np.exp(np.asarray(s) - np.max(s))
    return e / e.sum()


S_E = [2.0, 1.5, 0.3, -1.0, -3.0]  # reference notes §7.6 inputs
S_A = [1.0, 1.8, 0.5, -0.5, -2.0]


@pytest.mark.parametrize(("contrast", "expected"), [
    (0.5, [0.705768, 0.223472, 0.070760, 0, 0]),
    (1.0, [0.819456, 0.135455, 0.045089, 0, 0]),
    (0.0, [0.558905, 0.338993, 0.102103, 0, 0]),
])
def test_contrast_chain_reproduces_theory_example(contrast, expected):
    expert, amateur = _one_state(_softmax(S_E)), _one_state(_softmax(S_A))
    chain = chains.contrast_chain(expert, amateur, plausibility=0.1, contrast=contrast)
    np.testing.assert_allclose(chain.kernels[0], expected, rtol=0, atol=1e-6)  # 6 decimals given
    assert np.all(chain.kernels[0, 3:] == 0.0)


def test_scd_pair_targets_the_contrast_chain_and_drafts_with_the_amateur():
    expert, amateur = _one_state(_softmax(S_E)), _one_state(_softmax(S_A))
    pair = chains.scd_pair(expert, amateur, plausibility=0.1, contrast=0.5)
    assert pair.draft is amateur
    np.testing.assert_allclose(pair.draft.kernels[0],
                               [0.243606, 0.542155, 0.147755, 0.054356, 0.012128], atol=1e-6)
    # reference notes §7.6: SCD acceptance lambda = sum min(P^c, p_a) = 0.537838.
    np.testing.assert_allclose(1 - tv_rows(*pair.kernels(0)), [0.537838], rtol=0, atol=1e-6)
    assert "contrast=0.5" in pair.name


def _expected_contrast(e, a, plausibility, beta, tau, form):
    """p_CD on the plausible set, derived from the papers' formulas (reference notes §5)."""
    a_tau = a ** (1 / tau)
    a_tau = a_tau / a_tau.sum(-1, keepdims=True)
    w = e ** (1 + beta) * a_tau ** -beta if form == "logit" else e * a_tau ** -beta
    w = np.where(e >= plausibility * e.max(-1, keepdims=True), w, 0.0)
    return w / w.sum(-1, keepdims=True)


@pytest.mark.parametrize(("expert_shape", "amateur_shape"),
                         [((3, 4, 6), (3, 4, 6)), ((4, 6), (3, 4, 6)), ((4, 6), (4, 6))])
@pytest.mark.parametrize(("form", "beta", "tau", "alpha"),
                         [("logit", 0.5, 1.0, 0.1), ("ratio", 1.0, 0.5, 0.3),
                          ("logit", 2.0, 0.7, 0.0)])
def test_contrast_chain_rows_vanish_outside_plausible_set_and_are_laws(
        expert_shape, amateur_shape, form, beta, tau, alpha):
    rng = np.random.default_rng(11)
    so = np.array([0, 1, 2, 3, 1, 2])
    e = rng.dirichlet(np.full(6, 0.7), size=expert_shape[:-1])
    a = rng.dirichlet(np.full(6, 0.7), size=amateur_shape[:-1])
    expert, amateur = MarkovLM(e, start=2, state_of=so), MarkovLM(a, start=2, state_of=so)
    chain = chains.contrast_chain(expert, amateur, plausibility=alpha, contrast=beta,
                                  amateur_temperature=tau, form=form)
    inhomogeneous = len(expert_shape) == 3 or len(amateur_shape) == 3
    assert chain.kernels.shape == ((3, 4, 6) if inhomogeneous else (4, 6))
    assert chain.start == 2
    np.testing.assert_array_equal(chain.state_of, so)
    e_b, a_b = np.broadcast_arrays(e, a)
    outside = e_b < alpha * e_b.max(-1, keepdims=True)
    if alpha > 0:
        assert outside.any()  # the mask is exercised
    assert np.all(chain.kernels[outside] == 0.0)
    np.testing.assert_allclose(chain.kernels.sum(-1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(chain.kernels, _expected_contrast(e_b, a_b, alpha, beta, tau, form),
                               rtol=1e-10, atol=1e-14)


def test_contrast_chain_rejects_mismatched_or_degenerate_models():
    m3 = MarkovLM(U3)
    with pytest.raises(TypeError, match="expert must be a MarkovLM"):
        chains.contrast_chain(U3, m3)
    with pytest.raises(ValueError, match="vocabulary mismatch: expert V=3, amateur V=2"):
        chains.contrast_chain(m3, MarkovLM(np.full((2, 2), 0.5)))
    with pytest.raises(ValueError, match="state-space mismatch: expert S=3, amateur S=1"):
        chains.contrast_chain(m3, MarkovLM(np.full((1, 3), 1 / 3), state_of=[0, 0, 0]))
    with pytest.raises(ValueError, match="start state mismatch: expert start=0, amateur start=1"):
        chains.contrast_chain(m3, MarkovLM(U3, start=1))
    two = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match="state map mismatch: expert and amateur"):
        chains.contrast_chain(MarkovLM(two, state_of=[0, 1, 1]), MarkovLM(two, state_of=[1, 1, 0]))
    with pytest.raises(ValueError, match="horizon mismatch: expert defines T=2 positions, "
                                         "amateur T=3"):
        chains.contrast_chain(MarkovLM(np.full((2, 3, 3), 1 / 3)),
                              MarkovLM(np.full((3, 3, 3), 1 / 3)))
    # An amateur with probability 0 on a plausible expert token makes the CD score +inf.
    with pytest.raises(ValueError, match="plausible set"):
        chains.scd_pair(_one_state([0.5, 0.5]), _one_state([1.0, 0.0]), contrast=0.5)
