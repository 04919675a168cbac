"""The Markov surrogate of a (target, draft) pair (real_models.surrogate).

Exact claims (the construction reproduces a MarkovPair's block process) to 1e-12; fitted
quantities within 4.89 standard errors (false-fail rate ~1e-6 per assert).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from real_models.surrogate import (
    assign,
    fit_surrogate,
    held_out_study,
    kmeans,
    predict,
    quantile_labels,
    surrogate_of_pair,
    surrogate_pair,
)
from real_models.validate import synthetic_records
from scdsim import block_stats, chains, rules, stationary_rates, tv
from scdsim.exact.markov import sequence_law

Z = 4.89


def sticky_pair():
    p0 = np.array([0.5, 0.45, 0.025, 0.025])
    p1 = np.array([0.025, 0.025, 0.9, 0.05])
    q1 = np.array([0.025, 0.025, 0.0, 0.95])
    so = np.array([0, 0, 1, 1])
    return chains.MarkovPair(chains.MarkovLM(np.stack([p0, p1]), state_of=so),
                             chains.MarkovLM(np.stack([p0, q1]), state_of=so), name="sticky")


PAIRS = [lambda: chains.dirichlet_pair(8, 0.4, S=3, concentration=0.5, seed=3), sticky_pair,
         lambda: chains.dirichlet_pair(5, 0.3, seed=1)]


@pytest.mark.parametrize("make", PAIRS)
@pytest.mark.parametrize("gamma", [1, 3, 5])
def test_surrogate_of_a_markov_pair_has_its_exact_block_process(make, gamma):
    pair = make()
    sur = surrogate_of_pair(pair)
    T = 25
    a, b = sequence_law(pair, rules.lossless, T, gamma), sequence_law(sur, rules.lossless, T, gamma)
    np.testing.assert_allclose(b.block_end_tokens, a.block_end_tokens, atol=1e-12)
    np.testing.assert_allclose(b.position_rejection, a.position_rejection, atol=1e-12)
    np.testing.assert_allclose(b.block_starts, a.block_starts, atol=1e-12)
    np.testing.assert_allclose(stationary_rates(sur, rules.lossless, gamma).tokens_per_call,
                               stationary_rates(pair, rules.lossless, gamma).tokens_per_call,
                               rtol=1e-10)


def test_surrogate_pair_has_tv_r_and_the_given_next_state_laws():
    rng = np.random.default_rng(0)
    S = 3
    r = np.array([0.0, 0.4, 1.0, 0.2])
    A, R = rng.dirichlet(np.ones(S), size=S + 1), rng.dirichlet(np.ones(S), size=S + 1)
    pair = surrogate_pair(r, A, R, start=S)
    P, Q = pair.target.kernels, pair.draft.kernels
    np.testing.assert_allclose(tv(P, Q), r, atol=1e-15)
    ov = np.minimum(P, Q)
    ex = np.clip(P - Q, 0, None)
    push = pair.target.state_matrix()[:, :S]  # the start state is never entered
    np.testing.assert_allclose(ov @ push, (1 - r)[:, None] * A, atol=1e-15)
    np.testing.assert_allclose(ex @ push, r[:, None] * R, atol=1e-15)
    with pytest.raises(ValueError, match="shapes"):
        surrogate_pair(r[:2], A, R, 0)
    with pytest.raises(ValueError, match="A rows"):
        surrogate_pair(r, A * 2, R, 0)


def _true_labels(pair, runs):
    out = []
    for recs in runs:
        lab = [r["state"] for r in recs] + [int(pair.state_of[recs[-1]["token"]])]
        out.append(np.array(lab))
    return out


def test_fit_recovers_a_known_pair_from_its_records():
    pair = sticky_pair()
    gamma = 3
    runs = synthetic_records(pair, rules.lossless, gamma, 400, 40, rng=3)
    fit = fit_surrogate(runs, _true_labels(pair, runs), pair.S, prior=0.0)
    true = surrogate_of_pair(pair)  # kernels [(1 - r) A, r R, 0] in the true states
    ttv = tv(pair.target.kernels, pair.draft.kernels)
    np.testing.assert_allclose(fit.r[:2], ttv, atol=1e-12)  # r_t is TV of the state exactly
    # next-state laws: binomial proportions, cell by cell, against the exact construction
    K = true.target.kernels
    checks = [(fit.A, fit.n_accepted, s, K[s, :2] / (1 - ttv[s])) for s in range(2)]
    checks += [(fit.R, fit.n_recovered, s, K[s, 2:4] / ttv[s]) for s in range(2) if ttv[s] > 0]
    assert len(checks) == 3  # state 0 has TV 0: nothing is ever recovered there
    for est, counts, s, truth in checks:
        se = np.sqrt(np.clip(truth * (1 - truth), 0, None) / counts[s].sum())
        assert np.all(np.abs(est[s] - truth) <= Z * se + 1e-12)  # 1e-12: exact 0/1 cells
    truth = stationary_rates(pair, rules.lossless, gamma).tokens_per_call
    pred = predict(fit.pair, gamma)["tokens_per_call"]
    # the fitted transition laws carry ~1 % sampling error at this size (40 x 400 tokens)
    assert abs(pred / truth - 1) < 0.03


@pytest.mark.torch
def test_fit_recovers_a_known_pair_run_through_the_engine_as_a_model():
    """The "real" pair is a MarkovPair wrapped as torch causal LMs (real_models.tiny) and run
    through the KV-cached engine; states read back from the tokens."""
    torch = pytest.importorskip("torch")
    from real_models.engine import speculative_generate
    from real_models.tiny import markov_pair_lms

    pair = sticky_pair()
    gamma = 3
    t, d = markov_pair_lms(pair)
    n = 16
    out = speculative_generate(t, d, [[0]] * n, rule=rules.lossless, gamma=gamma,
                               max_new_tokens=120,
                               rngs=[torch.Generator().manual_seed(100 + i) for i in range(n)])
    labels = []
    for toks in out.tokens:
        labels.append(np.array([pair.start] + [int(pair.state_of[x]) for x in toks]))
    fit = fit_surrogate(out.records, labels, pair.S, prior=0.0)
    ttv = tv(pair.target.kernels, pair.draft.kernels)
    np.testing.assert_allclose(fit.r[:2], ttv, atol=1e-6)
    np.testing.assert_allclose(fit.r[2], ttv[pair.start], atol=1e-6)
    # the sticky pair's leaving probabilities are 0.05 and 0.075/0.05: recovered to 5 s.e.
    stay = fit.A[0, 0]
    n0 = np.sum([(r["kind"] == "accepted") for recs, lab in zip(out.records, labels)
                 for r, s in zip(recs, lab) if s == 0])
    true_stay = 0.95
    assert abs(stay - true_stay) <= Z * math.sqrt(true_stay * (1 - true_stay) / n0)


def test_held_out_study_prefers_the_surrogate_on_a_sticky_pair():
    pair = sticky_pair()
    gamma = 4
    runs = synthetic_records(pair, rules.lossless, gamma, 300, 40, rng=9)
    rng = np.random.default_rng(0)
    feats = []
    for lab in _true_labels(pair, runs):  # a noisy 2-d embedding of the true state
        X = np.stack([lab, 1 - lab], axis=1).astype(float) * 3 + rng.normal(size=(lab.size, 2))
        feats.append(X)
    res = held_out_study(runs, feats, gamma, Ss=(1, 2))
    assert res["S"] == [1, 2]
    # S = 1 is the i.i.d. formula (one state, Leviathan Eq. 1 solved exactly)
    np.testing.assert_allclose(res["surrogate"][0], res["iid"], rtol=2e-2)
    assert abs(res["surrogate_rel_error"][1]) < abs(res["iid_rel_error"])
    assert abs(res["iid_rel_error"]) > 0.05


def test_kmeans_separates_clear_clusters_and_assign_is_consistent():
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [10, 0], [0, 10.0]])
    X = np.concatenate([c + rng.normal(size=(50, 2)) for c in centres])
    C, lab = kmeans(X, 3, seed=0)
    for k in range(3):
        assert len(set(lab[50 * k:50 * (k + 1)])) == 1
    assert len(set(lab)) == 3
    np.testing.assert_array_equal(assign(X, C), lab)
    with pytest.raises(ValueError, match="at least"):
        kmeans(X[:2], 3)


def test_quantile_labels_bins_by_rank():
    lab, edges = quantile_labels(np.arange(100.0), 4)
    np.testing.assert_array_equal(np.bincount(lab), [25, 25, 25, 25])
    lab2, _ = quantile_labels(np.array([-1.0, 30.0, 1e9]), 4, edges)
    np.testing.assert_array_equal(lab2, [0, 1, 3])


def test_fit_surrogate_rejects_bad_labels():
    pair = sticky_pair()
    runs = synthetic_records(pair, rules.lossless, 2, 10, 2, rng=0)
    with pytest.raises(ValueError, match="prompts"):
        fit_surrogate(runs, [np.zeros(11, int)], 2)
    with pytest.raises(ValueError, match="entries"):
        fit_surrogate(runs, [np.zeros(3, int)] * 2, 2)
    with pytest.raises(ValueError, match="lie in"):
        fit_surrogate(runs, [np.full(11, 5)] * 2, 2)


def test_predict_is_the_exact_engine_on_the_surrogate():
    sur = surrogate_of_pair(sticky_pair())
    out = predict(sur, 3, c=0.1, horizon=64)
    bs = block_stats(sur, rules.lossless, 64, 3, c=0.1)
    np.testing.assert_allclose(out["block_length_pmf"], bs.tokens_per_call_pmf, atol=1e-15)
    assert out["speedup"] == bs.speedup
