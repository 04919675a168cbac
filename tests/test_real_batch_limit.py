"""The M -> infinity limit process on a Markov chain wrapped as a model equals the exact limit.

``real_models.batch_limit.limit_records`` runs the limit of recursive-rejection multi-draft SD
on any (target, draft) pair of LMs. On a ``MarkovPair`` wrapped as causal LMs
(``real_models.tiny.markov_pair_lms``) its mean rejections must equal
``scdsim.exact.expected_rejections_batch_limit`` (first reading, Yin et al. Prop. 1: not 0),
and the tree reading with a full-support draft is never rejected.

Statistical test: mean rejections over N prompts against the exact value, |z| < 4.89
(two-sided level 1e-6) with the standard error estimated from the sample; its power is
computed against the planted bug of verifying the first position with one draft (the M = 1
value, exact ``expected_rejections``), which the test must reject.
"""

import math

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from real_models.batch_limit import limit_records  # noqa: E402
from real_models.tiny import markov_pair_lms  # noqa: E402
from real_models.validate import prompt_summary  # noqa: E402
from scdsim import chains, rules  # noqa: E402
from scdsim.exact import markov as mk  # noqa: E402

pytestmark = pytest.mark.torch
Z = 4.89  # two-sided 1e-6


def _rejections(recs):
    return sum(r["kind"] == "recovered" for r in recs)


@pytest.mark.parametrize("make,T,gamma", [(chains.yin_example, 4, 4),
                                          (lambda: chains.dirichlet_pair(4, 0.4, S=2, seed=5),
                                           7, 2)])
def test_first_reading_limit_has_the_exact_engines_mean_rejections(make, T, gamma):
    pair = make()
    target, draft = markov_pair_lms(pair)
    N = 1500
    runs = limit_records(target, draft, [[0]] * N, gamma, T, reading="first", seed=11)
    x = np.array([_rejections(r) for r in runs], dtype=float)
    assert all(len(r) == T for r in runs)
    exact = mk.expected_rejections_batch_limit(pair, T, gamma)
    se = x.std(ddof=1) / math.sqrt(N)
    z = (x.mean() - exact) / se
    assert abs(z) < Z, (x.mean(), exact, z)
    # power against the planted bug (the first position verified with one draft)
    bug = mk.expected_rejections(pair, rules.lossless, T, gamma)
    shift = abs(bug - exact) / se
    from scipy.stats import norm

    power = norm.cdf(shift - Z) + norm.cdf(-shift - Z)
    assert power > 0.99, (bug, exact, se, power)
    # the limit's per-position rejection probabilities (0 at limit steps) sum to the same mean
    pred = np.array([prompt_summary(r, gamma)["expected_rejections"] for r in runs])
    assert abs(pred.mean() - exact) < Z * pred.std(ddof=1) / math.sqrt(N)


def test_tree_reading_limit_never_rejects_a_full_support_draft():
    pair = chains.dirichlet_pair(4, 0.4, S=2, seed=5)
    target, draft = markov_pair_lms(pair)
    runs = limit_records(target, draft, [[0]] * 40, 3, 9, reading="tree", seed=2)
    for recs in runs:
        assert _rejections(recs) == 0
        assert all(r["rejection_prob"] in (None, 0.0) for r in recs)
        s = prompt_summary(recs, 3)
        assert s["block_hist"][4] == sum(s["block_hist"])  # complete blocks: gamma + 1 tokens


def test_a_draft_without_full_support_is_rejected_where_it_has_no_mass():
    """q(x) = 0 on part of p's support: a limit step rejects with probability p(q = 0), and
    observed rejections follow the summed probabilities (martingale z, level 1e-6)."""
    from scdsim.chains import MarkovLM, MarkovPair

    P = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]])
    Q = np.array([[0.6, 0.4, 0.0], [0.5, 0.5, 0.0], [0.1, 0.9, 0.0]])
    pair = MarkovPair(MarkovLM(P, start=0), MarkovLM(Q, start=0))
    target, draft = markov_pair_lms(pair)
    runs = limit_records(target, draft, [[0]] * 300, 2, 6, reading="tree", seed=4)
    recs = [r for run in runs for r in run if r["kind"] in ("accepted", "recovered")]
    assert {round(r["rejection_prob"], 12) for r in recs} <= {0.2, 0.6, 0.3}
    r = np.array([x["rejection_prob"] for x in recs])
    o = np.array([x["kind"] == "recovered" for x in recs])
    z = (o.sum() - r.sum()) / math.sqrt(np.sum(r * (1 - r)))
    assert abs(z) < Z
    # a recovered token is where the draft has no mass (token 2), an accepted one elsewhere
    assert all((x["token"] == 2) == (x["kind"] == "recovered") for x in recs)


def test_bad_arguments_are_named():
    pair = chains.dirichlet_pair(3, 0.3, seed=0)
    target, draft = markov_pair_lms(pair)
    with pytest.raises(ValueError, match="gamma"):
        limit_records(target, draft, [[0]], 0, 4)
    with pytest.raises(ValueError, match="max_new_tokens"):
        limit_records(target, draft, [[0]], 2, 0)
    with pytest.raises(ValueError, match="reading"):
        limit_records(target, draft, [[0]], 2, 4, reading="depth")
    with pytest.raises(TypeError, match="draft model"):
        limit_records(target, object(), [[0]], 2, 4)
