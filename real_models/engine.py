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

Multi-draft runs keep ``M`` sub-rows per prompt in both caches (row ``b*M + j`` is draft ``j``
of prompt ``b``): each sub-row drafts its own sequence from the same prefix (i.i.d. given the
prefix), the target verifies all ``M`` sequences in the same call, and after the block every
sub-row of prompt ``b`` is replaced by a sub-row whose drafts carry the accepted prefix
(``_KV.select`` with a repeated index). The two sequence-level readings are those of
``scdsim.exact.markov``: ``batch="first"`` verifies the ``M`` drafts with ``rule`` at the first
position of a block only and then follows the accepted draft with ``rule.with_drafts(1)``;
``batch="tree"`` keeps every draft consistent with the accepted prefix alive and verifies the
``m`` alive ones with ``rule.with_drafts(m)`` at each depth.

A block for one prompt: budget ``g = min(gamma, tokens left)`` (n-gram drafts: the proposal's
length); the draft proposes ``g`` tokens per sub-row (``q_k``: the warped draft law each token
was drawn from), one target call scores ``p_0..p_g`` (the warped target law, or in SCD the
contrasted law of (target, amateur) from ``real_models.laws.contrast_law``); draft ``k`` is
accepted iff ``u < a(x)`` with ``a = rule.acceptances(p_k, q_k)`` (``u`` in [0, 1), so a
token with ``a = 0`` is never accepted and ``a = 1`` always is); on rejection the token is drawn
from ``rule.residual(p_k, q_k)`` and the block ends; after ``g`` acceptances a bonus token is
drawn from ``rule.bonus(p_g)``. EOS or the length limit ends the row inside the block (no bonus
after EOS). Acceptance arithmetic is float64.

Randomness: each prompt has its own ``torch.Generator``; every block draws the same number of
float64 uniforms from it, up front (``2 gamma M + 2``: draft draws, acceptance tests, residual,
bonus), whatever happens in the block, so a row's tokens depend on its own stream and history
only, never on the batch it ran in.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from real_models import laws as _laws
from real_models.results import GenerationResult, make_record
from scdsim._validate import check_choice, check_int
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
        self.mask = torch.zeros((rows, 0), dtype=torch.bool, device=lm.device)
        self.pos = torch.zeros(rows, dtype=torch.long, device=lm.device)

    @property
    def rows(self):
        return self.pos.shape[0]

    def feed(self, toks):
        """Append each row's tokens (a list per row, ragged); logits ``(rows, n, V)``, row ``i``'s
        real tokens in slots ``0..len(toks[i])-1``."""
        R = len(toks)
        lens = torch.tensor([len(t) for t in toks], dtype=torch.long, device=self.device)
        n = int(lens.max())
        ids = torch.zeros((R, n), dtype=torch.long)
        for i, t in enumerate(toks):
            if t:
                ids[i, :len(t)] = torch.as_tensor(t, dtype=torch.long)
        ids = ids.to(self.device)
        ar = torch.arange(n, device=self.device)
        position_ids = self.pos[:, None] + ar[None, :]
        attn = torch.cat([self.mask, torch.ones((R, n), dtype=torch.bool, device=self.device)], 1)
        kwargs = {"input_ids": ids, "attention_mask": attn.long(), "position_ids": position_ids,
                  "use_cache": True}
        if self.cache is not None:
            kwargs[self._kw] = self.cache
        with torch.no_grad():
            out = self.model(**kwargs)
        if self.cache is None:
            self.cache = getattr(out, "cache", None)
            if self.cache is None:
                self.cache = out.past_key_values
        self.mask = torch.cat([self.mask, ar[None, :] < lens[:, None]], 1)
        self.pos = self.pos + lens
        return out.logits

    def drop_last(self, counts):
        """Mark the last ``counts[i]`` live slots of row ``i`` dead (rollback of rejected drafts)."""
        for i, k in enumerate(counts):
            if k > 0:
                live = torch.nonzero(self.mask[i]).flatten()
                self.mask[i, live[-k:]] = False
                self.pos[i] -= k

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
    rule must be single-draft (then ``rule.with_drafts(M)`` is used, e.g. ``recursive``).
    """
    if not isinstance(rule, Rule):
        raise TypeError(f"rule must be a scdsim rule (e.g. rules.lossless), got {rule!r}")
    if not rule.samplable:
        raise TypeError(f"rule {rule.name} is not samplable (no sequential acceptance/residual "
                        "form): the real-model engine cannot run it; use rules.recursive(M) or "
                        "rules.kseq(M)")
    M = check_int(M, "M", minimum=1)
    check_choice(batch, "batch", {"first", "tree"})
    if M != rule.M:
        if M == 1:
            M = rule.M
        else:
            rule = rule.with_drafts(M)
    return rule, M, batch


def _context_length(lm):
    cfg = getattr(lm.model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "max_seq_len"):
        v = getattr(cfg, key, None)
        if isinstance(v, int):
            return v
    return None


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
        tkv = _KV(self.target, B * M)
        dkv = None if self.ngram else _KV(self.draft, B * M)
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
                    logits = dkv.feed(toks)
                    last = torch.tensor([len(t) - 1 for t in toks])
                    lg = logits[torch.arange(rows), last.to(logits.device)].detach().cpu()
                    alog.append(lg)
                    if k < G:
                        q = self.draft_law(lg)
                        u = torch.stack([U[r // M][k * M + r % M] for r in range(rows)])
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
            logits = tkv.feed(toks)
            start = torch.tensor([len(t) - 1 - budget[r // M] for r, t in enumerate(toks)])
            idx = start[:, None] + torch.arange(G + 1)[None, :]
            idx = torch.minimum(idx, torch.tensor(logits.shape[1] - 1))
            tl = torch.gather(logits.detach().cpu(), 1,
                              idx[:, :, None].expand(rows, G + 1, logits.shape[2]))
            if self.contrast is not None:
                am = amateur
                if am.shape[1] < G + 1:  # pragma: no cover - contrast always drafts G+1
                    raise RuntimeError("missing amateur logits")
                P = self.target_law(tl, am[:, :G + 1])
            else:
                P = self.target_law(tl, None)
            # ---- the rule on the whole block at once, then verification prompt by prompt
            U = torch.stack(U).numpy()  # (nA, 2 gamma M + 2)
            row_u = np.repeat(np.arange(nA), M)
            parts = _Parts(self, P, Q, Qrule, G, U[row_u, -2], U[row_u, -1])
            Dn = D.numpy()
            select = []
            t_drop, d_drop = [], []
            for i, b in enumerate(active):
                calls[b] += 1
                drafted[b] += budget[i]
                emitted, n_acc, src, done = self._verify(
                    b, i, budget[i], Dn, parts, U[i], out, recs, calls[b], blocks[b])
                blocks[b] += 1
                seqs[b].extend(emitted)
                if done:
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

    def _verify(self, b, i, g, D, parts, u, out, recs, calls, block):
        """Verify prompt ``b``'s block (``i``-th active); returns (emitted tokens, accepted
        drafts, a sub-row carrying the accepted prefix, finished)."""
        M, gamma = self.M, self.gamma
        ua = u[gamma * M:2 * gamma * M]
        alive = list(range(M))
        emitted = []
        base = i * M

        def emit(tok, kind, k, r0, draft_index=None, m=None):
            rec = make_record(b, len(out[b]), tok, kind, block, k, calls,
                              parts.ent_p[r0, k], draft_index=draft_index)
            if m is not None:
                pm = parts.get(m)
                rec["tv"] = float(parts.tv[r0, k])
                rec["entropy_q"] = float(parts.ent_q[r0, k])
                rec["rejection_prob"] = float(pm.rej[r0, k])
            out[b].append(int(tok))
            recs[b].append(rec)
            emitted.append(int(tok))
            return self._done(b, out)

        for k in range(g):
            m = len(alive)
            pm = parts.get(m)  # rule.with_drafts(m) on every row and position
            r0 = base + alive[0]
            xs = [int(D[base + j, k]) for j in alive]
            for x in xs:
                if not parts.q_drawn[r0, k, x] > 0:
                    raise RuntimeError(
                        f"draft token {x} has q(x)=0 under the law it was drawn from: q is not "
                        "the draft's sampling law (engine bug)")
            accepted = None
            for j, x in enumerate(xs):
                if ua[k * M + j] < pm.a[r0, k, j, x]:
                    accepted = j
                    break
            if accepted is None:
                done = emit(pm.res_tok[r0, k], "recovered", k, r0, None, m)
                return emitted, k, alive[0], done
            x = xs[accepted]
            done = emit(x, "accepted", k, r0, alive[accepted], m)
            if self.batch == "tree":
                alive = [j for j in alive if int(D[base + j, k]) == x]
            else:
                alive = [alive[accepted]]
            if done:
                return emitted, k + 1, alive[0], True
        # all g drafts accepted: bonus (a zero-draft block emits a plain target token)
        r0 = base + alive[0]
        done = emit(parts.bonus_tok[r0, g], "bonus" if g > 0 else "plain", g, r0)
        return emitted, g, alive[0], done


class _RuleParts:
    __slots__ = ("a", "res_tok", "rej")


class _Parts:
    """The rule evaluated once per block on the engine's tensors: ``rule.with_drafts(m)``'s
    acceptances ``(rows, G, m, V)``, recovered tokens (residual drawn with each row's residual
    uniform) and rejection probabilities, for each ``m`` needed; bonus tokens, TV and entropies.

    One residual uniform and one bonus uniform per row and block serve every position: a block
    emits at most one recovered or bonus token, at its first rejection or at its end.
    """

    def __init__(self, engine, P, Q, Qrule, G, ur, ub):
        self.rule, self.P, self.Qrule, self.G = engine.rule, P, Qrule, G
        self.ur = torch.as_tensor(ur)
        rows = P.shape[0]
        self.q_drawn = Q.numpy()
        bonus = self.rule.bonus(P)  # (rows, G+1, V)
        ubr = torch.as_tensor(ub)[:, None].expand(rows, G + 1).contiguous()
        self.bonus_tok = _laws.draw(bonus, ubr).numpy()
        self.ent_p = _entropy(P).numpy()
        if G > 0:
            Pg = P[:, :G]
            self.tv = (0.5 * (Pg - Q).abs().sum(-1)).numpy()
            self.ent_q = _entropy(Q).numpy()
        self._by_m = {}

    def get(self, m):
        got = self._by_m.get(m)
        if got is None:
            rule = self.rule.with_drafts(m)
            p, q = self.P[:, :self.G], self.Qrule
            got = _RuleParts()
            got.a = rule.acceptances(p, q).numpy()
            res = rule.residual(p, q)
            u = self.ur[:, None].expand(p.shape[0], self.G).contiguous()
            got.res_tok = _laws.draw(res, u).numpy()
            got.rej = rejection_prob(rule, p, q).numpy()
            self._by_m[m] = got
        return got


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
