# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A tour of the theory of speculative decoding with scdsim
#
# Rules at one position, their one-step laws, the exact sequence-level engine, the Monte Carlo
# engine that must agree with it, and a figure. Every number printed here is also asserted, so
# this notebook fails (in the test suite) the day the library stops agreeing with the papers.
#
# Letters: scdsim's kernels use **p = target, q = draft** (Leviathan et al.); Yin et al. swap
# them. Public functions take `(target, draft)` in that order.
#
# Run it with `jupytext --to notebook notebooks/01_theory_tour.py` and open the `.ipynb`, or
# execute the percent script directly in an editor that understands `# %%` cells.

# %%
import os

import numpy as np

import scdsim
from scdsim import chains, cost, rules

SMALL = os.environ.get("SCDSIM_NB_SMALL") == "1"  # the tests run every notebook small
RUNS = 4_000 if SMALL else 40_000
Z = 4.89  # |MC - exact| <= 4.89 s.e.: a 1e-6 two-sided false-alarm rate per check

# %% [markdown]
# ## 1. One position: the verification rule
#
# A draft token x ~ q is accepted with probability a(x); otherwise a token is drawn from the
# residual law r. Lossless SD takes a = min(1, p/q) and r = norm([p - q]_+), so the emitted token
# is distributed exactly as p, and the rejection probability is TV(p, q) (Leviathan Thm 3.5).

# %%
p = np.array([0.2, 0.3, 0.5])  # target
q = np.array([0.5, 0.3, 0.2])  # draft
print("TV(p, q)            =", scdsim.tv(p, q))
print("residual            =", scdsim.residual(p, q))
print("P(reject), lossless =", scdsim.rejection_prob(rules.lossless, p, q))
print("one-step law        =", scdsim.step_law(rules.lossless, p, q))
assert abs(scdsim.tv(p, q) - 0.3) < 1e-15  # reference notes §7.2
np.testing.assert_allclose(scdsim.residual(p, q), [0, 0, 1], atol=1e-15)
np.testing.assert_allclose(scdsim.step_law(rules.lossless, p, q), p, atol=1e-15)

# %% [markdown]
# Over-accepting rules (Yin et al. §5) trade bias for fewer rejections. Decoding-OPT resamples
# from Thm 4's optimal law and sits on the Pareto front `P(reject) + bias = TV`; Decoding-UNO
# resamples from p and sits above it.

# %%
for resample in ("optimal", "target"):
    rule = rules.over_accept(0.1, form="additive", resample=resample)
    g = scdsim.front_gap(rule, p, q)
    print(f"{rule.name:34s} P(reject) = {g.rejection:.3f}  bias = {g.bias:.3f}  gap = {g.gap:.3f}")
opt = scdsim.front_gap(rules.over_accept(0.1, resample="optimal"), p, q)
uno = scdsim.front_gap(rules.over_accept(0.1, resample="target"), p, q)
assert abs(opt.rejection - 0.2) < 1e-12 and abs(opt.bias - 0.1) < 1e-12  # reference notes §7.4
assert abs(uno.bias - 0.2) < 1e-12 and opt.gap < 1e-12 < uno.gap

# %% [markdown]
# With M i.i.d. drafts, recursive rejection (SpecInfer) is unbiased but below the optimal
# coupling (SpecTr); k-SEQ sits in between. Bernoulli target Ber(0.6), draft Ber(0.2):

# %%
P, Q = chains.bernoulli_pair(0.6, 0.2).kernels(0)
print(" M  recursive  k-SEQ     optimal")
for M in range(1, 6):
    acc = [float(scdsim.acceptance_prob(f(M), P, Q)[0])
           for f in (rules.recursive, rules.kseq, rules.optimal)]
    print(f"{M:2d}  {acc[0]:.6f}   {acc[1]:.6f}  {acc[2]:.6f}")
assert abs(scdsim.acceptance_prob(rules.recursive(4), P, Q)[0] - 0.7952) < 1e-12  # §7.5
assert abs(scdsim.acceptance_prob(rules.optimal(3), P, Q)[0] - 0.888) < 1e-12
assert abs(scdsim.acceptance_prob(rules.kseq(2), P, Q)[0] - 0.708062) < 5e-7

# %% [markdown]
# ## 2. The sequence level: the exact engine
#
# On a Markov pair the (phase, state) process is a Markov chain, so expected rejections, the law
# of the number of rejections, block statistics and the output marginals are computed exactly.
# The T = 4, V = 3 chain of reference notes §7.3 (Yin et al.'s Thm 1 example):

# %%
yin = chains.yin_example()
T = 4
e1 = scdsim.expected_rejections(yin, rules.lossless, T)
print("E[N_rej], lossless SD to the horizon:", e1)
print("Thm 1 closed form                   :", scdsim.expected_rejections_theorem1(yin, T))
print("law of N_rej                        :",
      np.round(scdsim.rejection_distribution(yin, rules.lossless, T), 6))
assert abs(e1 - 1.0514) < 1e-12
curve = scdsim.batch_curve(yin, T, [1, 2, 4, 5, 64])
print("batch (variant A) E[N_rej] vs M     :",
      {int(m): round(float(v), 6) for m, v in zip(curve["M"], curve["rejections"])})
print("M -> infinity limit                 :", scdsim.expected_rejections_batch_limit(yin, T))
np.testing.assert_allclose(curve["rejections"], [1.0514, 0.926388, 0.785812, 0.746647, 0.651050],
                           atol=5e-7)

# %% [markdown]
# Lossless SD leaves the output law alone: the exact marginal of the last token is the target's.

# %%
marg = scdsim.output_marginals(yin, rules.lossless, T)[-1]
print("x_4 marginal:", np.round(marg, 4))
np.testing.assert_allclose(marg, [0.4073, 0.3284, 0.2643], atol=5e-5)  # reference notes §7.3

# %% [markdown]
# ## 3. Monte Carlo agrees with the exact engine
#
# The Monte Carlo engine simulates the same process with its own random streams. Agreement is
# judged at 4.89 standard errors (a 1e-6 false-alarm rate per check).

# %%
for rule, batch in ((rules.lossless, "first"), (rules.recursive(4), "first"),
                    (rules.recursive(4), "tree")):
    exact = scdsim.expected_rejections(yin, rule, T, batch=batch)
    res = scdsim.simulate(yin, rule, T, runs=RUNS, rng=1, batch=batch)
    z = (res.mean_rejections - exact) / res.sem_rejections
    print(f"{rule.name:14s} {batch:5s}: exact {exact:.6f}  MC {res.mean_rejections:.4f} "
          f"± {res.sem_rejections:.4f}  z = {z:+.2f}")
    assert abs(z) <= Z

# %% [markdown]
# Blocks of γ drafts (Leviathan Alg. 1): the exact tokens per target call and speedup, against
# Leviathan's i.i.d. formula at the average acceptance rate. On a one-state pair acceptance is
# i.i.d. and the two agree up to the cut last block (1/T).

# %%
pair = chains.bernoulli_pair(0.3, 0.0)  # TV = 0.3 in the single state: alpha = 0.7
bs = scdsim.block_stats(pair, rules.lossless, 2_000, gamma=3, c=0.05)
print(f"exact speedup {bs.speedup:.4f}, i.i.d. formula {bs.iid_speedup:.4f} at alpha = {bs.alpha:.3f}")
assert abs(bs.iid_speedup - cost.speedup(0.7, 3, 0.05)) < 1e-12
assert abs(bs.speedup - bs.iid_speedup) < 2e-3

# %% [markdown]
# ## 4. A figure
#
# Yin et al. Fig. 3 (right): the batch improvement saturates in M. `paper_figures` computes
# (and caches) the data and draws it; `scdsim figures` regenerates every figure.

# %%
import matplotlib  # noqa: E402

if os.environ.get("SCDSIM_NB_SMALL") == "1":
    matplotlib.use("Agg")
from paper_figures import fig03_batch_improvement as fig03  # noqa: E402

data = fig03.compute(quick=True)
fig = fig03.plot(data)
assert np.allclose(data["bernoulli"][0]["improvement"], data["bernoulli"][0]["closed_form"],
                   atol=1e-12)
fig  # noqa: B018 (the notebook displays the figure)
