"""Real-model decoding speed against transformers, measured in one run (tokens/s, min/median/max).

Rows (every ratio is ours / baseline on the same model, draft, prompts and sampling law):

* ``AR``: ``real_models.generate`` without a draft vs ``model.generate`` (do_sample, temperature
  1, ``top_k=0`` so HF does not apply its hidden top_k=50, no EOS: exactly N new tokens per row),
  batch 1 and 8 (left-padded for HF). Target: >= 0.9x.
* ``SD``: ``real_models.generate(draft=..., rule=rules.lossless, gamma)`` vs HF assisted
  generation (``assistant_model=draft.model``, the same fixed gamma: constant schedule,
  confidence threshold 0), batch 1 (HF's assisted generation is batch 1 only). Target: >= 1.0x.
* ``SD batched``: total tokens/s of our SD at batch 1, 8, 32 and its growth over batch 1.

Beside each run the measured cost profile at that batch size: target forward time for
n = 1..gamma+1 new tokens with a KV cache (as t(n)/t(1)), and the draft's one-token step time
over the target's (c). Leviathan's walltime model assumes t(gamma+1) = t(1); on a CPU it is not.

The default draft is ``quant:4`` (the target re-quantised to 4 bits: high acceptance, but on a CPU
it costs as much as the target, c ~ 1); any ``make_draft`` spec of a model works (``--draft``).
The timed sides alternate within each repeat (ours first in even repeats, HF first in odd ones),
so load changes on a shared machine hit both.
Usage::

    python benchmarks/bench_real_models.py [--model smollm2-135m] [--draft quant:4]
        [--new-tokens 64] [--gamma 4] [--repeats 3] [--batches 1,8,32] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPTS = [
    "The history of the printing press begins",
    "Write a short story about a robot who learns to paint.",
    "def quicksort(xs):",
    "The three most important ideas in thermodynamics are",
    "Once upon a time, in a small village by the sea,",
    "Explain why the sky is blue in simple terms.",
    "import numpy as np\nimport matplotlib.pyplot as plt\n",
    "The recipe calls for flour, sugar, eggs and",
]


def _mmm(xs):
    return min(xs), statistics.median(xs), max(xs)


def _fmt(xs, spec=".1f"):
    lo, med, hi = _mmm(xs)
    return f"{med:{spec}} [{lo:{spec}}, {hi:{spec}}]"


def _prompts(n):
    return [PROMPTS[i % len(PROMPTS)] for i in range(n)]


# --------------------------------------------------------------------------- cost profile


def _cache_kw(model):
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def cost_profile(target, draft_model, batch, gamma, repeats=5, prefix=32):
    """Median seconds of a target forward of n = 1..gamma+1 new tokens on a cached prefix,
    and of one draft step (1 token), at this batch size."""
    import torch

    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(100, target.vocab_size - 100, (batch, prefix + gamma + 1), generator=gen)
    ids = ids.to(target.device)

    def times(model, ns):
        kw = _cache_kw(model)
        with torch.no_grad():
            out = model(input_ids=ids[:, :prefix], use_cache=True)
            cache = getattr(out, kw)
            res = {}
            for n in ns:
                ts = []
                for _ in range(repeats + 1):
                    t0 = time.perf_counter()
                    model(input_ids=ids[:, prefix:prefix + n], use_cache=True, **{kw: cache})
                    ts.append(time.perf_counter() - t0)
                    cache.crop(-n)  # transformers 5.x: a negative count drops tokens
                res[n] = statistics.median(ts[1:])
        return res

    t = times(target.model, range(1, gamma + 2))
    d = times(draft_model, [1])[1] if draft_model is not None else float("nan")
    return {"target_s": t, "draft_s": d, "c": d / t[1]}


def _profile_line(prof):
    t = prof["target_s"]
    rel = " ".join(f"{t[n] / t[1]:.2f}" for n in sorted(t))
    return (f"t(1)={t[1] * 1e3:.1f} ms, t(n)/t(1) n=1..{max(t)}: {rel}; "
            f"draft step {prof['draft_s'] * 1e3:.1f} ms, c={prof['c']:.2f}")


# --------------------------------------------------------------------------- the two sides


def hf_generate(target, prompts, n_new, seed, assistant=None, gamma=4):
    """HF's own generate: sampling at temperature 1 with top_k=0, exactly n_new tokens."""
    import torch
    from transformers import GenerationConfig

    tok = target.tokenizer
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True).to(target.device)
    cfg = GenerationConfig(do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                           max_new_tokens=n_new, min_new_tokens=n_new,
                           eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    kw = {}
    if assistant is not None:
        gc = assistant.generation_config
        gc.num_assistant_tokens = gamma
        gc.num_assistant_tokens_schedule = "constant"
        gc.assistant_confidence_threshold = 0.0
        kw["assistant_model"] = assistant
    torch.manual_seed(seed)  # HF samples from the global stream (benchmark only)
    out = target.model.generate(**enc, generation_config=cfg, **kw)
    return (out.shape[1] - enc.input_ids.shape[1]) * out.shape[0]


def ours_generate(target, prompts, n_new, seed, draft=None, gamma=4):
    import real_models
    from scdsim import rules

    kw = {}
    if draft is not None:
        kw = {"draft": draft, "rule": rules.lossless, "gamma": gamma}
    res = real_models.generate(target, prompts, max_new_tokens=n_new, temperature=1.0,
                               top_k=None, top_p=None, rng=seed, eos_token_id=None, **kw)
    return sum(len(t) for t in res.tokens), res


def _timed(fn, *a, **k):
    t0 = time.perf_counter()
    out = fn(*a, **k)
    return time.perf_counter() - t0, out


# --------------------------------------------------------------------------- main


def _fresh_load_seconds(model):
    code = ("import time; t0=time.perf_counter(); import real_models.loading as L; "
            "import torch, transformers; from transformers import AutoModelForCausalLM; "
            f"t1=time.perf_counter(); L.load({model!r}, device='cpu'); t2=time.perf_counter(); "
            f"L.load({model!r}, device='cpu'); t3=time.perf_counter(); "
            "print(t1-t0, t2-t1, t3-t2)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        return [float(x) for x in out.stdout.split()[-3:]]
    except ValueError:
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--draft", default="quant:4", help="make_draft spec of the SD draft")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--gamma", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", default="1,8,32", help="batch sizes of batched SD")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--skip", default="", help="comma list of sections to skip: "
                    "load,profile,ar,sd,batched")
    ap.add_argument("--json", default=None, help="write the measurements here (atomically)")
    ap.add_argument("--quick", action="store_true", help="16 tokens, 1 repeat, batches 1,8")
    args = ap.parse_args(argv)
    if args.quick:
        args.new_tokens, args.repeats, args.batches = 16, 1, "1,8"
    skip = set(filter(None, args.skip.split(",")))

    import torch

    torch.set_num_threads(args.threads)
    from real_models.drafters import make_draft
    from real_models.loading import load

    report = {"args": vars(args), "rows": []}
    if "load" not in skip:
        fresh = _fresh_load_seconds(args.model)
        if fresh:
            print(f"cached load of {args.model} in a fresh process: import torch + transformers "
                  f"{fresh[0]:.2f} s, first load() {fresh[1]:.2f} s (includes importing "
                  f"transformers' model code), second load() {fresh[2]:.2f} s")
            report["load_s"] = fresh
    target = load(args.model, device=args.device)
    draft = make_draft(target, args.draft)
    dmodel = getattr(draft, "model", None)
    print(f"target {target.name} ({target.info.get('dtype')}, {target.device}), draft "
          f"{args.draft}, gamma={args.gamma}, {args.new_tokens} new tokens, temperature 1, "
          f"no top-k, torch threads {torch.get_num_threads()}, repeats {args.repeats}")
    N, R, g = args.new_tokens, args.repeats, args.gamma
    batches = [int(b) for b in args.batches.split(",")]
    profiles = {}
    if "profile" not in skip:
        for b in sorted({1, 8, *batches}):
            profiles[b] = cost_profile(target, dmodel, b, g)
            print(f"cost profile, batch {b}: {_profile_line(profiles[b])}")
        report["profiles"] = {b: {"target_s": p["target_s"], "draft_s": p["draft_s"]}
                              for b, p in profiles.items()}

    try:
        import real_models

        has_engine = hasattr(real_models, "generate")
    except ImportError:
        has_engine = False
    if not has_engine:
        print("real_models.generate is not available on this branch: HF sides only")

    def row(label, batch, ours_tps, base_tps, extra=""):
        ratio = [a / b for a, b in zip(ours_tps, base_tps)] if ours_tps and base_tps else []
        r = {"row": label, "batch": batch, "ours_tok_s": ours_tps, "base_tok_s": base_tps,
             "ratio": ratio, "extra": extra}
        report["rows"].append(r)
        o = _fmt(ours_tps) if ours_tps else "-"
        bb = _fmt(base_tps) if base_tps else "-"
        rr = _fmt(ratio, ".2f") if ratio else "-"
        print(f"| {label:<22} | {batch:>5} | {o:>24} | {bb:>24} | {rr:>20} | {extra}")

    print(f"| {'row':<22} | {'batch':>5} | {'ours tok/s med [min,max]':>24} | "
          f"{'baseline tok/s':>24} | {'ratio med [min,max]':>20} | notes")
    if "ar" not in skip:
        for b in (1, 8):
            prompts = _prompts(b)
            ours, base = [], []
            if has_engine:
                ours_generate(target, prompts, 4, 0)  # warm-up
            hf_generate(target, prompts, 4, 0)
            for r in range(R):
                for side in (("ours", "hf") if r % 2 == 0 else ("hf", "ours")):
                    if side == "ours" and has_engine:
                        dt, (n, _) = _timed(ours_generate, target, prompts, N, 100 + r)
                        ours.append(n / dt)
                    elif side == "hf":
                        dt, n = _timed(hf_generate, target, prompts, N, 100 + r)
                        base.append(n / dt)
            prof = _profile_line(profiles[b]) if b in profiles else ""
            row("AR vs HF generate", b, ours, base, prof)
    sd_b1 = None
    if "sd" not in skip and dmodel is not None:
        prompts = _prompts(1)
        ours, base, tpc = [], [], []
        if has_engine:
            ours_generate(target, prompts, 4, 0, draft, g)
        hf_generate(target, prompts, 4, 0, dmodel, g)
        for r in range(R):
            for side in (("ours", "hf") if r % 2 == 0 else ("hf", "ours")):
                if side == "ours" and has_engine:
                    dt, (n, res) = _timed(ours_generate, target, prompts, N, 200 + r, draft, g)
                    ours.append(n / dt)
                    tpc.append(res.tokens_per_call)
                elif side == "hf":
                    dt, n = _timed(hf_generate, target, prompts, N, 200 + r, dmodel, g)
                    base.append(n / dt)
        sd_b1 = ours
        note = f"tokens/call {_fmt(tpc, '.2f')}; " if tpc else ""
        row(f"SD g={g} vs HF assisted", 1, ours, base,
            note + (_profile_line(profiles[1]) if 1 in profiles else ""))
    if "batched" not in skip and has_engine:
        for b in batches:
            prompts = _prompts(b)
            ours_generate(target, prompts, 4, 0, draft, g)
            ours, tpc = [], []
            for r in range(R):
                dt, (n, res) = _timed(ours_generate, target, prompts, N, 300 + r, draft, g)
                ours.append(n / dt)
                tpc.append(res.tokens_per_call)
            if b == 1:
                sd_b1 = ours
            base = sd_b1 if (sd_b1 and b != 1) else []
            label = "SD batched (vs b=1)" if base else "SD batched"
            row(label, b, ours, base, f"tokens/call {_fmt(tpc, '.2f')}; "
                + (_profile_line(profiles[b]) if b in profiles else ""))
    if args.json:
        from real_models.cache_dir import atomic_file

        with atomic_file(Path(args.json), "w") as fh:
            json.dump(report, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
