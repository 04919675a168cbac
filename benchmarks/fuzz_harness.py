"""Count how public functions answer hostile input (issue 8).

Every case calls one public function on one hostile or edge input and is sorted into:

``clear``    a ValueError/TypeError whose message names the offending argument
``correct``  a returned value that agrees with an independent float64 reference
``wrong``    a returned value that is NaN, out of range, or disagrees with the reference
``hang``     more than ``--timeout`` seconds, or a MemoryError under the address-space limit
``unclear``  any other exception, or a ValueError/TypeError that does not name the argument

Usage: ``python benchmarks/fuzz_harness.py [--timeout 5] [--mem-gb 6] [--verbose]``. Prints a
table per function and the totals; ``--verbose`` lists every non-clear, non-correct case.

Measured on 2026-12-02 (1,172 cases; clear / correct / wrong / hang / unclear):
main at b6838a8, before issue 8's fixes: 652 / 381 / 26 / 7 / 106;
after (branch wt-e): 695 / 477 / 0 / 0 / 0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import resource
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

OUTCOMES = ("clear", "correct", "wrong", "hang", "unclear")


class Case:
    def __init__(self, fn, label, thunk, args, check=None):
        self.fn, self.label, self.thunk, self.args, self.check = fn, label, thunk, args, check


def _np(x):
    if hasattr(x, "detach"):
        import torch

        return x.detach().to(torch.float64).cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def lib_ref(f, pa):
    """A reference from the library itself on clean float64 rows (empty batch: empty result)."""
    if pa.size == 0:
        return np.zeros(pa.shape[:-1])
    return _np(f())


def close(ref, tol=1e-6):
    def check(out):
        o = _np(out if not isinstance(out, tuple) else out[0])
        r = np.asarray(ref, dtype=np.float64)
        return o.shape == r.shape and bool(np.all(np.isfinite(o) == np.isfinite(r))) and \
            bool(np.allclose(o, r, atol=tol, rtol=0, equal_nan=False))
    return check


# ---------------------------------------------------------------------------------------------
# hostile inputs


def prob_inputs():
    """(label, value, reference float64 row or None if the input must be rejected)."""
    import torch

    p = np.array([0.5, 0.3, 0.2])
    out = [
        ("valid f64", p, p),
        ("list", [0.5, 0.3, 0.2], p),
        ("f32", p.astype(np.float32), p.astype(np.float32).astype(np.float64)),
        ("f16", p.astype(np.float16), p.astype(np.float16).astype(np.float64)),
        ("torch f64", torch.tensor(p), p),
        ("torch f32", torch.tensor(p, dtype=torch.float32), p),
        ("torch f16", torch.tensor(p, dtype=torch.float16), p),
        ("torch bf16", torch.tensor(p, dtype=torch.bfloat16), p),
        ("off 1e-9", p + np.array([1e-9, 0, 0]), p),
        ("off 1e-3", p + np.array([1e-3, 0, 0]), None),
        ("NaN", np.array([0.5, np.nan, 0.5]), None),
        ("inf", np.array([0.5, np.inf, 0.5]), None),
        ("negative", np.array([0.6, -0.1, 0.5]), None),
        ("empty vocab", np.zeros(0), None),
        ("scalar", np.float64(1.0), None),
        ("string", "abc", None),
        ("None", None, None),
        ("complex", p.astype(np.complex128), None),
        ("2-row batch", np.stack([p, p]), np.stack([p, p])),
        ("empty batch (0,3)", np.zeros((0, 3)), np.zeros((0, 3))),
        ("f32 row off 3e-7", (p + np.array([3e-7, 0, 0])).astype(np.float32), p),
        ("f16 row off 5e-4", np.array([0.5, 0.3, 0.2005], dtype=np.float16), p),
    ]
    return out


def draft_for(p_label, p):
    """A draft of the same kind and shape as a valid target ``p`` input."""
    q = np.array([0.2, 0.3, 0.5])
    try:
        import torch

        if isinstance(p, torch.Tensor):
            return torch.tensor(q, dtype=p.dtype)
    except ImportError:
        pass
    if isinstance(p, list):
        return list(q)
    arr = np.asarray(p)
    if arr.dtype.kind == "f" and arr.ndim >= 1 and arr.shape[-1] == 3:
        return np.broadcast_to(q.astype(arr.dtype), arr.shape).copy()
    return q


Q = np.array([0.2, 0.3, 0.5])


def _tol(label):
    """Agreement expected of a result computed from inputs of the labelled precision."""
    if "bf16" in label:
        return 1e-2
    if "f16" in label:
        return 2e-3
    if "f32" in label:
        return 1e-5
    return 1e-6


def ref_tv(p, q):
    return 0.5 * np.abs(p - q).sum(-1)


def prob_cases():
    from scdsim import rules
    from scdsim.distributions import entropy, overlap, residual, tv
    from scdsim.exact import lp

    cases = []
    for label, p, ref in prob_inputs():
        q = draft_for(label, p)
        qref = np.broadcast_to(Q, ref.shape) if ref is not None else None
        # each function with p hostile (q benign) and q hostile (p benign)
        for side in ("target", "draft"):
            a, b = (p, q) if side == "target" else (draft_for(label, p), p)
            ra, rb = (ref, qref) if side == "target" else (qref, ref)
            if ref is not None and side == "draft":
                ra = np.broadcast_to(Q, ref.shape)
            ok = ref is not None
            norm = (lambda r: r / r.sum(-1, keepdims=True)) if ok else None

            tol = _tol(label)

            def add(fn, thunk, refval, args=(side,), tol=tol, side=side, label=label, ok=ok):
                cases.append(Case(fn, f"{side} {label}", thunk, args,
                                  close(refval, tol) if ok and refval is not None else None))

            if ok:
                pa, pb = norm(ra), norm(rb)
                rtv = ref_tv(pa, pb)
                pos = np.clip(pa - pb, 0, None)
                res = pos / pos.sum(-1, keepdims=True)
            else:
                rtv = res = pa = pb = None
            add("tv", lambda a=a, b=b: tv(a, b), rtv)
            add("overlap", lambda a=a, b=b: overlap(a, b), None if rtv is None else 1 - rtv)
            add("residual", lambda a=a, b=b: residual(a, b), res)
            if side == "target":
                ent = None if not ok else -(pa * np.log(np.where(pa > 0, pa, 1))).sum(-1)
                cases.append(Case("entropy", label, lambda a=a: entropy(a), ("probs",),
                                  close(ent, tol) if ok else None))
            add("rejection_lower_bound", lambda a=a, b=b: lp.rejection_lower_bound(a, b), rtv)
            single = ok and np.ndim(ra) == 1
            add("pareto_front", lambda a=a, b=b: lp.pareto_front(a, b, n=5).bias,
                np.maximum(0.0, rtv - lp._rejection_grid(float(rtv), 5)) if single else None)
            add("minimum_bias", lambda a=a, b=b: lp.minimum_bias(a, b, 0.1),
                max(0.0, float(rtv) - 0.1) if single else None)
            add("optimal_acceptance_lp M=1", lambda a=a, b=b: lp.optimal_acceptance_lp(a, b, 1),
                None if rtv is None else 1 - rtv)
            if ok:
                # recursive(2) acceptance on (pa, pb), a reference written out here
                r1 = np.clip(pa - pb, 0, None)
                rho1 = r1.sum(-1, keepdims=True)
                p2 = r1 / np.where(rho1 > 0, rho1, 1)
                rho2 = 1 - np.minimum(p2, pb).sum(-1, keepdims=True)
                rec2 = 1 - (rho1 * rho2)[..., 0]
            add("acceptance_prob recursive(2)",
                lambda a=a, b=b: rules.acceptance_prob(rules.recursive(2), a, b),
                rec2 if ok else None)
            add("acceptance_prob kseq(2)",
                lambda a=a, b=b: rules.acceptance_prob(rules.kseq(2), a, b),
                None if not ok else lib_ref(lambda pa=pa, pb=pb: rules.acceptance_prob(rules.kseq(2), pa, pb), pa))
            add("acceptance_prob optimal(2)",
                lambda a=a, b=b: rules.acceptance_prob(rules.optimal(2), a, b),
                None if not ok else lib_ref(lambda pa=pa, pb=pb: rules.acceptance_prob(rules.optimal(2), pa, pb), pa))
            add("optimal_acceptance_lp M=2", lambda a=a, b=b: lp.optimal_acceptance_lp(a, b, 2),
                None if not ok else lib_ref(lambda pa=pa, pb=pb: rules.acceptance_prob(rules.optimal(2), pa, pb), pa))
            add("front_gap", lambda a=a, b=b: lp.front_gap(rules.lossless, a, b).gap,
                None if not ok else np.zeros(np.shape(pa)[:-1]))
    # lp-specific sizes
    cases.append(Case("pareto_front", "n=10**5", lambda: lp.pareto_front(Q[::-1], Q, n=10**5),
                      ("n",)))
    cases.append(Case("pareto_front", "n=True", lambda: lp.pareto_front(Q[::-1], Q, n=True),
                      ("n",)))
    cases.append(Case("pareto_front", "batch (2,3)",
                      lambda: lp.pareto_front(np.stack([Q, Q]), np.stack([Q, Q])),
                      ("target", "draft")))
    cases.append(Case("optimal_acceptance_lp", "M=0", lambda: lp.optimal_acceptance_lp(Q, Q, 0),
                      ("M",)))
    cases.append(Case("optimal_acceptance_lp", "V=200 M=3",
                      lambda: lp.optimal_acceptance_lp(np.full(200, 1 / 200), np.full(200, 1 / 200), 3),
                      ("M", "V")))
    rng = np.random.default_rng(0)
    for k in range(6):
        pr = rng.dirichlet(np.ones(6)).astype(np.float32)
        qr = rng.dirichlet(np.ones(6)).astype(np.float32)
        ref = _np(rules.acceptance_prob(rules.optimal(2), pr.astype(np.float64) / pr.astype(np.float64).sum(),
                                         qr.astype(np.float64) / qr.astype(np.float64).sum()))
        cases.append(Case("optimal_acceptance_lp M=2", f"random f32 #{k}",
                          lambda pr=pr, qr=qr: lp.optimal_acceptance_lp(pr, qr, 2),
                          ("target", "draft"), close(ref, 1e-6)))
    return cases


def logit_cases():
    import torch

    from scdsim import contrast
    from scdsim.distributions import log_softmax, positive_part_normalised, softmax, warp

    def ref_softmax(x, t=1.0):
        x = np.asarray(x, dtype=np.float64)
        m = x.max(-1, keepdims=True)
        z = (x - m) / t
        e = np.exp(z)
        return e / e.sum(-1, keepdims=True)

    cases = []
    logits = [
        ("valid", np.array([1.0, 2.0, 0.5]), True),
        ("masked -inf", np.array([1.0, -np.inf, 0.5]), True),
        ("huge 1e308", np.array([1e308, 0.0, -1e308]), True),
        ("f32", np.array([1.0, 2.0, 0.5], dtype=np.float32), True),
        ("torch bf16", torch.tensor([1.0, 2.0, 0.5], dtype=torch.bfloat16), True),
        ("NaN", np.array([1.0, np.nan, 0.5]), False),
        ("+inf", np.array([1.0, np.inf, 0.5]), False),
        ("all -inf", np.array([-np.inf, -np.inf]), False),
        ("empty", np.zeros(0), False),
        ("string", "x", False),
        ("empty batch", np.zeros((0, 3)), True),
    ]
    temps = [1.0, 0.5, 1e-3, 1e-320, 1e300, 0.0, -1.0, math.nan, math.inf, True]
    for label, x, ok in logits:
        xr = _np(x) if ok else None
        sm = ref_softmax(xr) if ok else None
        tol = _tol(label)
        cases.append(Case("softmax", label, lambda x=x: softmax(x), ("logits",),
                          close(sm, tol) if ok else None))
        lsm = None
        if ok:
            with np.errstate(over="ignore", invalid="ignore"):
                zz = xr - (xr.max(-1, keepdims=True) if xr.size else 0)
                lsm = zz - np.log(np.exp(zz).sum(-1, keepdims=True))
        cases.append(Case("log_softmax", label, lambda x=x: log_softmax(x), ("logits",),
                          close(lsm, tol) if ok else None))
        for t in temps:
            tok = ok and isinstance(t, float) and math.isfinite(t) and t > 0
            ref = None
            if tok:
                if t < 1e-300:
                    # the limit of softmax(x / t) as t -> 0+: uniform over the argmax set
                    mx = (xr == xr.max(-1, keepdims=True)).astype(float)
                    ref = mx / mx.sum(-1, keepdims=True)
                else:
                    with np.errstate(over="ignore", invalid="ignore"):
                        ref = ref_softmax(xr, t)
            if ok and t == 0.0:
                ref = (np.arange(xr.shape[-1]) == xr.argmax(-1)[..., None]).astype(float) \
                    if xr.size else np.zeros((0, 3))
            args = ("temperature",) if ok else ("logits", "temperature")
            cases.append(Case("warp", f"{label} T={t}", lambda x=x, t=t: warp(x, temperature=t),
                              args, close(ref, tol) if ref is not None else None))
        for kw, arg in (({"top_k": 0}, "top_k"), ({"top_p": 0.0}, "top_p"),
                        ({"epsilon": 1.0}, "epsilon"), ({"min_p": 2.0}, "min_p"),
                        ({"top_k": 1.5}, "top_k"), ({"epsilon": 0.9}, "epsilon")):
            valid_kw = ok and kw == {"epsilon": 0.9}
            cases.append(Case("warp", f"{label} {kw}", lambda x=x, kw=kw: warp(x, **kw),
                              (arg, "logits"),
                              (lambda out: bool(np.allclose(_np(out).sum(-1), 1)) and
                               bool(np.all(_np(out).max(-1) >= 0.9))) if valid_kw else
                              (lambda out: _np(out).size == 0) if (ok and label == "empty batch") else None))
    # contrastive
    e = np.array([2.0, 1.0, 0.0, -1.0])
    a = np.array([1.0, 2.0, 0.0, -1.0])
    for tau in (1.0, 0.5, 1e-3, 1e-30, 1e-300, 1e-320, 0.0, -1.0):
        ok = tau > 0
        ref = None
        if 0 < tau < 1e-3:
            ref = np.array([0.0, 0.0, 1.0, 0.0])  # the amateur's least likely plausible token
        if ok and tau >= 1e-3:
            ls_e = e - np.log(np.exp(e).sum())
            z = a / tau
            ls_a = z - z.max() - np.log(np.exp(z - z.max()).sum())
            mask = ls_e - ls_e.max() >= math.log(0.1)
            s = np.where(mask, 1.5 * ls_e - 0.5 * ls_a, -np.inf)
            ref = ref_softmax(s)
        cases.append(Case("contrastive", f"amateur_temperature={tau}",
                          lambda tau=tau: contrast.contrastive(e, a, amateur_temperature=tau),
                          ("amateur_temperature",), close(ref) if ref is not None else None))
    for label, x, ok in logits:
        cases.append(Case("contrastive", f"expert {label}",
                          lambda x=x: contrast.contrastive(x, np.zeros(np.shape(x)[-1:] if np.ndim(x) else 1)
                                                           if not hasattr(x, "dtype") or not hasattr(x, "detach")
                                                           else x.new_zeros(x.shape)),
                          ("expert_logits", "amateur_logits"),
                          (lambda out: bool(np.all(np.isfinite(_np(out).sum(-1)))) and
                           np.allclose(_np(out).sum(-1), 1, atol=1e-2)) if ok else None))
        cases.append(Case("plausible_set", f"{label}", lambda x=x: contrast.plausible_set(x),
                          ("expert_logits",),
                          (lambda out, xr=(_np(x) if ok else None): _np(out).shape == xr.shape and  # noqa: B008
                           bool(np.array_equal(_np(out), (xr >= xr.max(-1, keepdims=True) + math.log(0.1))
                                               if xr.size else np.zeros(xr.shape, bool))))
                          if ok else None))
    for pl in (-0.1, 1.1, math.nan):
        cases.append(Case("contrastive", f"plausibility={pl}",
                          lambda pl=pl: contrast.contrastive(e, a, plausibility=pl), ("plausibility",)))
    cases.append(Case("contrastive", "shape mismatch", lambda: contrast.contrastive(e, a[:3]),
                      ("expert_logits", "amateur_logits")))
    # positive_part_normalised
    for label, f, fb, ref in (
            ("valid", np.array([0.3, -0.2, 0.1]), np.array([1 / 3] * 3), np.array([0.75, 0, 0.25])),
            ("zero mass", np.array([0.0, -0.2, 0.0]), np.array([0.2, 0.3, 0.5]), np.array([0.2, 0.3, 0.5])),
            ("NaN", np.array([0.3, np.nan, 0.1]), np.array([1 / 3] * 3), None),
            ("inf", np.array([0.3, np.inf, 0.1]), np.array([1 / 3] * 3), None),
            ("NaN fallback", np.array([0.0, 0.0, 0.0]), np.array([np.nan, 0.5, 0.5]), None)):
        cases.append(Case("positive_part_normalised", label,
                          lambda f=f, fb=fb: positive_part_normalised(f, fb), ("f", "fallback"),
                          close(ref) if ref is not None else None))
    return cases


def cost_cases():
    from scdsim import cost

    def et(a, g):
        return g + 1.0 if a == 1 else (1 - a ** (g + 1)) / (1 - a)

    cases = []
    alphas = [(0.8, True), (0.0, True), (1.0, True), (math.nan, False), (-0.1, False), (1.1, False),
              (math.inf, False), (True, False), ("0.5", False), (None, False), (np.float32(0.5), True),
              (np.array([0.2, 0.8]), True), (np.array([0.2, np.nan]), False), (1 + 0j, False)]
    gammas = [(4, True), (0, True), (10**20, True), (2**70, True), (-1, False), (2.0, False),
              (True, False), (np.array([1, 2]), True), (math.nan, False), (np.int8(3), True)]
    for a, aok in alphas:
        for g, gok in gammas:
            ok = aok and gok
            ref = ref_sp = None
            if ok:
                A, G = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(g, dtype=object))
                ref = np.array([float(et(float(x), int(y))) if int(y) < 10**6 or float(x) < 1
                                else float(int(y) + 1) for x, y in zip(A.ravel(), G.ravel())]).reshape(A.shape)
                ref_sp = np.array([r / (int(y) * 0.1 + 1) for r, y in zip(ref.ravel(), G.ravel())]).reshape(A.shape)
                if np.asarray(a).shape and np.asarray(g).shape and np.asarray(a).shape != np.asarray(g).shape:
                    ok = False
            args = tuple(n for n, good in (("alpha", aok), ("gamma", gok)) if not good) or ("alpha", "gamma")
            cases.append(Case("expected_tokens", f"alpha={a!r} gamma={g!r}",
                              lambda a=a, g=g: cost.expected_tokens(a, g), args,
                              (lambda out, ref=ref: np.allclose(np.asarray(out, float), ref, rtol=1e-9)) if ok else None))
            cases.append(Case("speedup", f"alpha={a!r} gamma={g!r}",
                              lambda a=a, g=g: cost.speedup(a, g, 0.1), args,
                              (lambda out, ref=ref_sp: np.allclose(np.asarray(out, float), ref, rtol=1e-9)) if ok else None))
    cases.append(Case("speedup", "shape mismatch (2,) (3,)",
                      lambda: cost.speedup(np.array([0.1, 0.2]), np.array([1, 2, 3]), 0.1), ("alpha", "gamma")))
    cases.append(Case("operations", "gamma=1e20 int", lambda: cost.operations(0.5, 10**20, 0.1), ("gamma",),
                      lambda out: math.isfinite(out) or out == math.inf))
    for c in (math.nan, -1.0, math.inf, "x"):
        cases.append(Case("speedup", f"c={c!r}", lambda c=c: cost.speedup(0.5, 3, c), ("c",)))
        cases.append(Case("scd_speedup", f"c={c!r}", lambda c=c: cost.scd_speedup(0.5, 3, c), ("c",)))
    gg = np.arange(1, 5000)
    best = int(gg[np.argmax((1 - 0.9 ** (gg + 1)) / (0.1 * (0.05 * gg + 1)))])
    for mg, ok in ((10**9, True), (10**5, True), (0, False), (2.5, False)):
        cases.append(Case("optimal_gamma", f"max_gamma={mg}", lambda mg=mg: cost.optimal_gamma(0.9, 0.05, mg),
                          ("max_gamma",), (lambda out: out.gamma == best) if ok else None))
    cases.append(Case("optimal_gamma", "alpha=1, c=0, max_gamma=10**9",
                      lambda: cost.optimal_gamma(1.0, 0.0, 10**9), ("max_gamma",),
                      lambda out: out.gamma == 10**9))
    cases.append(Case("optimal_gamma", "alpha array (1000,) max_gamma=10**6",
                      lambda: cost.optimal_gamma(np.linspace(0, 0.99, 1000), 0.01, 10**6), ("max_gamma",),
                      lambda out: np.all(out.gamma >= 1)))
    for al in (np.array([]), np.array([[0.5, np.nan]]), 0.5, np.array([0.5, 0.5])):
        cases.append(Case("expected_tokens_positional", f"alphas={al!r}",
                          lambda al=al: cost.expected_tokens_positional(al), ("alphas",),
                          (lambda out, al=al: np.allclose(out, 1 + np.cumprod(al, -1).sum(-1)))
                          if np.ndim(al) and np.all(np.isfinite(al)) else None))
    return cases


def chain_cases():
    from scdsim import chains

    cases = []
    for V, ok in ((3, True), (10**9, False), (10**12, False), (0, False), (2.0, False)):
        cases.append(Case("uniform_pair", f"V={V}", lambda V=V: chains.uniform_pair(V), ("V",),
                          (lambda out, V=V: out.V == V) if ok else None))
    for V in (10**9, 10**7):
        cases.append(Case("dirichlet_pair", f"V={V}", lambda V=V: chains.dirichlet_pair(V, 0.1), ("V", "S")))
    cases.append(Case("zipf_pair", "V=10**9 S=1", lambda: chains.zipf_pair(10**9, S=1), ("V", "S")))
    cases.append(Case("zipf_pair", "V=10**6 S=1", lambda: chains.zipf_pair(10**6, S=1), ("V", "S"),
                      lambda out: out.V == 10**6))
    for label, p, ref in prob_inputs():
        if isinstance(p, (str, type(None))):
            continue
        arr = p
        try:
            import torch

            if isinstance(p, torch.Tensor):
                arr = p  # MarkovLM takes arrays; torch is legitimate input for as_prob
        except ImportError:
            pass
        ok = ref is not None and np.ndim(ref) in (1, 2) and np.size(ref) > 0
        cases.append(Case("MarkovLM", label,
                          lambda arr=arr: chains.MarkovLM(arr if np.ndim(_np_safe(arr)) != 1 else _stack3(arr),
                                                          state_of=np.zeros(3, dtype=int)),
                          ("kernels",),
                          (lambda out: np.allclose(out.kernels.sum(-1), 1, atol=1e-12)) if ok else None))
    for b, a in ((math.nan, 0.5), (0.5, -0.1), (1.5, 0.5)):
        cases.append(Case("bernoulli_pair", f"{b},{a}", lambda b=b, a=a: chains.bernoulli_pair(b, a),
                          ("target_prob", "draft_prob")))
    e = chains.MarkovLM([[0.7, 0.2, 0.1]] * 3)
    am = chains.MarkovLM([[0.2, 0.3, 0.5]] * 3)
    for tau in (1.0, 1e-320, 0.0):
        cases.append(Case("contrast_chain", f"amateur_temperature={tau}",
                          lambda tau=tau: chains.contrast_chain(e, am, amateur_temperature=tau),
                          ("amateur_temperature",),
                          (lambda out: np.allclose(out.kernels.sum(-1), 1)) if tau == 1.0 else None))
    return cases


def rule_cases():
    """User-written rules through this package's one-step consumers, and batch_curve misuse."""
    import scdsim
    from scdsim import chains, rules
    from scdsim.exact import lp

    class NoMAxis(rules.Rule):
        name = "user-no-M-axis"

        def acceptances(self, p, q):
            return np.minimum(1.0, p / q)  # (V,) instead of (M, V)

        def residual(self, p, q):
            r = np.clip(p - q, 0, None)
            return r / r.sum()

    class OutOfRange(NoMAxis):
        name = "user-acceptance-2"

        def acceptances(self, p, q):
            return np.full(p.shape[:-1] + (1, p.shape[-1]), 2.0)

    class Unnormalised(NoMAxis):
        name = "user-residual-unnormalised"

        def acceptances(self, p, q):
            return np.minimum(1.0, p / q)[..., None, :]

        def residual(self, p, q):
            return np.clip(p - q, 0, None)  # mass TV, not 1

    class Negative(Unnormalised):
        name = "user-residual-negative"

        def residual(self, p, q):
            return p - q

    class Good(Unnormalised):
        name = "user-lossless"

        def residual(self, p, q):
            r = np.clip(p - q, 0, None)
            return r / r.sum()

    p, q = np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.3, 0.2])
    cases = []
    for cls in (NoMAxis, OutOfRange, Unnormalised, Negative):
        # (V,) acceptances broadcast to the right answer for M = 1: accepted as correct too
        check = (lambda out: abs(out.gap) < 1e-12 and abs(out.rejection - 0.3) < 1e-12) \
            if cls is NoMAxis else None
        cases.append(Case("front_gap (user rule)", cls.name, lambda cls=cls: lp.front_gap(cls(), p, q),
                          ("rule", "acceptances", "residual"), check))
    cases.append(Case("front_gap (user rule)", "user-lossless", lambda: lp.front_gap(Good(), p, q).gap,
                      ("rule",), lambda out: abs(out) < 1e-12))
    pair = chains.yin_example()
    cases.append(Case("batch_curve", "Ms=3 (positional misuse)", lambda: scdsim.batch_curve(pair, 4, 3),
                      ("Ms",)))
    cases.append(Case("batch_curve", "Ms=[0]", lambda: scdsim.batch_curve(pair, 4, [0]), ("M",)))
    cases.append(Case("batch_curve", "Ms=[1, 2]", lambda: scdsim.batch_curve(pair, 4, [1, 2])["rejections"],
                      ("Ms",), close([1.0514, 0.926388], 1e-6)))
    return cases


def _np_safe(x):
    try:
        return _np(x)
    except Exception:
        return np.zeros(0)


def _stack3(x):
    try:
        import torch

        if isinstance(x, torch.Tensor):
            return torch.stack([x, x, x])
    except ImportError:
        pass
    if isinstance(x, list):
        return [x, x, x]
    return np.stack([x, x, x])


def cli_cases(tmpdir):
    from scdsim.cli import main

    def run(argv):
        err = io.StringIO()
        out = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                rc = main(argv)
            except SystemExit as e:
                rc = e.code
        return rc, err.getvalue()

    def flag_case(label, argv, flag):
        def thunk():
            before = set(os.listdir(tmpdir))
            rc, err = run(argv)
            stray = set(os.listdir(tmpdir)) - before
            if "Traceback" in err or rc in (0, 1, None):
                return ("ran", rc, err, stray)
            if rc == 2 and flag in err and not stray:
                raise ValueError(f"exit 2 naming {flag}")
            raise RuntimeError(f"rc={rc} stray={sorted(stray)} stderr={err[-200:]!r}")
        return Case("cli", label, thunk, (flag,))

    sim = ["simulate", "--runs", "200", "--no-progress"]
    cases = [
        flag_case("--rule over_accept:0.1:target:optimal", sim + ["--rule", "over_accept:0.1:target:optimal"], "--rule"),
        flag_case("--rule over_accept:0.1:ratio:additive", sim + ["--rule", "over_accept:0.1:ratio:additive"], "--rule"),
        flag_case("--rule recursive:x", sim + ["--rule", "recursive:x"], "--rule"),
        flag_case("--rule recursive:0", sim + ["--rule", "recursive:0"], "--rule"),
        flag_case("--rule nope", sim + ["--rule", "nope"], "--rule"),
        flag_case("--rule ''", sim + ["--rule", ""], "--rule"),
        flag_case("--c nan", sim + ["--c", "nan"], "--c"),
        flag_case("--c inf", sim + ["--c", "inf"], "--c"),
        flag_case("--c -1", sim + ["--c", "-1"], "--c"),
        flag_case("--c abc", sim + ["--c", "abc"], "--c"),
        flag_case("--json ''", sim + ["--json", ""], "--json"),
        flag_case("--json DIR", sim + ["--json", tmpdir], "--json"),
        flag_case("--runs 0", sim + ["--runs", "0"], "--runs"),
        flag_case("--runs -3", sim + ["--runs", "-3"], "--runs"),
        flag_case("--runs 1e9", sim + ["--runs", "1e9"], "--runs"),
        flag_case("--horizon 0", sim + ["--horizon", "0"], "--horizon"),
        flag_case("--horizon 99 (yin T=4)", sim + ["--horizon", "99"], "--horizon"),
        flag_case("--gamma abc", sim + ["--gamma", "abc"], "--gamma"),
        flag_case("--gamma -1", sim + ["--gamma", "-1"], "--gamma"),
        flag_case("--gamma 2.5", sim + ["--gamma", "2.5"], "--gamma"),
        flag_case("--seed -1", sim + ["--seed", "-1"], "--seed"),
        flag_case("--pair uniform:0", sim + ["--pair", "uniform:0"], "--pair"),
        flag_case("--pair uniform:1000000000", sim + ["--pair", "uniform:1000000000"], "--pair"),
        flag_case("--pair bernoulli:nan:0.5", sim + ["--pair", "bernoulli:nan:0.5"], "--pair"),
        flag_case("--pair dirichlet:3:0.1:-1", sim + ["--pair", "dirichlet:3:0.1:-1"], "--pair"),
        flag_case("--pair foo", sim + ["--pair", "foo"], "--pair"),
        flag_case("--batch bad", sim + ["--batch", "bad"], "--batch"),
        flag_case("theory --mc-runs 0", ["theory", "--mc-runs", "0", "--no-progress"], "--mc-runs"),
        flag_case("theory --mc-runs -5", ["theory", "--mc-runs", "-5", "--no-progress"], "--mc-runs"),
        flag_case("theory --json ''", ["theory", "--foundation-only", "--json", ""], "--json"),
        flag_case("theory --json DIR", ["theory", "--foundation-only", "--json", tmpdir], "--json"),
    ]
    return cases


# ---------------------------------------------------------------------------------------------


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def classify(case, timeout):
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    t0 = time.perf_counter()
    try:
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = case.thunk()
    except _Timeout:
        return "hang", f"> {timeout} s"
    except MemoryError as e:
        return "hang", f"MemoryError {e}"[:120]
    except (ValueError, TypeError) as e:
        msg = str(e)
        if any(a in msg for a in case.args):
            return "clear", msg[:120]
        return "unclear", f"{type(e).__name__}: {msg}"[:200]
    except Exception as e:  # noqa: BLE001
        return "unclear", f"{type(e).__name__}: {e}"[:200]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    dt = time.perf_counter() - t0
    if dt > timeout:
        return "hang", f"{dt:.1f} s"
    if case.check is None:
        return "wrong", f"returned {_short(out)}"
    try:
        good = bool(case.check(out))
    except Exception as e:  # noqa: BLE001
        return "wrong", f"check failed: {type(e).__name__}: {e}"[:200]
    return ("correct", "") if good else ("wrong", f"returned {_short(out)}")


def _short(out):
    s = repr(out)
    return s if len(s) < 100 else s[:100] + "..."


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--mem-gb", type=float, default=6.0)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--only", default=None, help="only functions whose name contains this")
    args = ap.parse_args(argv)
    import scipy.optimize  # noqa: F401
    import torch  # noqa: F401  (import before the address-space limit)

    import scdsim  # noqa: F401

    lim = int(args.mem_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (lim, resource.RLIM_INFINITY))
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        for make in (prob_cases, logit_cases, cost_cases, chain_cases, rule_cases):
            try:
                cases += make()
            except Exception as e:  # noqa: BLE001
                print(f"building {make.__name__} failed: {type(e).__name__}: {e}")
                raise
        cases += cli_cases(tmp)
        if args.only:
            cases = [c for c in cases if args.only in c.fn]
        counts = defaultdict(Counter)
        notes = []
        for case in cases:
            outcome, why = classify(case, args.timeout)
            counts[case.fn][outcome] += 1
            if outcome not in ("clear", "correct"):
                notes.append((case.fn, case.label, outcome, why))
    total = Counter()
    print(f"{'function':<32}" + "".join(f"{o:>9}" for o in OUTCOMES))
    for fn in sorted(counts):
        total.update(counts[fn])
        print(f"{fn:<32}" + "".join(f"{counts[fn][o]:>9}" for o in OUTCOMES))
    print(f"{'TOTAL (' + str(sum(total.values())) + ' cases)':<32}" + "".join(f"{total[o]:>9}" for o in OUTCOMES))
    if args.verbose:
        for fn, label, outcome, why in notes:
            print(f"  [{outcome}] {fn} | {label} | {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
