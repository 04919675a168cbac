"""real_models.decoders: greedy / beam / n-gram blocking against transformers' generate, the exact
law of the first two sampled tokens (chi-square with computed power), per-row streams, and
contrastive decoding against scdsim.contrast computed by hand step by step.

Statistical asserts use a per-assert false-fail rate of 1e-6 (chi-square at
``chi2.isf(1e-6, df)`` over cells merged to expected count >= 5); each comes with a planted-bug
control whose power (noncentral chi-square) is computed here and asserted >= 1 - 1e-6, and the
planted bug is also run and must be rejected.
"""

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from real_stats import power  # noqa: E402

from real_models import decoders, laws, random_lm  # noqa: E402
from scdsim import agreement  # noqa: E402
from scdsim.contrast import contrastive  # noqa: E402
from scdsim.distributions import entropy  # noqa: E402

pytestmark = pytest.mark.torch

ALPHA = 1e-6
PROMPTS = [[1, 2, 3, 4], [5, 6], [7, 8, 9, 10, 11, 12], [3]]


@pytest.fixture(scope="module")
def lm32():
    """float32 tiny Llama (the dtype transformers' generate is compared in)."""
    return random_lm(vocab_size=32, seed=1, scale=2.0)


@pytest.fixture(scope="module")
def lm64():
    """float64 tiny Llama: batched and unbatched runs agree to ~1e-15, so token comparisons
    between batch compositions cannot flip on rounding."""
    return random_lm(vocab_size=32, seed=1, scale=2.0, dtype=torch.float64)


@pytest.fixture(scope="module")
def amateur64():
    return random_lm(vocab_size=32, hidden_size=16, layers=1, heads=2, seed=7, scale=2.0,
                     dtype=torch.float64)


def hf_generate(lm, prompt, **kw):
    ids = torch.tensor([prompt])
    out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), pad_token_id=0,
                            do_sample=False, **kw)
    return out[0, len(prompt):].tolist()


def _logits_last(lm, seqs):
    """Last-position logits of each sequence (equal lengths), no cache, no padding."""
    with torch.no_grad():
        return lm.model(torch.tensor(seqs)).logits[:, -1, :]


# ---- chi-square helpers (scdsim.agreement, as everywhere) ------------------------------------

def chi2_stat(counts, probs):
    """Pearson statistic over merged cells, its df and the ALPHA threshold."""
    t = agreement.chi_square(counts, probs, alpha=ALPHA)
    return t.statistic, t.df, t.threshold


def joint_counts(tokens, V):
    t = np.array(tokens)
    return np.bincount(t[:, 0] * V + t[:, 1], minlength=V * V).astype(float)


# ---- greedy, beam and n-gram blocking vs transformers --------------------------------------

def test_greedy_batched_ragged_equals_transformers_greedy_per_prompt(lm32):
    res = decoders.sample(lm32, PROMPTS, max_new_tokens=12, temperature=0.0)
    for p, toks in zip(PROMPTS, res.tokens):
        assert toks == hf_generate(lm32, p, max_new_tokens=12)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_greedy_no_repeat_ngram_equals_transformers(lm32, n):
    res = decoders.sample(lm32, PROMPTS, max_new_tokens=14, temperature=0.0,
                          no_repeat_ngram_size=n)
    for p, toks in zip(PROMPTS, res.tokens):
        assert toks == hf_generate(lm32, p, max_new_tokens=14, no_repeat_ngram_size=n)


@pytest.mark.parametrize("num_beams, length_penalty, ngram, eos, early", [
    (4, 1.0, 0, None, False),
    (4, 2.0, 2, None, False),
    (4, -1.0, 2, 7, False),
    (3, 0.5, 3, 5, False),
    (4, 1.0, 0, 16, True),
    (4, 1.5, 0, 16, "never"),
    (2, 0.0, 1, 30, False),
])
def test_beam_search_equals_transformers_generate(lm32, num_beams, length_penalty, ngram, eos,
                                                  early):
    res = decoders.beam(lm32, PROMPTS, num_beams=num_beams, length_penalty=length_penalty,
                        max_new_tokens=10, no_repeat_ngram_size=ngram, eos_token_id=eos,
                        early_stopping=early)
    kw = {} if eos is None else dict(eos_token_id=eos)
    for p, toks in zip(PROMPTS, res.tokens):
        ref = hf_generate(lm32, p, max_new_tokens=10, num_beams=num_beams,
                          length_penalty=length_penalty, no_repeat_ngram_size=ngram,
                          early_stopping=early, **kw)
        assert toks == ref, (p, toks, ref)


def test_beam_search_eos_cases_really_stop_early(lm32):
    # The EOS parametrisations above only test something if some hypothesis ends at EOS.
    res = decoders.beam(lm32, PROMPTS, num_beams=4, length_penalty=-1.0, max_new_tokens=10,
                        no_repeat_ngram_size=2, eos_token_id=7)
    assert any(t[-1] == 7 and len(t) < 10 for t in res.tokens)


def test_beam_search_with_one_beam_is_greedy(lm32):
    g = decoders.sample(lm32, PROMPTS, max_new_tokens=9, temperature=0.0)
    b = decoders.beam(lm32, PROMPTS, num_beams=1, max_new_tokens=9)
    assert b.tokens == g.tokens


def test_beam_search_batched_ragged_equals_each_prompt_alone(lm64):
    both = decoders.beam(lm64, PROMPTS, num_beams=4, length_penalty=1.3, max_new_tokens=8,
                         no_repeat_ngram_size=2, eos_token_id=9)
    for i, p in enumerate(PROMPTS):
        alone = decoders.beam(lm64, [p], num_beams=4, length_penalty=1.3, max_new_tokens=8,
                              no_repeat_ngram_size=2, eos_token_id=9)
        assert both.tokens[i] == alone.tokens[0]


def test_sampled_output_never_repeats_an_ngram(lm64):
    res = decoders.sample(lm64, PROMPTS, max_new_tokens=20, temperature=1.5,
                          no_repeat_ngram_size=2, rngs=[0, 1, 2, 3])
    for p, toks in zip(PROMPTS, res.tokens):
        seq = p + toks
        grams = [tuple(seq[i:i + 2]) for i in range(len(seq) - 1)]
        assert len(grams) == len(set(grams))


# ---- EOS, records ---------------------------------------------------------------------------

def test_each_row_stops_right_after_its_own_eos(lm64):
    free = decoders.sample(lm64, PROMPTS, max_new_tokens=12, temperature=0.0).tokens
    eos = free[0][2]  # the third greedy token of row 0
    res = decoders.sample(lm64, PROMPTS, max_new_tokens=12, temperature=0.0, eos_token_id=eos)
    stopped = 0
    for f, toks in zip(free, res.tokens):
        cut = f.index(eos) + 1 if eos in f else len(f)
        assert toks == f[:cut]
        stopped += cut < len(f)
    assert stopped >= 1 and len(res.tokens[0]) == 3


def test_records_are_plain_json_lines_with_the_sampled_law_entropy(lm64):
    p = PROMPTS[0]
    res = decoders.sample(lm64, [p], max_new_tokens=3, temperature=0.7, top_k=10,
                          rngs=[torch.Generator().manual_seed(5)])
    recs = res.records[0]
    assert [r["kind"] for r in recs] == ["plain"] * 3
    assert [r["target_calls"] for r in recs] == [1, 2, 3]
    assert [r["index"] for r in recs] == [0, 1, 2]
    assert all(r["tv"] is None and r["rejection_prob"] is None and r["entropy_q"] is None
               for r in recs)
    seq = list(p)
    for r in recs:
        law = laws.sampling_law(_logits_last(lm64, [seq]), temperature=0.7, top_k=10)[0]
        assert math.isclose(r["entropy_p"], float(entropy(law)), rel_tol=1e-9)
        seq.append(r["token"])
    json.dumps(res.to_dict())


def test_cd_records_carry_the_entropy_of_the_contrastive_law(lm64, amateur64):
    c = dict(plausibility=0.05, contrast=0.7)
    p = PROMPTS[2]
    res = decoders.sample(lm64, [p], max_new_tokens=4, amateur=amateur64, contrast=c, rngs=[3])
    seq = list(p)
    for r in res.records[0]:
        law = contrastive(_logits_last(lm64, [seq]), _logits_last(amateur64, [seq]), **c)[0]
        assert law[r["token"]] > 0
        assert math.isclose(r["entropy_p"], float(entropy(law)), rel_tol=1e-9)
        seq.append(r["token"])


# ---- the exact law of the first two sampled tokens --------------------------------------------

V8 = 8
PROMPT8 = [1, 5, 2]


@pytest.fixture(scope="module")
def lm8():
    return random_lm(vocab_size=V8, hidden_size=16, layers=2, heads=2, seed=3, scale=1.5,
                     dtype=torch.float64)


@pytest.fixture(scope="module")
def amateur8():
    return random_lm(vocab_size=V8, hidden_size=16, layers=1, heads=2, seed=4, scale=1.5,
                     dtype=torch.float64)


def exact_joint2(law_of):
    """P(x1, x2) = law(prompt)(x1) * law(prompt + x1)(x2), by enumeration; (V*V,) float64."""
    first = law_of([PROMPT8])[0].numpy()
    second = law_of([PROMPT8 + [x] for x in range(V8)]).numpy()
    return (first[:, None] * second).ravel()


N_LAW = 12_000


def _draws(lm, seed0, **kw):
    prompts = [PROMPT8] * N_LAW
    res = decoders.sample(lm, prompts, max_new_tokens=2, rngs=range(seed0, seed0 + N_LAW), **kw)
    return joint_counts(res.tokens, V8)


WARP_CASES = [
    # (settings, planted bug: the same settings less one truncation)
    (dict(temperature=0.8, top_k=6, top_p=0.75), dict(temperature=0.8, top_k=6)),
    (dict(temperature=1.3, min_p=0.15, epsilon=0.03), dict(temperature=1.3, epsilon=0.03)),
]


@pytest.mark.parametrize("case", range(len(WARP_CASES)))
def test_first_two_sampled_tokens_follow_the_warped_law_and_a_planted_bug_is_caught(lm8, case):
    warp_kw, bug_kw = WARP_CASES[case]

    def law(seqs, **kw):
        return laws.sampling_law(_logits_last(lm8, seqs), **kw)

    exact = exact_joint2(lambda s: law(s, **warp_kw))
    bug = exact_joint2(lambda s: law(s, **bug_kw))
    assert np.abs(exact.sum() - 1) < 1e-12
    counts = _draws(lm8, 20 * case * N_LAW, **warp_kw)
    assert counts[exact == 0].sum() == 0, "a truncated token was sampled"
    stat, df, thr = chi2_stat(counts, exact)
    assert stat <= thr, f"chi2 = {stat:.1f} > {thr:.1f} (df={df})"
    assert power(exact, bug, N_LAW) >= 1 - ALPHA
    bug_counts = _draws(lm8, (20 * case + 1) * N_LAW, **bug_kw)  # run the planted bug
    assert chi2_stat(bug_counts, exact)[0] > thr


CD = dict(plausibility=0.1, contrast=1.0, amateur_temperature=0.7, form="logit")


def test_first_two_contrastive_sampled_tokens_follow_the_contrastive_law(lm8, amateur8):
    def cd(seqs):
        return contrastive(_logits_last(lm8, seqs), _logits_last(amateur8, seqs), **CD)

    def expert_only(seqs):
        return laws.sampling_law(_logits_last(lm8, seqs))

    exact = exact_joint2(cd)
    bug = exact_joint2(expert_only)  # planted bug: the amateur is ignored
    counts = _draws(lm8, 7 * N_LAW, amateur=amateur8, contrast=CD)
    assert counts[exact == 0].sum() == 0, "an implausible token was sampled"
    stat, df, thr = chi2_stat(counts, exact)
    assert stat <= thr, f"chi2 = {stat:.1f} > {thr:.1f} (df={df})"
    assert power(exact, bug, N_LAW) >= 1 - ALPHA
    assert chi2_stat(_draws(lm8, 9 * N_LAW), exact)[0] > thr  # run the planted bug


# ---- per-row streams ------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [
    dict(temperature=1.0),
    dict(temperature=1.3, top_p=0.9, min_p=0.02, no_repeat_ngram_size=2, eos_token_id=4),
    dict(temperature=1.0, contrast=dict(plausibility=0.05, window=3), eos_token_id=6),
])
def test_a_rows_tokens_depend_only_on_its_own_seed(lm64, amateur64, kw):
    if "contrast" in kw:
        kw = dict(kw, amateur=amateur64)
    a = decoders.sample(lm64, PROMPTS, max_new_tokens=10, rngs=[11, 12, 13, 14], **kw)
    alone = decoders.sample(lm64, [PROMPTS[1]], max_new_tokens=10, rngs=[12], **kw)
    shuffled = decoders.sample(lm64, [PROMPTS[3], PROMPTS[1], [9, 9, 9, 9, 9, 9, 9, 9]],
                               max_new_tokens=10, rngs=[99, 12, 5], **kw)
    assert a.tokens[1] == alone.tokens[0] == shuffled.tokens[1]
    other_seed = decoders.sample(lm64, [PROMPTS[1]], max_new_tokens=10, rngs=[13], **kw)
    assert other_seed.tokens[0] != alone.tokens[0]  # the seed matters (not a constant output)


def test_same_generators_same_output(lm64):
    g = [torch.Generator().manual_seed(s) for s in (1, 2, 3, 4)]
    a = decoders.sample(lm64, PROMPTS, max_new_tokens=8, rngs=g)
    b = decoders.sample(lm64, PROMPTS, max_new_tokens=8, rngs=[1, 2, 3, 4])
    assert a.tokens == b.tokens


# ---- contrastive decoding ---------------------------------------------------------------------

def _cd_greedy_by_hand(expert, amateur, prompt, steps, window=None, **c):
    seq, ents = list(prompt), []
    for _ in range(steps):
        e = _logits_last(expert, [seq])[0]
        a = _logits_last(amateur, [seq[-window:] if window else seq])[0]
        law = contrastive(e, a, **c)
        ents.append(float(entropy(law)))
        seq.append(int(torch.argmax(law)))
    return seq[len(prompt):], ents


@pytest.mark.parametrize("c, window", [
    (dict(plausibility=0.1, contrast=0.5), None),
    (dict(plausibility=0.05, contrast=1.0, amateur_temperature=0.5, form="ratio"), None),
    (dict(plausibility=0.1, contrast=0.8), 2),
])
def test_cd_greedy_is_argmax_of_scdsim_contrastive_step_by_step(lm64, amateur64, c, window):
    contrast = dict(c) if window is None else dict(c, window=window)
    res = decoders.sample(lm64, PROMPTS, max_new_tokens=8, temperature=0.0, amateur=amateur64,
                          contrast=contrast)
    differs = 0
    for p, toks, recs in zip(PROMPTS, res.tokens, res.records):
        ref, _ = _cd_greedy_by_hand(lm64, amateur64, p, 8, window, **c)
        assert toks == ref
        # entropy_p is that of the law sampled: greedy samples a one-hot law
        assert all(r["entropy_p"] == 0.0 for r in recs)
        differs += toks != decoders.sample(lm64, [p], max_new_tokens=8,
                                           temperature=0.0).tokens[0]
    assert differs >= 1  # the amateur changed something: CD is not plain greedy here


def test_cd_greedy_with_window_differs_from_full_context_amateur(lm64, amateur64):
    full = _cd_greedy_by_hand(lm64, amateur64, PROMPTS[2], 8, None, contrast=1.0)[0]
    short = _cd_greedy_by_hand(lm64, amateur64, PROMPTS[2], 8, 1, contrast=1.0)[0]
    res = decoders.sample(lm64, [PROMPTS[2]], max_new_tokens=8, temperature=0.0,
                          amateur=amateur64, contrast=dict(contrast=1.0, window=1))
    assert full != short and res.tokens[0] == short


def test_cd_beam_with_zero_contrast_and_plausibility_is_plain_beam(lm64, amateur64):
    plain = decoders.beam(lm64, PROMPTS, num_beams=3, max_new_tokens=7)
    cd = decoders.beam(lm64, PROMPTS, num_beams=3, max_new_tokens=7, amateur=amateur64,
                       contrast=dict(plausibility=0.0, contrast=0.0))
    assert cd.tokens == plain.tokens


@pytest.mark.parametrize("p, c, window", [
    ([0, 12], dict(plausibility=0.02, contrast=0.5), None),
    ([1, 2, 3, 4], dict(plausibility=0.02, contrast=0.5), 1),
    ([4, 4, 4], dict(plausibility=0.1, contrast=1.0), 1),
])
def test_cd_beam_as_wide_as_the_vocabulary_finds_the_best_path_under_log_contrastive(
        lm64, amateur64, p, c, window):
    # Two steps, 32 beams = V: beam search is exhaustive, so it must return the two-token path
    # maximising log p_CD(x1) + log p_CD(x2 | x1), enumerated here from the models' logits
    # (prompts chosen where that path is not the greedy one).

    def am(seqs):
        return _logits_last(amateur64, [s[-window:] if window else s for s in seqs])

    first = contrastive(_logits_last(lm64, [p]), am([p]), **c)[0].log()
    seqs = [p + [x] for x in range(32)]
    second = contrastive(_logits_last(lm64, seqs), am(seqs), **c).log()
    total = torch.nan_to_num(first[:, None] + second, neginf=-1e300)  # (x1, x2)
    best = list(divmod(int(torch.argmax(total)), 32))
    greedy = [int(torch.argmax(first))]
    greedy.append(int(torch.argmax(second[greedy[0]])))
    assert best != greedy  # the case discriminates beam search from greedy
    contrast = dict(c) if window is None else dict(c, window=window)
    res = decoders.beam(lm64, [p], num_beams=32, max_new_tokens=2, amateur=amateur64,
                        contrast=contrast, length_penalty=0.0)
    assert res.tokens[0] == best


# ---- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, exc, match", [
    (dict(top_p=0.0), ValueError, "top_p"),
    (dict(temperature=-1.0), ValueError, "temperature"),
    (dict(top_k=0), ValueError, "top_k"),
    (dict(max_new_tokens=0), ValueError, "max_new_tokens"),
    (dict(no_repeat_ngram_size=-1), ValueError, "no_repeat_ngram_size"),
    (dict(rngs=[1]), ValueError, "rngs"),
    (dict(contrast=dict(contrast=0.5)), ValueError, "amateur"),
])
def test_sample_bad_input_raises_naming_the_argument(lm32, kw, exc, match):
    args = dict(max_new_tokens=3, rngs=[1, 2, 3, 4])
    args.update(kw)
    with pytest.raises(exc, match=match):
        decoders.sample(lm32, PROMPTS, **args)


def test_epsilon_that_empties_the_support_raises_warps_error(lm32):
    with pytest.raises(ValueError, match="epsilon=0.99 removes every token"):
        decoders.sample(lm32, PROMPTS, max_new_tokens=2, epsilon=0.99, rngs=[1, 2, 3, 4])


@pytest.mark.parametrize("kw, exc, match", [
    (dict(num_beams=0), ValueError, "num_beams"),
    (dict(num_beams=2.0), TypeError, "num_beams"),
    (dict(num_beams=2, length_penalty=math.nan), ValueError, "length_penalty"),
    (dict(num_beams=2, early_stopping="sometimes"), ValueError, "early_stopping"),
])
def test_beam_bad_input_raises_naming_the_argument(lm32, kw, exc, match):
    with pytest.raises(exc, match=match):
        decoders.beam(lm32, PROMPTS, max_new_tokens=3, **kw)


def test_bad_prompts_and_models_raise(lm32, amateur64):
    with pytest.raises(ValueError, match="outside"):
        decoders.sample(lm32, [[1, 40]], max_new_tokens=2, temperature=0.0)
    with pytest.raises(ValueError, match="empty"):
        decoders.sample(lm32, [[]], max_new_tokens=2, temperature=0.0)
    with pytest.raises(ValueError, match="exceeds the context"):
        decoders.beam(lm32, [[1] * 500], num_beams=2, max_new_tokens=20)
    small_v = random_lm(vocab_size=16, seed=2)
    with pytest.raises(ValueError, match="vocab_size"):
        decoders.sample(lm32, PROMPTS, max_new_tokens=2, temperature=0.0, amateur=small_v)
    with pytest.raises(ValueError, match="unknown keys"):
        decoders.sample(lm32, PROMPTS, max_new_tokens=2, temperature=0.0, amateur=lm32,
                        contrast=dict(alpha=0.1))
    with pytest.raises(ValueError, match="plausibility"):
        decoders.sample(lm32, PROMPTS, max_new_tokens=2, temperature=0.0, amateur=lm32,
                        contrast=dict(plausibility=2.0))


# ---- the embedded model ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def smollm():
    loading = pytest.importorskip("real_models.loading",
                                  reason="real_models.loading (b1's loader) is not merged")
    try:
        return loading.load("smollm2-135m")
    except loading.ModelNotAvailableError as err:  # offline with an empty cache
        pytest.skip(f"smollm2-135m is neither cached nor fetchable here: {err}")


SMOL_PROMPTS = ["The capital of France is", "def fibonacci(n):\n   "]


def _smol_ids(lm):
    return [lm.tokenizer(t)["input_ids"] for t in SMOL_PROMPTS]


@pytest.mark.slow
def test_smollm2_beam_length_penalty_ngram_equals_transformers_generate(smollm):
    # Three stop tokens (EOS, "." and newline) so hypotheses end at different lengths and the
    # length penalty decides between them; 3*num_beams candidates per step.
    tok = smollm.tokenizer
    prompts = _smol_ids(smollm)
    eos = [tok.eos_token_id, tok(".")["input_ids"][-1], tok("\n")["input_ids"][-1]]
    kw = dict(num_beams=4, max_new_tokens=12, no_repeat_ngram_size=3, eos_token_id=eos)
    res = decoders.beam(smollm, prompts, length_penalty=2.0, **kw)
    for p, toks in zip(prompts, res.tokens):
        ref = hf_generate(smollm, p, length_penalty=2.0, **kw)
        assert toks == ref, (tok.decode(toks), tok.decode(ref))
    assert res.text == [tok.decode(t) for t in res.tokens]
    # the length penalty matters here: a smaller one prefers the short hypothesis
    short = decoders.beam(smollm, prompts[:1], length_penalty=0.7, **kw).tokens[0]
    assert len(short) < len(res.tokens[0])


@pytest.mark.slow
def test_smollm2_greedy_ragged_batch_with_ngram_blocking_equals_transformers(smollm):
    prompts = _smol_ids(smollm)
    assert len({len(p) for p in prompts}) == 2  # ragged: left padding is exercised
    res = decoders.sample(smollm, prompts, max_new_tokens=20, temperature=0.0,
                          no_repeat_ngram_size=2)
    for p, toks in zip(prompts, res.tokens):
        assert toks == hf_generate(smollm, p, max_new_tokens=20, no_repeat_ngram_size=2)
    free = decoders.sample(smollm, prompts, max_new_tokens=20, temperature=0.0)
    assert free.tokens != res.tokens  # the blocking changed the output
