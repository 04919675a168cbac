"""The M -> infinity limit of multi-draft SD with recursive rejection, run on a real pair.

With M i.i.d. drafts from q verified by recursive rejection (``scdsim.rules.recursive(M)``),
the probability that all M are rejected at a position falls with M to ``p({x: q(x) = 0})``
(0 when the draft law has full support, as every softmax does), and the emitted token has law
p either way. The rate is slow: a token x keeps residual mass until about ``p(x) / q(x)``
drafts have been tried, so on real vocabularies the limit is far beyond any M one can run;
it is the floor that more drafts approach. The limit process of each reading
(``scdsim.exact`` names them, Yin et al. 2024 Thm 3 and Prop. 1):

``"first"``  only the first position of a block has M drafts: in the limit it emits ``x ~ p``
             and counts a rejection iff ``q(x) = 0``; the block then continues along the
             accepted draft with the single-draft lossless rule (draft from q, accept with
             ``min(1, p/q)``, on rejection resample from ``norm(max(0, p - q))``), and ends
             with a bonus token from p after ``gamma`` positions. Expected rejections do not go
             to 0 (Proposition 1); for a ``MarkovPair`` they equal
             ``scdsim.exact.expected_rejections_batch_limit`` (tested).
``"tree"``   every depth verifies the infinitely many drafts that share the accepted prefix:
             every position is a limit step, so a full-support draft is never rejected.

:func:`limit_records` simulates the limit process with teacher-forced laws (two full forwards
per emitted token, no cache: this measures rejections, not time) and writes records in the
engine's format (``kind``, ``block``, ``pos_in_block``, ``rejection_prob``, ``entropy_p``,
``target_calls``), so ``real_models.validate.prompt_summary`` scores them like any run: the
observed rejections against the sum of the limit's per-position rejection probabilities.
"""

from __future__ import annotations

import numpy as np

__all__ = ["limit_records"]


def _laws(target, draft, ctx, warp, device):
    import torch

    from real_models import laws as L

    x = torch.tensor([ctx], dtype=torch.long, device=device)
    with torch.no_grad():
        lt = target.model(input_ids=x, use_cache=False).logits[0, -1].double()
        lq = draft.model(input_ids=x, use_cache=False).logits[0, -1].double()
    p = L.sampling_law(lt, **warp).cpu().numpy().astype(np.float64)
    q = L.sampling_law(lq, **warp).cpu().numpy().astype(np.float64)
    return p, q


def _draw(law, u):
    c = np.cumsum(law)
    return int(min(np.searchsorted(c, u * c[-1], side="right"), law.shape[0] - 1))


def _entropy(p):
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def limit_records(target, draft, prompts, gamma, max_new_tokens, *, reading="first", warp=None,
                  seed=0):
    """Records of the M -> infinity limit process (module docstring), one list per prompt.

    Parameters
    ----------
    target, draft : real_models.LM
        Draft models only (an n-gram proposer has no law to take the limit of).
    prompts : list of token-id lists
    gamma : int >= 1
        Draft positions per block.
    max_new_tokens : int >= 1
        Tokens per prompt; the last block's budget is ``min(gamma, tokens left)``.
    reading : "first" or "tree"
    warp : dict of temperature, top_k, top_p, min_p, epsilon (both laws)
    seed : prompt i uses ``numpy.random.default_rng(seed + i)``

    Returns
    -------
    list of lists of dicts: ``prompt, index, block, pos_in_block, kind (accepted | recovered
    | bonus), token, rejection_prob, tv, entropy_p, target_calls``.
    """
    for name, v in (("gamma", gamma), ("max_new_tokens", max_new_tokens)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    if reading not in ("first", "tree"):
        raise ValueError(f"reading must be 'first' or 'tree', got {reading!r}")
    if not hasattr(draft, "model"):
        raise TypeError("the M -> infinity limit needs a draft model with a law, not "
                        f"{type(draft).__name__}")
    warp = dict(warp or {})
    out = []
    for i, prompt in enumerate(prompts):
        rng = np.random.default_rng(seed + i)
        ctx, recs, n, block = list(prompt), [], 0, 0
        while n < max_new_tokens:
            budget = min(gamma, max_new_tokens - n)
            k = 0
            while True:
                p, q = _laws(target, draft, ctx, warp, target.device)
                base = {"prompt": i, "index": n, "block": block, "pos_in_block": k,
                        "entropy_p": _entropy(p), "target_calls": block + 1}
                if k == budget:  # every position accepted: the bonus token from p (if room)
                    if n >= max_new_tokens:
                        break
                    x = _draw(p, rng.random())
                    recs.append({**base, "kind": "bonus", "token": x, "rejection_prob": None,
                                 "tv": None})
                    ctx.append(x)
                    n += 1
                    break
                tv = float(0.5 * np.abs(p - q).sum())
                if k == 0 or reading == "tree":  # a limit step: x ~ p, rejected iff q(x) = 0
                    r = float(p[q <= 0].sum())
                    x = _draw(p, rng.random())
                    kind = "recovered" if q[x] <= 0 else "accepted"
                else:  # the single accepted draft continues: lossless SD
                    r = tv
                    x = _draw(q, rng.random())
                    if rng.random() < min(1.0, p[x] / q[x]):
                        kind = "accepted"
                    else:
                        kind = "recovered"
                        x = _draw(np.clip(p - q, 0.0, None), rng.random())
                recs.append({**base, "kind": kind, "token": x, "rejection_prob": r, "tv": tv})
                ctx.append(x)
                n += 1
                if kind == "recovered":
                    break
                k += 1
            block += 1
        out.append(recs)
    return out
