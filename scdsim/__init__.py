"""scdsim: exact theory, Monte Carlo and real-model checks of speculative (contrastive) decoding."""
from scdsim import rules
from scdsim.distributions import entropy, overlap, residual, tv, warp
from scdsim.rules import acceptance_prob, rejection_prob, step_law

__version__ = "0.1.0"
__all__ = ["rules", "tv", "overlap", "residual", "entropy", "warp", "step_law", "rejection_prob",
           "acceptance_prob"]
