"""``scdsim validate``: predictions against outcomes on a real (target, draft) pair.

Runs speculative decoding prompt by prompt (one JSON line per prompt, written as it finishes;
an interrupted run started again with the same arguments continues where it stopped), times
autoregressive decoding of the same prompts, measures a cost profile, fits a Markov surrogate,
and writes ``summary.json``, ``summary.txt`` and PNG plots into ``--out`` (see
``real_models.validate`` for the fields). Presets:

``--preset quick``  smollm2-135m, draft early-exit:8, lossless, gamma 3, 4 built-in prompts
                    (prose, chat, 2 code) in one batch, 16 new tokens, surrogate S in {1, 2}:
                    sized to stay well under 10 minutes on 2 busy CPU cores.
``--preset full``   smollm2-135m with draft quant:4 (a draft that is accepted often, so block
                    lengths and the surrogate have something to predict), lossless, gamma 4,
                    the 12 built-in prompts and 20 HumanEval prompts, 96 new tokens, batches
                    of 4, surrogate states 1, 2, 4, 8, 16.
Explicit flags override the preset.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["build_parser", "main", "PRESETS", "parse_contrast"]

PRESETS = {
    "quick": dict(target="smollm2-135m", draft="early-exit:8", rule="lossless", gamma=3, M=1,
                  batch="first", prompts="quick", max_new_tokens=16, temperature=1.0,
                  surrogate_states="1,2", boot=1000, profile_repeats=3,
                  batch_size=4, timing_repeats=3),
    "full": dict(target="smollm2-135m", draft="quant:4", rule="lossless", gamma=4, M=1,
                 batch="first", prompts="builtin+humaneval:20", max_new_tokens=96,
                 temperature=1.0, surrogate_states="1,2,4,8,16", boot=4000, profile_repeats=7,
                 batch_size=4, timing_repeats=1),
}
DEFAULTS = dict(rule="lossless", gamma=4, M=1, batch="first", prompts="builtin",
                max_new_tokens=48, temperature=1.0, surrogate_states="1,2,4,8", boot=2000,
                profile_repeats=5, batch_size=1, timing_repeats=1)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.exit(2, f"scdsim validate: error: {message}\n")


def build_parser(prog="scdsim validate"):
    ap = _Parser(prog=prog, description=__doc__,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), help="a named configuration")
    ap.add_argument("--target", help="model: smollm2-135m | gemma3-270m | an HF id | a path")
    ap.add_argument("--draft", help="early-exit:K | lens:K | quant:B | ngram:N | a model name")
    ap.add_argument("--rule", help="lossless | recursive:M | kseq:M | over_accept:EPS[...] | "
                    "lenient:L | typical:EPS:DELTA (scdsim simulate's syntax)")
    ap.add_argument("--gamma", type=int, help="draft tokens per block (>= 1)")
    ap.add_argument("--M", type=int, help="drafts per position (multi-draft rules)")
    ap.add_argument("--batch", choices=["first", "tree"], help="multi-draft reading")
    ap.add_argument("--prompts", help="builtin | prose | chat | code | humaneval | FILE.jsonl | "
                    "FILE.txt, optionally :N; join sets with +")
    ap.add_argument("--max-new-tokens", type=int, dest="max_new_tokens")
    ap.add_argument("--temperature", type=float)
    ap.add_argument("--top-k", type=int, dest="top_k")
    ap.add_argument("--top-p", type=float, dest="top_p")
    ap.add_argument("--contrast", help="SCD: plausibility=0.1,contrast=0.5[,amateur_temperature=1]"
                    " (the draft is the amateur)")
    ap.add_argument("--seed", type=int, default=0, help="prompt i uses the stream seed + i")
    ap.add_argument("--surrogate-states", dest="surrogate_states",
                    help="comma-separated state counts of the Markov surrogate ('' to skip)")
    ap.add_argument("--boot", type=int, help="bootstrap resamples over prompts")
    ap.add_argument("--batch-size", type=int, dest="batch_size",
                    help="prompts per engine call (SD and autoregressive alike)")
    ap.add_argument("--timing-repeats", type=int, dest="timing_repeats",
                    help="SD and autoregressive timings of each batch (median used)")
    ap.add_argument("--no-ar", action="store_true", help="skip the autoregressive timing")
    ap.add_argument("--no-profile", action="store_true", help="skip the cost profile")
    ap.add_argument("--profile-repeats", type=int, dest="profile_repeats",
                    help="timings per point of the cost profile")
    ap.add_argument("--device", help="cpu | cuda (default: cuda when available)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--out", required=True, help="output directory (resumes if it has a log)")
    return ap


def parse_contrast(spec):
    """``"plausibility=0.1,contrast=0.5"`` -> dict of floats (``form`` kept as a string)."""
    if spec is None:
        return None
    out = {}
    for part in spec.split(","):
        key, sep, val = part.partition("=")
        key = key.strip()
        if not sep or key not in ("plausibility", "contrast", "amateur_temperature", "form"):
            raise ValueError(f"--contrast {spec!r}: expected key=value pairs with keys "
                             "plausibility, contrast, amateur_temperature, form")
        try:
            out[key] = val.strip() if key == "form" else float(val)
        except ValueError:
            raise ValueError(f"--contrast {spec!r}: {key} must be a number, got {val!r}") from None
    return out


def _prompts(spec):
    from real_models.prompts import load_prompts

    if spec == "quick":
        from real_models.prompts import BUILTIN

        keep = {"prose-0", "chat-0", "code-0", "code-1"}
        return [{"id": i, "text": t, "kind": k} for i, k, t in BUILTIN if i in keep]
    out = []
    for part in spec.split("+"):
        out += load_prompts(part)
    return out


def resolve(args):
    """Fill unset flags from the preset (or defaults) and check them; returns a dict."""
    base = dict(PRESETS[args.preset]) if args.preset else dict(DEFAULTS)
    cfg = {k: v for k, v in vars(args).items()}
    for k, v in base.items():
        if cfg.get(k) is None:
            cfg[k] = v
    for k in ("target", "draft"):
        if not cfg.get(k):
            raise ValueError(f"--{k} is required (or give --preset)")
    minimums = {"gamma": 1, "M": 1, "max_new_tokens": 1, "temperature": 0, "batch_size": 1,
                "profile_repeats": 1, "boot": 10, "timing_repeats": 1}
    for key, low in minimums.items():
        if cfg[key] < low:
            raise ValueError(f"--{key.replace('_', '-')} must be >= {low}, got {cfg[key]}")
    try:
        ss = cfg["surrogate_states"]
        cfg["surrogate_states"] = tuple(int(s) for s in ss.split(",") if s.strip()) if ss else ()
    except ValueError:
        raise ValueError(f"--surrogate-states must be comma-separated integers, got "
                         f"{cfg['surrogate_states']!r}") from None
    if any(s < 1 for s in cfg["surrogate_states"]):
        raise ValueError(f"--surrogate-states must be >= 1, got {cfg['surrogate_states']}")
    cfg["contrast"] = parse_contrast(cfg["contrast"])
    return cfg


def cmd_validate(args):
    from scdsim.cli import parse_rule

    cfg = resolve(args)
    rule = parse_rule(cfg["rule"])
    if rule.M != 1 and cfg["M"] == 1:
        cfg["M"] = rule.M
    prompts = _prompts(cfg["prompts"])
    from real_models import load
    from real_models.validate import run_validate

    target = load(cfg["target"], device=cfg["device"])
    if cfg["draft"].startswith(("early-exit:", "lens:", "quant:", "ngram:")):
        from real_models.drafters import make_draft

        draft = make_draft(target, cfg["draft"])
    else:
        draft = load(cfg["draft"], device=cfg["device"])
    warp = {"temperature": cfg["temperature"], "top_k": cfg["top_k"], "top_p": cfg["top_p"]}
    inputs = {k: cfg[k] for k in ("preset", "target", "draft", "rule", "gamma", "M", "batch",
                                  "prompts", "max_new_tokens", "temperature", "top_k", "top_p",
                                  "contrast", "seed")}
    summary = run_validate(
        target, draft, rule, cfg["gamma"], prompts=prompts, out=cfg["out"], M=cfg["M"],
        batch=cfg["batch"], max_new_tokens=cfg["max_new_tokens"], warp=warp,
        contrast=cfg["contrast"], seed=cfg["seed"], measure_ar=not cfg["no_ar"],
        profile=not cfg["no_profile"], profile_repeats=cfg["profile_repeats"],
        surrogate_states=cfg["surrogate_states"],
        n_boot=cfg["boot"], batch_size=cfg["batch_size"],
        timing_repeats=cfg["timing_repeats"], progress=False if cfg["no_progress"] else None, inputs=inputs)
    print(f"target {target.name}, draft {cfg['draft']}, rule {cfg['rule']}, gamma {cfg['gamma']}"
          f", M {cfg['M']} ({cfg['batch']}), {len(prompts)} prompts x {cfg['max_new_tokens']} "
          f"new tokens, seed {cfg['seed']}")
    print(summary["table"])
    if summary.get("surrogate"):
        h = summary["surrogate"]["held_out"]
        print("\nheld-out tokens per call (fit on even prompts, scored on odd): observed "
              f"{h['observed']:.3f}; i.i.d. {h['iid']:.3f} ({100 * h['iid_rel_error']:+.1f}%); "
              f"per-position {h['positional_train']:.3f} "
              f"({100 * h['positional_rel_error']:+.1f}%)")
        for S, v, e in zip(h["S"], h["surrogate"], h["surrogate_rel_error"]):
            print(f"  surrogate S={S:<3d} {v:.3f} ({100 * e:+.1f}%)")
    print(f"\nwrote {cfg['out']}/summary.json, summary.txt, prompts.jsonl, blocks.png, zscores.png")
    return 0


def main(argv=None):
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        return cmd_validate(args)
    except (ValueError, TypeError) as e:
        print(f"scdsim validate: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
