"""Throughput of the Monte Carlo engine against two per-block baselines, measured in one run.

Metric: verified draft tokens per second, i.e. draft positions whose verification was carried
out (accepted drafts plus the rejected one ending a block), summed over runs. Every engine runs
lossless SD with gamma = 4 on the same homogeneous Dirichlet pair (``chains.dirichlet_pair``,
mean TV 0.3):

* ``V = 1,000``, S = V (the state is the previous token);
* ``V = 50,000``, S = 16 (a token -> state map).

Baselines (timed on fewer runs, throughput is per token so the run count cancels):

(a) ``loop``: a straightforward per-run, per-block Python loop of Leviathan et al. Alg. 1 with
    NumPy on rows: the block's drafts by inverse CDF (``searchsorted`` of the row's
    ``cumsum``), accept if ``r <= p(x)/q(x)``, recovered token from ``norm(max(p - q, 0))``
    computed when a rejection needs it, bonus from ``p``. It keeps no tables between draws
    (what a loop over a real model's logits would have): each draw costs one ``cumsum`` of its
    row, which is the straightforward way to sample a row.
(b) ``hf``: ``transformers.generation.utils._speculative_sampling`` called once per block on
    the same laws as torch tensors (float32 log-probabilities as logits), after drafting the
    block's tokens with ``torch.multinomial``, which is what the assistant model does in HF.
    Torch runs on one thread, like NumPy.

Ours is one ``simulate`` call of 4,096 runs x T = 1,024 (256 with ``--quick``), its table
construction included: at V = S = 1,000 the tables cost about as much as 1,000 positions of
simulation, so shorter horizons show lower throughput. A note under the table gives the time
of a T = 8 call (mostly that construction).

Usage: ``python benchmarks/bench_montecarlo.py [--quick]``. Prints one table with the ratios.
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
TARGETS = {"loop": 100.0, "hf": 20.0}


# --------------------------------------------------------------------------------------------
# (a) per-token Python loop of Leviathan Alg. 1


def _draw(row, u):
    # inverse CDF; scaling u by the last cumulative sum normalises the row (the residual is
    # sampled unnormalised, as norm(.) then costs nothing)
    cdf = np.cumsum(row)
    return int(np.searchsorted(cdf, u * cdf[-1], side="right"))


def loop_baseline(pair, horizon, runs, seed=0):
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
# (b) transformers' _speculative_sampling, once per block


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


def ours(pair, horizon, runs):
    """Returns (verified draft tokens, seconds, seconds of a T = 8 warm-up call). Each call
    builds its tables (alias tables of q and of the residual), so the warm-up time is mostly
    that one-off cost, which the timed call pays again."""
    t0 = time.perf_counter()
    simulate(pair, rules.lossless, min(horizon, 8), gamma=GAMMA, runs=runs, rng=1)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = simulate(pair, rules.lossless, horizon, gamma=GAMMA, runs=runs, rng=2)
    return int(res.phase_attempts.sum()), time.perf_counter() - t0, setup


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short horizons and few baseline runs")
    args = ap.parse_args(argv)
    horizon = 256 if args.quick else 1024
    base_runs = {"loop": 4 if args.quick else 16, "hf": 4 if args.quick else 16}
    base_horizon = 64 if args.quick else 128

    hf, why = find_hf()
    configs = [
        ("V=1,000 S=1,000", chains.dirichlet_pair(1000, 0.3, seed=0)),
        ("V=50,000 S=16", chains.dirichlet_pair(50_000, 0.3, S=16, seed=0)),
    ]
    rows, notes = [], []
    for label, pair in configs:
        tok, sec, setup = ours(pair, horizon, RUNS)
        rate = tok / sec
        notes.append(f"{label}: ours {sec:.3f} s for {tok:,} tokens; a T=8 call takes "
                     f"{setup:.3f} s (tables, paid once per call)")
        for name in ("loop", "hf"):
            if name == "hf" and hf is None:
                rows.append((label, name, rate, None, None, TARGETS[name], f"skipped: {why}"))
                continue
            if name == "loop":
                btok, bsec = loop_baseline(pair, base_horizon, base_runs[name])
            else:
                btok, bsec = hf_baseline(pair, base_horizon, base_runs[name], hf)
            brate = btok / bsec
            ratio = rate / brate
            verdict = "pass" if ratio >= TARGETS[name] else "FAIL"
            rows.append((label, name, rate, brate, ratio, TARGETS[name], verdict))

    print(f"lossless SD, gamma={GAMMA}, ours: {RUNS} runs x T={horizon}; baselines: "
          f"{base_runs['loop']} runs x T={base_horizon}; throughput = verified draft tokens/s")
    head = f"{'config':<17} {'baseline':<8} {'ours tok/s':>12} {'base tok/s':>12} {'ratio':>8} " \
           f"{'target':>7}  result"
    print(head)
    print("-" * len(head))
    for label, name, rate, brate, ratio, target, verdict in rows:
        b = f"{brate:12,.0f}" if brate is not None else f"{'-':>12}"
        r = f"{ratio:7.1f}x" if ratio is not None else f"{'-':>8}"
        print(f"{label:<17} {name:<8} {rate:12,.0f} {b} {r} {target:6.0f}x  {verdict}")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
