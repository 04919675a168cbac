"""Exact analysis (float64, no randomness): one-step LPs and the sequence-level Markov engine."""
from scdsim.exact.lp import (  # noqa: F401
    LP_ATOL,
    FrontGap,
    ParetoFront,
    front_gap,
    minimum_bias,
    optimal_acceptance_lp,
    pareto_front,
    rejection_lower_bound,
)
from scdsim.exact.markov import *  # noqa: F401,F403
from scdsim.exact.markov import __all__ as _markov_all

__all__ = [
    "LP_ATOL", "FrontGap", "ParetoFront", "front_gap", "minimum_bias", "optimal_acceptance_lp",
    "pareto_front", "rejection_lower_bound",
] + list(_markov_all)
