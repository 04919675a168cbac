"""Contrastive decoding (CD): the law that speculative contrastive decoding (SCD) is exact for.

Notation
--------
``expert``   the large model (Li et al.'s EXP, O'Brien & Lewis's ``s^(e)``); it is the *target*
             of SCD, ``p`` inside the verification kernels
``amateur``  the small model (AMA, ``s^(a)``); in SCD it is also the *draft*, ``q``
``ls``       ``log_softmax`` of a row of logits

The papers' own letters clash with speculative decoding's ``alpha`` (acceptance rate), so the
arguments are named by role (docs/architecture.md):

==============================  ===================  ==================================
argument                        paper symbol         meaning
==============================  ===================  ==================================
``plausibility``                alpha (both papers)  adaptive plausibility threshold
``contrast``                    beta (O'Brien);      strength of the amateur penalty
                                ``st_coef`` (Li)
``amateur_temperature``         tau (Li et al.)      amateur softmax temperature
==============================  ===================  ==================================

Two forms, both restricted to the plausible set ``V_alpha = {x : p_e(x) >= alpha max p_e}``:

``form="logit"`` (O'Brien & Lewis 2023)
    ``score = (1 + beta) ls_e - beta ls_a``, so ``p_CD ∝ p_e (p_e / p_a)^beta``.
``form="ratio"`` (Li et al. 2023)
    ``score = ls_e - beta ls_a^(tau)``. Li et al.'s own objective is ``beta = 1``
    (``log p_EXP - log p_AMA``) with ``tau = 0.5`` in their README; the default ``beta = 0.5``
    here is O'Brien's, so pass ``contrast=1.0`` to get Li et al.

Scores are built from log-softmaxes rather than raw logits. O'Brien & Lewis write raw logits;
inside ``V_alpha`` the two differ by one constant per row, so the mask and the law are identical
(docs/theory.md §6 [D]), and the log-softmax form is the one that makes ``form="ratio"`` equal to
Li et al.'s printed scores. The amateur temperature is applied in both forms (``tau = 1`` is
O'Brien's setting).

SCD (Yuan et al. 2024) is lossless speculative decoding whose target is ``contrastive(...)``;
which form and which (alpha, beta, tau) SCD used is **not verified** (docs/theory.md §7), hence both.

References
----------
X. L. Li et al., "Contrastive Decoding: Open-ended Text Generation as Optimization", ACL 2023
(arXiv 2210.15097), §3 (CD objective, adaptive plausibility constraint).
S. O'Brien and M. Lewis, "Contrastive Decoding Improves Reasoning in Large Language Models",
arXiv 2309.09117 (2023), §2 (logit-space formulation).
H. Yuan et al., "Speculative Contrastive Decoding", ACL 2024 (arXiv 2311.08981).
"""

from __future__ import annotations

import math

from scdsim._validate import as_logit_pair, check_choice, check_logits, check_real, namespace
from scdsim.distributions import _log_softmax, _softmax

__all__ = ["plausible_set", "contrastive_scores", "contrastive"]

FORMS = ("logit", "ratio")


def _plausible_mask(xp, s_e, plausibility):
    # Shift by the row maximum instead of normalising: log_softmax(s) - max log_softmax(s)
    # equals s - max s exactly in real arithmetic, and this form skips one rounding.
    m = xp.max(s_e, axis=-1, keepdims=True)
    if plausibility == 0.0:
        # log(0) = -inf would keep tokens with p_e = 0 too; the set is the expert's support.
        return s_e > -math.inf
    return (s_e - m) >= math.log(plausibility)


def plausible_set(expert_logits, plausibility=0.1):
    """The adaptive plausibility set ``V_alpha = {x : p_e(x) >= alpha * max_w p_e(w)}``.

    Parameters
    ----------
    expert_logits : array (..., V)
        Expert logits (or log-probabilities); ``-inf`` marks a token of probability 0.
    plausibility : float in [0, 1]
        The threshold alpha. ``1`` keeps only the expert's modes; ``0`` keeps every token with
        ``p_e > 0``.

    Returns
    -------
    mask : bool array (..., V), same namespace as the input; every row has a ``True``.

    References
    ----------
    Li et al. (2023), Eq. for V_head; O'Brien & Lewis (2023), V_valid
    (``s_j >= log alpha + max_k s_k``).
    """
    s_e = check_logits(expert_logits, "expert_logits")
    plausibility = check_real(plausibility, "plausibility", low=0.0, high=1.0)
    return _plausible_mask(namespace(s_e), s_e, plausibility)


def _logit_pair(expert_logits, amateur_logits):
    s_e, s_a = as_logit_pair(expert_logits, amateur_logits)
    return namespace(s_e, s_a), s_e, s_a


def contrastive_scores(expert_logits, amateur_logits, plausibility=0.1, contrast=0.5,
                       amateur_temperature=1.0, form="logit"):
    """Contrastive-decoding scores, ``-inf`` outside the plausible set.

    Parameters
    ----------
    expert_logits, amateur_logits : array (..., V)
        Logits of the expert and the amateur over the same vocabulary; leading axes broadcast.
        NumPy arrays or torch tensors (both the same kind).
    plausibility : float in [0, 1]
        Adaptive plausibility threshold, alpha in both papers.
    contrast : float >= 0
        Amateur penalty, beta in O'Brien & Lewis (default 0.5); Li et al. use 1.
    amateur_temperature : float > 0
        tau: the amateur law is ``softmax(amateur_logits / tau)`` (Li et al.'s README: 0.5).
    form : {"logit", "ratio"}
        ``"logit"``: ``(1 + beta) ls_e - beta ls_a`` (O'Brien & Lewis).
        ``"ratio"``: ``ls_e - beta ls_a`` (Li et al.).

    Returns
    -------
    scores : array (..., V), finite on the plausible set and ``-inf`` elsewhere. Their
        argmax is greedy CD; their softmax is ``contrastive(...)``.

    Raises
    ------
    ValueError
        If a plausible token has amateur probability 0 (logit ``-inf``) while ``contrast > 0``:
        its score would be ``+inf``.

    References
    ----------
    Li et al. (2023) §3, CD-score; O'Brien & Lewis (2023) §2, ``s^(CD)``.
    """
    xp, s_e, s_a = _logit_pair(expert_logits, amateur_logits)
    plausibility = check_real(plausibility, "plausibility", low=0.0, high=1.0)
    contrast = check_real(contrast, "contrast", low=0.0)
    tau = check_real(amateur_temperature, "amateur_temperature", low=0.0, low_open=True)
    check_choice(form, "form", FORMS)

    mask = _plausible_mask(xp, s_e, plausibility)
    ls_e = _log_softmax(xp, s_e)
    # shift by the row maximum before dividing by tau: a small tau cannot overflow finite logits
    ls_a = _log_softmax(xp, s_a, tau)
    mask, ls_e, ls_a, s_a = xp.broadcast_arrays(mask, ls_e, ls_a, s_a)
    a_finite = ls_a > -math.inf
    if contrast > 0.0 and bool(xp.any(mask & ~a_finite)):
        if bool(xp.any(mask & ~a_finite & (s_a > -math.inf))):
            raise ValueError(
                f"amateur_temperature={tau:g} is so small that the amateur law "
                "softmax(amateur_logits / amateur_temperature) underflows to probability 0 on a "
                f"token of the plausible set; with contrast={contrast} its contrastive score "
                "would be +inf (use a larger amateur_temperature)"
            )
        raise ValueError(
            "amateur_logits is -inf (amateur probability 0) on a token of the plausible set; "
            f"with contrast={contrast} its contrastive score would be +inf"
        )
    zero = xp.zeros_like(ls_e)
    # Substitute 0 before the arithmetic so that -inf never meets 0*(-inf) or -inf - (-inf):
    # those entries are masked out below anyway, but they must not produce NaN on the way.
    ls_e = xp.where(mask, ls_e, zero)
    ls_a = xp.where(mask & a_finite, ls_a, zero)
    if form == "logit":
        scores = (1.0 + contrast) * ls_e - contrast * ls_a
    else:
        scores = ls_e - contrast * ls_a
    return xp.where(mask, scores, xp.full_like(scores, -math.inf))


def contrastive(expert_logits, amateur_logits, plausibility=0.1, contrast=0.5,
                amateur_temperature=1.0, form="logit"):
    """The contrastive-decoding law: ``softmax`` of :func:`contrastive_scores`.

    This is the *target* law of speculative contrastive decoding: lossless SD against it
    (draft = amateur) samples exactly from it.

    Parameters
    ----------
    expert_logits, amateur_logits, plausibility, contrast, amateur_temperature, form
        As in :func:`contrastive_scores` (alpha, beta, tau of the papers).

    Returns
    -------
    probs : array (..., V), rows summing to 1, exactly 0 outside the plausible set. With
        ``form="logit"`` it is ``∝ p_e (p_e / p_a)^beta`` on ``V_alpha``.

    References
    ----------
    O'Brien & Lewis (2023) §2; Li et al. (2023) §3; Yuan et al. (2024), SCD target
    (docs/theory.md §7, reconstructed).
    """
    scores = contrastive_scores(expert_logits, amateur_logits, plausibility, contrast,
                                amateur_temperature, form)
    return _softmax(namespace(scores), scores)
