"""The real-model speculative engine (real_models.engine) on tiny random Llamas (CPU).

* Greedy equivalence: at temperature 0, SD (several gammas and drafts), multi-draft (both
  readings, recursive and kseq), n-gram drafts and SCD emit exactly the tokens of the target's
  (or contrastive decoding's) greedy decoding, computed here by full forwards without a cache.
* Ragged batches: each prompt's output equals its output when run alone with the same seed.
* Stopping: EOS inside a block ends the row there (no bonus after it); the length limit holds.
* Records: the contract's keys, kinds and counts; JSON lines.
* Bad input: one clear error each.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from scdsim import rules

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import real_models  # noqa: E402
from real_models import laws  # noqa: E402
from real_models.engine import Engine, speculative_generate  # noqa: E402
from real_models.results import RECORD_KEYS  # noqa: E402
from real_models.tiny import random_lm  # noqa: E402

pytestmark = pytest.mark.torch

V = 32
CD = {"plausibility": 0.1, "contrast": 0.5}


def perturbed(lm, eps, seed):
    """A draft that agrees with the target often but not always: its weights plus noise."""
    out = copy.deepcopy(lm)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, prm in sorted(out.model.named_parameters()):
            if prm.ndim > 1:
                prm.add_(torch.randn(prm.shape, generator=g, dtype=prm.dtype) * eps)
    out.name = f"{lm.name}+noise({eps},{seed})"
    return out


@pytest.fixture(scope="module")
def models():
    target = random_lm(vocab_size=V, hidden_size=32, layers=2, seed=1, scale=2.0,
                       dtype=torch.float64)
    drafts = [perturbed(target, 0.05, 7), perturbed(target, 0.2, 8),
              random_lm(vocab_size=V, hidden_size=16, layers=1, heads=2, seed=3, scale=2.0,
                        dtype=torch.float64)]
    return target, drafts


PROMPTS = [[1, 2, 3], [5], [7, 7, 8, 9, 10, 11], [30, 0]]


def full_logits(lm, seq):
    with torch.no_grad():
        return lm.model(torch.tensor([seq])).logits[0, -1]


def greedy_reference(target, prompt, n, amateur=None):
    seq = list(prompt)
    for _ in range(n):
        lt = full_logits(target, seq)
        if amateur is None:
            seq.append(int(lt.argmax()))
        else:
            c = laws.contrast_law(lt, full_logits(amateur, seq), **CD, temperature=0.0)
            seq.append(int(c.argmax()))
    return seq[len(prompt):]


def seeds(n, base=0):
    return [torch.Generator().manual_seed(base + i) for i in range(n)]


def run(target, draft, prompts=PROMPTS, **kw):
    kw.setdefault("max_new_tokens", 12)
    return speculative_generate(target, draft, prompts, rngs=seeds(len(prompts), 100), **kw)


# --------------------------------------------------------------------------------------------
# greedy equivalence


@pytest.fixture(scope="module")
def greedy_out(models):
    target, _ = models
    return [greedy_reference(target, p, 12) for p in PROMPTS]


@pytest.mark.parametrize("gamma", [1, 3, 5])
@pytest.mark.parametrize("d", [0, 1, 2])
def test_greedy_sd_is_token_identical_to_target_greedy(models, greedy_out, gamma, d):
    target, drafts = models
    res = run(target, drafts[d], rule=rules.lossless, gamma=gamma, warp={"temperature": 0.0})
    assert res.tokens == greedy_out
    if d == 0:  # the close draft is accepted at least sometimes: the blocks really speculate
        assert sum(x["kind"] == "accepted" for r in res.records for x in r) > 0


@pytest.mark.parametrize("rule,batch", [(rules.recursive(2), "first"), (rules.recursive(3), "tree"),
                                        (rules.kseq(2), "first"), (rules.kseq(2), "tree")])
def test_greedy_multidraft_is_token_identical_to_target_greedy(models, greedy_out, rule, batch):
    target, drafts = models
    for gamma in (2, 4):
        res = run(target, drafts[1], rule=rule, gamma=gamma, batch=batch,
                  warp={"temperature": 0.0})
        assert res.tokens == greedy_out


@pytest.mark.parametrize("gamma", [1, 3])
def test_greedy_scd_is_token_identical_to_contrastive_greedy(models, gamma):
    target, drafts = models
    amateur = drafts[2]
    ref = [greedy_reference(target, p, 10, amateur=amateur) for p in PROMPTS]
    res = run(target, amateur, rule=rules.lossless, gamma=gamma, contrast=CD,
              warp={"temperature": 0.0}, max_new_tokens=10)
    assert res.tokens == ref
    assert ref != [greedy_reference(target, p, 10) for p in PROMPTS]  # CD differs from greedy


class LastTokensNGram:
    """A stand-in n-gram proposer: proposes the tokens that followed the previous occurrence of
    the last token (0..k tokens, possibly none)."""

    name = "ngram-test"

    def propose(self, context, k):
        last = context[-1]
        for i in range(len(context) - 2, -1, -1):
            if context[i] == last:
                return context[i + 1:i + 1 + k]
        return []


def test_greedy_ngram_draft_is_token_identical_and_q_is_a_point_mass(models, greedy_out):
    target, _ = models
    res = run(target, LastTokensNGram(), rule=rules.lossless, gamma=3,
              warp={"temperature": 0.0})
    assert res.tokens == greedy_out
    kinds = {x["kind"] for r in res.records for x in r}
    assert "plain" in kinds and ({"accepted", "recovered"} & kinds)
    for r in res.records:
        for x in r:
            if x["kind"] in ("accepted", "recovered"):
                assert x["entropy_q"] == 0.0


# --------------------------------------------------------------------------------------------
# ragged batches and stopping


@pytest.mark.parametrize("kw", [
    dict(rule=rules.lossless, gamma=3),
    dict(rule=rules.recursive(2), gamma=2, batch="tree"),
    dict(rule=rules.kseq(2), gamma=3, batch="first"),
    dict(rule=rules.lossless, gamma=2, contrast=CD),
    dict(rule=rules.lossless, gamma=4, warp={"temperature": 0.8, "top_p": 0.9}),
])
def test_ragged_batch_rows_equal_rows_run_alone_with_same_stream(models, kw):
    target, drafts = models
    draft = drafts[2] if "contrast" in kw else drafts[1]
    prompts = PROMPTS + [[4, 4, 4, 4, 4, 4, 4, 4, 4]]
    batch = speculative_generate(target, draft, prompts, max_new_tokens=15,
                                 rngs=seeds(len(prompts), 50), **kw)
    blocks = [r[-1]["block"] for r in batch.records]
    assert len(set(blocks)) > 1  # rows really took different numbers of blocks
    for i, p in enumerate(prompts):
        alone = speculative_generate(target, draft, [p], max_new_tokens=15,
                                     rngs=[torch.Generator().manual_seed(50 + i)], **kw)
        assert alone.tokens[0] == batch.tokens[i]
        assert_same_records(alone.records[0], batch.records[i])


def assert_same_records(alone, inbatch):
    """Same tokens, kinds, blocks and indices; floats equal up to summation-order rounding."""
    assert len(alone) == len(inbatch)
    for x, y in zip(alone, inbatch):
        for key in RECORD_KEYS:
            if key == "prompt":
                continue
            if isinstance(x[key], float):
                np.testing.assert_allclose(x[key], y[key], rtol=1e-9, atol=1e-12)
            else:
                assert x[key] == y[key], key


def test_compaction_keeps_outputs(models, monkeypatch):
    """Forcing cache compaction after every block changes nothing in the output."""
    target, drafts = models
    kw = dict(rule=rules.recursive(2), gamma=3, batch="tree", max_new_tokens=20)
    ref = speculative_generate(target, drafts[1], PROMPTS, rngs=seeds(4, 9), **kw)
    from real_models import engine as eng

    calls = []
    orig = eng._KV.compact

    def always(self, force=False):
        calls.append(self.mask.shape[1])
        return orig(self, force=True)

    monkeypatch.setattr(eng._KV, "compact", always)
    got = speculative_generate(target, drafts[1], PROMPTS, rngs=seeds(4, 9), **kw)
    assert got.tokens == ref.tokens
    assert len(calls) > 4


def test_eos_inside_a_block_stops_the_row_there(models, greedy_out):
    target, drafts = models
    # the 3rd greedy token of prompt 0 as EOS: greedy SD must stop right after it
    eos = greedy_out[0][2]
    res = run(target, drafts[0], rule=rules.lossless, gamma=5, warp={"temperature": 0.0},
              eos_token_id=eos)
    for toks, ref in zip(res.tokens, greedy_out):
        cut = ref.index(eos) + 1 if eos in ref else len(ref)
        assert toks == ref[:cut]
    # sampling: EOS only ever last, never followed by a bonus
    res = run(target, drafts[1], rule=rules.lossless, gamma=4, eos_token_id=[3, 5, 9],
              max_new_tokens=30)
    for toks in res.tokens:
        assert all(t not in (3, 5, 9) for t in toks[:-1])
        assert len(toks) == 30 or toks[-1] in (3, 5, 9)


@pytest.mark.parametrize("n", [1, 4, 7])
def test_length_limit_holds_inside_a_block(models, n):
    target, drafts = models
    res = run(target, drafts[0], rule=rules.lossless, gamma=5, max_new_tokens=n)
    assert [len(t) for t in res.tokens] == [n] * len(PROMPTS)


# --------------------------------------------------------------------------------------------
# records and result


def test_records_follow_the_contract(models, tmp_path):
    target, drafts = models
    res = run(target, drafts[1], rule=rules.recursive(2), gamma=3, batch="tree",
              max_new_tokens=14)
    for b, (toks, recs) in enumerate(zip(res.tokens, res.records)):
        assert [x["token"] for x in recs] == toks
        assert [x["index"] for x in recs] == list(range(len(toks)))
        for x in recs:
            assert tuple(x) == RECORD_KEYS and x["prompt"] == b
            assert x["target_calls"] == x["block"] + 1
            verified = x["kind"] in ("accepted", "recovered")
            assert (x["tv"] is not None) == verified == (x["rejection_prob"] is not None)
            assert (x["draft_index"] is not None) == (x["kind"] == "accepted")
            if verified:
                assert 0 <= x["rejection_prob"] <= x["tv"] + 1e-12  # recursive(2) beats TV
        # within a block: accepted..., then one recovered or bonus at the end
        by_block = {}
        for x in recs:
            by_block.setdefault(x["block"], []).append(x)
        for blk in by_block.values():
            assert [x["pos_in_block"] for x in blk] == list(range(len(blk)))
            assert all(x["kind"] == "accepted" for x in blk[:-1])
    assert res.mean_rejections == np.mean([sum(x["kind"] == "recovered" for x in r)
                                           for r in res.records])
    path = tmp_path / "r.jsonl"
    res.write_jsonl(path)
    lines = path.read_text().splitlines()
    assert len(lines) == sum(len(t) for t in res.tokens)
    assert json.loads(lines[0]) == res.records[0][0]
    json.dumps(res.to_dict())
    assert "rejections/seq" in res.summary()


def test_generate_api_runs_the_engine_with_per_prompt_seeds(models):
    target, drafts = models
    a = real_models.generate(target, PROMPTS, draft=drafts[1], gamma=3, max_new_tokens=8,
                             rng=[11, 12, 13, 14])
    b = real_models.generate(target, PROMPTS[2:3], draft=drafts[1], gamma=3, max_new_tokens=8,
                             rng=[13])
    assert a.tokens[2] == b.tokens[0]
    c = real_models.generate(target, PROMPTS, draft=drafts[1], rule=rules.recursive(2),
                             gamma=3, M=2, batch="tree", max_new_tokens=8, rng=5)
    assert c.settings["M"] == 2 and c.settings["batch"] == "tree"


# --------------------------------------------------------------------------------------------
# bad input


def test_bad_input_errors(models):
    target, drafts = models
    d = drafts[1]
    with pytest.raises(ValueError, match="gamma"):
        speculative_generate(target, d, PROMPTS, rule=rules.lossless, gamma=0)
    with pytest.raises(TypeError, match="not samplable"):
        speculative_generate(target, d, PROMPTS, rule=rules.optimal(2), gamma=2)
    with pytest.raises(TypeError, match="rule must be"):
        speculative_generate(target, d, PROMPTS, rule="lossless", gamma=2)
    with pytest.raises(ValueError, match="too long"):
        speculative_generate(target, d, [[1] * 500], rule=rules.lossless, gamma=4,
                             max_new_tokens=20)
    other = random_lm(vocab_size=V + 1, seed=4)
    with pytest.raises(ValueError, match="tokenizer mismatch"):
        speculative_generate(target, other, PROMPTS, rule=rules.lossless, gamma=2)
    with pytest.raises(ValueError, match="outside"):
        speculative_generate(target, d, [[V]], rule=rules.lossless, gamma=2)
    with pytest.raises(ValueError, match="batch"):
        speculative_generate(target, d, PROMPTS, rule=rules.recursive(2), gamma=2,
                             batch="forest")
    windowed = copy.deepcopy(target)
    windowed.model.config.sliding_window = 24
    with pytest.raises(ValueError, match="sliding-window"):
        speculative_generate(windowed, d, PROMPTS, rule=rules.lossless, gamma=2,
                             max_new_tokens=5)
    with pytest.raises(ValueError, match="M must be 1"):
        speculative_generate(target, LastTokensNGram(), PROMPTS, rule=rules.recursive(2),
                             gamma=2)


def test_a_draft_token_outside_the_claimed_q_fails_loudly(models):
    """Planted bug: the rule is handed a top-1 law while drafts are sampled from the full law;
    a drafted token with q(x) = 0 under the claimed law must raise, not be accepted."""

    class Top1Q(Engine):
        def rule_q(self, q_drawn, logits):
            return laws.sampling_law(logits, top_k=1).to(torch.float64)

    target, drafts = models
    with pytest.raises(RuntimeError, match="q\\(x\\)=0"):
        speculative_generate(target, drafts[2], PROMPTS, rule=rules.lossless, gamma=4,
                             max_new_tokens=20, rngs=seeds(4), engine_cls=Top1Q)


def test_generate_without_draft_dispatches_to_the_decoders(models, greedy_out):
    target, _ = models
    res = real_models.generate(target, PROMPTS, max_new_tokens=12, temperature=0.0)
    assert res.tokens == greedy_out
    assert {x["kind"] for r in res.records for x in r} == {"plain"}


def test_generate_bad_input_errors(models):
    target, drafts = models
    with pytest.raises(TypeError, match="single prompt"):
        real_models.generate(target, [1, 2, 3], draft=drafts[0])
    with pytest.raises(TypeError, match="no tokenizer"):
        real_models.generate(target, ["hello"], draft=drafts[0])
    with pytest.raises(ValueError, match="pass a draft"):
        real_models.generate(target, PROMPTS, rule=rules.lossless)
    with pytest.raises(ValueError, match="decoder"):
        real_models.generate(target, PROMPTS, draft=drafts[0], decoder="beam", num_beams=2)
    with pytest.raises(ValueError, match="one seed or Generator per prompt"):
        real_models.generate(target, PROMPTS, draft=drafts[0], rng=[1, 2])
    with pytest.raises(ValueError, match="amateur is the draft"):
        real_models.generate(target, PROMPTS, draft=drafts[0], amateur=drafts[1], contrast=CD)


# --------------------------------------------------------------------------------------------
# the embedded model (fetched once into the cache by real_models.load, then read from it)


@pytest.fixture(scope="module")
def smollm2():
    return real_models.load("smollm2-135m", device="cpu")


@pytest.mark.slow
def test_embedded_smollm2_greedy_sd_with_real_drafts_equals_greedy(smollm2):
    prompts = ["The capital of France is", "def add(a, b):\n    return"]
    ref = real_models.generate(smollm2, prompts, max_new_tokens=8, temperature=0.0)
    for spec in ("early-exit:16", "ngram:2"):
        got = real_models.generate(smollm2, prompts, draft=spec, gamma=3, max_new_tokens=8,
                                   temperature=0.0)
        assert got.tokens == ref.tokens, spec
        assert got.text == ref.text
    assert ref.text[0].strip().startswith("Paris")
