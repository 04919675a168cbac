"""``SimResult``: what the Monte Carlo engine returns."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["SimResult"]


def _frozen(a):
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class SimResult:
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
    block_tokens_hist : int64 (runs, L)
        Number of blocks of each run that emitted ``j`` tokens (column ``j``);
        ``L = gamma + 2``, or ``T + 2`` when drafting to the horizon.
    position_rejected : float (T,)
        Fraction of runs whose token at position ``n`` is a recovered token.
    phase_attempts, phase_accepts : int64 (K,)
        Draft positions visited at phase ``k`` and those that accepted a draft, summed over
        runs (``K = gamma``, or ``T`` when drafting to the horizon); their ratio is the
        conditional per-position acceptance rate as vLLM defines it.
    rule, gamma, batch, horizon, runs, seed
        The inputs (``rule`` by name; ``seed`` reproduces the runs with ``rng=seed``).
    """

    tokens: np.ndarray
    rejections: np.ndarray
    target_calls: np.ndarray
    draft_tokens: np.ndarray
    block_tokens_hist: np.ndarray
    position_rejected: np.ndarray
    phase_attempts: np.ndarray
    phase_accepts: np.ndarray
    rule: str
    gamma: int | None
    batch: str
    horizon: int
    runs: int
    seed: int

    def __post_init__(self):
        for name in ("tokens", "rejections", "target_calls", "draft_tokens", "block_tokens_hist",
                     "position_rejected", "phase_attempts", "phase_accepts"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @staticmethod
    def _sem(x):
        # standard error of the mean; undefined (NaN) for a single run
        if x.shape[0] < 2:
            return math.nan
        return float(np.std(x, ddof=1) / math.sqrt(x.shape[0]))

    @property
    def mean_rejections(self) -> float:
        """Mean number of rejections per run (estimates Yin et al.'s E[N_rej])."""
        return float(self.rejections.mean())

    @property
    def sem_rejections(self) -> float:
        """Standard error of ``mean_rejections`` (NaN when ``runs == 1``)."""
        return self._sem(self.rejections)

    @property
    def mean_target_calls(self) -> float:
        """Mean number of target calls (blocks) per run."""
        return float(self.target_calls.mean())

    @property
    def sem_target_calls(self) -> float:
        """Standard error of ``mean_target_calls`` (NaN when ``runs == 1``)."""
        return self._sem(self.target_calls)

    @property
    def mean_draft_tokens(self) -> float:
        """Mean of ``draft_tokens`` per run."""
        return float(self.draft_tokens.mean())

    @property
    def tokens_per_call(self) -> float:
        """Mean tokens emitted per block, over all blocks of all runs (``T runs / calls``): the
        mean *acceptance length* (tau) that EAGLE/Medusa-style papers report. The accepted
        lengths of single blocks are in ``block_tokens_hist`` (a block of ``j`` tokens
        accepted ``j - 1`` drafts, or ``j`` when it reached the horizon without a bonus)."""
        return self.horizon * self.runs / float(self.target_calls.sum())

    def acceptance_by_phase(self) -> np.ndarray:
        """``phase_accepts / phase_attempts`` per phase; NaN where a phase was never reached."""
        out = np.full(self.phase_attempts.shape, np.nan)
        np.divide(self.phase_accepts, self.phase_attempts, out=out, where=self.phase_attempts > 0)
        return out
