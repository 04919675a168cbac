"""What a real-model run returns: tokens, text, one record per emitted token, and summaries.

A record is a plain JSON-safe dict (CONTRACTS "Record"), one per emitted token::

    {"prompt", "index", "token", "kind", "block", "pos_in_block", "draft_index", "tv",
     "entropy_p", "entropy_q", "rejection_prob", "target_calls"}

``kind`` is "accepted" or "recovered" at a verified position (a draft was tested there; a
rejection is a recovered token), "bonus" after a whole block of drafts was accepted, "plain"
for a token sampled from the target with no draft (autoregressive decoders, a zero-length
n-gram proposal). The summaries use the result vocabulary of issue 6 (``mean_<stem>``,
``sem_<stem>``), computed over prompts (one sequence per prompt).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np

__all__ = ["GenerationResult", "RECORD_KEYS", "make_record"]

RECORD_KEYS = ("prompt", "index", "token", "kind", "block", "pos_in_block", "draft_index", "tv",
               "entropy_p", "entropy_q", "rejection_prob", "target_calls")
KINDS = ("accepted", "recovered", "bonus", "plain")


def _f(x):
    return None if x is None else float(x)


def make_record(prompt, index, token, kind, block, pos_in_block, target_calls, entropy_p,
                draft_index=None, tv=None, entropy_q=None, rejection_prob=None) -> dict:
    """One JSON-safe record (plain Python ints, floats, str and None)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return {"prompt": int(prompt), "index": int(index), "token": int(token), "kind": kind,
            "block": int(block), "pos_in_block": int(pos_in_block),
            "draft_index": None if draft_index is None else int(draft_index),
            "tv": _f(tv), "entropy_p": float(entropy_p), "entropy_q": _f(entropy_q),
            "rejection_prob": _f(rejection_prob), "target_calls": int(target_calls)}


def _mean_sem(x):
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    sem = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan
    return float(x.mean()), sem


def _json_safe(v):
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (bool, int, str)) or v is None:
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, np.generic):
        return _json_safe(v.item())
    if isinstance(v, np.ndarray):
        return _json_safe(v.tolist())
    return repr(v)


@dataclass(frozen=True)
class GenerationResult:
    """Output of ``real_models.generate`` (and of the engine and decoders).

    Attributes
    ----------
    tokens : list of list of int
        New token ids, one list per prompt (EOS included when emitted).
    text : list of str or None
        Decoded new tokens when the model has a tokenizer.
    records : list of list of dict
        One record per emitted token, per prompt (see the module docstring).
    settings : dict
        The inputs of the run (JSON-safe: models by name, rules by name).
    draft_tokens : list of int or None
        Draft tokens proposed per prompt (speculative runs; None for plain decoders).
    """

    tokens: list
    text: list | None
    records: list
    settings: dict = field(default_factory=dict)
    draft_tokens: list | None = None

    # ---- per-sequence counts -------------------------------------------------------------
    def _per_prompt(self, fn):
        return np.array([fn(r) for r in self.records], dtype=np.float64)

    @property
    def rejections(self) -> np.ndarray:
        """Recovered tokens per prompt."""
        return self._per_prompt(lambda r: sum(x["kind"] == "recovered" for x in r))

    @property
    def target_calls(self) -> np.ndarray:
        """Target forward calls (blocks) per prompt."""
        return self._per_prompt(lambda r: r[-1]["target_calls"] if r else 0)

    @property
    def emitted(self) -> np.ndarray:
        """Emitted tokens per prompt."""
        return self._per_prompt(len)

    @property
    def mean_rejections(self) -> float:
        return _mean_sem(self.rejections)[0]

    @property
    def sem_rejections(self) -> float:
        return _mean_sem(self.rejections)[1]

    @property
    def mean_target_calls(self) -> float:
        return _mean_sem(self.target_calls)[0]

    @property
    def sem_target_calls(self) -> float:
        return _mean_sem(self.target_calls)[1]

    @property
    def tokens_per_call(self) -> float:
        """Emitted tokens / target calls, a ratio of means over prompts."""
        calls = self.target_calls.sum()
        return float(self.emitted.sum() / calls) if calls > 0 else math.nan

    @property
    def sem_tokens_per_call(self) -> float:
        """Delta-method standard error of :attr:`tokens_per_call` over prompts."""
        t, c = self.emitted, self.target_calls
        n = t.size
        if n < 2 or c.mean() == 0:
            return math.nan
        r = t.mean() / c.mean()
        resid = t - r * c
        return float(resid.std(ddof=1) / (math.sqrt(n) * c.mean()))

    @property
    def block_length_pmf(self) -> np.ndarray:
        """Fraction of blocks (target calls) that emitted ``j`` tokens, index ``j``."""
        counts = []
        for r in self.records:
            per = {}
            for x in r:
                per[x["block"]] = per.get(x["block"], 0) + 1
            counts.extend(per.values())
        if not counts:
            return np.zeros(1)
        h = np.bincount(np.asarray(counts, dtype=np.int64))
        return h / h.sum()

    @property
    def position_rejection(self) -> np.ndarray:
        """Fraction of prompts whose output position ``n`` is a recovered token (over prompts
        that reached position ``n``)."""
        T = int(max((len(r) for r in self.records), default=0))
        hit, seen = np.zeros(T), np.zeros(T)
        for r in self.records:
            for x in r:
                seen[x["index"]] += 1
                hit[x["index"]] += x["kind"] == "recovered"
        return np.divide(hit, seen, out=np.full(T, np.nan), where=seen > 0)

    @property
    def mean_draft_tokens(self) -> float:
        return _mean_sem(self.draft_tokens or [])[0]

    @property
    def sem_draft_tokens(self) -> float:
        return _mean_sem(self.draft_tokens or [])[1]

    @property
    def acceptance_by_phase(self) -> np.ndarray:
        """Conditional acceptance rate at draft position ``k`` of a block (index ``k``): accepted
        over verified positions with ``pos_in_block == k`` (NaN where none was verified)."""
        K = 1 + max((x["pos_in_block"] for r in self.records for x in r), default=0)
        acc, ver = np.zeros(K), np.zeros(K)
        for r in self.records:
            for x in r:
                if x["kind"] in ("accepted", "recovered"):
                    ver[x["pos_in_block"]] += 1
                    acc[x["pos_in_block"]] += x["kind"] == "accepted"
        return np.divide(acc, ver, out=np.full(K, np.nan), where=ver > 0)

    def speedup(self, c):
        """Leviathan's walltime model at cost ratio ``c``: ``T / (calls + c drafts)`` per
        sequence against autoregressive decoding (``T`` calls), as a ratio of means.

        Returns ``(value, sem)`` (delta method over prompts).
        """
        t = self.emitted
        d = np.asarray(self.draft_tokens if self.draft_tokens is not None
                       else np.zeros_like(t), dtype=np.float64)
        w = self.target_calls + c * d
        if t.size == 0 or w.sum() == 0:
            return math.nan, math.nan
        r = t.mean() / w.mean()
        sem = (float((t - r * w).std(ddof=1) / (math.sqrt(t.size) * w.mean()))
               if t.size > 1 else math.nan)
        return float(r), sem

    # ---- output ---------------------------------------------------------------------------
    def summary(self) -> str:
        lines = [f"GenerationResult: {len(self.tokens)} prompt(s), "
                 f"{int(self.emitted.sum())} new tokens"]
        if any(x["kind"] != "plain" for r in self.records for x in r):
            lines.append(f"  rejections/seq {self.mean_rejections:.4g} ± {self.sem_rejections:.2g}"
                         f", target calls/seq {self.mean_target_calls:.4g}"
                         f", tokens/call {self.tokens_per_call:.4g}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"GenerationResult(prompts={len(self.tokens)}, "
                f"new_tokens={int(self.emitted.sum())})")

    def to_dict(self) -> dict:
        return _json_safe({
            "tokens": self.tokens, "text": self.text, "records": self.records,
            "settings": self.settings,
            "mean_rejections": self.mean_rejections, "sem_rejections": self.sem_rejections,
            "mean_target_calls": self.mean_target_calls,
            "sem_target_calls": self.sem_target_calls,
            "tokens_per_call": self.tokens_per_call,
            "sem_tokens_per_call": self.sem_tokens_per_call,
            "block_length_pmf": self.block_length_pmf,
            "position_rejection": self.position_rejection,
            "acceptance_by_phase": self.acceptance_by_phase,
            "draft_tokens": self.draft_tokens,
        })

    def write_jsonl(self, path) -> None:
        """Write one record per line (atomically: a temporary file renamed into place)."""
        path = os.fspath(path)
        d = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".jsonl")
        try:
            with os.fdopen(fd, "w") as fh:
                for r in self.records:
                    for x in r:
                        fh.write(json.dumps(_json_safe(x)) + "\n")
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
