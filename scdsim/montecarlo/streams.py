"""Per-run random streams of the Monte Carlo engine (see the package docstring, "Randomness").

Run ``i = LANES b + l`` owns every ``LANES``-th output (offset ``l``) of child ``b`` of
``SeedSequence(seed)``: run ``i`` is the same whatever the number of runs or the chunking.
"""

from __future__ import annotations

import numbers

import numpy as np

from scdsim._validate import check_int

__all__ = ["LANES", "seed_from", "Streams"]

# Runs per random stream (see Streams).
LANES = 64


def seed_from(rng) -> int:
    """Normalise ``rng`` (int, Generator or None) to a non-negative integer seed, once."""
    if rng is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, 2**63, dtype=np.int64))
    if isinstance(rng, bool) or not isinstance(rng, numbers.Integral):
        raise TypeError(
            f"rng must be an int seed, a numpy.random.Generator or None, got {type(rng).__name__}"
        )
    return check_int(rng, "rng", minimum=0)


class Streams:
    """Per-run uniforms, drawn position-major: ``uniforms(n0, n1)`` is ``(n1 - n0, n_slots,
    runs)``.

    Runs are grouped in lanes of ``LANES``: run ``i = LANES b + l`` reads the outputs
    ``t LANES + l`` (``t = n n_slots + j`` for slot ``j`` of position ``n``) of the stream
    ``Generator(PCG64DXSM(SeedSequence(seed, spawn_key=(b,)))).random()``, i.e. of child ``b``
    of ``SeedSequence(seed).spawn(...)``. A group's stream is drawn whole (all its lanes, even
    past ``runs``), so run ``i`` does not depend on ``runs``; a group's draws are position-major
    in its stream, so every position's slots reach all runs without a transpose. Positions are
    drawn in order, each group's generator continuing, so chunking changes no draw either.
    """

    def __init__(self, seed: int, runs: int, n_slots: int):
        self.runs, self.n_slots = runs, n_slots
        self._gens = [
            np.random.Generator(np.random.PCG64DXSM(np.random.SeedSequence(seed,
                                                                            spawn_key=(b,))))
            for b in range(-(-runs // LANES))
        ]
        self._next = 0
        self._buf = self._tmp = None

    def uniforms(self, n0: int, n1: int) -> np.ndarray:
        """``(n1 - n0, n_slots, runs)`` uniforms in [0, 1) (positions drawn in order); the
        buffer is reused by the next call."""
        if n0 != self._next:
            raise AssertionError(f"positions are drawn in order: expected {self._next}, got {n0}")
        self._next = n1
        rows = (n1 - n0) * self.n_slots
        R = self.runs
        if self._buf is None or self._buf.shape[0] < rows:
            self._buf = np.empty((rows, R), dtype=np.float64)
            self._tmp = np.empty((rows, LANES), dtype=np.float64)
        out, tmp = self._buf[:rows], self._tmp[:rows]
        for b, gen in enumerate(self._gens):
            lo = b * LANES
            gen.random(out=tmp)
            # the last group's lanes past ``runs`` are drawn and dropped
            out[:, lo:lo + LANES] = tmp[:, :min(LANES, R - lo)]
        return out.reshape(n1 - n0, self.n_slots, R)
