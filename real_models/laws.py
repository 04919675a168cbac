"""Logits -> the laws actually sampled, and inverse-CDF draws from them with pre-drawn uniforms.

Every law a real-model decoder or the speculative engine samples from comes from here, and is
computed by ``scdsim`` itself (never a copy): :func:`sampling_law` is
``scdsim.distributions.warp`` and :func:`contrast_law` is ``scdsim.contrast.contrastive``
(optionally followed by ``warp``). Both upcast half-precision logits to float32 first, so the
acceptance arithmetic downstream is float32 or wider (DESIGN.md §5).

Randomness never enters here: :func:`draw` maps a uniform per row to a token, so each row of a
batch can use its own pre-drawn stream (DESIGN.md §4).
"""

from __future__ import annotations

import torch

from scdsim.contrast import contrastive, contrastive_scores
from scdsim.distributions import warp

__all__ = [
    "sampling_law",
    "contrast_law",
    "contrast_scores",
    "greedy_token",
    "draw",
    "WARP_KEYS",
    "CONTRAST_KEYS",
]

WARP_KEYS = ("temperature", "top_k", "top_p", "min_p", "epsilon")
CONTRAST_KEYS = ("plausibility", "contrast", "amateur_temperature", "form")


def _wide(x):
    """Upcast float16/bfloat16 tensors to float32; float32 and float64 stay as they are."""
    if isinstance(x, torch.Tensor) and x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x


def sampling_law(logits, temperature=1.0, top_k=None, top_p=None, min_p=None, epsilon=None):
    """The law sampled under the user's settings: ``scdsim.distributions.warp`` of the logits.

    Parameters
    ----------
    logits : tensor or array (..., V)
        Model logits; float16/bfloat16 are upcast to float32 first.
    temperature : float >= 0
        ``0`` is greedy: the exact one-hot of the argmax (first index on ties).
    top_k, top_p, min_p, epsilon
        Truncations, applied in warp's (HF's) order: temperature, top-k, top-p, min-p, epsilon.

    Returns
    -------
    probs : same kind as ``logits``, (..., V), float32 or wider, rows summing to 1.

    Raises
    ------
    ValueError, TypeError
        warp's own errors for a bad setting (e.g. ``temperature < 0``, ``top_p = 0``, an
        ``epsilon`` that removes every token).
    """
    return warp(_wide(logits), temperature=temperature, top_k=top_k, top_p=top_p,
                epsilon=epsilon, min_p=min_p)


def contrast_scores(expert_logits, amateur_logits, plausibility=0.1, contrast=0.5,
                    amateur_temperature=1.0, form="logit"):
    """``scdsim.contrast.contrastive_scores`` on upcast logits (``-inf`` off the plausible set)."""
    return contrastive_scores(_wide(expert_logits), _wide(amateur_logits), plausibility,
                              contrast, amateur_temperature, form)


def contrast_law(expert_logits, amateur_logits, plausibility=0.1, contrast=0.5,
                 amateur_temperature=1.0, form="logit", temperature=1.0, top_k=None, top_p=None,
                 min_p=None, epsilon=None):
    """The contrastive-decoding law of (expert, amateur), optionally warped.

    With the default warp settings this is exactly ``scdsim.contrast.contrastive`` (Li et al.
    2023; O'Brien & Lewis 2023). Other warp settings apply ``warp`` to the contrastive scores
    (temperature 0 = greedy CD, the one-hot argmax of the scores).

    Parameters
    ----------
    expert_logits, amateur_logits : tensor or array (..., V)
        Logits of the expert (the target) and the amateur over the same vocabulary.
    plausibility, contrast, amateur_temperature, form
        alpha, beta, tau and the form of ``scdsim.contrast.contrastive``.
    temperature, top_k, top_p, min_p, epsilon
        As in :func:`sampling_law`, applied to the contrastive scores.

    Returns
    -------
    probs : (..., V), float32 or wider, zero outside the plausible set.
    """
    e, a = _wide(expert_logits), _wide(amateur_logits)
    if (temperature == 1.0 and top_k is None and top_p is None and min_p is None
            and epsilon is None):
        return contrastive(e, a, plausibility, contrast, amateur_temperature, form)
    scores = contrastive_scores(e, a, plausibility, contrast, amateur_temperature, form)
    return warp(scores, temperature=temperature, top_k=top_k, top_p=top_p, epsilon=epsilon,
                min_p=min_p)


def greedy_token(logits):
    """Greedy next token(s): ``argmax`` over the last axis, first index on ties (int64)."""
    return torch.as_tensor(logits).argmax(dim=-1)


def draw(probs, u):
    """Inverse-CDF sampling: one token per row from ``probs`` with the uniform ``u`` of that row.

    Parameters
    ----------
    probs : tensor (..., V)
        Rows summing to 1 (not re-validated here; pass laws from this module).
    u : tensor (...)
        Uniforms in [0, 1), one per row, drawn by the caller from that row's own stream.

    Returns
    -------
    tokens : int64 tensor (...). The token is the first ``x`` with ``CDF(x) > u * CDF(V-1)``
        (CDF accumulated in float64), so a token of probability 0 is never returned.
    """
    p = torch.as_tensor(probs).to(torch.float64)
    u = torch.as_tensor(u, dtype=torch.float64, device=p.device)
    if u.shape != p.shape[:-1]:
        raise ValueError(f"u must have shape {tuple(p.shape[:-1])} (one per row), "
                         f"got {tuple(u.shape)}")
    if bool(((u < 0) | (u >= 1)).any()):
        raise ValueError("u must lie in [0, 1)")
    cdf = torch.cumsum(p, dim=-1)
    target = (u * cdf[..., -1]).unsqueeze(-1).contiguous()
    idx = torch.searchsorted(cdf.contiguous(), target, right=True).squeeze(-1)
    # u * total can round up to total: fall back to the last token of positive probability.
    V = p.shape[-1]
    last_pos = V - 1 - torch.flip(p > 0, dims=(-1,)).to(torch.int64).argmax(dim=-1)
    return torch.minimum(idx, last_pos)
