"""real_models: scdsim's verification rules on real causal language models.

A top-level package installed by the ``models`` extra; ``scdsim`` never imports it.
"""

from real_models.lm import LM
from real_models.tiny import random_lm

__all__ = ["LM", "random_lm"]
