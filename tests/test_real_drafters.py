"""Drafts built from a target (tiny seeded random Llamas, CPU, seconds): early exit computes the
first k layers + final norm + head with the target's own weights; quant:b rounds every weight to
2**b levels per group; the fitted lens beats plain early exit on held-out self-generated text;
n-gram prompt lookup continues the longest, most recent earlier suffix match."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from real_models import LM, random_lm  # noqa: E402
from real_models.drafters import NGramDraft, make_draft, quantize_groupwise  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def target64():
    return random_lm(vocab_size=32, hidden_size=32, layers=3, heads=4, seed=3,
                     dtype=torch.float64)


def _ids(batch=2, length=9, vocab=32, seed=0):
    return torch.randint(vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids, use_cache=False).logits


def _tv(a, b):
    return 0.5 * (torch.softmax(a.double(), -1) - torch.softmax(b.double(), -1)).abs().sum(-1)


# --------------------------------------------------------------------------- early exit


@pytest.mark.parametrize("k", [1, 2, 3])
def test_early_exit_logits_equal_head_of_norm_of_layer_k_output(target64, k):
    ids = _ids()
    tm = target64.model
    got = []
    hook = tm.model.layers[k - 1].register_forward_hook(
        lambda mod, args, out: got.append(out[0] if isinstance(out, tuple) else out))
    try:
        _logits(tm, ids)
    finally:
        hook.remove()
    manual = tm.lm_head(tm.model.norm(got[0]))
    draft = make_draft(target64, f"early-exit:{k}")
    np_draft = _logits(draft.model, ids).numpy()
    torch.testing.assert_close(torch.from_numpy(np_draft), manual.detach(), rtol=0, atol=1e-12)


def test_early_exit_shares_the_targets_weights_and_leaves_the_target_intact(target64):
    ids = _ids(seed=1)
    before = _logits(target64.model, ids)
    draft = make_draft(target64, "early-exit:2")
    tp = {p.data_ptr() for p in target64.model.parameters()}
    assert all(p.data_ptr() in tp for p in draft.model.parameters())
    assert type(draft.model) is type(target64.model)
    assert draft.model.config.num_hidden_layers == 2
    assert target64.model.config.num_hidden_layers == 3
    torch.testing.assert_close(_logits(target64.model, ids), before, rtol=0, atol=0)
    assert isinstance(draft, LM) and draft.vocab_size == target64.vocab_size


def test_early_exit_incremental_decoding_with_cache_matches_full_forward(target64):
    ids = _ids(batch=1, length=8, seed=2)
    model = make_draft(target64, "early-exit:2").model
    full = _logits(model, ids)
    with torch.no_grad():
        out = model(input_ids=ids[:, :5], use_cache=True)
        steps = [out.logits]
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        for t in range(5, 8):
            kw = {"cache": cache} if hasattr(out, "cache") else {"past_key_values": cache}
            out = model(input_ids=ids[:, t:t + 1], use_cache=True, **kw)
            steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- quantisation


@pytest.mark.parametrize("bits", [1, 2, 3, 5])
def test_affine_quantisation_uses_at_most_2_pow_b_levels_per_group_within_half_a_step(bits):
    w = torch.randn(6, 70, generator=torch.Generator().manual_seed(bits), dtype=torch.float64)
    g = 16
    deq = quantize_groupwise(w, bits, group_size=g)
    assert deq.shape == w.shape and deq.dtype == w.dtype
    for r in range(w.shape[0]):
        for s in range(0, w.shape[1], g):
            grp, dq = w[r, s:s + g], deq[r, s:s + g]
            assert len(torch.unique(dq)) <= 2 ** bits
            half_step = (grp.max() - grp.min()) / (2 ** bits - 1) / 2
            assert float((grp - dq).abs().max()) <= float(half_step) * (1 + 1e-9) + 1e-15
            assert float(dq.min()) >= float(grp.min()) - 1e-12
            assert float(dq.max()) <= float(grp.max()) + 1e-12


def test_symmetric_quantisation_levels_are_signed_multiples_of_max_abs_over_top():
    w = torch.randn(4, 32, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    deq = quantize_groupwise(w, 3, group_size=8, symmetric=True)
    for r in range(4):
        for s in range(0, 32, 8):
            step = w[r, s:s + 8].abs().max() / 3
            j = deq[r, s:s + 8] / step
            torch.testing.assert_close(j, torch.round(j), rtol=0, atol=1e-9)
            assert float(j.abs().max()) <= 3 + 1e-9


def test_quant_high_bits_is_close_to_the_target_and_low_bits_differs():
    target = random_lm(layers=2, seed=5)
    ids = _ids(seed=4)
    p = _logits(target.model, ids)
    hi = make_draft(target, "quant:12")
    lo = make_draft(target, "quant:2")
    assert float(_tv(p, _logits(hi.model, ids)).max()) < 1e-3
    assert float(_tv(p, _logits(lo.model, ids)).mean()) > 0.05
    assert type(hi.model) is type(target.model)


def test_quant_copy_does_not_alias_or_modify_the_target():
    target = random_lm(layers=2, seed=6)
    before = {n: t.clone() for n, t in target.model.state_dict().items()}
    draft = make_draft(target, "quant:3:sym:g8")
    tp = {p.data_ptr() for p in target.model.parameters()}
    assert not any(p.data_ptr() in tp for p in draft.model.parameters())
    for n, t in target.model.state_dict().items():
        torch.testing.assert_close(t, before[n], rtol=0, atol=0)
    w = draft.model.model.layers[0].mlp.up_proj.weight
    assert all(len(torch.unique(w[r, s:s + 8])) <= 7 for r in range(4) for s in range(0, 32, 8))


# --------------------------------------------------------------------------- tuned lens


def _sample_text(lm, n_seq, length, seed):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(lm.vocab_size, (n_seq, 2), generator=gen)
    with torch.no_grad():
        for _ in range(length):
            probs = torch.softmax(_logits(lm.model, ids)[:, -1].double(), -1)
            ids = torch.cat([ids, torch.multinomial(probs, 1, generator=gen)], 1)
    return ids


def _mean_kl(p_logits, q_logits):
    lp = torch.log_softmax(p_logits.double(), -1)
    lq = torch.log_softmax(q_logits.double(), -1)
    return float((lp.exp() * (lp - lq)).sum(-1).mean())


def test_lens_fit_reduces_held_out_kl_to_the_target_versus_plain_early_exit(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("SCDSIM_CACHE", str(tmp_path))
    target = random_lm(layers=4, seed=7)
    held_out = _sample_text(target, 4, 40, seed=12345)  # the fit uses seed 0
    p = _logits(target.model, held_out)[:, 2:]
    ee = make_draft(target, "early-exit:2")
    lens = make_draft(target, "lens:2", lens_sequences=8, lens_tokens=64)
    kl_ee = _mean_kl(p, _logits(ee.model, held_out)[:, 2:])
    kl_lens = _mean_kl(p, _logits(lens.model, held_out)[:, 2:])
    assert kl_lens < 0.8 * kl_ee, (kl_lens, kl_ee)
    assert type(lens.model) is type(target.model)


def test_lens_is_cached_on_disk_and_reloaded_identically(tmp_path, monkeypatch):
    monkeypatch.setenv("SCDSIM_CACHE", str(tmp_path))
    target = random_lm(layers=3, seed=8)
    first = make_draft(target, "lens:1", lens_sequences=4, lens_tokens=16)
    files = list((tmp_path / "lens").glob("*.safetensors"))
    assert len(files) == 1
    assert "samples" in first.info["lens"]
    again = make_draft(target, "lens:1", lens_sequences=4, lens_tokens=16)
    assert "samples" not in again.info["lens"]  # read, not refitted
    ids = _ids(seed=5)
    torch.testing.assert_close(_logits(again.model, ids), _logits(first.model, ids),
                               rtol=0, atol=0)
    other = make_draft(target, "lens:1", lens_sequences=4, lens_tokens=16, ridge=0.5)
    assert "samples" in other.info["lens"]  # different settings, different key
    assert len(list((tmp_path / "lens").glob("*.safetensors"))) == 2


# --------------------------------------------------------------------------- n-gram


@pytest.mark.parametrize("context, n, k, expected", [
    ([1, 2, 3, 4, 1, 2], 3, 3, [3, 4, 1]),          # suffix [1, 2] seen at 0
    ([5, 1, 2, 9, 7, 2, 8, 1, 2], 2, 3, [9, 7, 2]),  # the 2-gram beats the later 1-gram [2] -> 8
    ([5, 1, 2, 9, 7, 2, 8, 1, 2], 1, 3, [8, 1, 2]),  # n=1: only [2], most recent at 5
    ([1, 2, 3, 1, 2, 4, 1, 2], 2, 3, [4, 1, 2]),    # most recent of two [1, 2] matches
    ([7, 8, 7], 1, 5, [8, 7]),                       # continuation runs to the end: fewer than k
    ([1, 2, 3], 3, 4, []),                           # no earlier match
    ([4], 2, 3, []),
    ([], 2, 3, []),
    ([1, 2, 1], 2, 0, []),
    ([3, 3, 3], 2, 2, [3]),                          # [3, 3] at 0 continues with the last 3
])
def test_ngram_proposes_the_continuation_of_the_longest_most_recent_suffix_match(
        context, n, k, expected):
    assert NGramDraft(n).propose(context, k) == expected


def _reference_lookup(ctx, n, k):
    best = None
    for m in range(1, n + 1):
        for i in range(len(ctx) - m):  # an occurrence of the m-suffix ending before the end
            if i + m < len(ctx) and ctx[i:i + m] == ctx[len(ctx) - m:]:
                if best is None or (m, i) > best:
                    best = (m, i)
    return [] if best is None or k == 0 else ctx[best[0] + best[1]:best[0] + best[1] + k]


@given(st.lists(st.integers(0, 3), max_size=25), st.integers(1, 4), st.integers(0, 5))
def test_ngram_agrees_with_a_brute_force_search_over_all_matches(ctx, n, k):
    assert NGramDraft(n).propose(ctx, k) == _reference_lookup(ctx, n, k)


def test_ngram_spec_gives_an_ngram_draft_with_the_targets_vocabulary():
    target = random_lm(seed=0)
    d = make_draft(target, "ngram:3")
    assert isinstance(d, NGramDraft) and d.n == 3 and d.vocab_size == 32


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("spec, match", [
    ("foo", "spec='foo' is not one of"),
    ("early-exit", "is not one of"),
    ("early-exit:0", "k must be in 1..2"),
    ("early-exit:3", "k must be in 1..2"),
    ("lens:9", "k must be in 1..2"),
    ("quant:0", "bits must be in 1..16"),
    ("quant:17", "bits must be in 1..16"),
    ("quant:3:xyz", "unknown quant option 'xyz'"),
    ("quant:1:sym", "symmetric quantisation needs bits >= 2"),
    ("ngram:0", "n must be >= 1"),
    ("early-exit:2:sym", "only for quant"),
])
def test_bad_spec_raises_a_value_error_naming_it(spec, match):
    with pytest.raises(ValueError, match=match):
        make_draft(random_lm(seed=0), spec)


def test_non_string_spec_and_non_lm_target_raise_type_errors():
    with pytest.raises(TypeError, match="spec must be a str or an LM"):
        make_draft(random_lm(seed=0), 3)
    with pytest.raises(TypeError, match="target must be a real_models.LM"):
        make_draft("smollm2-135m", "ngram:2")


def test_ngram_bad_arguments_raise():
    with pytest.raises(ValueError, match="n=0 must be an integer >= 1"):
        NGramDraft(0)
    with pytest.raises(ValueError, match="k=-1 must be an integer >= 0"):
        NGramDraft(2).propose([1, 2], -1)


def test_another_model_is_accepted_with_the_same_vocabulary_and_refused_otherwise():
    target = random_lm(vocab_size=32, seed=0)
    same = random_lm(vocab_size=32, layers=1, seed=1)
    assert make_draft(target, same) is same
    other = random_lm(vocab_size=40, seed=2)
    with pytest.raises(ValueError, match=r"draft 'random-llama\(V=40, seed=2\)' has 40 logits, "
                                         r"target 'random-llama\(V=32, seed=0\)' has 32"):
        make_draft(target, other)


def test_quant_copy_does_not_inherit_the_targets_forward_hooks():
    # deepcopy would copy hooks (accelerate's, a lens fit's) onto the draft; the copy is rebuilt
    target = random_lm(layers=2, seed=10)
    calls = []
    handle = target.model.model.layers[0].register_forward_hook(lambda *a: calls.append(1))
    try:
        draft = make_draft(target, "quant:8")
        _logits(draft.model, _ids(seed=6))
        assert calls == []
        _logits(target.model, _ids(seed=6))
        assert calls == [1]
    finally:
        handle.remove()
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in draft.model.modules())
