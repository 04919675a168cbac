"""What every result shares: frozen arrays, a short repr, ``summary()`` and a JSON-safe ``to_dict()``.

The result vocabulary (docs/architecture.md): exact results say ``expected_<stem>``, Monte
Carlo and real-model results ``mean_<stem>`` and ``sem_<stem>``, with the same stems
(``rejections``, ``target_calls``, ``draft_tokens``, ...); arrays that are laws or fractions
(``position_rejection``, ``block_length_pmf``, ``acceptance_by_phase``) and the ratio
``tokens_per_call`` carry no prefix.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

__all__ = ["frozen", "to_jsonable", "Result"]


def frozen(a):
    """A read-only contiguous copy-free view of ``a`` (None stays None)."""
    if a is None:
        return None
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def to_jsonable(x):
    """Plain JSON types: arrays to (nested) lists, NumPy scalars to Python, NaN/inf to None."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_jsonable(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, numbers.Integral):
        return int(x)
    if isinstance(x, numbers.Real):
        x = float(x)
        return x if math.isfinite(x) else None
    if x is None or isinstance(x, str):
        return x
    return str(x)


class Result:
    """Mixin of the frozen result dataclasses: arrays frozen after construction, ``to_dict``.

    Subclasses list the quantities ``summary()`` prints in ``_summary`` (attribute names) and
    may leave bulky per-run arrays out of ``to_dict`` with ``_bulky``.
    """

    _summary: tuple = ()
    _bulky: tuple = ()

    def _freeze(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                object.__setattr__(self, f.name, frozen(v))

    def to_dict(self, bulky: bool = False) -> dict:
        """The fields and the derived quantities of ``summary()``, as plain JSON types.

        Per-run arrays (``_bulky``, e.g. the tokens) only with ``bulky=True``.
        """
        out = {}
        for f in dataclasses.fields(self):
            if f.name in self._bulky and not bulky:
                continue
            out[f.name] = getattr(self, f.name)
        for name in self._summary:
            out.setdefault(name, getattr(self, name))
        return to_jsonable(out)

    def summary(self) -> str:
        """One line per quantity: name and value."""
        lines = [repr(self)]
        for name in self._summary:
            v = getattr(self, name)
            if isinstance(v, np.ndarray):
                v = np.array2string(v, precision=4, threshold=12)
            elif isinstance(v, float):
                v = f"{v:.6g}"
            lines.append(f"  {name:<26} {v}")
        return "\n".join(lines)
