"""Input checks: the one place that raises on bad probabilities, shapes and parameters.

Every public function validates its arguments here once, at the boundary; the kernels behind
it assume clean input. The checks work on any array namespace that ``array_api_compat`` knows
(NumPy, PyTorch), so the real-model engine validates torch tensors with the same code.

Tolerance policy (one, by dtype, used by every public function): a probability row must sum to 1
within ``prob_atol(dtype)`` -- 1e-6 for float64, 1e-4 for float32, 4e-3 for float16 and 3e-2
for bfloat16 (about 4 units in the last place of each format: a law rounded to the format passes,
a law off by more than its rounding does not). The row sum is taken in float64 whatever the input
dtype, so low-precision rounding cannot hide an error. Entries must be finite and >= 0.

Code that needs float64 NumPy (the LPs, the min-cut and k-SEQ closed forms, the Markov chains)
converts at the boundary with :func:`as_numpy64` (torch tensors of any dtype, bfloat16 included)
and, where a law must be exact, renormalises accepted rows in float64 with
:func:`renormalised64`.
"""

from __future__ import annotations

import math
import numbers

import array_api_compat
import numpy as np

PROB_ATOL = 1e-6
PROB_ATOL_LOW_PRECISION = 1e-4  # float32
PROB_ATOL_HALF = 4e-3  # float16
PROB_ATOL_BFLOAT16 = 3e-2

__all__ = [
    "PROB_ATOL",
    "prob_atol",
    "as_numpy64",
    "renormalised64",
    "as_prob",
    "as_pair",
    "as_logit_pair",
    "check_logits",
    "check_int",
    "check_real",
    "check_unit_interval",
    "check_choice",
    "namespace",
]


def namespace(*arrays):
    """Return the array-API namespace shared by ``arrays`` (NumPy for lists/scalars)."""
    return array_api_compat.array_namespace(*arrays)


def _to_array(x, name):
    if isinstance(x, (list, tuple, numbers.Number)):
        try:
            x = np.asarray(x)
        except ValueError as e:  # ragged nesting
            raise ValueError(f"{name} must be a rectangular array: {e}") from None
        if x.dtype == object or x.dtype.kind in "USV":
            raise TypeError(f"{name} must be an array of probabilities (real numbers), got "
                            f"elements of dtype {x.dtype}")
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{name} must be an array of probabilities, got {type(x).__name__}")
    try:
        xp = namespace(x)
    except TypeError:
        raise TypeError(f"{name} must be a NumPy array or torch tensor, got "
                        f"{type(x).__name__}") from None
    if not xp.isdtype(x.dtype, "real floating"):
        if xp.isdtype(x.dtype, ("integral", "bool")):
            x = xp.astype(x, xp.float64)
        else:
            raise TypeError(f"{name} must have a real floating dtype, got {x.dtype}")
    return x


def prob_atol(dtype) -> float:
    """Tolerance on the row sums of a law of this dtype (see the module docstring)."""
    try:
        name = np.dtype(dtype).name
    except TypeError:  # torch dtypes: "torch.bfloat16"
        name = str(dtype).rsplit(".", 1)[-1]
    if name == "float64":
        return PROB_ATOL
    if name == "float32":
        return PROB_ATOL_LOW_PRECISION
    if name == "float16":
        return PROB_ATOL_HALF
    if name == "bfloat16":
        return PROB_ATOL_BFLOAT16
    return PROB_ATOL  # float128 and the like


def _tolerance(x) -> float:
    return prob_atol(x.dtype)


def as_numpy64(x):
    """``x`` (NumPy array, torch tensor of any float dtype incl. bfloat16, list) as float64 NumPy.

    The one conversion at the boundary of the NumPy-only code paths; no validation.
    """
    if isinstance(x, np.ndarray):
        return np.asarray(x, dtype=np.float64)
    if hasattr(x, "detach"):  # torch: NumPy has no bfloat16, so widen on the torch side first
        import torch

        return x.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def renormalised64(x):
    """Validated law(s) as float64 NumPy rows that sum to 1 to rounding (divide by the row sum).

    A row accepted within ``prob_atol`` (e.g. a float32 softmax) is not an exact law; the LPs
    and the exact engine need one, or a feasible problem becomes "infeasible". Rows already
    within 1e-13 of 1 are returned unchanged.
    """
    x = as_numpy64(x)
    if x.size == 0:
        return x
    s = x.sum(axis=-1, keepdims=True)
    if np.max(np.abs(s - 1.0)) <= 1e-13:
        return x
    return x / s


def _row_sum64(x, xp):
    """Row sums computed in float64 (or float32 on a device without float64, e.g. MPS)."""
    if x.dtype == xp.float64:
        return xp.sum(x, axis=-1)
    try:
        return xp.sum(xp.astype(x, xp.float64), axis=-1)
    except (TypeError, RuntimeError):  # pragma: no cover - devices without float64
        return xp.sum(xp.astype(x, xp.float32), axis=-1)


def as_prob(x, name: str = "probs", *, min_ndim: int = 1):
    """Validate a probability array ``(..., V)`` and return it as an array.

    Raises
    ------
    ValueError
        Naming ``name``: no vocabulary axis, empty vocabulary, NaN/inf, negative entries, or a
        row whose sum differs from 1 by more than the tolerance (the worst row is reported).
    TypeError
        If ``x`` is not array-like or not of a real dtype.
    """
    x = _to_array(x, name)
    xp = namespace(x)
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} axis (vocabulary last), got shape {tuple(x.shape)}")
    if x.ndim >= 1 and x.shape[-1] == 0:
        raise ValueError(f"{name} has an empty vocabulary axis (shape {tuple(x.shape)})")
    if math.prod(x.shape) == 0:
        return x  # an empty batch (0, V): nothing to check, nothing to compute
    if not bool(xp.all(xp.isfinite(x))):
        raise ValueError(f"{name} contains NaN or infinite entries")
    if bool(xp.any(x < 0)):
        raise ValueError(f"{name} has negative entries (min {float(xp.min(x)):.3g})")
    if x.ndim >= 1:
        err = xp.abs(_row_sum64(x, xp) - 1.0)
        worst = float(xp.max(err)) if err.ndim else float(err)
        if worst > _tolerance(x):
            raise ValueError(
                f"{name} rows must sum to 1 within {_tolerance(x):g}; worst row is off by {worst:.3g}"
            )
    return x


def _matched(a, b, names):
    """Same array library, same vocabulary, broadcastable leading axes, a common dtype."""
    try:
        xp = namespace(a, b)
    except TypeError:
        raise TypeError(
            f"{names[0]} ({type(a).__name__}) and {names[1]} ({type(b).__name__}) must be arrays "
            "of the same library"
        ) from None
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"vocabulary mismatch: {names[0]} has V={a.shape[-1]}, {names[1]} has V={b.shape[-1]}"
        )
    try:
        np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    except ValueError:
        raise ValueError(
            f"shape mismatch: {names[0]} {tuple(a.shape)} and {names[1]} {tuple(b.shape)} do not broadcast"
        ) from None
    if a.dtype != b.dtype:
        dt = xp.result_type(a.dtype, b.dtype)
        a, b = xp.astype(a, dt), xp.astype(b, dt)
    return a, b


def as_pair(target, draft, names=("target", "draft")):
    """Validate a (target, draft) pair of probability arrays with matching vocabularies.

    Leading (batch) axes must broadcast; the vocabulary axis must be equal.
    """
    return _matched(as_prob(target, names[0]), as_prob(draft, names[1]), names)


def as_logit_pair(first, second, names=("expert_logits", "amateur_logits")):
    """Validate two logit arrays (e.g. expert and amateur) with matching vocabularies."""
    return _matched(check_logits(first, names[0]), check_logits(second, names[1]), names)


def check_logits(x, name: str = "logits"):
    """Validate logits ``(..., V)``: real floats, no NaN, no +inf (-inf masks a token)."""
    x = _to_array(x, name)
    xp = namespace(x)
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(f"{name} must have a non-empty vocabulary axis, got shape {tuple(x.shape)}")
    if math.prod(x.shape) == 0:
        return x  # an empty batch
    if bool(xp.any(xp.isnan(x))):
        raise ValueError(f"{name} contains NaN")
    if bool(xp.any(x == math.inf)):
        raise ValueError(f"{name} contains +inf")
    if bool(xp.any(xp.all(x == -math.inf, axis=-1))):
        raise ValueError(f"{name} has a row where every token is -inf (empty support)")
    return x


def check_int(value, name: str, *, minimum: int | None = None, allow_none: bool = False):
    """Validate an integer parameter (bools are rejected), optionally ``>= minimum``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_real(value, name: str, *, low=None, high=None, low_open=False, high_open=False,
               allow_none: bool = False):
    """Validate a finite real scalar within optional bounds (open or closed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(
            f"{name} must lie in {lo}{'-inf' if low is None else low}, "
            f"{'inf' if high is None else high}{hi}, got {value}"
        )
    return value


def check_unit_interval(value, name: str, **kw):
    """Validate a scalar in [0, 1] (e.g. an acceptance rate alpha)."""
    return check_real(value, name, low=0.0, high=1.0, **kw)


def check_choice(value, name: str, choices):
    """Validate that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)!r}, got {value!r}")
    return value
