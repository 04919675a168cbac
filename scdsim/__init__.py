"""scdsim: exact theory, Monte Carlo and real-model checks of speculative (contrastive) decoding.

Roles, not letters, in every public signature: ``target`` (the large model, or the contrasted law
in SCD), ``draft`` (the small model), ``expert`` and ``amateur`` (contrastive decoding). Inside
kernels ``p`` = target and ``q`` = draft, as in Leviathan et al.; Yin et al. use the opposite
letters. Argument order is always (target, draft).
"""

from scdsim import agreement, chains, cost, reference, rules
from scdsim.chains import MarkovLM, MarkovPair, contrast_chain, scd_pair
from scdsim.contrast import contrastive, contrastive_scores, plausible_set
from scdsim.distributions import entropy, overlap, residual, tv, warp
from scdsim.exact.lp import front_gap, optimal_acceptance_lp, pareto_front, rejection_lower_bound
from scdsim.exact.markov import (
    BatchCurve,
    BlockStats,
    SequenceLaw,
    StationaryRates,
    batch_curve,
    block_stats,
    exact_joint_law,
    expected_rejections,
    expected_rejections_batch_limit,
    expected_rejections_theorem1,
    joint_tv_to_target,
    output_marginals,
    position_rejection,
    rejection_distribution,
    sequence_law,
    stationary_rates,
)
from scdsim.montecarlo import SimResult, sample_autoregressive, simulate
from scdsim.process import Scheme
from scdsim.rules import acceptance_prob, rejection_prob, step_law

__version__ = "0.1.0"

__all__ = [
    "rules", "cost", "chains", "agreement", "reference", "Scheme",
    "tv", "overlap", "residual", "entropy", "warp",
    "contrastive", "contrastive_scores", "plausible_set",
    "step_law", "rejection_prob", "acceptance_prob",
    "rejection_lower_bound", "pareto_front", "front_gap", "optimal_acceptance_lp",
    "MarkovLM", "MarkovPair", "contrast_chain", "scd_pair",
    "expected_rejections", "expected_rejections_theorem1", "expected_rejections_batch_limit",
    "rejection_distribution", "position_rejection", "output_marginals", "exact_joint_law",
    "joint_tv_to_target", "block_stats", "BlockStats", "stationary_rates", "StationaryRates",
    "batch_curve", "BatchCurve", "sequence_law", "SequenceLaw",
    "simulate", "SimResult", "sample_autoregressive",
]
