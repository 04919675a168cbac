"""Command line: scdsim theory and scdsim simulate.

scdsim theory      recompute every checkable number of the reference (papers' tables and the
                   derivations of docs/theory.md) and print expected / computed / pass-fail.
scdsim simulate    one pair, one rule: exact figures and Monte Carlo side by side.

Every flag error names the flag and exits with status 2; a failed theory row exits with 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile

from scdsim.rules import RULE_SPECS as RULE_HELP

__all__ = ["main", "parse_rule", "parse_pair"]

PAIR_HELP = (
    "yin (docs/theory.md §3, T=4) | bernoulli:TARGET_P:DRAFT_P | uniform:V | dirichlet:V:MEAN_TV[:SEED]"
    " | zipf:V:S:MEAN_TV[:SEED] | bigram[:VOCAB] | scd-bigram[:VOCAB] (expert = bigram target,"
    " amateur = unigram draft, contrasted target)"
)


def parse_rule(spec: str):
    """Build a rule from a CLI spec such as ``recursive:3`` (``scdsim.rules.from_spec``)."""
    from scdsim import rules

    try:
        return rules.from_spec(spec)
    except (ValueError, TypeError) as e:
        raise ValueError(f"--rule {spec!r}: {e}") from None


def _finite(text):
    """``float(text)``, refusing nan and inf (they would pass as 'numbers' into the rules)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def parse_pair(spec: str):
    """Build a MarkovPair from a CLI spec such as ``dirichlet:50:0.3`` (see PAIR_HELP)."""
    from scdsim import chains

    name, *args = spec.split(":")
    try:
        if name == "yin" and not args:
            return chains.yin_example()
        if name == "bernoulli" and len(args) == 2:
            return chains.bernoulli_pair(_finite(args[0]), _finite(args[1]))
        if name == "uniform" and len(args) == 1:
            return chains.uniform_pair(int(args[0]))
        if name == "dirichlet" and len(args) in (2, 3):
            return chains.dirichlet_pair(int(args[0]), _finite(args[1]),
                                         seed=int(args[2]) if len(args) == 3 else 0)
        if name == "zipf" and len(args) in (3, 4):
            return chains.zipf_pair(int(args[0]), S=int(args[1]), mean_tv=_finite(args[2]),
                                    seed=int(args[3]) if len(args) == 4 else 0)
        if name == "bigram" and len(args) <= 1:
            return chains.bigram_pair(vocab_size=int(args[0]) if args else 200)
        if name == "scd-bigram" and len(args) <= 1:
            base = chains.bigram_pair(vocab_size=int(args[0]) if args else 200)
            return chains.scd_pair(base.target, base.draft)
    except (ValueError, TypeError) as e:
        raise ValueError(f"--pair {spec!r}: {e}") from None
    raise ValueError(f"--pair {spec!r} is not understood; expected {PAIR_HELP}")


def _write_json_atomic(path, obj):
    """Write ``obj`` as JSON to ``path`` via a temporary file and a rename; never leave the
    temporary file behind (a failure raises ValueError naming --json)."""
    d = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
    except OSError as e:
        raise ValueError(f"--json {path!r}: cannot write there ({e.strerror})") from None
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1)
        os.replace(tmp, path)
    except OSError as e:
        raise ValueError(f"--json {path!r}: cannot write there ({e.strerror})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _show_progress(args) -> bool:
    """Progress bars only on a terminal (never in logs, pipes or CI), and not with --no-progress."""
    return not args.no_progress and sys.stderr.isatty()


def cmd_theory(args):
    from scdsim.checks import format_table, foundation_checks, run_checks, sequence_checks

    checks = foundation_checks()
    if not args.foundation_only:
        checks += sequence_checks(mc_runs=args.mc_runs, seed=args.seed)
    rows = run_checks(checks, progress=_show_progress(args))
    print(format_table(rows))
    if args.json:
        _write_json_atomic(args.json, [r.__dict__ for r in rows])
    return 0 if all(r.passed for r in rows) else 1


def cmd_simulate(args):
    import numpy as np

    from scdsim import agreement
    from scdsim import exact as X
    from scdsim.montecarlo import simulate

    pair = parse_pair(args.pair)
    rule = parse_rule(args.rule)
    if not rule.samplable:
        raise ValueError(f"--rule {args.rule!r}: {rule.name} has no sequential (acceptance, "
                         "residual) form, so it cannot be simulated; its one-step acceptance is "
                         "scdsim.acceptance_prob")
    T = args.horizon if args.horizon is not None else (pair.max_horizon or 50)
    try:
        T = pair.check_horizon(T)
    except ValueError as e:
        raise ValueError(f"--horizon {T}: {e}") from None
    gamma = args.gamma
    print(f"pair {pair.name or args.pair}: V={pair.V}, S={pair.S}, horizon T={T}; rule {rule.name}"
          f"{' (lossy)' if rule.lossy else ''}; gamma={gamma}; batch={args.batch if rule.M > 1 else '-'}; "
          f"c={args.c}")
    try:
        law = X.sequence_law(pair, rule, T, gamma, args.batch)
    except ValueError as e:
        if args.batch != "tree" or rule.M == 1:
            raise
        # the exact tree reading enumerates V^M draft tuples; past its limit only MC can run
        print(f"exact side not computed: {e}\nrunning the Monte Carlo side only")
        law = None
    res = simulate(pair, rule, T, gamma=gamma, runs=args.runs, rng=args.seed, batch=args.batch,
                   progress=_show_progress(args))
    if law is None:
        print(f"\n{'quantity':<22} {'Monte Carlo':>12} {'MC s.e.':>10}")
        print(f"{'E[rejections]':<22} {res.mean_rejections:12.6f} {res.sem_rejections:10.6f}")
        print(f"{'E[target calls]':<22} {res.mean_target_calls:12.6f} {res.sem_target_calls:10.6f}")
        if args.json:
            _write_json_atomic(args.json, {
                "pair": pair.name or args.pair, "V": pair.V, "S": pair.S, "horizon": T,
                "rule": rule.name, "gamma": gamma, "batch": args.batch, "c": args.c,
                "runs": res.runs, "seed": res.seed, "exact": None,
                "rows": [{"quantity": "E[rejections]", "exact": None,
                          "monte_carlo": res.mean_rejections, "se": res.sem_rejections},
                         {"quantity": "E[target calls]", "exact": None,
                          "monte_carlo": res.mean_target_calls, "se": res.sem_target_calls}]})
        return 0
    # the shared result vocabulary: exact expected_<stem> against Monte Carlo mean_/sem_<stem>
    rows = [("E[rejections]", law.expected_rejections, res.mean_rejections, res.sem_rejections),
            ("E[target calls]", law.expected_target_calls, res.mean_target_calls, res.sem_target_calls)]
    if gamma is not None:
        bs = X.block_stats(pair, rule, T, gamma, c=args.c, batch=args.batch)
        # ratios of means, s.e. by the delta method
        rows.append(("tokens per call", bs.tokens_per_call, res.tokens_per_call, res.sem_tokens_per_call))
        rows.append((f"speedup (c={args.c})", bs.speedup, *res.speedup(args.c)))
    mc_marg = np.stack([np.bincount(res.tokens[:, n], minlength=pair.V) for n in range(T)]) / res.tokens.shape[0]
    tv_last = 0.5 * np.abs(mc_marg[-1] - law.marginals[-1]).sum()
    print(f"\n{'quantity':<22} {'exact':>12} {'Monte Carlo':>12} {'MC s.e.':>10} {'z':>7}")
    for name, ex, mc, se in rows:
        z = agreement.z_score(mc, se, ex)
        print(f"{name:<22} {ex:12.6f} {mc:12.6f} {se:10.6f} {z:7.2f}")
    N = res.tokens.shape[0]
    pl = law.marginals[-1]
    noise = agreement.sampling_noise_tv(pl, N)  # the TV that sampling noise alone gives
    pvalue = agreement.chi_square(np.rint(mc_marg[-1] * N), pl).pvalue
    print(f"TV(MC, exact) of the last token's law: {tv_last:.4f} ({N} runs; sampling noise "
          f"alone gives about {noise:.4f}); chi-square p-value {pvalue:.3g}")
    if gamma is not None:
        print(f"i.i.d. prediction (Leviathan Thm 3.8) at alpha={bs.alpha:.4f}: speedup {bs.iid_speedup:.4f}"
              f" (exact minus i.i.d.: {bs.iid_gap:+.4f})")
        print("tokens-per-call law (exact): " + " ".join(f"{j}:{v:.4f}" for j, v in enumerate(bs.block_length_pmf)
                                                    if v > 0))
    if rule.lossy:
        print(f"exact TV of the last token's law to the target's: "
              f"{0.5 * np.abs(law.marginals[-1] - _target_marginal(pair, T)).sum():.6f}")
    if args.json:
        _write_json_atomic(args.json, {
            "pair": pair.name or args.pair, "V": pair.V, "S": pair.S, "horizon": T,
            "rule": rule.name, "gamma": gamma, "batch": args.batch, "c": args.c,
            "runs": res.runs, "seed": res.seed,
            "rows": [{"quantity": name, "exact": ex, "monte_carlo": mc,
                      "se": se if math.isfinite(se) else None} for name, ex, mc, se in rows],
        })
    return 0


def _target_marginal(pair, T):
    import numpy as np

    from scdsim import exact as X
    from scdsim.rules import lossless

    return X.output_marginals(pair, lossless, T)[-1] if T else np.zeros(pair.V)


def _add_validate(sub):
    # `validate` lives in real_models (torch, transformers): listed only when that package is
    # importable; its own parser (real_models.cli) reads the rest of the command line
    import importlib.util

    if importlib.util.find_spec("real_models") is None:
        return
    va = sub.add_parser("validate", add_help=False, prefix_chars="\0",
                        help="predictions against outcomes on a real model pair "
                             "(scdsim validate --help)")
    va.add_argument("args", nargs=argparse.REMAINDER)
    va.set_defaults(func=lambda a: __import__("real_models.cli", fromlist=["main"]).main(a.args))


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Plain-text descriptions kept as written, and every flag's default shown in --help."""

    def _get_help_string(self, action):
        if action.default in (None, False):  # "default: None" says nothing the help does not
            return action.help
        return super()._get_help_string(action)


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def _nonnegative_finite(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _gamma(text):
    if text.lower() == "none":
        return None
    return _int_at_least(0)(text)


def _json_path(text):
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file path, got an empty string")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; give a file path")
    return text


def build_parser():
    from scdsim import __version__

    ap = argparse.ArgumentParser(prog="scdsim", description=__doc__, formatter_class=_HelpFormatter)
    ap.add_argument("--version", action="version", version=f"scdsim {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    _add_validate(sub)
    th = sub.add_parser("theory", formatter_class=_HelpFormatter,
                        help="recompute every checkable number of the reference; exit 1 on a failure",
                        description="Recompute every checkable number of docs/theory.md and print "
                                    "expected / computed / pass-fail; exit 1 if a row fails.")
    th.add_argument("--foundation-only", action="store_true", help="only the one-step rows (no sequence level)")
    th.add_argument("--mc-runs", type=_int_at_least(2), default=20_000,
                    help="Monte Carlo runs per agreement row (>= 2)")
    th.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the Monte Carlo rows")
    th.add_argument("--json", metavar="PATH", type=_json_path,
                    help="also write the rows as JSON (atomically)")
    th.add_argument("--no-progress", action="store_true",
                    help="no progress bar (there is none anyway when stderr is not a terminal)")
    th.set_defaults(func=cmd_theory)
    si = sub.add_parser("simulate", formatter_class=_HelpFormatter,
                        help="exact and Monte Carlo figures of one pair and rule, side by side",
                        description="Exact figures (scdsim.exact) and Monte Carlo estimates "
                                    "(scdsim.simulate) of one pair and one rule, side by side.")
    si.add_argument("--pair", default="yin", help=PAIR_HELP)
    si.add_argument("--rule", default="lossless", help=RULE_HELP)
    si.add_argument("--gamma", type=_gamma, default=None,
                    help="drafts per block (int >= 0) or 'none' to draft to the horizon")
    si.add_argument("--horizon", type=_int_at_least(1), default=None,
                    help="tokens T (default: the pair's T, else 50)")
    si.add_argument("--batch", choices=["first", "tree"], default="first",
                    help="multi-draft reading: first-position batch (variant A) or tree (variant B)")
    si.add_argument("--c", type=_nonnegative_finite, default=0.0,
                    help="draft/target cost ratio for the speedup")
    si.add_argument("--runs", type=_int_at_least(2), default=20_000, help="Monte Carlo runs (>= 2)")
    si.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the Monte Carlo runs")
    si.add_argument("--no-progress", action="store_true",
                    help="no progress bar (there is none anyway when stderr is not a terminal)")
    si.add_argument("--json", metavar="FILE", type=_json_path,
                    help="also write the figures as JSON (atomically)")
    si.set_defaults(func=cmd_simulate)
    _add_figures(sub)
    return ap


def _add_figures(sub):
    # the `figures` subcommand lives in paper_figures (imported lazily: matplotlib only there)
    try:
        from paper_figures.cli import add_figures_parser
    except ImportError:  # pragma: no cover - paper_figures not installed
        return
    add_figures_parser(sub)


def main(argv=None):
    """Run the command line; returns the exit status (0 ok, 1 a failed theory row, 2 bad input)."""
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError) as e:
        # argparse's own format, "scdsim simulate: error: ...", exit status 2, no traceback
        print(f"scdsim {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
