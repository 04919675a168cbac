"""The loaded-model value that every part of ``real_models`` passes around.

``LM`` bundles a transformers causal LM with its tokenizer and where it lives. ``load`` (in
``loading``), ``make_draft`` (in ``drafters``) and the tiny test models (in ``tiny``) all return
one; the engine (``engine``) and the decoders take them. Nothing here imports transformers at
module import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class LM:
    """A causal language model ready for decoding.

    Attributes
    ----------
    model : transformers.PreTrainedModel
        The underlying causal LM (``model(input_ids, past_key_values=..., position_ids=...,
        attention_mask=..., use_cache=True)`` returns ``.logits`` of shape (batch, n, V)).
    tokenizer : transformers tokenizer or None
        None for models that only see token ids (tiny random models, Markov chains as models).
    name : str
        Where it came from: an embedded name (``"smollm2-135m"``), a hub id, a path, or a spec
        such as ``"early-exit:8 of smollm2-135m"``.
    device : torch.device
        Where the weights live (the engine puts inputs there).
    vocab_size : int
        Length of the last axis of the logits (may exceed ``len(tokenizer)``).
    info : dict
        Free-form provenance (file paths, sha256, dtype, spec) recorded in result files.
    """

    model: Any
    tokenizer: Any
    name: str
    device: Any
    vocab_size: int
    info: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"LM({self.name!r}, V={self.vocab_size}, device={self.device})"
