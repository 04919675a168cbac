"""Classic decoders on a KV cache: autoregressive sampling (greedy at temperature 0), beam search,
n-gram blocking, and contrastive decoding (greedy, sampling, beam) with an amateur model.

No draft model here; speculative decoding lives in ``real_models.engine``. Every law sampled is
computed by ``real_models.laws`` (so by ``scdsim.distributions.warp`` and
``scdsim.contrast.contrastive``), never re-derived.

Batching: prompts are left-padded, with an attention mask and explicit position ids, on one
``transformers.DynamicCache``. Each prompt draws its uniforms from its own ``torch.Generator``
up front (one per new token, inverse-CDF sampling), so a row's tokens depend on its own seed and
not on which other prompts share the batch.

Definitions follow transformers 5 where they exist:

- ``no_repeat_ngram_size = n``: a token is banned if it would complete an n-gram already present
  in the prompt plus the tokens generated so far (``NoRepeatNGramLogitsProcessor``). The ban is
  applied to the scores before warping (a processor, as in HF).
- beam search: the vectorised algorithm of ``GenerationMixin._beam_search`` (float32 scores,
  ``2 * num_beams`` candidates per step, finished score ``sum log p / len ** length_penalty`` with
  ``len`` the number of new tokens including EOS, ``early_stopping`` False / True / "never" with
  the same heuristic), run on our own cache.
"""

from __future__ import annotations

import inspect
import math
import numbers

import numpy as np
import torch

from real_models import laws
from real_models.results import GenerationResult, make_record
from scdsim._validate import check_int

__all__ = ["sample", "beam"]

_CONTRAST_ALLOWED = laws.CONTRAST_KEYS + ("window",)


# ---- validation ---------------------------------------------------------------------------------

def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_prompts(prompt_ids, vocab_size):
    if isinstance(prompt_ids, torch.Tensor):
        prompt_ids = prompt_ids.tolist()
    if not isinstance(prompt_ids, (list, tuple)) or not prompt_ids:
        raise TypeError("prompt_ids must be a non-empty list of token-id lists")
    rows = []
    for i, r in enumerate(prompt_ids):
        if isinstance(r, torch.Tensor):
            r = r.tolist()
        if isinstance(r, numbers.Integral) or not isinstance(r, (list, tuple)):
            raise TypeError(f"prompt_ids[{i}] must be a list of token ids, got {r!r}")
        if not r:
            raise ValueError(f"prompt_ids[{i}] is empty; every prompt needs at least one token")
        for t in r:
            if isinstance(t, bool) or not isinstance(t, numbers.Integral) or not 0 <= t < vocab_size:
                raise ValueError(f"prompt_ids[{i}] has token {t!r} outside [0, {vocab_size})")
        rows.append([int(t) for t in r])
    return rows


def _check_context(lm, rows, max_new_tokens):
    ctx = getattr(lm.model.config, "max_position_embeddings", None)
    longest = max(len(r) for r in rows)
    if ctx is not None and longest + max_new_tokens > ctx:
        raise ValueError(f"a prompt of {longest} tokens plus max_new_tokens={max_new_tokens} "
                         f"exceeds the context of {lm.name} ({ctx} positions)")


def _eos_list(eos_token_id):
    if eos_token_id is None:
        return []
    ids = [eos_token_id] if isinstance(eos_token_id, numbers.Integral) else list(eos_token_id)
    for t in ids:
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
            raise ValueError(f"eos_token_id must be a token id or a list of them, got "
                             f"{eos_token_id!r}")
    return [int(t) for t in ids]


def _check_contrast(lm, amateur, contrast):
    """Validate the CD arguments; returns (contrast params for laws, window) or (None, None)."""
    if amateur is None:
        if contrast is not None:
            raise ValueError("contrast was given without an amateur model (amateur=None)")
        return None, None
    contrast = dict(contrast or {})
    bad = sorted(set(contrast) - set(_CONTRAST_ALLOWED))
    if bad:
        raise ValueError(f"contrast has unknown keys {bad}; allowed: {list(_CONTRAST_ALLOWED)}")
    if amateur.vocab_size != lm.vocab_size:
        raise ValueError(f"amateur {amateur.name} has vocab_size={amateur.vocab_size} but the "
                         f"expert {lm.name} has {lm.vocab_size}; CD needs one vocabulary")
    window = contrast.pop("window", None)
    if window is not None:
        window = _check_int(window, "contrast['window']", 1)
    # Validate the CD parameters once on a 1-token law (contrastive's own checks).
    one = torch.zeros(1, 1, dtype=torch.float64)
    laws.contrast_scores(one, one, **contrast)
    return contrast, window


def make_rngs(rng, n, name="rng"):
    """One ``torch.Generator`` per prompt from ``rng``: None (fresh entropy), an int (spawned
    per prompt by NumPy's SeedSequence), or a list of ints / Generators (one per prompt).
    ``name`` is the argument's name in error messages."""
    if rng is None or isinstance(rng, (int, np.integer)):
        ss = np.random.SeedSequence(None if rng is None else int(rng))
        seeds = [int(c.generate_state(1, np.uint64)[0] >> np.uint64(1)) for c in ss.spawn(n)]
        return [torch.Generator().manual_seed(s) for s in seeds]
    if isinstance(rng, torch.Generator):
        raise TypeError(f"{name}: pass one Generator per prompt (a list), or an int seed")
    rng = list(rng)
    if len(rng) != n:
        raise ValueError(f"{name} must give one seed or Generator per prompt ({n}), got "
                         f"{len(rng)}")
    out = []
    for r in rng:
        if isinstance(r, torch.Generator):
            out.append(r)
        else:
            out.append(torch.Generator().manual_seed(check_int(r, f"{name} seed", minimum=0)))
    return out



# ---- the model runner: one cache, left padding, explicit positions ---------------------------

class _Runner:
    """Feeds a batch of token rows through ``lm`` with a DynamicCache.

    With ``window`` set (amateur context window) there is no cache: every step re-encodes the
    last ``window`` tokens of each row as a fresh sequence (positions from 0).
    """

    def __init__(self, lm, window=None):
        self.lm = lm
        self.window = window
        sig = inspect.signature(lm.model.forward).parameters
        self._cache_kw = "cache" if "cache" in sig else "past_key_values"
        self._keep = "logits_to_keep" in sig

    def _forward(self, ids, mask, pos, cache):
        kw = {self._cache_kw: cache} if cache is not None else {}
        if self._keep:
            kw["logits_to_keep"] = 1
        out = self.lm.model(input_ids=ids, attention_mask=mask, position_ids=pos,
                            use_cache=cache is not None, **kw)
        return out.logits[:, -1, :]

    def _padded(self, rows):
        L = max(len(r) for r in rows)
        dev = self.lm.device
        ids = torch.zeros((len(rows), L), dtype=torch.long)
        mask = torch.zeros((len(rows), L), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, L - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, L - len(r):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        return ids.to(dev), mask.to(dev), pos.to(dev)

    def prefill(self, rows):
        if self.window is not None:
            self.hist = [list(r) for r in rows]
            return self._window_logits()
        from transformers import DynamicCache

        ids, mask, pos = self._padded(rows)
        try:
            self.cache = DynamicCache(config=self.lm.model.config)
        except (TypeError, AttributeError):  # no config, or not a transformers config
            self.cache = DynamicCache()
        self.mask = mask
        self.next_pos = pos[:, -1] + 1
        return self._forward(ids, mask, pos, self.cache)

    def _window_logits(self):
        ids, mask, pos = self._padded([h[-self.window:] for h in self.hist])
        return self._forward(ids, mask, pos, None)

    def step(self, tokens):
        """Append one token per row (``tokens``: int64 (R,)) and return the next logits."""
        if self.window is not None:
            for h, t in zip(self.hist, tokens.tolist()):
                h.append(t)
            return self._window_logits()
        R = tokens.shape[0]
        self.mask = torch.cat([self.mask, self.mask.new_ones((R, 1))], dim=1)
        pos = self.next_pos[:, None]
        self.next_pos = self.next_pos + 1
        return self._forward(tokens.to(self.lm.device)[:, None], self.mask, pos, self.cache)

    def select(self, idx):
        """Keep only rows ``idx`` (finished rows leave the batch)."""
        if self.window is not None:
            self.hist = [self.hist[i] for i in idx.tolist()]
            return
        idx = idx.to(self.lm.device)
        self.cache.batch_select_indices(idx)
        self.mask = self.mask.index_select(0, idx)
        self.next_pos = self.next_pos.index_select(0, idx)

    def reorder(self, idx):
        """Reorder rows (beam search): row ``i`` becomes old row ``idx[i]``."""
        if self.window is not None:
            self.hist = [list(self.hist[i]) for i in idx.tolist()]
            return
        idx = idx.to(self.lm.device)
        self.cache.reorder_cache(idx)
        self.mask = self.mask.index_select(0, idx)
        self.next_pos = self.next_pos.index_select(0, idx)


def _ngram_banned(seqs, n, V):
    """HF's ``NoRepeatNGramLogitsProcessor`` ban: bool (R, V), True where the next token would
    repeat an n-gram of ``seqs`` (int64 (R, L), the full sequences, prompt included)."""
    R, L = seqs.shape
    banned = torch.zeros((R, V + 1), dtype=torch.bool, device=seqs.device)
    if L < n:
        return banned[:, :V]
    prefix = seqs[:, L + 1 - n:]
    windows = seqs.unfold(1, n, 1)
    matches = (windows[..., :-1] == prefix[:, None, :]).all(-1)
    last = torch.where(matches, windows[..., -1].clamp(max=V), V)
    banned.scatter_(1, last, True)
    return banned[:, :V]


def _scores(logits, a_logits, contrast):
    """Per-step scores before warping: the logits (upcast) or the CD scores."""
    if contrast is None:
        return laws._wide(logits)
    return laws.contrast_scores(logits, a_logits, **contrast)


def _entropy(law):
    """Shannon entropy (nats) per row, ``-sum p log p`` with ``0 log 0 = 0``, in the law's dtype
    (``scdsim.distributions.entropy`` without its validation: a third of a tiny model's step)."""
    return torch.special.entr(law).sum(-1)


def _text(lm, tokens):
    tok = getattr(lm, "tokenizer", None)
    if tok is None:
        return None
    return [tok.decode(t) for t in tokens]


# ---- sampling (and greedy) ------------------------------------------------------------------

def sample(lm, prompt_ids, *, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
           min_p=None, epsilon=None, no_repeat_ngram_size=0, eos_token_id=None, amateur=None,
           contrast=None, rngs=None) -> GenerationResult:
    """Autoregressive sampling from the warped law (temperature 0 = greedy), batched.

    Parameters
    ----------
    lm : real_models.LM
        The model (the expert, for contrastive decoding).
    prompt_ids : list of list of int
        One token-id list per prompt (ragged; left-padded internally).
    max_new_tokens : int >= 1
        New tokens per prompt at most (fewer when EOS comes first; EOS is emitted).
    temperature, top_k, top_p, min_p, epsilon
        The law sampled is ``real_models.laws.sampling_law`` of the (processed) scores, i.e.
        ``scdsim.distributions.warp``; ``temperature=0`` is greedy (argmax, first on ties).
    no_repeat_ngram_size : int >= 0
        Ban tokens that would repeat an n-gram of prompt + output (transformers' definition).
    eos_token_id : int or list of int, optional
        A row stops after emitting one of these.
    amateur : real_models.LM, optional
        Contrastive decoding: the amateur model; the scores are
        ``scdsim.contrast.contrastive_scores(expert, amateur, **contrast)`` and the law sampled is
        their warp (at default warp settings exactly ``scdsim.contrast.contrastive``).
    contrast : dict, optional
        ``plausibility``, ``contrast``, ``amateur_temperature``, ``form`` (alpha, beta, tau and
        the form of ``scdsim.contrast.contrastive``) and ``window`` (the amateur sees only the
        last ``window`` tokens of prompt + output, as a fresh sequence).
    rngs : list of (torch.Generator or int), optional
        One stream per prompt; a row's tokens depend only on its own stream. Not needed at
        temperature 0; ``None`` at temperature > 0 draws fresh seeds.

    Returns
    -------
    GenerationResult
        One record per token, kind ``"plain"``, ``entropy_p`` the entropy (nats) of the law the
        token was drawn from, ``block = index`` and ``target_calls = index + 1``.

    Raises
    ------
    ValueError, TypeError
        Bad settings (warp's own messages for temperature / top-k / top-p / min-p / epsilon),
        bad prompts, prompts plus ``max_new_tokens`` beyond the context, CD without an amateur.
    """
    warp_kw = dict(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                   epsilon=epsilon)
    laws.sampling_law(torch.zeros(1, 1, dtype=torch.float64), **warp_kw)  # warp's own checks
    max_new_tokens = _check_int(max_new_tokens, "max_new_tokens", 1)
    n = _check_int(no_repeat_ngram_size, "no_repeat_ngram_size", 0)
    eos = _eos_list(eos_token_id)
    rows = _check_prompts(prompt_ids, lm.vocab_size)
    _check_context(lm, rows, max_new_tokens)
    contrast, window = _check_contrast(lm, amateur, contrast)
    if amateur is not None:
        _check_context(amateur, rows, max_new_tokens)
    B, V = len(rows), lm.vocab_size
    if temperature == 0.0 and rngs is None:
        u = torch.zeros((B, max_new_tokens), dtype=torch.float64)
    else:
        gens = make_rngs(rngs, B, name="rngs")
        u = torch.stack([torch.rand(max_new_tokens, generator=g, dtype=torch.float64)
                         for g in gens])

    out = [[] for _ in range(B)]
    recs = [[] for _ in range(B)]
    seqs = [list(r) for r in rows]
    active = list(range(B))
    runner = _Runner(lm)
    a_runner = _Runner(amateur, window) if amateur is not None else None
    with torch.inference_mode():
        logits = runner.prefill(rows)
        a_logits = a_runner.prefill(rows) if a_runner is not None else None
        for t in range(max_new_tokens):
            # Rows of ``logits`` are the rows of ``active``: finished rows leave the cache.
            s = _scores(logits, a_logits, contrast)
            if n:
                ban = torch.cat([_ngram_banned(torch.tensor([seqs[i]]), n, V) for i in active])
                s = s.masked_fill(ban.to(s.device), -math.inf)
            law = laws.sampling_law(s, **warp_kw)
            tok = laws.draw(law, u[active, t])
            ent = _entropy(law).tolist()
            still = []
            for j, (i, x) in enumerate(zip(active, tok.tolist())):
                out[i].append(x)
                seqs[i].append(x)
                recs[i].append(make_record(prompt=i, index=t, token=x, kind="plain", block=t,
                                           pos_in_block=0, target_calls=t + 1,
                                           entropy_p=ent[j]))
                if x not in eos:
                    still.append(i)
            if not still or t == max_new_tokens - 1:
                break
            if len(still) < len(active):
                alive = set(still)
                keep = torch.tensor([j for j, i in enumerate(active) if i in alive])
                runner.select(keep)
                if a_runner is not None:
                    a_runner.select(keep)
            active = still
            feed = torch.tensor([seqs[i][-1] for i in active], dtype=torch.long)
            logits = runner.step(feed)
            if a_runner is not None:
                a_logits = a_runner.step(feed)

    settings = dict(decoder="sample", model=lm.name, max_new_tokens=max_new_tokens,
                    no_repeat_ngram_size=n, eos_token_id=eos or None,
                    amateur=None if amateur is None else amateur.name,
                    contrast=None if contrast is None else dict(contrast, window=window),
                    **warp_kw)
    return GenerationResult(tokens=out, text=_text(lm, out), records=recs, settings=settings)


# ---- beam search --------------------------------------------------------------------------

def _gather(x, idx):
    while idx.ndim < x.ndim:
        idx = idx.unsqueeze(-1)
    return torch.take_along_dim(x, idx, dim=1)


def beam(lm, prompt_ids, *, num_beams, length_penalty=1.0, max_new_tokens,
         no_repeat_ngram_size=0, eos_token_id=None, amateur=None, contrast=None,
         early_stopping=False) -> GenerationResult:
    """Beam search (transformers 5's algorithm and scores) on our KV cache, batched.

    Parameters
    ----------
    lm : real_models.LM
    prompt_ids : list of list of int
    num_beams : int >= 1
        ``1`` is greedy decoding (as in transformers).
    length_penalty : float
        A finished hypothesis scores ``sum log p / len ** length_penalty`` (``len``: new tokens,
        EOS included); > 0 favours longer outputs.
    max_new_tokens : int >= 1
    no_repeat_ngram_size : int >= 0
        As in :func:`sample` (the log-probabilities of banned tokens become ``-inf``).
    eos_token_id : int or list of int, optional
    amateur, contrast
        Contrastive beam search: the per-step log-probabilities are the log of the contrastive
        law (``log_softmax`` of ``scdsim.contrast.contrastive_scores``), ``-inf`` off the
        plausible set. ``contrast`` as in :func:`sample`.
    early_stopping : bool or "never"
        transformers' flag (default False: stop when the best running beam, at its current
        length, cannot beat the worst of ``num_beams`` finished hypotheses).

    Returns
    -------
    GenerationResult
        The best hypothesis per prompt; records of kind ``"plain"`` whose ``entropy_p`` is the
        entropy of the step law of the beam that produced the token.
    """
    num_beams = _check_int(num_beams, "num_beams", 1)
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, numbers.Real) \
            or not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be a finite real number, got {length_penalty!r}")
    if early_stopping not in (False, True, "never"):
        raise ValueError(f"early_stopping must be False, True or 'never', got {early_stopping!r}")
    max_new_tokens = _check_int(max_new_tokens, "max_new_tokens", 1)
    n = _check_int(no_repeat_ngram_size, "no_repeat_ngram_size", 0)
    eos = _eos_list(eos_token_id)
    rows = _check_prompts(prompt_ids, lm.vocab_size)
    _check_context(lm, rows, max_new_tokens)
    if num_beams == 1:
        res = sample(lm, rows, max_new_tokens=max_new_tokens, temperature=0.0,
                     no_repeat_ngram_size=n, eos_token_id=eos_token_id, amateur=amateur,
                     contrast=contrast)
        return GenerationResult(tokens=res.tokens, text=res.text, records=res.records,
                                settings=dict(res.settings, decoder="beam", num_beams=1,
                                              length_penalty=float(length_penalty)))
    contrast, window = _check_contrast(lm, amateur, contrast)
    if amateur is not None:
        _check_context(amateur, rows, max_new_tokens)

    B, nb, V, T = len(rows), num_beams, lm.vocab_size, max_new_tokens
    K = max(2, 1 + len(eos)) * nb
    top_mask = torch.cat([torch.ones(nb, dtype=torch.bool), torch.zeros(K - nb, dtype=torch.bool)])
    eos_t = torch.tensor(eos, dtype=torch.long)
    f32 = torch.float32
    run_tok = torch.full((B, nb, T), -1, dtype=torch.long)
    run_ent = torch.zeros((B, nb, T), dtype=torch.float64)
    run_scores = torch.zeros((B, nb), dtype=f32)
    run_scores[:, 1:] = -1e9
    fin_tok = run_tok.clone()
    fin_ent = run_ent.clone()
    fin_scores = torch.full((B, nb), -1e9, dtype=f32)
    fin_len = torch.zeros((B, nb), dtype=torch.long)
    is_fin = torch.zeros((B, nb), dtype=torch.bool)
    unsat = torch.ones((B, 1), dtype=torch.bool)
    prompts = [torch.tensor(r, dtype=torch.long) for r in rows]

    flat_rows = [r for r in rows for _ in range(nb)]
    runner = _Runner(lm)
    a_runner = _Runner(amateur, window) if amateur is not None else None
    steps = 0
    with torch.inference_mode():
        logits = runner.prefill(flat_rows)
        a_logits = a_runner.prefill(flat_rows) if a_runner is not None else None
        for t in range(T):
            if t > 0:
                feed = run_tok[:, :, t - 1].reshape(-1)
                logits = runner.step(feed)
                if a_runner is not None:
                    a_logits = a_runner.step(feed)
            steps = t + 1
            lg = logits.to(device="cpu", dtype=f32)
            if contrast is None:
                logp = torch.nn.functional.log_softmax(lg, dim=-1)
            else:
                sc = laws.contrast_scores(lg, a_logits.to(device="cpu", dtype=f32), **contrast)
                logp = torch.nn.functional.log_softmax(sc, dim=-1)
            if n:
                ban = torch.cat([_ngram_banned(torch.cat([prompts[b].expand(nb, -1),
                                                          run_tok[b, :, :t]], dim=1), n, V)
                                 for b in range(B)])
                logp = logp.masked_fill(ban, -math.inf)
            ent = _entropy(torch.softmax(logp.to(torch.float64), dim=-1)).view(B, nb)
            acc = (logp.view(B, nb, V) + run_scores[:, :, None]).reshape(B, nb * V)

            # c. top-K continuations over all beams of a prompt
            topk_lp, topk_idx = torch.topk(acc, k=K)
            src = topk_idx // V
            ids = topk_idx % V
            topk_tok = _gather(run_tok, src)
            topk_tok[:, :, t] = ids
            topk_ent = _gather(run_ent, src)
            topk_ent[:, :, t] = _gather(ent, src)
            # d. which candidates finish (EOS or the length limit)
            hits = torch.isin(ids, eos_t) | (t + 1 >= T)
            # e. the running beams for the next step
            run_lp = topk_lp + hits.to(f32) * -1.0e9
            nxt = torch.topk(run_lp, k=nb)[1]
            run_tok = _gather(topk_tok, nxt)
            run_ent = _gather(topk_ent, nxt)
            run_scores = _gather(run_lp, nxt)
            parent = _gather(src, nxt)
            # f. finished hypotheses (only the top num_beams candidates may finish)
            did = hits & top_mask[None, :]
            s = topk_lp / ((t + 1) ** length_penalty)
            full = torch.all(is_fin, dim=-1, keepdim=True) & (early_stopping is True)
            s = s + full.to(f32) * -1.0e9
            s = s + (~unsat).to(f32) * -1.0e9
            s = s + (~did) * -1.0e9
            m_scores = torch.cat([fin_scores, s], dim=1)
            keep = torch.topk(m_scores, k=nb)[1]
            fin_tok = _gather(torch.cat([fin_tok, topk_tok], dim=1), keep)
            fin_ent = _gather(torch.cat([fin_ent, topk_ent], dim=1), keep)
            fin_len = _gather(torch.cat([fin_len, torch.full((B, K), t + 1)], dim=1), keep)
            fin_scores = _gather(m_scores, keep)
            is_fin = _gather(torch.cat([is_fin, did], dim=1), keep)
            # g. reorder the caches; the early-stopping heuristic
            flat_parent = (parent + torch.arange(B)[:, None] * nb).reshape(-1)
            runner.reorder(flat_parent)
            if a_runner is not None:
                a_runner.reorder(flat_parent)
            best_len = T if (early_stopping == "never" and length_penalty > 0.0) else t + 1
            best_run = run_scores[:, :1] / (best_len ** length_penalty)
            worst_fin = torch.where(is_fin, torch.min(fin_scores, dim=1, keepdim=True)[0], -1.0e9)
            unsat = unsat & torch.any(best_run > worst_fin, dim=-1, keepdim=True)
            go_on = (bool(torch.any(unsat))
                     and not (bool(torch.all(is_fin)) and early_stopping is True)
                     and not bool(torch.all(hits)))
            if not go_on:
                break

    out, recs = [], []
    for b in range(B):
        L = int(fin_len[b, 0])
        toks = fin_tok[b, 0, :L].tolist()
        ents = fin_ent[b, 0, :L].tolist()
        out.append(toks)
        recs.append([make_record(prompt=b, index=i, token=x, kind="plain", block=i,
                                 pos_in_block=0, target_calls=i + 1, entropy_p=e)
                     for i, (x, e) in enumerate(zip(toks, ents))])
    settings = dict(decoder="beam", model=lm.name, num_beams=nb,
                    length_penalty=float(length_penalty), max_new_tokens=T,
                    no_repeat_ngram_size=n, eos_token_id=eos or None,
                    early_stopping=early_stopping, steps=steps,
                    amateur=None if amateur is None else amateur.name,
                    contrast=None if contrast is None else dict(contrast, window=window))
    return GenerationResult(tokens=out, text=_text(lm, out), records=recs, settings=settings)
