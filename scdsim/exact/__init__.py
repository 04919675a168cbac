"""Exact analysis (float64, no randomness): one-step LPs and the sequence-level Markov engine."""
from scdsim.exact.markov import *  # noqa: F401,F403
from scdsim.exact.markov import __all__ as _markov_all

__all__ = list(_markov_all)
