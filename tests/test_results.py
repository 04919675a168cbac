"""One result vocabulary: exact ``expected_<stem>`` and Monte Carlo ``mean_<stem>``/``sem_<stem>``
with the same stems, so "exact vs MC" is a loop; every result frozen, with a short repr,
``summary()`` and a JSON-safe ``to_dict()``."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from scdsim import agreement, chains, rules
from scdsim.exact import markov as mk
from scdsim.montecarlo import simulate

PAIR = chains.dirichlet_pair(5, 0.3, seed=4)
T, GAMMA, RUNS = 12, 3, 4000
STEMS = ("rejections", "target_calls", "draft_tokens")


@pytest.fixture(scope="module")
def both():
    law = mk.sequence_law(PAIR, rules.recursive(2), T, GAMMA)
    res = simulate(PAIR, rules.recursive(2), T, gamma=GAMMA, runs=RUNS, rng=21)
    return law, res


def test_exact_and_monte_carlo_agree_over_the_shared_stems(both):
    law, res = both
    for stem in STEMS:
        exact = getattr(law, f"expected_{stem}")
        mean, sem = getattr(res, f"mean_{stem}"), getattr(res, f"sem_{stem}")
        assert agreement.mean_agrees(mean, sem, exact), (stem, mean, sem, exact)
    assert agreement.mean_agrees(res.tokens_per_call, res.sem_tokens_per_call, law.tokens_per_call)
    for n in range(T):
        assert agreement.mean_agrees(res.position_rejection[n], res.sem_position_rejection[n],
                                     law.position_rejection[n]), n
    L = res.n_lengths
    assert law.expected_blocks_by_length.shape == (L,) == res.block_length_pmf.shape
    for j in range(L):
        assert agreement.mean_agrees(res.mean_blocks_by_length[j], res.sem_blocks_by_length[j],
                                     law.expected_blocks_by_length[j]), j
    value, se = res.speedup(0.1)
    assert agreement.mean_agrees(value, se, law.speedup(0.1))


def test_compare_is_the_loop_over_shared_names(both):
    law, res = both
    rows = agreement.compare(law, res, stems=agreement.STEMS + ("tokens_per_call",))
    assert [r.stem for r in rows] == ["rejections", "target_calls", "draft_tokens",
                                      "tokens_per_call"]
    assert all(r.agrees for r in rows), rows
    assert rows[0].exact == law.expected_rejections and rows[0].mean == res.mean_rejections
    # negative control: an exact value shifted by 10 standard errors does not agree
    shifted = type("Shifted", (), {"expected_rejections": law.expected_rejections
                                   + 10 * res.sem_rejections})()
    assert not agreement.compare(shifted, res, stems=("rejections",))[0].agrees


def test_the_exact_vocabulary_is_consistent_with_block_stats(both):
    law, _ = both
    bs = mk.block_stats(PAIR, rules.recursive(2), T, GAMMA, c=0.1)
    assert law.expected_rejections == pytest.approx(bs.expected_rejections, abs=1e-12)
    assert law.expected_target_calls == pytest.approx(bs.expected_target_calls, abs=1e-12)
    assert law.expected_draft_tokens == pytest.approx(bs.expected_draft_tokens, abs=1e-12)
    assert law.tokens_per_call == pytest.approx(bs.tokens_per_call, abs=1e-12)
    assert law.speedup(0.1) == pytest.approx(bs.speedup, abs=1e-12)
    np.testing.assert_allclose(law.block_length_pmf, bs.block_length_pmf, rtol=0, atol=1e-15)


def test_monte_carlo_speedup_standard_error_is_the_delta_method(both):
    _, res = both
    X = res.target_calls + 0.05 * res.draft_tokens
    m = X.mean()
    value, se = res.speedup(0.05)
    assert value == pytest.approx(T / m, rel=1e-14)
    assert se == pytest.approx(T * X.std(ddof=1) / (np.sqrt(X.size) * m * m), rel=1e-12)
    with pytest.raises(ValueError, match="c must lie in"):
        res.speedup(-1.0)


def test_old_names_are_read_only_aliases(both):
    law, res = both
    bs = mk.block_stats(PAIR, rules.recursive(2), T, GAMMA)
    np.testing.assert_array_equal(res.position_rejected, res.position_rejection)
    np.testing.assert_array_equal(res.block_tokens_hist, res.blocks_by_length)
    np.testing.assert_array_equal(law.block_end_tokens, law.expected_blocks_by_length)
    np.testing.assert_array_equal(bs.tokens_per_call_pmf, bs.block_length_pmf)
    for arr in (res.position_rejected, res.block_tokens_hist, law.block_end_tokens,
                bs.tokens_per_call_pmf):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 1
    with pytest.raises(AttributeError):
        res.position_rejected = res.position_rejection


def test_every_result_is_frozen_with_a_short_repr_a_summary_and_json(both):
    law, res = both
    bs = mk.block_stats(PAIR, rules.recursive(2), T, GAMMA, c=0.1)
    curve = mk.batch_curve(PAIR, 4, [1, 2, 3])
    for r in (law, res, bs, curve):
        assert len(repr(r)) < 120 and "\n" not in repr(r)
        text = r.summary()
        assert text.startswith(repr(r)) and len(text.splitlines()) > 1
        d = r.to_dict()
        json.dumps(d, allow_nan=False)
        for f in vars(r).values():
            if isinstance(f, np.ndarray):
                assert not f.flags.writeable
    assert re.fullmatch(r"SimResult\(recursive\(2\), T=12, runs=4000: rejections [\d.]+ ± [\d.e-]+\)",
                        repr(res))
    assert "tokens" not in res.to_dict() and len(res.to_dict(bulky=True)["tokens"]) == RUNS


def test_batch_curve_is_a_dataclass_that_still_answers_the_old_keys():
    curve = mk.batch_curve(chains.yin_example(), 4, [1, 2, 4])
    assert isinstance(curve, mk.BatchCurve)
    np.testing.assert_array_equal(curve["M"], curve.M)
    np.testing.assert_array_equal(curve["rejections"], curve.expected_rejections)
    np.testing.assert_array_equal(curve["improvement"], curve.improvement)
    assert set(curve.keys()) == {"M", "rejections", "improvement"}
    with pytest.raises(KeyError, match="a BatchCurve has"):
        curve["speed"]
    with pytest.raises(TypeError, match="Ms must be a sequence of draft counts, got 3"):
        mk.batch_curve(chains.yin_example(), 4, 3)


def test_block_counts_are_stored_sparsely_not_as_a_runs_by_horizon_table():
    """Drafting to the horizon, a dense (runs, T + 2) histogram is mostly zeros; the result keeps
    one entry per (run, length) that occurred, and the dense view still sums correctly."""
    pair = chains.dirichlet_pair(8, 0.3, seed=1)
    res = simulate(pair, rules.lossless, 2000, runs=256, rng=0)
    nnz = res.block_counts.size
    assert nnz < 0.05 * res.runs * (2000 + 2)
    assert int(res.block_counts.sum()) == int(res.target_calls.sum())
    np.testing.assert_array_equal(np.bincount(res.block_runs, weights=res.block_counts,
                                              minlength=res.runs), res.target_calls)
    assert int((res.block_lengths * res.block_counts).sum()) == 2000 * res.runs


# --------------------------------------------------------------------------------------------
# memory: refuse at once what cannot fit, and the estimate bounds what is used


def test_a_simulation_too_large_for_memory_is_refused_at_once():
    import time

    from scdsim.montecarlo import sample_autoregressive

    pair = chains.yin_example()
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"simulate\(runs=100000000, horizon=4\) needs about .* "
                                         r"GiB.*max_bytes"):
        simulate(pair, rules.lossless, 4, runs=10**8)
    with pytest.raises(ValueError, match=r"sample_autoregressive\(runs=1000000000, horizon=4\)"):
        sample_autoregressive(pair.target, 4, runs=10**9)
    with pytest.raises(ValueError, match="above the limit max_bytes"):
        simulate(pair, rules.lossless, 4, runs=1000, max_bytes=10_000)
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(TypeError, match="max_bytes must be an integer"):
        simulate(pair, rules.lossless, 4, runs=10, max_bytes=1.5)


def test_the_memory_estimate_bounds_the_measured_peak():
    import tracemalloc

    from scdsim.montecarlo.engine import chunk_positions, memory_estimate

    pair = chains.dirichlet_pair(12, 0.3, seed=1)
    runs, T = 3000, 400
    tracemalloc.start()
    try:
        simulate(pair, rules.lossless, T, runs=runs, rng=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    est = memory_estimate(runs, T, 3, chunk_positions(runs, 3, T))
    tables = 64 * pair.S * pair.V * 8  # per-position tables do not grow with runs
    assert peak <= est + tables, (peak, est)
    assert est <= 4 * peak  # and is not a wild overestimate


def test_the_dense_block_table_is_refused_when_too_large(monkeypatch):
    from scdsim.montecarlo import result

    res = simulate(chains.yin_example(), rules.lossless, 4, runs=100, rng=0)
    assert res.blocks_by_length.shape == (100, 6)
    monkeypatch.setattr(result, "DENSE_MAX_ENTRIES", 599)
    with pytest.raises(ValueError, match=r"dense \(100, 6\) table of 600 entries.*block_counts"):
        _ = res.blocks_by_length
    assert res.block_length_counts.sum() == res.target_calls.sum()  # the sparse view still works


def test_sparse_and_dense_block_counting_give_the_same_result(monkeypatch):
    """Small runs x L tables are counted densely, large ones sparsely: same counts either way."""
    from scdsim.montecarlo import engine

    pair = chains.dirichlet_pair(8, 0.3, seed=1)
    for gamma in (None, 3):
        dense = simulate(pair, rules.lossless, 300, gamma=gamma, runs=200, rng=5)
        with monkeypatch.context() as m:
            m.setattr(engine, "DENSE_BLOCK_CELLS", 0)
            sparse = simulate(pair, rules.lossless, 300, gamma=gamma, runs=200, rng=5)
        for name in ("block_runs", "block_lengths", "block_counts", "rejections", "target_calls",
                     "draft_tokens", "phase_attempts", "phase_accepts"):
            np.testing.assert_array_equal(getattr(dense, name), getattr(sparse, name), err_msg=name)
