"""Drafts that share the target's tokenizer: early exit, tuned lens, re-quantised, n-gram, a model.

``make_draft(target, spec)`` returns an :class:`~real_models.lm.LM` whose ``model`` is a real
transformers ``PreTrainedModel`` of the target's class (so HF assisted generation can use it as
``assistant_model``), or an :class:`NGramDraft` for prompt lookup:

``"early-exit:k"``  the target's first k decoder layers, its final norm and its head. The modules
                    are the target's own (shared, not copied): no extra weight memory.
``"lens:k"``        early exit plus an affine adapter between the final norm and the head (a tuned
                    lens), fitted by ridge regression of the target's head input on the draft's, on
                    text the target itself samples; cached on disk keyed by target, k and settings.
``"quant:b"``       a copy of the target with every linear and embedding weight re-quantised to b
                    bits group-wise (affine by default; ``"quant:b:sym"``, ``"quant:b:g64"`` pick
                    symmetric levels and the group size) and dequantised back to the target dtype.
``"ngram:n"``       prompt lookup: continue the longest suffix n-gram (n down to 1) seen earlier in
                    the context; q is the point mass on each proposed token.
an ``LM``           another model with the same tokenizer (a different tokenizer is refused).
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import re
from dataclasses import dataclass, field

from real_models.cache_dir import atomic_file, cache_root, say
from real_models.lm import LM

__all__ = ["NGramDraft", "make_draft", "quantize_groupwise", "early_exit_model"]

_SPEC = re.compile(r"^(early-exit|lens|quant|ngram):(\d+)((?::[a-z0-9]+)*)$")
_FORMS = '"early-exit:k", "lens:k", "quant:b" (optionally ":sym", ":gG"), "ngram:n", or an LM'


# --------------------------------------------------------------------------- n-gram prompt lookup


@dataclass(frozen=True)
class NGramDraft:
    """Prompt-lookup draft: propose the continuation of the longest earlier suffix match.

    Parameters
    ----------
    n : int
        Longest n-gram tried; matches of length n, n-1, ..., 1 are tried in turn.
    vocab_size : int or None
        The target's vocabulary size (for the engine's point-mass q), if known.

    Notes
    -----
    Among earlier occurrences of the matched suffix the most recent is used (HF's prompt lookup
    takes the first). The proposal is deterministic, so the law it was drawn from is the point
    mass q(x) = 1 on each proposed token.
    """

    n: int
    vocab_size: int | None = None
    name: str = ""
    info: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n={self.n!r} must be an integer >= 1")
        if not self.name:
            object.__setattr__(self, "name", f"ngram:{self.n}")

    def propose(self, context, k: int) -> list[int]:
        """Up to ``k`` tokens continuing the longest suffix n-gram match found earlier in context.

        Parameters
        ----------
        context : sequence of int
            Token ids so far (prompt and generated tokens).
        k : int
            Most tokens to propose (gamma).

        Returns
        -------
        list of int
            0..k tokens; empty when no suffix of length 1..n occurs earlier with a continuation.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"k={k!r} must be an integer >= 0")
        ctx = [int(t) for t in context]
        L = len(ctx)
        if k == 0 or L < 2:
            return []
        for m in range(min(self.n, L - 1), 0, -1):
            suffix = ctx[L - m:]
            for i in range(L - m - 1, -1, -1):  # most recent occurrence with a continuation
                if ctx[i:i + m] == suffix:
                    return ctx[i + m:i + m + k]
        return []

    def __repr__(self) -> str:
        return f"NGramDraft(n={self.n})"


# --------------------------------------------------------------------------- helpers


def _base(model):
    """The decoder inside a causal LM and the name of its layer list."""
    import torch

    base = getattr(model, model.base_model_prefix, None)
    if base is None:
        raise ValueError(f"cannot find the decoder of {type(model).__name__}")
    n_layers = model.config.num_hidden_layers
    for name, child in base.named_children():
        if isinstance(child, torch.nn.ModuleList) and len(child) == n_layers:
            return base, name
    raise ValueError(f"cannot find the decoder layers of {type(model).__name__}")


def _truncated_config(config, k: int):
    L = config.num_hidden_layers
    cfg = copy.deepcopy(config)
    for key, val in list(vars(cfg).items()):
        if isinstance(val, list) and len(val) == L and key.startswith("layer"):
            setattr(cfg, key, val[:k])  # e.g. Gemma 3's layer_types
    cfg.num_hidden_layers = k
    return cfg


def _meta_leftovers(model) -> list[str]:
    return [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]


def early_exit_model(target_model, k: int):
    """A model of the target's class running its first ``k`` layers, final norm and head.

    Every module is the target's own object (weights shared, nothing copied).
    """
    import torch

    L = target_model.config.num_hidden_layers
    if not 1 <= k <= L:
        raise ValueError(f"k={k} must be in 1..{L} (the target's number of layers)")
    tbase, layers_name = _base(target_model)
    with torch.device("meta"):
        draft = type(target_model)(_truncated_config(target_model.config, k))
    dbase = getattr(draft, draft.base_model_prefix)
    for name, _ in list(dbase.named_children()):
        if name == layers_name:
            setattr(dbase, name, torch.nn.ModuleList(getattr(tbase, name)[:k]))
        else:
            setattr(dbase, name, getattr(tbase, name))
    for name, _ in list(draft.named_children()):
        if name != draft.base_model_prefix:
            setattr(draft, name, getattr(target_model, name))
    left = _meta_leftovers(draft)
    if left:
        raise ValueError(f"early exit of {type(target_model).__name__}: unshared tensors {left[:4]}")
    draft.generation_config = copy.deepcopy(target_model.generation_config)
    draft.eval()
    return draft


def _copy_with(target_model, replace: dict):
    """A fresh model of the target's class holding the target's tensors, some replaced.

    Built on the meta device and filled by assignment (no ``deepcopy``: it would keep forward
    hooks, e.g. accelerate's, on the copy).
    """
    import torch

    with torch.device("meta"):
        draft = type(target_model)(copy.deepcopy(target_model.config))
    state = {n: replace.get(n, t).detach().clone() for n, t in target_model.state_dict().items()}
    draft.load_state_dict(state, strict=False, assign=True)
    own = dict(target_model.named_buffers())
    for name, buf in list(draft.named_buffers()):
        if buf.is_meta:  # non-persistent buffers (rotary frequencies) are not in the state dict
            mod_name, _, leaf = name.rpartition(".")
            draft.get_submodule(mod_name)._buffers[leaf] = own[name].clone()
    if getattr(draft.config, "tie_word_embeddings", False):
        draft.tie_weights()
    left = _meta_leftovers(draft)
    if left:
        raise ValueError(f"copy of {type(target_model).__name__}: tensors not filled {left[:4]}")
    draft.generation_config = copy.deepcopy(target_model.generation_config)
    draft.eval()
    return draft


def _fingerprint(model) -> str:
    """sha256 of the parameter names, shapes, dtypes and a strided sample of their values."""
    import torch

    h = hashlib.sha256(type(model).__name__.encode())
    for name, prm in sorted(model.state_dict().items()):
        h.update(f"{name}{tuple(prm.shape)}{prm.dtype}".encode())
        flat = prm.detach().reshape(-1)
        step = max(1, flat.numel() // 4096)
        h.update(flat[::step].to(torch.float64).cpu().numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- quantisation


def quantize_groupwise(weight, bits: int, group_size: int = 32, symmetric: bool = False):
    """Round a weight matrix to ``bits`` bits per weight in groups along its last axis.

    Affine (default): each group of ``group_size`` consecutive weights is mapped to the
    ``2**bits`` levels ``lo + j * (hi - lo) / (2**bits - 1)`` spanning its min and max.
    Symmetric: levels ``j * max|w| / (2**(bits-1) - 1)``, j in -(2**(bits-1) - 1) ..
    2**(bits-1) - 1 (needs bits >= 2). Returns the dequantised weight (same shape and dtype).
    """
    import torch

    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"bits={bits!r} must be an integer in 1..16")
    if symmetric and bits < 2:
        raise ValueError("symmetric quantisation needs bits >= 2")
    if group_size < 1:
        raise ValueError(f"group_size={group_size!r} must be >= 1")
    w = weight.detach().to(torch.float64 if weight.dtype == torch.float64 else torch.float32)
    shape = w.shape
    rows = w.reshape(-1, shape[-1])
    pad = (-shape[-1]) % group_size
    if pad:  # pad each row with copies of its last weight: they do not widen the group range
        rows = torch.cat([rows, rows[:, -1:].expand(-1, pad)], dim=1)
    g = rows.reshape(rows.shape[0], -1, group_size)
    if symmetric:
        top = 2 ** (bits - 1) - 1
        scale = g.abs().amax(-1, keepdim=True) / top
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        deq = torch.clamp(torch.round(g / safe), -top, top) * scale
    else:
        lo = g.amin(-1, keepdim=True)
        hi = g.amax(-1, keepdim=True)
        scale = (hi - lo) / (2 ** bits - 1)
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        deq = torch.clamp(torch.round((g - lo) / safe), 0, 2 ** bits - 1) * scale + lo
    deq = deq.reshape(rows.shape[0], -1)[:, :shape[-1]].reshape(shape)
    return deq.to(weight.dtype)


def _quant_model(target_model, bits: int, group_size: int, symmetric: bool):
    import torch

    replace = {}
    done = {}
    for mod_name, mod in target_model.named_modules():
        if isinstance(mod, (torch.nn.Linear, torch.nn.Embedding)):
            w = mod.weight
            key = w.data_ptr()
            if key not in done:  # tied weights are quantised once
                done[key] = quantize_groupwise(w, bits, group_size, symmetric)
            replace[f"{mod_name}.weight" if mod_name else "weight"] = done[key]
    return _copy_with(target_model, replace)


# --------------------------------------------------------------------------- tuned lens


def _lens_head_class():
    import torch

    class LensHead(torch.nn.Module):
        """``head(adapter(x))``: the affine lens adapter in front of the (shared) output head."""

        def __init__(self, adapter, head):
            super().__init__()
            self.adapter = adapter
            self.head = head

        @property
        def weight(self):
            return self.head.weight

        def forward(self, x):
            return self.head(self.adapter(x))

    return LensHead


def _self_text(target: LM, n_seq: int, n_tokens: int, seed: int):
    """``(n_seq, T)`` token ids: short prompts continued by the target's own samples (T = 1)."""
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    model = target.model
    tok = target.tokenizer
    starts = ["The", "In 1998,", "Once upon a time", "def main():", "The results show that",
              "Dear", "Question:", "import numpy as np", "Chapter 1", "According to the",
              "Here is a list of", "She said", "The following", "It was", "Water is", "We"]
    if tok is not None:
        enc = [tok(s).input_ids for s in starts]
        width = min(len(e) for e in enc)
        prompt = torch.tensor([enc[i % len(enc)][:width] for i in range(n_seq)])
        if n_seq > len(starts):  # vary the repeated prompts' last token
            prompt[len(starts):, -1] = torch.randint(target.vocab_size, (n_seq - len(starts),),
                                                     generator=gen)
    else:
        prompt = torch.randint(target.vocab_size, (n_seq, 2), generator=gen)
    ids = prompt.to(target.device)
    past = None
    step = ids
    out = [ids]
    # transformers 5.x renamed past_key_values to cache (the old name warns)
    kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    with torch.no_grad():
        for _ in range(n_tokens):
            res = model(input_ids=step, use_cache=True, **{kw: past})
            past = getattr(res, kw)
            probs = torch.softmax(res.logits[:, -1].to(torch.float64), -1).cpu()
            step = torch.multinomial(probs, 1, generator=gen).to(target.device)
            out.append(step)
    return torch.cat(out, dim=1), prompt.shape[1]


def head_inputs(model, ids):
    """The tensor entering ``model``'s output head for every position of ``ids`` (float64)."""
    import torch

    got = []
    head = model.get_output_embeddings()
    handle = head.register_forward_pre_hook(lambda mod, args: got.append(args[0].detach()))
    try:
        with torch.no_grad():
            model(input_ids=ids, use_cache=False, logits_to_keep=0)
    finally:
        handle.remove()
    return got[0].to(torch.float64)


def _fit_lens(target: LM, draft_model, k: int, n_seq: int, n_tokens: int, ridge: float,
              seed: int):
    """Ridge fit of the target's head input Y on the early-exit head input X (toward identity)."""
    import torch

    ids, n_prompt = _self_text(target, n_seq, n_tokens, seed)
    X = head_inputs(draft_model, ids)[:, n_prompt - 1:].reshape(-1, draft_model.config.hidden_size)
    Y = head_inputs(target.model, ids)[:, n_prompt - 1:].reshape(-1, X.shape[1])
    d = X.shape[1]
    X1 = torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)], 1)
    G = X1.T @ X1
    lam = ridge * torch.trace(G[:d, :d]) / d
    D = torch.eye(d + 1, dtype=X.dtype, device=X.device)
    D[d, d] = 0.0  # the bias is not penalised
    W0 = torch.zeros(d + 1, d, dtype=X.dtype, device=X.device)
    W0[:d] = torch.eye(d, dtype=X.dtype, device=X.device)
    W = torch.linalg.solve(G + lam * D, X1.T @ Y + lam * D @ W0)
    resid = X1 @ W - Y
    stats = {"samples": int(X.shape[0]), "train_mse": float(resid.pow(2).mean()),
             "identity_train_mse": float((X - Y).pow(2).mean())}
    return W[:d].T.contiguous(), W[d].contiguous(), stats


def _lens_model(target: LM, k: int, *, n_seq: int, n_tokens: int, ridge: float, seed: int,
                use_cache: bool):
    import torch
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    draft = early_exit_model(target.model, k)
    settings = {"k": k, "sequences": n_seq, "tokens": n_tokens, "ridge": ridge, "seed": seed,
                "version": 1}
    key = hashlib.sha256(json.dumps([_fingerprint(target.model), settings]).encode()).hexdigest()
    path = cache_root() / "lens" / f"{key[:32]}.safetensors"
    stats = None
    if use_cache and path.is_file():
        tensors = st_load(path.read_bytes())
        A, b = tensors["weight"], tensors["bias"]
        stats = {"cached": str(path)}
    else:
        say(f"fitting lens:{k} for {target.name} on {n_seq}x{n_tokens} self-generated tokens")
        A, b, stats = _fit_lens(target, draft, k, n_seq, n_tokens, ridge, seed)
        if use_cache:
            with atomic_file(path) as fh:
                fh.write(st_save({"weight": A.cpu(), "bias": b.cpu()},
                                 metadata={"settings": json.dumps(settings),
                                           "target": target.name}))
            stats["cached"] = str(path)
    head = draft.get_output_embeddings()
    hd = head.weight
    adapter = torch.nn.Linear(A.shape[1], A.shape[0], bias=True, dtype=hd.dtype, device=hd.device)
    with torch.no_grad():
        adapter.weight.copy_(A.to(hd.dtype))
        adapter.bias.copy_(b.to(hd.dtype))
    adapter.requires_grad_(False)
    draft.set_output_embeddings(_lens_head_class()(adapter, head))
    return draft, {**settings, **stats}


# --------------------------------------------------------------------------- the entry point


def _check_same_tokenizer(target: LM, other: LM) -> None:
    ta, tb = target.tokenizer, other.tokenizer
    if (ta is None) != (tb is None):
        same = False
    elif ta is None:
        same = True
    else:
        same = (ta.get_vocab() == tb.get_vocab()
                and ta.bos_token_id == tb.bos_token_id and ta.eos_token_id == tb.eos_token_id)
    if not same:
        raise ValueError(f"draft {other.name!r} does not share the tokenizer of target "
                         f"{target.name!r}: a draft must use the target's tokenizer")
    if other.vocab_size != target.vocab_size:
        raise ValueError(f"draft {other.name!r} has {other.vocab_size} logits, target "
                         f"{target.name!r} has {target.vocab_size}: the laws must share a vocabulary")


def make_draft(target: LM, spec, *, group_size: int = 32, lens_sequences: int = 16,
               lens_tokens: int = 128, ridge: float = 1e-2, seed: int = 0,
               cache: bool = True):
    """A draft for ``target``: an LM (a real ``PreTrainedModel`` inside) or an NGramDraft.

    Parameters
    ----------
    target : LM
        The target model.
    spec : str or LM
        ``"early-exit:k"``, ``"lens:k"``, ``"quant:b"`` (``"quant:b:sym"``, ``"quant:b:g64"``),
        ``"ngram:n"``, or another LM with the same tokenizer.
    group_size : int
        Quantisation group size for ``quant`` (overridden by ``:gG`` in the spec).
    lens_sequences, lens_tokens, ridge, seed : int, int, float, int
        Lens fit: number and length of the self-generated sequences, ridge strength (relative,
        toward the identity map), sampling seed.
    cache : bool
        Read and write fitted lenses under ``<cache>/lens`` (key: target weights, k, settings).

    Raises
    ------
    ValueError
        A bad spec, k outside 1..layers, bits outside 1..16, or a different tokenizer.
    """
    if not isinstance(target, LM):
        raise TypeError(f"target must be a real_models.LM, got {type(target).__name__}")
    if isinstance(spec, LM):
        _check_same_tokenizer(target, spec)
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a str or an LM, got {type(spec).__name__}")
    m = _SPEC.match(spec.strip())
    if m is None:
        raise ValueError(f"spec={spec!r} is not one of {_FORMS}")
    kind, num, opts = m.group(1), int(m.group(2)), [o for o in m.group(3).split(":") if o]
    if opts and kind != "quant":
        raise ValueError(f"spec={spec!r}: options {opts} are only for quant:b")
    name = f"{spec} of {target.name}"
    info = {"spec": spec, "target": target.name}
    if kind == "ngram":
        if num < 1:
            raise ValueError(f"spec={spec!r}: n must be >= 1")
        return NGramDraft(num, vocab_size=target.vocab_size, name=name, info=info)
    L = target.model.config.num_hidden_layers
    if kind in ("early-exit", "lens"):
        if not 1 <= num <= L:
            raise ValueError(f"spec={spec!r}: k must be in 1..{L} (layers of {target.name})")
        if kind == "early-exit":
            model = early_exit_model(target.model, num)
        else:
            model, lens = _lens_model(target, num, n_seq=lens_sequences, n_tokens=lens_tokens,
                                      ridge=ridge, seed=seed, use_cache=cache)
            info["lens"] = lens
        info.update(layers=num, shared_weights=True)
    else:
        symmetric = False
        for o in opts:
            if o in ("sym", "affine"):
                symmetric = o == "sym"
            elif re.fullmatch(r"g\d+", o) and int(o[1:]) >= 1:
                group_size = int(o[1:])
            else:
                raise ValueError(f"spec={spec!r}: unknown quant option {o!r} (sym, affine, gG)")
        if not 1 <= num <= 16:
            raise ValueError(f"spec={spec!r}: bits must be in 1..16")
        if symmetric and num < 2:
            raise ValueError(f"spec={spec!r}: symmetric quantisation needs bits >= 2")
        model = _quant_model(target.model, num, group_size, symmetric)
        info.update(bits=num, group_size=group_size, symmetric=symmetric)
    return LM(model=model, tokenizer=target.tokenizer, name=name, device=target.device,
              vocab_size=target.vocab_size, info=info)
