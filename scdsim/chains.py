"""Synthetic language models: finite-state Markov kernels and draft/target pairs of them.

A ``MarkovLM`` is the Markov-chain abstraction of Yin et al. (2024, §2): the law of the next
token depends on the position ``n`` and a finite *state* summarising the prefix.

``kernels[n, s, x]``  law of token ``n+1`` given the state ``s`` after token ``n``
                      (``kernels[0, start]`` is the law of the first token); shape ``(T, S, V)``
                      for a time-inhomogeneous model, ``(S, V)`` for a homogeneous one.
``state_of[x]``       the state after emitting token ``x`` (default: the identity, S = V, so the
                      state is the previous token: a bigram model).

The state map lets a large vocabulary (V = 50,000) live with few states. A ``MarkovPair`` holds a
target and a draft on the same vocabulary and state map; every engine takes one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scdsim._validate import as_prob, check_int

__all__ = ["MarkovLM", "MarkovPair"]


def _frozen(a):
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class MarkovLM:
    """A validated finite-state language model.

    Parameters
    ----------
    kernels : array (S, V) or (T, S, V)
        Next-token laws; rows must be probability vectors.
    start : int
        State before the first token.
    state_of : int array (V,), optional
        Token -> next state. Default: identity (requires S == V).
    """

    kernels: np.ndarray
    start: int = 0
    state_of: np.ndarray | None = field(default=None)

    def __post_init__(self):
        k = as_prob(np.asarray(self.kernels, dtype=np.float64), "kernels")
        if k.ndim not in (2, 3):
            raise ValueError(f"kernels must have shape (S, V) or (T, S, V), got {k.shape}")
        S, V = k.shape[-2], k.shape[-1]
        start = check_int(self.start, "start", minimum=0)
        if start >= S:
            raise ValueError(f"start must be a state in [0, {S}), got {start}")
        if self.state_of is None:
            if S != V:
                raise ValueError(
                    f"state_of is required when the number of states S={S} differs from V={V}"
                )
            so = np.arange(V, dtype=np.int64)
        else:
            so = np.asarray(self.state_of)
            if so.shape != (V,) or not np.issubdtype(so.dtype, np.integer):
                raise ValueError(f"state_of must be an integer array of shape ({V},), got "
                                 f"{so.dtype} {so.shape}")
            if so.min() < 0 or so.max() >= S:
                raise ValueError(f"state_of values must lie in [0, {S})")
            so = so.astype(np.int64)
        object.__setattr__(self, "kernels", _frozen(k))
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "state_of", _frozen(so))

    @property
    def homogeneous(self) -> bool:
        return self.kernels.ndim == 2

    @property
    def V(self) -> int:
        return self.kernels.shape[-1]

    @property
    def S(self) -> int:
        return self.kernels.shape[-2]

    @property
    def max_horizon(self) -> int | None:
        """Largest horizon the kernels define (None: any, for homogeneous models)."""
        return None if self.homogeneous else self.kernels.shape[0]

    def kernel(self, n: int) -> np.ndarray:
        """``(S, V)`` laws of token ``n+1`` (0-based position ``n``)."""
        return self.kernels if self.homogeneous else self.kernels[n]

    def state_matrix(self) -> np.ndarray:
        """One-hot ``(V, S)`` matrix of the state map (token -> next state)."""
        m = np.zeros((self.V, self.S))
        m[np.arange(self.V), self.state_of] = 1.0
        return m


@dataclass(frozen=True, eq=False)
class MarkovPair:
    """A target and a draft ``MarkovLM`` on the same vocabulary, state space and state map."""

    target: MarkovLM
    draft: MarkovLM
    name: str = ""

    def __post_init__(self):
        for role in ("target", "draft"):
            if not isinstance(getattr(self, role), MarkovLM):
                raise TypeError(f"{role} must be a MarkovLM, got {type(getattr(self, role)).__name__}")
        t, d = self.target, self.draft
        if t.V != d.V:
            raise ValueError(f"vocabulary mismatch: target V={t.V}, draft V={d.V}")
        if t.S != d.S:
            raise ValueError(f"state-space mismatch: target S={t.S}, draft S={d.S}")
        if t.start != d.start or not np.array_equal(t.state_of, d.state_of):
            raise ValueError("target and draft must share the start state and the state map")

    @property
    def V(self) -> int:
        return self.target.V

    @property
    def S(self) -> int:
        return self.target.S

    @property
    def start(self) -> int:
        return self.target.start

    @property
    def state_of(self) -> np.ndarray:
        return self.target.state_of

    @property
    def homogeneous(self) -> bool:
        return self.target.homogeneous and self.draft.homogeneous

    @property
    def max_horizon(self) -> int | None:
        hs = [h for h in (self.target.max_horizon, self.draft.max_horizon) if h is not None]
        return min(hs) if hs else None

    def check_horizon(self, horizon) -> int:
        horizon = check_int(horizon, "horizon", minimum=1)
        if self.max_horizon is not None and horizon > self.max_horizon:
            raise ValueError(
                f"horizon={horizon} exceeds the {self.max_horizon} positions the kernels define"
            )
        return horizon

    def kernels(self, n: int):
        """``(target (S, V), draft (S, V))`` at 0-based position ``n``."""
        return self.target.kernel(n), self.draft.kernel(n)
