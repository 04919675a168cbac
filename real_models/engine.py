"""One KV-cached engine for speculative decoding on batches of prompts (SD, multi-draft, SCD).

Design (ragged acceptance without padding: "holes", as in BASS, Qian et al. 2024)
-------------------------------------------------------------------------------
Each model (target, draft) keeps ONE batched KV cache of shape ``(rows, heads, L, d)`` plus a
boolean ``mask (rows, L)`` of the cache slots that hold a live token, and ``pos (rows,)``, the
number of live tokens of each row (= the position id of its next token). A forward call
appends the same number ``n`` of slots to every row: row ``i`` writes its ``n_i <= n`` real
tokens left-aligned in the chunk and fills the rest with *holes*. Every call passes explicit
``position_ids`` (``pos_i + 0..n-1``) and a 2-D attention mask (old ``mask`` then ones for the
chunk: hole slots are visible to themselves during their own forward, so no query row is ever
fully masked and nothing is NaN; real tokens sit before the holes, so causality keeps them from
seeing a hole). After the call the hole slots are marked dead in ``mask``. Rolling back after a
rejection marks the rejected slots dead too (``_KV.drop_last``): no row is cropped, padded or
delayed by another row's rejections, and every row's position ids stay those of its own
sequence. When more than half the cache is dead, ``_KV.compact`` gathers each row's live slots
to the left (one ``gather`` per layer). Finished rows leave the batch (``_KV.select``).
Models with sliding-window attention over cache slots (Gemma 3) are exact while the cache holds
fewer slots than the window; a run that could exceed it is refused with a clear error.

Multi-draft runs keep ``M`` sub-rows per prompt in both caches (row ``b*M + j`` is draft ``j``
of prompt ``b``): each sub-row drafts its own sequence from the same prefix (i.i.d. given the
prefix), the target verifies all ``M`` sequences in the same call, and after the block every
sub-row of prompt ``b`` is replaced by a sub-row whose drafts carry the accepted prefix
(``_KV.select`` with a repeated index). The two sequence-level readings are those of
``scdsim.exact.markov``: ``batch="first"`` verifies the ``M`` drafts with ``rule`` at the first
position of a block only and then follows the accepted draft with ``rule.with_drafts(1)``;
``batch="tree"`` keeps every draft consistent with the accepted prefix alive and verifies the
``m`` alive ones with ``rule.with_drafts(m)`` at each depth. (The price of this simplicity:
the prefix is stored and the drafts are scored M times, no shared-prefix tree attention.)

A block for one prompt: budget ``g = min(gamma, tokens left)`` (n-gram drafts: the proposal's
length); the draft proposes ``g`` tokens per sub-row (``q_k``: the warped draft law each token
was drawn from), one target call scores ``p_0..p_g`` (the warped target law, or in SCD the
contrasted law of (target, amateur) from ``real_models.laws.contrast_law``); draft ``k`` is
accepted iff ``u < a(x)`` with ``a = rule.acceptances(p_k, q_k)`` (``u`` in [0, 1), so a
token with ``a = 0`` is never accepted and ``a = 1`` always is); on rejection the token is drawn
from ``rule.residual(p_k, q_k)`` and the block ends; after ``g`` acceptances a bonus token is
drawn from ``rule.bonus(p_g)``. EOS or the length limit ends the row inside the block (no bonus
after EOS). Acceptance arithmetic is float64. Verification runs depth by depth across the
prompts of the batch: at depth ``k`` the prompts with ``m`` drafts alive are verified together
by one call of ``rule.with_drafts(m)`` on their stacked ``(p_k, q_k)`` rows.

Randomness: each prompt has its own ``torch.Generator``; every block draws the same number of
float64 uniforms from it, up front (``2 gamma M + 2``: draft draws, acceptance tests, residual,
bonus), whatever happens in the block, so a row's tokens depend on its own stream and history
only, never on the batch it ran in. Drafts, acceptance tests and positions use distinct
uniforms; the one residual and one bonus uniform of a block are shared by its positions, which
is safe because a block emits at most one recovered or bonus token.

Records (``real_models.results``): one per emitted token with its kind, block, position in
block, accepted draft, TV(p, q), entropies and the rule's own rejection probability there.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from real_models import laws as _laws
from real_models.results import GenerationResult, make_record
from scdsim._validate import check_int
from scdsim.process import Scheme
from scdsim.rules import Rule, rejection_prob

__all__ = ["speculative_generate", "check_rule"]


# --------------------------------------------------------------------------------------------
# one model's batched KV cache with holes


def _cache_kwarg(model):
    """Name of the cache argument of ``model.forward`` (transformers 5 renamed it ``cache``)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - exotic callables
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def _takes(model, name):
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


def _layers(cache):
    """The (keys, values) holders of a transformers cache (``DynamicCache.layers``)."""
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise TypeError(f"the engine needs a transformers DynamicCache (with .layers), got "
                        f"{type(cache).__name__}")
    return layers


class _KV:
    """A model's batched KV cache with live-slot mask and per-row positions (see module doc)."""

    def __init__(self, lm, rows):
        self.model = lm.model
        self.device = lm.device
        self.cache = None
        self._kw = _cache_kwarg(lm.model)
        self._keep = _takes(lm.model, "logits_to_keep")
        self.mask = torch.zeros((rows, 0), dtype=torch.bool, device=lm.device)
        self.pos = torch.zeros(rows, dtype=torch.long, device=lm.device)

    @property
    def rows(self):
        return self.pos.shape[0]

    def feed(self, toks, first_needed=0):
        """Append each row's tokens (a list per row, ragged; row ``i``'s real tokens go to slots
        ``0..len(toks[i])-1`` of the chunk). Returns ``(logits, offset)``: ``logits[:, s -
        offset]`` are the logits of slot ``s``; only slots ``>= first_needed`` are guaranteed
        (the LM head runs on those alone when the model takes ``logits_to_keep``)."""
        R = len(toks)
        lens = torch.tensor([len(t) for t in toks], dtype=torch.long, device=self.device)
        n = int(lens.max())
        ids = torch.tensor([list(t) + [0] * (n - len(t)) for t in toks], dtype=torch.long,
                           device=self.device)
        ar = torch.arange(n, device=self.device)
        position_ids = self.pos[:, None] + ar[None, :]
        attn = torch.cat([self.mask, torch.ones((R, n), dtype=torch.bool, device=self.device)], 1)
        kwargs = {"input_ids": ids, "attention_mask": attn.long(), "position_ids": position_ids,
                  "use_cache": True}
        if self.cache is not None:
            kwargs[self._kw] = self.cache
        if self._keep and first_needed > 0:
            kwargs["logits_to_keep"] = n - first_needed
        with torch.no_grad():
            out = self.model(**kwargs)
        if self.cache is None:
            self.cache = getattr(out, "cache", None)
            if self.cache is None:
                self.cache = out.past_key_values
        self.mask = torch.cat([self.mask, ar[None, :] < lens[:, None]], 1)
        self.pos = self.pos + lens
        return out.logits, n - out.logits.shape[1]

    def drop_last(self, counts):
        """Mark the last ``counts[i]`` live slots of row ``i`` dead (rollback of rejected drafts)."""
        k = torch.as_tensor(counts, dtype=torch.long, device=self.device)
        if not bool((k > 0).any()):
            return
        from_right = self.mask.flip(1).long().cumsum(1).flip(1)  # live slots at or after s
        self.mask = self.mask & (from_right > k[:, None])
        self.pos = self.pos - k

    def select(self, index):
        """Keep rows ``index`` (a 1-D long tensor; repeats copy a row)."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.device)
        self.mask = self.mask[index]
        self.pos = self.pos[index]
        if self.cache is not None:
            for layer in _layers(self.cache):
                layer.keys = layer.keys.index_select(0, index.to(layer.keys.device))
                layer.values = layer.values.index_select(0, index.to(layer.values.device))

    def compact(self, force=False):
        """Gather each row's live slots to the left when more than half the cache is dead."""
        L = self.mask.shape[1]
        live = int(self.mask.sum(1).max()) if self.rows else 0
        if not force and (L < 64 or live * 2 > L):
            return
        order = torch.sort((~self.mask).to(torch.int8), dim=1, stable=True).indices[:, :live]
        self.mask = torch.gather(self.mask, 1, order)
        if self.cache is not None:
            for layer in _layers(self.cache):
                for name in ("keys", "values"):
                    t = getattr(layer, name)
                    idx = order.to(t.device)[:, None, :, None].expand(
                        t.shape[0], t.shape[1], live, t.shape[3])
                    setattr(layer, name, torch.gather(t, 2, idx))


# --------------------------------------------------------------------------------------------
# validation


def check_rule(rule, M=1, batch="first"):
    """Validate a rule for the engine; returns ``(rule, M, batch)``.

    The rule must be a samplable ``scdsim`` rule; ``M`` (when > 1) must match ``rule.M`` or the
    rule must be single-draft (then ``rule.with_drafts(M)`` is used, e.g. ``recursive``). The
    process is then validated as the exact and Monte Carlo engines validate it, by
    ``scdsim.process.Scheme`` (``batch``, and the rule for every draft count it uses).
    """
    if not isinstance(rule, Rule):
        raise TypeError(f"rule must be a scdsim rule (e.g. rules.lossless), got {rule!r}")
    if not rule.samplable:
        raise TypeError(f"rule {rule.name} is not samplable (no sequential acceptance/residual "
                        "form): the real-model engine cannot run it; use rules.recursive(M) or "
                        "rules.kseq(M)")
    M = check_int(M, "M", minimum=1)
    if M != rule.M:
        if M == 1:
            M = rule.M
        else:
            rule = rule.with_drafts(M)
    Scheme(rule, batch=batch)  # raises on a bad batch or a with_drafts(m) of the wrong M
    return rule, M, batch


def _context_length(lm):
    cfg = getattr(lm.model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "max_seq_len"):
        v = getattr(cfg, key, None)
        if isinstance(v, int):
            return v
    return None


def _sliding_window(lm):
    """The sliding-attention window of a model whose layers use one (e.g. Gemma 3), else None."""
    cfg = getattr(lm.model, "config", None)
    w = getattr(cfg, "sliding_window", None)
    if not isinstance(w, int):
        return None
    types = getattr(cfg, "layer_types", None)
    if types is not None and "sliding_attention" not in types:
        return None
    return w


def _check_vocab(target, draft):
    if draft.vocab_size != target.vocab_size:
        raise ValueError(f"tokenizer mismatch: draft {draft.name!r} has vocab_size="
                         f"{draft.vocab_size}, target {target.name!r} has {target.vocab_size}")
    tt, td = target.tokenizer, draft.tokenizer
    if tt is not None and td is not None and tt is not td:
        if len(tt) != len(td) or tt.get_vocab() != td.get_vocab():
            raise ValueError(f"tokenizer mismatch: draft {draft.name!r} and target "
                             f"{target.name!r} have different vocabularies")


# --------------------------------------------------------------------------------------------
# laws and per-position statistics


def _entropy(p):
    safe = torch.where(p > 0, p, torch.ones_like(p))
    return -(torch.where(p > 0, p * torch.log(safe), torch.zeros_like(p))).sum(-1)


class Engine:
    """Speculative decoding of a batch of prompts; see the module docstring.

    Use :func:`speculative_generate`; the class exists so that tests can plant bugs in its
    hooks (:meth:`rule_q`, the ``_KV`` rollback) and check that the output-law tests catch
    them.
    """

    def __init__(self, target, draft, *, rule, gamma, M, batch, warp, contrast, eos_token_id,
                 max_new_tokens):
        self.target, self.draft = target, draft
        self.rule, self.gamma, self.M, self.batch = rule, gamma, M, batch
        self.warp = warp
        self.contrast = contrast
        self.eos = set() if eos_token_id is None else (
            {int(eos_token_id)} if isinstance(eos_token_id, int) else {int(e) for e in eos_token_id})
        self.max_new = max_new_tokens
        self.ngram = not hasattr(draft, "model")

    # hooks ---------------------------------------------------------------------------------
    def make_kv(self, lm, rows, role):
        """The KV state of the target or the draft (``role``)."""
        return _KV(lm, rows)

    def draft_law(self, logits):
        """The law a draft token is drawn from: the draft's logits under the user's warping."""
        return _laws.sampling_law(logits, **self.warp).to(torch.float64)

    def rule_q(self, q_drawn, logits):
        """The ``q`` handed to the rule: exactly the law the draft token was drawn from."""
        return q_drawn

    def target_law(self, logits, amateur_logits):
        """``p``: the warped target law, or in SCD the contrasted law of (target, amateur)."""
        if self.contrast is None:
            return _laws.sampling_law(logits, **self.warp).to(torch.float64)
        return _laws.contrast_law(logits, amateur_logits, **self.contrast,
                                  **self.warp).to(torch.float64)

    # the run -------------------------------------------------------------------------------
    def run(self, prompts, rngs):
        M, gamma = self.M, self.gamma
        B = len(prompts)
        seqs = [list(p) for p in prompts]
        out = [[] for _ in range(B)]
        recs = [[] for _ in range(B)]
        calls = [0] * B
        drafted = [0] * B
        blocks = [0] * B
        active = list(range(B))
        tkv = self.make_kv(self.target, B * M, "target")
        dkv = None if self.ngram else self.make_kv(self.draft, B * M, "draft")
        V = self.target.vocab_size
        while active:
            nA = len(active)
            # per-prompt budget, n-gram proposals and this block's uniforms, up front
            budget, props, U = [], [], []
            for b in active:
                left = self.max_new - len(out[b])
                g = min(gamma, left)
                if self.ngram:
                    prop = [int(t) for t in self.draft.propose(list(seqs[b]), g)][:g]
                    props.append(prop)
                    g = len(prop)
                budget.append(g)
                U.append(torch.rand(2 * gamma * M + 2, generator=rngs[b], dtype=torch.float64))
            G = max(budget)
            Ut = torch.stack(U)  # (nA, 2 gamma M + 2)
            sub_row = torch.arange(nA * M) // M
            sub_j = torch.arange(nA * M) % M
            # ---- drafting: D (rows, G) tokens, Q (rows, G, V) laws, A amateur logits
            rows = nA * M
            D = torch.zeros((rows, G), dtype=torch.long)
            Q = torch.zeros((rows, G, V), dtype=torch.float64)
            Qrule = Q
            amateur = None
            d_spec = [0] * rows
            if self.ngram:
                for i, prop in enumerate(props):
                    for k, t in enumerate(prop):
                        D[i, k] = t
                        Q[i, k, t] = 1.0
            elif G > 0 or self.contrast is not None:
                alog = []
                qr = []
                for k in range(G + (1 if self.contrast is not None else 0)):
                    if k == 0:
                        toks = [seqs[active[r // M]][int(dkv.pos[r]):] for r in range(rows)]
                    else:
                        toks = [[int(D[r, k - 1])] for r in range(rows)]
                    last = torch.tensor([len(t) - 1 for t in toks])
                    logits, off = dkv.feed(toks, int(last.min()))
                    lg = logits[torch.arange(rows, device=logits.device),
                                (last - off).to(logits.device)].detach().cpu()
                    alog.append(lg)
                    if k < G:
                        q = self.draft_law(lg)
                        u = Ut[sub_row, k * M + sub_j]
                        D[:, k] = _laws.draw(q, u)
                        Q[:, k] = q
                        qr.append(self.rule_q(q, lg))
                d_spec = [len(alog) - 1] * rows
                amateur = torch.stack(alog, 1)  # (rows, G or G+1, V)
                Qrule = torch.stack(qr, 1) if qr else Q
            # ---- one target call: pending tokens, then the drafts within the row's budget
            toks = []
            for r in range(rows):
                i = r // M
                b = active[i]
                toks.append(seqs[b][int(tkv.pos[r]):] + D[r, :budget[i]].tolist())
            start = torch.tensor([len(t) - 1 - budget[r // M] for r, t in enumerate(toks)])
            logits, off = tkv.feed(toks, int(start.min()))
            idx = start[:, None] + torch.arange(G + 1)[None, :] - off
            idx = torch.minimum(idx, torch.tensor(logits.shape[1] - 1)).to(logits.device)
            tl = torch.gather(logits.detach(), 1,
                              idx[:, :, None].expand(rows, G + 1, logits.shape[2])).cpu()
            if self.contrast is not None:
                am = amateur
                if am.shape[1] < G + 1:  # pragma: no cover - contrast always drafts G+1
                    raise RuntimeError("missing amateur logits")
                P = self.target_law(tl, am[:, :G + 1])
            else:
                P = self.target_law(tl, None)
            # ---- verification, depth by depth across prompts (the rule on the engine's tensors)
            U = Ut.numpy()
            results = self._verify_block(active, budget, D.numpy(), P, Q, Qrule, U, out, recs,
                                         calls, blocks)
            select = []
            t_drop, d_drop = [], []
            for i, b in enumerate(active):
                emitted, n_acc, src = results[i]
                drafted[b] += budget[i]
                seqs[b].extend(emitted)
                if self._done(b, out):
                    continue
                for _ in range(M):
                    select.append(i * M + src)
                    t_drop.append(budget[i] - n_acc)
                    d_drop.append(d_spec[i * M + src] - min(n_acc, d_spec[i * M + src]))
            active = [b for b in active if not self._done(b, out)]
            for kv, drop in ((tkv, t_drop), (dkv, d_drop)):
                if kv is None:
                    continue
                kv.select(select)
                kv.drop_last(drop)
                kv.compact()
        return out, recs, drafted

    def _done(self, b, out):
        o = out[b]
        return len(o) >= self.max_new or (bool(o) and o[-1] in self.eos)

    def _verify_block(self, active, budget, D, P, Q, Qrule, U, out, recs, calls, blocks):
        """Verify one block for every active prompt.

        Depth ``k`` is processed for all prompts still verifying at once: prompts with ``m``
        drafts alive are verified together by ``rule.with_drafts(m)`` called on the stacked
        ``(p_k, q_k)`` of their rows. Returns, per prompt, (emitted tokens, accepted drafts, a
        sub-row carrying the accepted prefix).
        """
        M, gamma = self.M, self.gamma
        nA = len(active)
        alive = [list(range(M)) for _ in range(nA)]
        emitted = [[] for _ in range(nA)]
        n_acc = [0] * nA
        open_ = [True] * nA  # still verifying
        for b in active:
            calls[b] += 1

        def emit(i, tok, kind, k, ent_p, draft_index=None, tv=None, ent_q=None, rej=None):
            b = active[i]
            out[b].append(int(tok))
            recs[b].append(make_record(b, len(out[b]) - 1, tok, kind, blocks[b], k, calls[b],
                                       ent_p, draft_index=draft_index, tv=tv, entropy_q=ent_q,
                                       rejection_prob=rej))
            emitted[i].append(int(tok))
            if self._done(b, out):
                open_[i] = False

        G = max(budget)
        for k in range(G):
            groups = {}
            for i in range(nA):
                if open_[i] and k < budget[i]:
                    groups.setdefault(len(alive[i]), []).append(i)
            for m, idx in sorted(groups.items()):
                rule = self.rule.with_drafts(m)
                r0 = torch.tensor([i * M + alive[i][0] for i in idx])
                p, q = P[r0, k], Qrule[r0, k]
                xs = np.array([[D[i * M + j, k] for j in alive[i]] for i in idx])  # (n, m)
                xs_t = torch.as_tensor(xs)
                if not bool((torch.gather(q, 1, xs_t) > 0).all()):
                    raise RuntimeError(
                        "a draft token has q(x)=0 under the q handed to the rule: q is not the "
                        "law the draft token was drawn from (engine bug)")
                a = rule.acceptances(p, q)  # (n, m, V)
                a_x = torch.gather(a, 2, xs_t[:, :, None]).squeeze(2).numpy()  # (n, m)
                res = rule.residual(p, q)
                ur = torch.as_tensor(U[idx, 2 * gamma * M])
                rec_tok = _laws.draw(res, ur).numpy()
                rej = rejection_prob(rule, p, q).numpy()
                tv = (0.5 * (p - q).abs().sum(-1)).numpy()
                ent_p, ent_q = _entropy(p).numpy(), _entropy(q).numpy()
                for n, i in enumerate(idx):
                    ua = U[i, gamma * M + k * M:gamma * M + k * M + m]
                    hit = np.flatnonzero(ua < a_x[n])
                    stats = dict(tv=tv[n], ent_q=ent_q[n], rej=rej[n])
                    if hit.size == 0:
                        emit(i, rec_tok[n], "recovered", k, ent_p[n], **stats)
                        open_[i] = False
                        continue
                    j = int(hit[0])
                    x = int(xs[n, j])
                    emit(i, x, "accepted", k, ent_p[n], draft_index=alive[i][j], **stats)
                    n_acc[i] += 1
                    if self.batch == "tree":
                        alive[i] = [jj for jj in alive[i] if int(D[i * M + jj, k]) == x]
                    else:
                        alive[i] = [alive[i][j]]
        # every draft of the block accepted: the bonus token (zero drafts: a plain target token)
        idx = [i for i in range(nA) if open_[i]]
        if idx:
            r0 = torch.tensor([i * M + alive[i][0] for i in idx])
            g = torch.tensor([budget[i] for i in idx])
            p = P[r0, g]
            tok = _laws.draw(self.rule.bonus(p), torch.as_tensor(U[idx, -1])).numpy()
            ent_p = _entropy(p).numpy()
            for n, i in enumerate(idx):
                emit(i, tok[n], "bonus" if budget[i] > 0 else "plain", budget[i], ent_p[n])
        for b in active:
            blocks[b] += 1
        return [(emitted[i], n_acc[i], alive[i][0]) for i in range(nA)]


def speculative_generate(target, draft, prompts, *, rule, gamma=4, M=1, batch="first",
                         max_new_tokens=64, warp=None, contrast=None, eos_token_id=None,
                         rngs=None, engine_cls=Engine, settings=None):
    """Speculative decoding (SD, multi-draft, SCD, n-gram drafts) of a batch of prompts.

    Parameters
    ----------
    target : LM
    draft : LM or NGramDraft
        The draft model (in SCD: the amateur) or an n-gram proposer (``propose(context, k)``).
    prompts : list of list of int
        Token ids, one list per prompt (non-empty).
    rule : scdsim Rule (samplable)
    gamma : int >= 1
        Draft tokens per block.
    M : int >= 1
        Drafts per position (multi-draft rules); ``rule.with_drafts(M)`` is used.
    batch : {"first", "tree"}
        The multi-draft reading (see module docstring).
    max_new_tokens : int >= 1
    warp : dict, optional
        ``temperature, top_k, top_p, min_p, epsilon`` applied to target and draft logits.
    contrast : dict, optional
        SCD: ``plausibility, contrast, amateur_temperature, form`` of the contrasted target law.
    eos_token_id : int or list of int, optional
    rngs : list of torch.Generator, one per prompt

    Returns
    -------
    GenerationResult
    """
    gamma = check_int(gamma, "gamma", minimum=1)
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens", minimum=1)
    rule, M, batch = check_rule(rule, M, batch)
    warp = dict(warp or {})
    for key in warp:
        if key not in _laws.WARP_KEYS:
            raise ValueError(f"unknown warp setting {key!r}; expected one of {_laws.WARP_KEYS}")
    ngram = not hasattr(draft, "model")
    if ngram:
        if not hasattr(draft, "propose"):
            raise TypeError(f"draft must be an LM or an NGramDraft, got {type(draft).__name__}")
        if M > 1:
            raise ValueError(f"n-gram drafts propose one sequence: M must be 1, got {M}")
        if contrast is not None:
            raise ValueError("SCD needs an amateur model as the draft, not an n-gram proposer")
    else:
        _check_vocab(target, draft)
    if contrast is not None:
        contrast = dict(contrast)
        for key in contrast:
            if key not in _laws.CONTRAST_KEYS:
                raise ValueError(f"unknown contrast setting {key!r}; expected one of "
                                 f"{_laws.CONTRAST_KEYS}")
    prompts = [list(map(int, p)) for p in prompts]
    if not prompts:
        raise ValueError("prompts must be a non-empty list")
    ctx = [c for c in (_context_length(target), None if ngram else _context_length(draft))
           if c is not None]
    for i, p in enumerate(prompts):
        if not p:
            raise ValueError(f"prompt {i} is empty")
        bad = [t for t in p if not 0 <= t < target.vocab_size]
        if bad:
            raise ValueError(f"prompt {i} has token id {bad[0]} outside [0, {target.vocab_size})")
        for c in ctx:
            if len(p) + max_new_tokens + gamma > c:
                raise ValueError(
                    f"prompt {i} is too long: {len(p)} tokens + max_new_tokens={max_new_tokens} "
                    f"+ gamma={gamma} exceed the context length {c}")
    slots = max(len(p) for p in prompts) + max_new_tokens * (gamma + 2)
    for lm in (target,) if ngram else (target, draft):
        window = _sliding_window(lm)
        if window is not None and slots >= window:
            raise ValueError(
                f"{lm.name!r} uses sliding-window attention over cache slots (window {window}); "
                f"the engine's cache with holes can hold up to {slots} slots for this run "
                f"(longest prompt + max_new_tokens*(gamma+2)); lower max_new_tokens or gamma")
    if rngs is None:
        rngs = [torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,)))) for _ in prompts]
    if len(rngs) != len(prompts):
        raise ValueError(f"rngs must have one generator per prompt ({len(prompts)}), got "
                         f"{len(rngs)}")
    eng = engine_cls(target, draft, rule=rule, gamma=gamma, M=M, batch=batch, warp=warp,
                     contrast=contrast, eos_token_id=eos_token_id, max_new_tokens=max_new_tokens)
    tokens, records, drafted = eng.run(prompts, rngs)
    text = None
    if getattr(target, "tokenizer", None) is not None:
        text = [target.tokenizer.decode(t) for t in tokens]
    base = {"rule": rule.name, "gamma": gamma, "M": M, "batch": batch,
            "max_new_tokens": max_new_tokens, "warp": warp, "contrast": contrast,
            "target": target.name, "draft": getattr(draft, "name", repr(draft))}
    base.update(settings or {})
    return GenerationResult(tokens=tokens, text=text, records=records, settings=base,
                            draft_tokens=drafted)
