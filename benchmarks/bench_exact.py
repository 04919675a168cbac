"""Benchmark of the exact sequence-level engine against this machine's bounds, in one run.

Everything is measured in the same run and repeated (``--repeats``, default 3); the tables
print min / median / max, and ratios are taken between measurements of the same repeat.

1. Memory bandwidth bound. The bandwidth ``B`` is measured here: the best of a matrix-vector
   product over a 256 MB float64 matrix (a streaming read) and a sum over it. Propagating the
   law over ``T`` positions must read each position's operators once: ``n_op`` ``(S, V)``
   float64 matrices per position (1 for lossless SD drafting to the horizon, where accept and
   reject lead to the same phase; 2 with gamma blocks, the bonus folded into the verification;
   4 for a 2-draft rule with gamma blocks). The bound is ``T n_op 8 S V / B``; the table
   prints the fraction of it achieved (bound / time; above 1 when the operators stay in cache).
   A second reference is ``T n_op`` plain NumPy products ``v @ K`` on one cache-resident
   ``(V, V)`` matrix. These configurations propagate every position (fast-forward off).
2. ``recursive(2)`` vs ``kseq(2)``, same number of products (gamma = 4, first-position batch).
3. A long homogeneous horizon (``T = 20,000``, 5,000 with ``--quick``; ``--long-T``) with the
   fast-forward on (the default) and off (every position propagated, the engine's behaviour
   before it). The fast-forward's cost does not grow with ``T`` past convergence, so the
   ratio grows linearly with ``T``.

Usage::

    python benchmarks/bench_exact.py            # V = 1000, T = 500; long horizon 20,000
    python benchmarks/bench_exact.py --quick    # 2 repeats, T = 200, long horizon 5,000
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from scdsim import rules  # noqa: E402
from scdsim.chains import MarkovLM, MarkovPair  # noqa: E402
from scdsim.exact import markov as mk  # noqa: E402


def make_pair(V, seed=0):
    """Homogeneous Dirichlet pair, S = V (the state is the previous token), mean TV about 0.3."""
    rng = np.random.default_rng(seed)
    target = rng.dirichlet(np.ones(V), size=V)
    other = rng.dirichlet(np.ones(V), size=V)
    draft = 0.6 * target + 0.4 * other
    return MarkovPair(MarkovLM(target), MarkovLM(draft))


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bandwidth(repeats):
    """Best read bandwidth in bytes/s over a 256 MB float64 matrix (gemv and sum)."""
    A = np.random.default_rng(2).random((4096, 8192))
    v = np.ones(8192)
    best = min(min(timed(lambda: A @ v), timed(lambda: A.sum())) for _ in range(repeats))
    return A.nbytes / best


def products_floor(V, n, repeats):
    """``n`` products ``v @ K`` with one cache-resident ``(V, V)`` matrix: best time."""
    K = np.random.default_rng(1).random((V, V))
    K /= K.sum(axis=1, keepdims=True)
    v0 = np.full(V, 1.0 / V)

    def run():
        v = v0
        for _ in range(n):
            v = v @ K
        return v

    return min(timed(run) for _ in range(repeats))


class fast_forward:
    """Context: the engine's fast-forward on or off (off also lifts the work limit)."""

    def __init__(self, on):
        self.on = on

    def __enter__(self):
        self.saved = (getattr(mk, "_FAST_FORWARD", None), getattr(mk, "EXACT_MAX_WORK", None))
        if self.saved[0] is not None:
            mk._FAST_FORWARD = self.on
        if self.saved[1] is not None and not self.on:
            mk.EXACT_MAX_WORK = 10**18

    def __exit__(self, *exc):
        if self.saved[0] is not None:
            mk._FAST_FORWARD = self.saved[0]
        if self.saved[1] is not None:
            mk.EXACT_MAX_WORK = self.saved[1]


def stats(xs):
    xs = np.asarray(xs, dtype=float)
    return xs.min(), np.median(xs), xs.max()


def fmt(xs, scale=1.0, spec="8.1f"):
    return " ".join(format(x * scale, spec) for x in stats(xs))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 repeats, T = 200, long horizon 5,000")
    ap.add_argument("--T", type=int, default=None, help="horizon of section 1 (default 500)")
    ap.add_argument("--repeats", type=int, default=None, help="repeats (default 3, quick 2)")
    ap.add_argument("--long-T", type=int, default=None, help="long horizon (default 20,000)")
    args = ap.parse_args(argv)
    R = args.repeats or (2 if args.quick else 3)
    long_T = args.long_T or (5_000 if args.quick else 20_000)
    V, T, gamma = 1000, args.T or (200 if args.quick else 500), 4
    pair = make_pair(V)
    op_bytes = 8 * V * V

    configs = [
        ("expected_rejections lossless gamma=None", 1,
         lambda: mk.expected_rejections(pair, rules.lossless, T)),
        (f"block_stats lossless gamma={gamma}", 2,
         lambda: mk.block_stats(pair, rules.lossless, T, gamma, c=0.05)),
        (f"expected_rejections recursive(2) gamma={gamma}", 4,
         lambda: mk.expected_rejections(pair, rules.recursive(2), T, gamma)),
        (f"expected_rejections kseq(2) gamma={gamma}", 4,
         lambda: mk.expected_rejections(pair, rules.kseq(2), T, gamma)),
    ]
    times = {name: [] for name, _, _ in configs}
    bws, floors = [], []
    with fast_forward(False):
        for _ in range(R):
            bws.append(bandwidth(2))
            floors.append(products_floor(V, T, 1))
            for name, _, fn in configs:
                times[name].append(timed(fn))
    bws, floors = np.array(bws), np.array(floors)

    print(f"exact engine, V = S = {V}, T = {T}, float64, every position propagated; "
          f"{R} repeats, min / median / max")
    print(f"read bandwidth B = {fmt(bws, 1e-9, '6.1f')} GB/s (256 MB gemv / sum, best of 2); "
          f"T x (v @ K) floor = {fmt(floors, 1e3)} ms")
    head = (f"{'config':<44} {'ops':>3} {'time ms (min/med/max)':>28} "
            f"{'bandwidth bound fraction':>26} {'x floor':>22}")
    print(head)
    print("-" * len(head))
    for name, n_op, _ in configs:
        t = np.array(times[name])
        bound = T * n_op * op_bytes / bws  # same repeat's bandwidth
        print(f"{name:<44} {n_op:>3} {fmt(t, 1e3, '9.1f')} {fmt(bound / t, 1, '8.2f')} "
              f"{fmt(t / (n_op * floors), 1, '7.2f')}")
    rec = np.array(times[configs[2][0]]) / np.array(times[configs[3][0]])
    print(f"\nrecursive(2) / kseq(2) time (same products): {fmt(rec, 1, '.2f')}")

    print(f"\nlong homogeneous horizon: expected_rejections lossless gamma=None, V = {V}, "
          f"T = {long_T:,}")
    on, off, value = [], [], {}

    def long(key):
        value[key] = mk.expected_rejections(pair, rules.lossless, long_T)

    with fast_forward(True):
        for _ in range(R):
            on.append(timed(lambda: long("on")))
    with fast_forward(False):  # once: it propagates every position
        off.append(timed(lambda: long("off")))
    value_on, value_off = value["on"], value["off"]
    print(f"fast-forward on : {fmt(on, 1e3, '10.1f')} ms   value {value_on:.12f}")
    print(f"fast-forward off: {off[0] * 1e3:10.1f} ms (1 run)   value {value_off:.12f}")
    print(f"speed-up off / on: {fmt(off[0] / np.array(on), 1, '.0f')}x; "
          f"relative difference of the values {abs(value_on - value_off) / value_off:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
