"""``scdsim figures``: regenerate the paper figures as PNG and PDF.

``scdsim.cli`` only calls :func:`add_figures_parser`; everything else lives here, and the
figure modules are imported only when the command runs. ``python -m paper_figures`` is the
same command on its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

__all__ = ["add_figures_parser", "cmd_figures", "render", "main"]

HELP = "regenerate the paper figures (PNG and PDF), reusing cached data"
DESCRIPTION = """\
Regenerate the paper figures as PNG and PDF into --out. Computed data are cached by
figure, parameters and scdsim version (--cache-dir), so a second run only redraws.
Figures 1-8 need only the core; 9-11 draw saved `scdsim validate` results and are skipped,
with the reason, when there are none (in --quick mode a small validation is run when the
real-model engine is installed).

  fig01  Monte Carlo rejections converge to Yin et al. Thm 1 (Yin Fig. 2 left)
  fig02  batch SD, M drafts: Monte Carlo vs exact, E[N_rej] vs M (Yin Fig. 2 middle/right)
  fig03  batch improvement TV - R_M vs M, Bernoulli and uniform pairs (Yin Fig. 3 right)
  fig04  bias-rejection Pareto front, Decoding-OPT/UNO over eps (Yin Fig. 4)
  fig05  tokens per call and speedup vs gamma for alpha and cost ratio c (Leviathan Figs. 2/3)
  fig06  SCD vs SD acceleration vs lambda and c (reconstructed cost model)
  fig07  multi-draft acceptance vs M: recursive / optimal / k-SEQ
  fig08  exact speedup vs the i.i.d. formula under state-dependent acceptance
  fig09  real models: predicted vs observed rejections, martingale z
  fig10  real models: entropy at accepted vs rejected tokens, SD and SCD
  fig11  real models: tokens per call vs i.i.d. / per-position / surrogate predictions"""


def add_figures_parser(sub):
    """Add the ``figures`` subcommand to an argparse subparsers object; return its parser."""
    p = sub.add_parser("figures", help=HELP, description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(p)
    p.set_defaults(func=cmd_figures)
    return p


def _add_arguments(p):
    p.add_argument("--quick", action="store_true",
                   help="small sizes (fewer Monte Carlo runs, coarser grids): seconds per figure")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="only this figure: fig01, 1, the slug (mc_convergence) or the full name; "
                        "repeat or comma-separate for several (default: all)")
    p.add_argument("--out", default="figures", metavar="DIR",
                   help="output directory of the PNG and PDF files (default: ./figures)")
    p.add_argument("--jobs", default="1", metavar="N",
                   help="figures computed in parallel processes (default 1)")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="data cache (default: $SCDSIM_FIGURE_CACHE or ~/.cache/scdsim/figures)")
    p.add_argument("--no-cache", action="store_true", help="recompute and do not store data")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _names(only):
    from paper_figures import FIGURES, resolve

    if not only:
        return list(FIGURES)
    names = []
    for item in only:
        for part in item.split(","):
            n = resolve(part)
            if n not in names:
                names.append(n)
    return names


def _jobs(value) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"--jobs must be a positive integer, got {value!r}") from None
    if n < 1:
        raise ValueError(f"--jobs must be a positive integer, got {value!r}")
    return n


def render(name, quick=False, out="figures", cache_dir=None, use_cache=True):
    """Compute (or load) and draw one figure; return ``(name, status, detail, seconds)``.

    ``status`` is ``"ok"`` (detail: the written paths), ``"skipped"`` (detail: why) or
    ``"failed"`` (detail: the error).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paper_figures import common, load

    t0 = time.perf_counter()
    if cache_dir is not None:
        common.set_cache_dir(cache_dir)
    mod = load(name)
    try:
        reason = mod.available() if hasattr(mod, "available") else None
        if reason is None:
            data = mod.compute(quick=quick, use_cache=use_cache)
            reason = data.get("skipped") if isinstance(data, dict) else None
        if reason is not None:
            return name, "skipped", reason, time.perf_counter() - t0
        fig = mod.plot(data)
        paths = common.save_figure(fig, out, name)
        plt.close(fig)
        return name, "ok", [str(p) for p in paths], time.perf_counter() - t0
    except Exception as e:  # reported per figure, the others still run
        return name, "failed", f"{type(e).__name__}: {e}", time.perf_counter() - t0


def cmd_figures(args) -> int:
    """Run the ``figures`` subcommand; 0 if no figure failed, 1 otherwise."""
    names = _names(args.only)
    jobs = _jobs(args.jobs)
    out = args.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out!r} exists and is not a directory")
    from tqdm.auto import tqdm

    kw = dict(quick=args.quick, out=out, cache_dir=args.cache_dir, use_cache=not args.no_cache)
    show = not args.no_progress and sys.stderr.isatty()
    results = []
    with tqdm(total=len(names), desc="figures", unit="fig", disable=not show) as bar:
        if jobs == 1 or len(names) == 1:
            for n in names:
                bar.set_postfix_str(n)
                results.append(render(n, **kw))
                _report(results[-1], bar)
        else:
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(max_workers=min(jobs, len(names))) as ex:
                futs = [ex.submit(render, n, **kw) for n in names]
                for f in as_completed(futs):
                    results.append(f.result())
                    _report(results[-1], bar)
    failed = [r for r in results if r[1] == "failed"]
    ok = sum(r[1] == "ok" for r in results)
    skipped = sum(r[1] == "skipped" for r in results)
    print(f"{ok} figure(s) written to {out}, {skipped} skipped, {len(failed)} failed")
    return 1 if failed else 0


def _report(result, bar):
    name, status, detail, sec = result
    if status == "ok":
        line = f"{name}: {', '.join(detail)} ({sec:.1f} s)"
    else:
        line = f"{name}: {status}: {detail}"
    bar.write(line, file=sys.stdout)
    bar.update(1)


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv=None) -> int:
    """``python -m paper_figures [--quick] [--only NAME] [--out DIR] [--jobs N]``."""
    p = _OneLineParser(prog="python -m paper_figures", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(p)
    args = p.parse_args(argv)
    try:
        return cmd_figures(args)
    except (ValueError, TypeError) as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
