"""Three engines agree: a MarkovPair run as torch causal LMs through the real-model engine
reproduces the exact engine (scdsim.exact.markov).

``real_models.tiny.markov_pair_lms`` wraps the pair's kernels as causal LMs (logits = log of
the kernel row, the state read from the token and position ids the engine passes), so the
engine's whole machinery (KV cache with holes, rollback, per-row streams, multi-draft sub-rows)
runs on a model whose exact sequence law is known. For each configuration the engine's output
must match, at a per-assert false-fail rate of 1e-6 (tests/real_stats.py):
* the joint law of the T emitted tokens (``exact_joint_law``), by chi-square;
* the expected number of rejections (``expected_rejections``), within 4.89 s.e.;
* target calls per sequence and tokens per call (``block_stats``), within 4.89 s.e.
Each chi-square's power against a planted bug's exact law (resampling from the target instead
of the residual; for the lossy rule, the lossless law) is computed and asserted >= 1 - 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
from real_stats import assert_law, assert_mean, power, seq_counts

from scdsim import chains, rules
from scdsim.exact import markov as exact

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from real_models.engine import speculative_generate  # noqa: E402
from real_models.tiny import markov_pair_lms  # noqa: E402

pytestmark = pytest.mark.torch

YIN = chains.yin_example()  # T = 4, V = 3, inhomogeneous
DIR = chains.dirichlet_pair(4, 0.4, seed=3)  # V = S = 4, homogeneous
N = 4000
UNO = rules.over_accept(0.0, resample="target")  # planted bug: resample from p, not the residual

CASES = [
    # (pair, horizon, rule, gamma, batch)
    ("yin", 4, rules.lossless, 1, "first"),
    ("yin", 4, rules.lossless, 2, "first"),
    ("yin", 4, rules.lossless, 3, "first"),
    ("yin", 4, rules.recursive(2), 2, "first"),
    ("yin", 4, rules.recursive(2), 2, "tree"),
    ("yin", 4, rules.kseq(2), 3, "first"),
    ("yin", 4, rules.kseq(2), 1, "tree"),
    ("yin", 4, rules.over_accept(0.2), 2, "first"),
    ("dir", 3, rules.recursive(3), 2, "first"),
    ("dir", 3, rules.recursive(3), 2, "tree"),
    ("dir", 3, rules.kseq(3), 2, "tree"),
]
PAIRS = {"yin": YIN, "dir": DIR}


def _run(pair, T, rule, gamma, batch, n=N, seed=0):
    target, draft = markov_pair_lms(pair)
    gens = [torch.Generator().manual_seed(seed * 1_000_003 + i) for i in range(n)]
    return speculative_generate(target, draft, [[0]] * n, rule=rule, gamma=gamma, batch=batch,
                                max_new_tokens=T, rngs=gens)


@pytest.mark.parametrize("name,T,rule,gamma,batch", CASES,
                         ids=[f"{c[0]}-{c[2].name}-g{c[3]}-{c[4]}" for c in CASES])
def test_engine_matches_exact_law_rejections_and_calls(name, T, rule, gamma, batch):
    pair = PAIRS[name]
    res = _run(pair, T, rule, gamma, batch)
    assert all(len(t) == T for t in res.tokens)
    law = exact.exact_joint_law(pair, rule, T, gamma, batch)
    stat = assert_law(seq_counts(res.tokens, pair.V, T), law, f"{name} {rule} g={gamma} {batch}")
    bug = (exact.exact_joint_law(pair, rules.lossless, T, gamma) if rule.lossy
           else exact.exact_joint_law(pair, UNO, T, gamma))
    pw = power(law, bug, N)
    assert pw >= 1 - 1e-6
    print(f"\n{name} {rule} gamma={gamma} {batch}: chi2 {stat[0]:.1f} (df {stat[1]}, threshold "
          f"{stat[2]:.1f}), power {pw:.8f}; rejections {res.mean_rejections:.4f} +- "
          f"{res.sem_rejections:.4f} vs {exact.expected_rejections(pair, rule, T, gamma, batch):.4f}"
          f"; calls {res.mean_target_calls:.4f} +- {res.sem_target_calls:.4f}")
    assert_mean(res.mean_rejections, res.sem_rejections,
                exact.expected_rejections(pair, rule, T, gamma, batch), "rejections")
    stats = exact.block_stats(pair, rule, T, gamma, batch=batch)
    assert_mean(res.mean_target_calls, res.sem_target_calls, stats.expected_target_calls,
                "target calls")
    assert_mean(res.tokens_per_call, res.sem_tokens_per_call, stats.tokens_per_call,
                "tokens per call")
    for n, pr in enumerate(exact.position_rejection(pair, rule, T, gamma, batch)):
        assert_mean(res.position_rejection[n], np.sqrt(pr * (1 - pr) / N), pr,
                    f"position {n} rejection")
    # records agree with the counts they summarise
    assert res.rejections.sum() == sum(x["kind"] == "recovered" for r in res.records for x in r)
    assert all(r[-1]["target_calls"] == r[-1]["block"] + 1 for r in res.records)


def test_rejection_records_are_the_rules_own_rejection_probability():
    """On the Markov model the recorded rejection probability at a verified position equals
    ``rules.rejection_prob`` of the kernels at that state (float64, 1e-12), and the recorded
    TV equals TV(p, q)."""
    res = _run(YIN, 4, rules.recursive(2), 2, "tree", n=40)
    checked = 0
    for toks, recs in zip(res.tokens, res.records):
        for x in recs:
            if x["kind"] not in ("accepted", "recovered"):
                continue
            n = x["index"]
            s = YIN.start if n == 0 else int(YIN.state_of[toks[n - 1]])
            P, Q = YIN.kernels(n)
            if x["pos_in_block"] == 0:
                rule = rules.recursive(2)
            else:  # tree reading: as many drafts as stayed alive; find which by its value
                cand = [rules.rejection_prob(rules.recursive(m), P[s], Q[s]) for m in (1, 2)]
                rule = rules.recursive(1 + int(np.argmin(
                    [abs(c - x["rejection_prob"]) for c in cand])))
            np.testing.assert_allclose(x["rejection_prob"],
                                       rules.rejection_prob(rule, P[s], Q[s]), atol=1e-12)
            np.testing.assert_allclose(x["tv"], 0.5 * np.abs(P[s] - Q[s]).sum(), atol=1e-12)
            checked += 1
    assert checked > 40


class _Spy(type(rules.recursive(2))):
    """recursive(M) that logs which object's acceptances ran, and on what kind of array."""

    log: list = []
    family: dict = {}

    def acceptances(self, p, q):
        _Spy.log.append((id(self), type(p).__module__.split(".")[0]))
        return super().acceptances(p, q)

    def with_drafts(self, m):
        if m == self.M:
            return self
        return _Spy.family.setdefault(m, _Spy(M=m))


def test_parity_engine_and_exact_engine_call_the_same_rule_objects():
    spy = _Spy(M=2)
    _Spy.family[2] = spy
    _Spy.log.clear()
    exact.expected_rejections(YIN, spy, 4, 2, "first")
    numpy_ids = {i for i, kind in _Spy.log if kind == "numpy"}
    _Spy.log.clear()
    _run(YIN, 4, spy, 2, "first", n=20)
    torch_ids = {i for i, kind in _Spy.log if kind == "torch"}
    assert {i for i, _ in _Spy.log} == torch_ids  # the engine hands the rule torch tensors
    assert numpy_ids == torch_ids == {id(spy), id(_Spy.family[1])}

