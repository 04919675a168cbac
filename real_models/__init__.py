"""real_models: scdsim's verification rules on real causal language models.

A top-level package installed by the ``models`` extra; ``scdsim`` never imports it.

``generate`` (SD, multi-draft, SCD through the KV-cached engine; sampling, beam and contrastive
decoding without a draft), ``GenerationResult``, ``LM``, ``random_lm`` (tiny seeded models),
``markov_lm`` (a scdsim Markov chain as a causal LM); ``load`` and ``make_draft`` load real
models and build drafts.
"""

from real_models.api import generate
from real_models.lm import LM
from real_models.results import GenerationResult
from real_models.tiny import markov_lm, markov_pair_lms, random_lm

__all__ = ["LM", "GenerationResult", "generate", "random_lm", "markov_lm", "markov_pair_lms",
           "load", "make_draft", "NGramDraft"]

_LAZY = {"load": ("real_models.loading", "load"),
         "make_draft": ("real_models.drafters", "make_draft"),
         "NGramDraft": ("real_models.drafters", "NGramDraft")}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'real_models' has no attribute {name!r}")
