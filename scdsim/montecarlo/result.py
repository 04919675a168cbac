"""``SimResult``: what the Monte Carlo engine returns, in the shared result vocabulary.

Monte Carlo quantities are ``mean_<stem>`` and ``sem_<stem>`` with the stems of the exact
results (``expected_<stem>``): ``rejections``, ``target_calls``, ``draft_tokens``; the arrays
``position_rejection``, ``block_length_pmf`` and ``acceptance_by_phase`` and the ratio
``tokens_per_call`` carry no prefix (see docs/architecture.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scdsim._results import Result, frozen
from scdsim._validate import check_real
from scdsim.agreement import ratio_of_means

__all__ = ["SimResult", "DENSE_MAX_ENTRIES"]

#: The dense per-run block table (``SimResult.blocks_by_length``) is built up to this size.
DENSE_MAX_ENTRIES = 1 << 26


def _sem(x) -> float:
    """Standard error of the mean of the per-run values ``x``; NaN for a single run."""
    x = np.asarray(x)
    if x.shape[0] < 2:
        return math.nan
    return float(np.std(x, ddof=1) / math.sqrt(x.shape[0]))


@dataclass(frozen=True, eq=False, repr=False)
class SimResult(Result):
    """Monte Carlo runs of speculative decoding on a Markov pair.

    Attributes
    ----------
    tokens : int64 (runs, T)
        Emitted tokens.
    rejections : int64 (runs,)
        Recovered tokens per run (Yin et al.'s N_rej).
    target_calls : int64 (runs,)
        Blocks started per run.
    draft_tokens : int64 (runs,)
        Sum over blocks of the draft budget ``g = min(gamma, T - n0)`` (cost model
        ``target_calls + c * draft_tokens``).
    block_runs, block_lengths, block_counts : int64 (nnz,)
        The blocks per (run, length) as sparse counts: run ``block_runs[i]`` had
        ``block_counts[i]`` blocks that emitted ``block_lengths[i]`` tokens. Dense views:
        ``blocks_by_length`` (runs, ``n_lengths``) and the pooled ``block_length_counts``.
    n_lengths : int
        ``L = min(gamma, T) + 2``, or ``T + 2`` when drafting to the horizon.
    position_rejection : float (T,)
        Fraction of runs whose token at position ``n`` is a recovered token.
    phase_attempts, phase_accepts : int64 (K,)
        Draft positions visited at phase ``k`` and those that accepted a draft, summed over
        runs (``K = min(gamma, T)``, or ``T`` when drafting to the horizon); their ratio is the
        conditional per-position acceptance rate as vLLM defines it.
    rule, gamma, batch, horizon, runs, seed
        The inputs (``rule`` by name; ``seed`` reproduces the runs with ``rng=seed``).
    """

    tokens: np.ndarray
    rejections: np.ndarray
    target_calls: np.ndarray
    draft_tokens: np.ndarray
    block_runs: np.ndarray
    block_lengths: np.ndarray
    block_counts: np.ndarray
    n_lengths: int
    position_rejection: np.ndarray
    phase_attempts: np.ndarray
    phase_accepts: np.ndarray
    rule: str
    gamma: int | None
    batch: str
    horizon: int
    runs: int
    seed: int

    _summary = ("mean_rejections", "sem_rejections", "mean_target_calls", "sem_target_calls",
                "mean_draft_tokens", "sem_draft_tokens", "tokens_per_call",
                "sem_tokens_per_call", "block_length_pmf", "position_rejection")
    _bulky = ("tokens", "rejections", "target_calls", "draft_tokens", "block_runs",
              "block_lengths", "block_counts")

    def __post_init__(self):
        self._freeze()

    def __repr__(self):
        return (f"SimResult({self.rule}, T={self.horizon}, runs={self.runs}: rejections "
                f"{self.mean_rejections:.4g} ± {self.sem_rejections:.2g})")

    # -- per-run means and their standard errors -------------------------------------------

    @property
    def mean_rejections(self) -> float:
        """Mean number of rejections per run (estimates Yin et al.'s E[N_rej])."""
        return float(self.rejections.mean())

    @property
    def sem_rejections(self) -> float:
        """Standard error of ``mean_rejections`` (NaN when ``runs == 1``)."""
        return _sem(self.rejections)

    @property
    def mean_target_calls(self) -> float:
        """Mean number of target calls (blocks) per run."""
        return float(self.target_calls.mean())

    @property
    def sem_target_calls(self) -> float:
        """Standard error of ``mean_target_calls`` (NaN when ``runs == 1``)."""
        return _sem(self.target_calls)

    @property
    def mean_draft_tokens(self) -> float:
        """Mean of ``draft_tokens`` per run."""
        return float(self.draft_tokens.mean())

    @property
    def sem_draft_tokens(self) -> float:
        """Standard error of ``mean_draft_tokens`` (NaN when ``runs == 1``)."""
        return _sem(self.draft_tokens)

    @property
    def tokens_per_call(self) -> float:
        """Mean tokens emitted per block, over all blocks of all runs (``T runs / calls``): the
        mean *acceptance length* (tau) that EAGLE/Medusa-style papers report. The lengths of
        single blocks are in ``block_length_pmf`` (a block of ``j`` tokens accepted ``j - 1``
        drafts, or ``j`` when it reached the horizon without a bonus)."""
        return self.horizon * self.runs / float(self.target_calls.sum())

    @property
    def sem_tokens_per_call(self) -> float:
        """Delta-method standard error of ``tokens_per_call`` (``T / mean(calls)``)."""
        return ratio_of_means(self.horizon, self.target_calls)[1]

    @property
    def sem_position_rejection(self) -> np.ndarray:
        """Standard error of each entry of ``position_rejection`` (a mean of 0/1 per run)."""
        f, n = self.position_rejection, self.runs
        if n < 2:
            return np.full(f.shape, np.nan)
        return np.sqrt(f * (1.0 - f) * n / (n - 1) / n)

    def speedup(self, c: float = 0.0) -> tuple[float, float]:
        """Leviathan's walltime model at cost ratio ``c``: ``T / mean(calls + c drafts)``.

        Returns ``(value, standard error)``, the error by the delta method
        (``scdsim.agreement.ratio_of_means``); the exact counterpart is
        ``scdsim.exact.block_stats(...).speedup``.
        """
        c = check_real(c, "c", low=0.0)
        return ratio_of_means(self.horizon, self.target_calls + c * self.draft_tokens)

    # -- blocks ----------------------------------------------------------------------------

    @property
    def blocks_by_length(self) -> np.ndarray:
        """Dense ``(runs, n_lengths)`` counts: blocks of each run that emitted ``j`` tokens.

        Built on demand from the sparse counts; refused above ``DENSE_MAX_ENTRIES`` entries
        (the pooled ``block_length_counts`` and ``mean_blocks_by_length`` need no dense table).
        """
        entries = self.runs * self.n_lengths
        if entries > DENSE_MAX_ENTRIES:
            raise ValueError(
                f"blocks_by_length would be a dense ({self.runs}, {self.n_lengths}) table of "
                f"{entries:,} entries, above {DENSE_MAX_ENTRIES:,}; use block_runs, "
                "block_lengths and block_counts (sparse), block_length_counts or "
                "mean_blocks_by_length"
            )
        out = np.zeros((self.runs, self.n_lengths), dtype=np.int64)
        out[self.block_runs, self.block_lengths] = self.block_counts
        return frozen(out)

    @property
    def block_tokens_hist(self) -> np.ndarray:
        """Former name of ``blocks_by_length`` (read-only alias)."""
        return self.blocks_by_length

    @property
    def block_length_counts(self) -> np.ndarray:
        """``(n_lengths,)`` blocks of all runs that emitted ``j`` tokens."""
        return np.bincount(self.block_lengths, weights=self.block_counts,
                           minlength=self.n_lengths).astype(np.int64)

    @property
    def block_length_pmf(self) -> np.ndarray:
        """``(n_lengths,)`` fraction of all blocks that emitted ``j`` tokens."""
        counts = self.block_length_counts
        return counts / max(int(counts.sum()), 1)

    @property
    def mean_blocks_by_length(self) -> np.ndarray:
        """``(n_lengths,)`` mean number per run of blocks emitting ``j`` tokens."""
        return self.block_length_counts / self.runs

    @property
    def sem_blocks_by_length(self) -> np.ndarray:
        """Standard error of ``mean_blocks_by_length`` (NaN when ``runs == 1``)."""
        n = self.runs
        if n < 2:
            return np.full(self.n_lengths, np.nan)
        sq = np.bincount(self.block_lengths, weights=self.block_counts.astype(float) ** 2,
                         minlength=self.n_lengths)
        mean = self.mean_blocks_by_length
        var = np.maximum(sq / n - mean**2, 0.0) * n / (n - 1)
        return np.sqrt(var / n)

    def acceptance_by_phase(self) -> np.ndarray:
        """``phase_accepts / phase_attempts`` per phase; NaN where a phase was never reached."""
        out = np.full(self.phase_attempts.shape, np.nan)
        np.divide(self.phase_accepts, self.phase_attempts, out=out, where=self.phase_attempts > 0)
        return out

    @property
    def position_rejected(self) -> np.ndarray:
        """Former name of ``position_rejection`` (read-only alias)."""
        return self.position_rejection
