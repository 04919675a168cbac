"""Throughput of the Monte Carlo engine against fair baselines, measured in one run.

Metric: verified draft tokens per second, i.e. draft positions whose verification was carried
out (accepted drafts plus the rejected one ending a block), summed over runs. Every engine runs
lossless SD with gamma = 4 on the same homogeneous Dirichlet pair (``chains.dirichlet_pair``,
mean TV 0.3): ``V = 1,000`` with S = V (the state is the previous token), and ``V = 50,000``
with S = 16 (a token -> state map).

What each side measures (lossless SD, the engine's own algorithm: one position at a time,
a bonus position drawn as one more verification step since the step law is the target):

* ``ours``: one ``scdsim.simulate`` call of 4,096 runs x T = 1,024 (256 with ``--quick``),
  its table construction included (timed, paid once per call, while the baselines' tables are
  not timed); a note gives the time of a T = 8 call (mostly that construction).
* (a) ``alias-loop``: the same per-position algorithm as a per-run, per-token Python loop over
  Walker alias tables of ``q``, ``p`` and the residual ``norm(max(p - q, 0))`` built ONCE
  before timing (not timed), acceptances ``min(1, p/q)`` precomputed, uniforms drawn in bulk
  per run. The fair version of a hand-written loop.
* (b) ``torch-vec``: the same algorithm vectorised over runs in torch on CPU (one thread, like
  NumPy; tables built once, not timed): every run advances one position per step; the
  residual is drawn only for the runs that rejected; tokens stored in a (runs, T) tensor.
  Same runs and horizon as ours.
* (c) ``cumsum-loop`` (weak, kept for comparison with earlier numbers): a per-block loop that
  draws every token by ``cumsum`` + ``searchsorted`` of its row and rebuilds the residual on
  each rejection, O(V) per draw.
* (d) ``hf`` (weak, kept): ``transformers.generation.utils._speculative_sampling``, a batch-1
  function, called once per block.

Each measurement is repeated (``--repeats``, default 3); the table prints min / median / max
of the throughputs and of the ratio ours / baseline, each ratio taken between measurements of
the same repeat (so load on the machine hits both sides alike).

Usage: ``python benchmarks/bench_montecarlo.py [--quick] [--repeats R] [--no-weak]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scdsim import chains, rules  # noqa: E402
from scdsim.montecarlo import simulate  # noqa: E402

GAMMA = 4
RUNS = 4096


# --------------------------------------------------------------------------------------------
# alias tables built once (Vose's method, row by row; construction is not timed)


def alias_rows(rows):
    """Walker/Vose alias tables ``(prob (S, V), alias (S, V))`` of the rows of ``rows``."""
    rows = np.asarray(rows, dtype=np.float64)
    S, V = rows.shape
    prob = np.ones((S, V))
    alias = np.tile(np.arange(V), (S, 1))
    for s in range(S):
        w = (rows[s] * (V / rows[s].sum())).tolist()
        small = [i for i, x in enumerate(w) if x < 1.0]
        large = [i for i, x in enumerate(w) if x >= 1.0]
        pr, al = prob[s], alias[s]
        while small and large:
            i, j = small.pop(), large[-1]
            pr[i] = w[i]
            al[i] = j
            w[j] -= 1.0 - w[i]
            if w[j] < 1.0:
                small.append(large.pop())
        # leftovers are 1 up to rounding: they keep prob 1
    return prob, alias


class Tables:
    """Everything the fair baselines precompute once: alias tables of ``q``, of the residual
    and (for gamma blocks) nothing else, since the bonus is drawn as a verification step."""

    def __init__(self, pair):
        P = np.asarray(pair.target.kernels, dtype=np.float64)
        Q = np.asarray(pair.draft.kernels, dtype=np.float64)
        self.S, self.V = P.shape
        res = np.maximum(P - Q, 0.0)
        tot = res.sum(axis=1, keepdims=True)
        res = np.where(tot > 0, res / np.where(tot > 0, tot, 1.0), P)  # unused where p == q
        self.q_prob, self.q_alias = alias_rows(Q)
        self.r_prob, self.r_alias = alias_rows(res)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.acc = np.where(Q > 0, np.minimum(1.0, P / np.where(Q > 0, Q, 1.0)), 1.0)
        self.state_of = np.asarray(pair.state_of)
        self.start = pair.start


# --------------------------------------------------------------------------------------------
# (a) per-token Python loop over the alias tables


def alias_loop_baseline(tables, horizon, runs, seed=0):
    """Returns (verified draft tokens, seconds)."""
    V = tables.V
    qp, qa = tables.q_prob.ravel().tolist(), tables.q_alias.ravel().tolist()
    rp, ra = tables.r_prob.ravel().tolist(), tables.r_alias.ravel().tolist()
    acc = tables.acc.ravel().tolist()
    so = tables.state_of.tolist()
    rng = np.random.default_rng(seed)
    verified = 0
    t0 = time.perf_counter()
    for _ in range(runs):
        u = rng.random((horizon, 3))
        u[:, [0, 2]] *= V  # draw uniforms: column int(y), coin frac(y), as ours
        s, k = tables.start, 0
        for y, ua, y2 in u.tolist():
            sV = s * V
            c = int(y)
            x = c if y - c < qp[sV + c] else qa[sV + c]
            if k < GAMMA:
                verified += 1
            if ua < acc[sV + x]:  # accepted (at k == GAMMA: the bonus drawn as a step)
                k = k + 1 if k < GAMMA else 0
            else:  # recovered token from the residual's table, the block ends
                c = int(y2)
                x = c if y2 - c < rp[sV + c] else ra[sV + c]
                k = 0
            s = so[x]
    return verified, time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# (b) the same algorithm vectorised over runs in torch (CPU)


def torch_vec_baseline(tables, horizon, runs, seed=0):
    """Returns (verified draft tokens, seconds); None when torch is missing."""
    try:
        import torch
    except Exception:  # noqa: BLE001 - report any import failure as a skip
        return None
    torch.set_num_threads(1)
    V = tables.V
    qp = torch.from_numpy(tables.q_prob.ravel().copy())
    qa = torch.from_numpy(tables.q_alias.ravel().astype(np.int64))
    rp = torch.from_numpy(tables.r_prob.ravel().copy())
    ra = torch.from_numpy(tables.r_alias.ravel().astype(np.int64))
    acc = torch.from_numpy(tables.acc.ravel().copy())
    so = torch.from_numpy(tables.state_of.astype(np.int64))
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    s = torch.full((runs,), tables.start, dtype=torch.int64)
    k = torch.zeros(runs, dtype=torch.int64)
    tokens = torch.empty((runs, horizon), dtype=torch.int64)
    verified = 0
    for n in range(horizon):
        u = torch.rand((3, runs), generator=gen, dtype=torch.float64)
        sV = s * V
        y = u[0] * V
        c = y.long()
        i = sV + c
        x = torch.where(y - c < qp[i], c, qa[i])
        draft = k < GAMMA
        verified += int(draft.sum())
        ok = u[1] < acc[sV + x]
        rej = torch.nonzero(~ok).squeeze(1)
        if rej.numel():
            y = u[2, rej] * V
            c = y.long()
            i = sV[rej] + c
            x[rej] = torch.where(y - c < rp[i], c, ra[i])
        k = torch.where(ok & draft, k + 1, torch.zeros_like(k))
        tokens[:, n] = x
        s = so[x]
    return verified, time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# (c) weak baseline kept for comparison: per-token loop drawing by cumsum, no tables


def _draw(row, u):
    # inverse CDF; scaling u by the last cumulative sum normalises the row (the residual is
    # sampled unnormalised, as norm(.) then costs nothing)
    cdf = np.cumsum(row)
    return int(np.searchsorted(cdf, u * cdf[-1], side="right"))


def cumsum_loop_baseline(pair, horizon, runs, seed=0):
    """Returns (verified draft tokens, seconds)."""
    P, Q, so = pair.target.kernels, pair.draft.kernels, pair.state_of
    V = pair.V
    rng = np.random.default_rng(seed)
    verified = 0
    t0 = time.perf_counter()
    for _ in range(runs):
        s, n = pair.start, 0
        while n < horizon:
            g = min(GAMMA, horizon - n)
            states, xs, st = [], [], s
            for _ in range(g):  # draft g tokens autoregressively
                states.append(st)
                x = min(_draw(Q[st], rng.random()), V - 1)
                xs.append(x)
                st = so[x]
            for i in range(g):
                p, q, x = P[states[i]], Q[states[i]], xs[i]
                verified += 1
                if rng.random() <= min(1.0, p[x] / q[x]):
                    n += 1
                    s = so[x]
                else:  # recovered token from norm(max(p - q, 0)), computed when needed
                    x = min(_draw(np.maximum(p - q, 0.0), rng.random()), V - 1)
                    n += 1
                    s = so[x]
                    break
            else:
                if n < horizon:  # bonus token
                    x = min(_draw(P[s], rng.random()), V - 1)
                    n += 1
                    s = so[x]
    return verified, time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# (d) weak baseline kept for comparison: transformers' _speculative_sampling, once per block


def find_hf():
    try:
        import torch
        from transformers.generation import utils as hf_utils
    except Exception as exc:  # noqa: BLE001 - report any import failure as a skip reason
        return None, f"transformers not importable ({type(exc).__name__}: {exc})"
    fn = getattr(hf_utils, "_speculative_sampling", None)
    if fn is None:
        return None, "transformers.generation.utils has no _speculative_sampling in this version"
    return (torch, fn), ""


def hf_baseline(pair, horizon, runs, hf, seed=0):
    torch, spec = hf
    # one thread, like the NumPy engine (torch's default pool thrashes on a shared 2-core box)
    torch.set_num_threads(1)
    torch.manual_seed(seed)  # _speculative_sampling draws from torch's global RNG
    logP = torch.log(torch.tensor(np.array(pair.target.kernels), dtype=torch.float32))
    logQ = torch.log(torch.tensor(np.array(pair.draft.kernels), dtype=torch.float32))
    Qt = torch.softmax(logQ, dim=-1)
    so = torch.tensor(np.array(pair.state_of))
    verified = 0
    t0 = time.perf_counter()
    for _ in range(runs):
        s, n = pair.start, 0
        while n < horizon:
            g = min(GAMMA, horizon - n)
            st = s
            states, xs = [], []
            for _ in range(g):
                states.append(st)
                x = int(torch.multinomial(Qt[st], 1))
                xs.append(x)
                st = int(so[x])
            states_t = torch.tensor(states)
            cand_ids = torch.tensor([xs])
            cand_logits = logQ[states_t][None]  # (1, g, V)
            new_logits = torch.cat([logP[states_t], logP[st][None]])[None]  # (1, g+1, V)
            tokens, n_matches = spec(cand_ids, cand_logits, g, new_logits)
            m = int(n_matches)
            verified += min(m + 1, g)
            emitted = tokens[0].tolist()
            if n + len(emitted) > horizon:  # all g accepted at the horizon: no bonus
                emitted = emitted[:horizon - n]
            n += len(emitted)
            s = int(so[emitted[-1]])
    return verified, time.perf_counter() - t0


# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------


def _verified(res):
    """Verified draft tokens of a SimResult: its per-phase attempts summed."""
    return int(res.phase_attempts.sum())


def ours(pair, horizon, runs, seed=2):
    """Returns (verified draft tokens, seconds, seconds of a T = 8 call): one simulate call,
    its tables included; the T = 8 call is mostly that table construction."""
    t0 = time.perf_counter()
    simulate(pair, rules.lossless, 8, gamma=GAMMA, runs=runs, rng=seed)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = simulate(pair, rules.lossless, horizon, gamma=GAMMA, runs=runs, rng=seed)
    return _verified(res), time.perf_counter() - t0, setup


def _stats(xs):
    xs = np.asarray(xs, dtype=float)
    return float(xs.min()), float(np.median(xs)), float(xs.max())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short horizons and few baseline runs")
    ap.add_argument("--repeats", type=int, default=3, help="measurements per side (default 3)")
    ap.add_argument("--no-weak", action="store_true", help="skip the weak baselines (c), (d)")
    args = ap.parse_args(argv)
    horizon = 256 if args.quick else 1024
    loop_runs, loop_horizon = (4, 64) if args.quick else (16, 128)

    hf, why = find_hf()
    configs = [
        ("V=1,000 S=1,000", chains.dirichlet_pair(1000, 0.3, seed=0)),
        ("V=50,000 S=16", chains.dirichlet_pair(50_000, 0.3, S=16, seed=0)),
    ]
    names = ["alias-loop", "torch-vec"] + ([] if args.no_weak else ["cumsum-loop", "hf"])
    print(f"lossless SD, gamma={GAMMA}; throughput = verified draft tokens / s; "
          f"{args.repeats} repeats, min / median / max")
    print(f"ours and torch-vec: {RUNS} runs x T={horizon}; loops: {loop_runs} runs x "
          f"T={loop_horizon}; ratio = ours / baseline within each repeat")
    head = (f"{'config':<16} {'baseline':<12} {'ours tok/s (min/med/max)':>30} "
            f"{'baseline tok/s (min/med/max)':>32} {'ratio (min/med/max)':>22}")
    print(head)
    print("-" * len(head))
    for label, pair in configs:
        t0 = time.perf_counter()
        tables = Tables(pair)
        build = time.perf_counter() - t0
        rates = {name: [] for name in names}
        mine = {name: [] for name in names}
        skipped = {}
        setups, sims = [], []
        for rep in range(args.repeats):
            tok, sec, setup = ours(pair, horizon, RUNS, seed=2 + rep)  # shared by the repeat
            ours_rate = tok / sec
            setups.append(setup)
            sims.append(tok / max(sec - setup, 1e-9))
            for name in names:
                if name == "alias-loop":
                    out = alias_loop_baseline(tables, loop_horizon, loop_runs, seed=rep)
                elif name == "torch-vec":
                    out = torch_vec_baseline(tables, horizon, RUNS, seed=rep)
                elif name == "cumsum-loop":
                    out = cumsum_loop_baseline(pair, loop_horizon, loop_runs, seed=rep)
                else:
                    out = hf_baseline(pair, loop_horizon, loop_runs, hf, seed=rep) if hf else None
                if out is None:
                    skipped[name] = why if name == "hf" else "torch not importable"
                    continue
                rates[name].append(out[0] / out[1])
                mine[name].append(ours_rate)
        for name in names:
            if name in skipped:
                print(f"{label:<16} {name:<12} skipped: {skipped[name]}")
                continue
            o, b = _stats(mine[name]), _stats(rates[name])
            r = _stats(np.asarray(mine[name]) / np.asarray(rates[name]))
            print(f"{label:<16} {name:<12} {o[0]:>9,.0f} {o[1]:>9,.0f} {o[2]:>10,.0f} "
                  f"{b[0]:>10,.0f} {b[1]:>10,.0f} {b[2]:>10,.0f} "
                  f"{r[0]:>6.1f}x {r[1]:>6.1f}x {r[2]:>6.1f}x")
        s = _stats(setups)
        print(f"{label}: baseline alias tables built once in {build:.2f} s (not timed); ours "
              f"includes its own tables: a T=8 call takes {s[0]:.2f} / {s[1]:.2f} / {s[2]:.2f} s; "
              f"without them ours runs {_stats(sims)[1]:,.0f} tok/s (median)")


if __name__ == "__main__":
    main()
