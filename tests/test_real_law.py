"""Output law of the real-model engine: the first two emitted tokens against their exact law.

On tiny random Llamas (V = 8, float64) the exact law of the first two tokens is enumerated
here from the models' own logits (one forward per prefix, no cache): ``P(x1, x2) =
w(target | prompt)(x1) w(target | prompt, x1)(x2)`` with ``w`` the warped law (for SCD: the
contrasted law of (target, amateur)). ``N`` prompts run through the engine in one batch, each
with its own stream, and the 64-cell table of (x1, x2) is compared by chi-square at a
per-assert false-fail rate of 1e-6 (tests/real_stats.py).

Each case has a planted-bug negative control: the bug is real engine code (an ``Engine``
subclass or a ``Rule`` subclass defined here), its exact law is computed here independently,
the chi-square's power against it at ``N`` is computed and asserted >= 1 - 1e-6, and the
buggy engine's samples are checked to be rejected by the test (and to fit the bug's law, so the
bug law is the right one). Bugs: the target cache not rolled back after a rejection; q taken
before warping; the single-draft residual after M rejections (recursive); k-SEQ without its
division factor rho; SCD verified against the target's own law instead of the contrasted law.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from real_stats import assert_law, law_rejected, power, seq_counts

from scdsim import rules
from scdsim.chains import MarkovLM, MarkovPair
from scdsim.distributions import positive_part_normalised
from scdsim.exact.markov import exact_joint_law

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from real_models import laws  # noqa: E402
from real_models.engine import _KV, Engine, speculative_generate  # noqa: E402
from real_models.tiny import random_lm  # noqa: E402

pytestmark = pytest.mark.torch

V = 8
N = 4000
PROMPT = [1, 2, 3]
CD = {"plausibility": 0.1, "contrast": 0.5}
WARP = {"temperature": 0.7, "top_p": 0.8}


@pytest.fixture(scope="module")
def models():
    target = random_lm(vocab_size=V, hidden_size=16, layers=2, heads=2, seed=5, scale=2.0,
                       dtype=torch.float64)
    draft = copy.deepcopy(target)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for _, prm in sorted(draft.model.named_parameters()):
            if prm.ndim > 1:
                prm.add_(torch.randn(prm.shape, generator=g, dtype=prm.dtype) * 0.5)
    amateur = random_lm(vocab_size=V, hidden_size=16, layers=1, heads=2, seed=9, scale=2.0,
                        dtype=torch.float64)
    return target, draft, amateur


def logits_of(lm, seqs, position_ids=None):
    """Last-position logits of full forwards (no cache) for equal-length sequences."""
    with torch.no_grad():
        kw = {} if position_ids is None else {"position_ids": torch.tensor(position_ids)}
        return lm.model(torch.tensor(seqs), **kw).logits[:, -1].to(torch.float64)


def two_step(lm):
    """Logits at the prompt ``(V,)`` and after each first token ``(V, V)``."""
    first = logits_of(lm, [PROMPT])[0]
    second = logits_of(lm, [PROMPT + [x] for x in range(V)])
    return first, second


def softmax_laws(target, draft):
    """``(p1, p2, q1, q2, law)``: both models' unwarped laws at the two positions of
    :func:`two_step`, and the target's joint law of the two tokens."""
    t1, t2 = two_step(target)
    d1, d2 = two_step(draft)
    p1, p2 = t1.softmax(-1), t2.softmax(-1)
    return p1, p2, d1.softmax(-1), d2.softmax(-1), product_law(p1, p2)


def product_law(l1, l2):
    """``P(x1, x2) = l1(x1) l2[x1](x2)`` as a ``(V, V)`` array."""
    return np.asarray(l1)[:, None] * np.asarray(l2)


def as_pair(p1, p2, q1, q2):
    """The two-position laws as a MarkovPair (state = start, or the first token), so the exact
    engine computes the joint law of any rule in either multi-draft reading."""
    def kern(a1, a2):
        k = np.zeros((2, V + 1, V))
        k[0] = np.asarray(a1)[None, :]
        k[1, :V] = np.asarray(a2)
        k[1, V] = np.asarray(a1)
        return MarkovLM(k, start=V, state_of=np.arange(V))
    return MarkovPair(kern(p1, p2), kern(q1, q2))


def sample(target, draft, engine_cls=Engine, seed=0, **kw):
    gens = [torch.Generator().manual_seed(seed * 7919 + i) for i in range(N)]
    res = speculative_generate(target, draft, [PROMPT] * N, max_new_tokens=2, rngs=gens,
                               engine_cls=engine_cls, **kw)
    return seq_counts(res.tokens, V, 2)


def check_case(target, draft, law, bug_law, bug_engine=Engine, bug_rule=None, **kw):
    law, bug_law = np.asarray(law), np.asarray(bug_law)
    np.testing.assert_allclose(law.sum(), 1.0, atol=1e-12)
    np.testing.assert_allclose(bug_law.sum(), 1.0, atol=1e-12)
    stat = assert_law(sample(target, draft, **kw), law, f"engine {kw}")
    pw = power(law, bug_law, N)
    assert pw >= 1 - 1e-6, f"power {pw} against the planted bug"
    label = f"{kw.get('rule')} {kw.get('batch', '')}"
    if bug_rule is not None:
        kw = dict(kw, rule=bug_rule)
    bug = sample(target, draft, engine_cls=bug_engine, seed=1, **kw)
    assert law_rejected(bug, law)
    assert_law(bug, bug_law, "planted bug against its own law", allow_point=True)
    print(f"\n{label}: chi2 {stat[0]:.1f} (df {stat[1]}, "
          f"threshold {stat[2]:.1f}); power against {bug_engine.__name__ if bug_rule is None else type(bug_rule).__name__} {pw:.8f}")
    return stat, pw


# --------------------------------------------------------------------------------------------
# planted bugs


class NoRollbackKV(_KV):
    """Bug: rejected drafts stay visible in the cache (positions are rolled back, the mask is not)."""

    def drop_last(self, counts):
        self.pos = self.pos - torch.as_tensor(counts, dtype=torch.long)


class NoTargetRollback(Engine):
    def make_kv(self, lm, rows, role):
        return NoRollbackKV(lm, rows) if role == "target" else _KV(lm, rows)


class QBeforeWarp(Engine):
    """Bug: the rule gets the draft's unwarped softmax while drafts are drawn from the warped law."""

    def rule_q(self, q_drawn, logits):
        return laws.sampling_law(logits).to(torch.float64)


class PlainTargetLaw(Engine):
    """Bug (SCD): verification against the target's own law instead of the contrasted law."""

    def target_law(self, logits, amateur_logits):
        return laws.sampling_law(logits, **self.warp).to(torch.float64)


class RecursiveLosslessResidual(type(rules.recursive(2))):
    """Bug: after all M drafts are rejected, the single-draft residual norm([p - q]_+)."""

    def residual(self, p, q):
        return positive_part_normalised(p - q, p)

    def with_drafts(self, m):
        return RecursiveLosslessResidual(M=m) if m != self.M else self


class KSeqNoRho(type(rules.kseq(2))):
    """Bug: k-SEQ without its division factor (rho* = 1)."""

    def rho(self, p, q):
        return np.ones(np.broadcast_shapes(tuple(p.shape), tuple(q.shape))[:-1])

    def with_drafts(self, m):
        return KSeqNoRho(M=m) if m != self.M else self


# --------------------------------------------------------------------------------------------
# cases


def test_lossless_sd_law_and_no_rollback_bug(models):
    target, draft, _ = models
    p1, p2, q1, q2, law = softmax_laws(target, draft)
    # bug law: d1 rejected, then x1 ~ residual; x2 ~ target law with the stale d1, d2 visible
    a1 = torch.minimum(torch.ones(V, dtype=torch.float64), p1 / q1)
    r1 = positive_part_normalised(p1 - q1, p1)
    L = len(PROMPT)
    seqs, pos, w = [], [], []
    for x in range(V):  # first draft
        for y in range(V):  # second draft
            for z in range(V):  # recovered first token
                seqs.append(PROMPT + [x, y, z])
                pos.append(list(range(L)) + [L, L + 1, L])
                w.append(float(q1[x] * (1 - a1[x]) * q2[x, y] * r1[z]))
    stale = logits_of(target, seqs, pos).softmax(-1).reshape(V, V, V, V)  # (x, y, z, x2)
    w = torch.tensor(w).reshape(V, V, V, 1)
    bug = product_law(q1 * a1, p2) + (w * stale).sum((0, 1)).numpy()
    check_case(target, draft, law, bug, bug_engine=NoTargetRollback, rule=rules.lossless,
               gamma=2)


def test_sd_under_temperature_and_top_p_law_and_q_before_warp_bug(models):
    target, draft, _ = models
    t1, t2 = two_step(target)
    d1, d2 = two_step(draft)
    p1, p2 = laws.sampling_law(t1, **WARP), laws.sampling_law(t2, **WARP)
    q1, q2 = laws.sampling_law(d1, **WARP), laws.sampling_law(d2, **WARP)
    law = product_law(p1, p2)

    def bug_step(p, q, qraw):  # drafts from q, the rule told qraw
        acc = q * torch.minimum(torch.ones_like(p), p / qraw)
        return acc + (1 - acc.sum(-1, keepdim=True)) * positive_part_normalised(p - qraw, p)

    bug = product_law(bug_step(p1, q1, d1.softmax(-1)), bug_step(p2, q2, d2.softmax(-1)))
    check_case(target, draft, law, bug, bug_engine=QBeforeWarp, rule=rules.lossless, gamma=2,
               warp=WARP)


@pytest.mark.parametrize("rule,batch,bug_rule", [
    (rules.recursive(3), "first", RecursiveLosslessResidual(M=3)),
    (rules.recursive(3), "tree", RecursiveLosslessResidual(M=3)),
    (rules.kseq(3), "first", KSeqNoRho(M=3)),
    (rules.kseq(2), "tree", KSeqNoRho(M=2)),
], ids=["recursive3-first", "recursive3-tree", "kseq3-first", "kseq2-tree"])
def test_multidraft_law_and_rule_bug(models, rule, batch, bug_rule):
    target, draft, _ = models
    p1, p2, q1, q2, law = softmax_laws(target, draft)
    pair = as_pair(p1.numpy(), p2.numpy(), q1.numpy(), q2.numpy())
    np.testing.assert_allclose(exact_joint_law(pair, rule, 2, 2, batch), law, atol=1e-12)
    bug = exact_joint_law(pair, bug_rule, 2, 2, batch)
    check_case(target, draft, law, bug, bug_rule=bug_rule, rule=rule, gamma=2, batch=batch)


def test_scd_law_is_the_contrasted_law_and_plain_target_bug(models):
    target, _, amateur = models
    t1, t2 = two_step(target)
    a1, a2 = two_step(amateur)
    c1, c2 = laws.contrast_law(t1, a1, **CD), laws.contrast_law(t2, a2, **CD)
    law = product_law(c1, c2)
    bug = product_law(t1.softmax(-1), t2.softmax(-1))
    check_case(target, amateur, law, bug, bug_engine=PlainTargetLaw, rule=rules.lossless,
               gamma=2, contrast=CD)


def test_ngram_draft_law_is_the_target_and_argmax_verification_bug(models):
    """n-gram drafts (point-mass q, variable length) keep the target law; verifying them by
    exact match with the target's argmax (peers.md §8.3) is the planted bug."""
    from real_models.drafters import NGramDraft

    global PROMPT
    target, _, _ = models
    old, PROMPT = PROMPT, [1, 2, 1, 2, 1]  # the context repeats: proposals of length 0..3
    try:
        t1, t2 = two_step(target)
        law = product_law(t1.softmax(-1), t2.softmax(-1))
        hot = torch.nn.functional.one_hot
        bug = product_law(hot(t1.argmax(), V).double(), hot(t2.argmax(-1), V).double())
        ngram = NGramDraft(2, vocab_size=V)
        assert ngram.propose(PROMPT, 3) != []
        check_case(target, ngram, law, bug, bug_rule=rules.greedy, rule=rules.lossless,
                   gamma=3)
    finally:
        PROMPT = old
