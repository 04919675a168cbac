"""A finite-state Markov surrogate of a real (target, draft) pair, solved by the exact engine.

Idea. Lossless SD's block process depends on the pair only through, at each context, the
rejection probability ``r = TV(p, q)`` and where the next context goes after an accepted
token, a recovered token or a bonus token. Map each context to one of S states (k-means on the
target's last hidden state, or quantile bins of r), estimate per state

``r_s``  mean rejection probability at verified positions in state s,
``A_s``  law of the next state after an accepted token in state s,
``R_s``  law of the next state after a recovered token in state s,

(the per-state averages of the laws min(p, q)/(1 - r) and (p - q)^+/r pushed to states), and
build a ``MarkovPair`` that reproduces them exactly: its tokens are (next state, kind) with kind
in {overlap, excess of p, excess of q}, and in state s

``p_s = [(1 - r_s) A_s, r_s R_s, 0]``,   ``q_s = [(1 - r_s) A_s, 0, r_s A_s]``,

so ``TV(p_s, q_s) = r_s``, an accepted draft moves to ``A_s``, the residual to ``R_s`` and the
bonus (p) to ``(1 - r_s) A_s + r_s R_s``. For a real ``MarkovPair`` whose states are known
the construction is exact (:func:`surrogate_of_pair`): the exact engine gives the same block
law, rejections and target calls (tested to 1e-12). A dedicated start state (index S) holds the
statistics of the first position of each prompt.

The surrogate is solved with ``scdsim.stationary_rates`` (long-run tokens per call, the
quantity predictions (a) and (b) of ``real_models.validate`` also describe) and
``scdsim.block_stats`` (block-length law at a long horizon, and the speedup at a cost ratio c).
It describes single-draft rules through their per-position rejection probability; for a
multi-draft or lossy rule it is the lossless pair with the same rejection probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "SurrogateFit",
    "surrogate_pair",
    "surrogate_of_pair",
    "fit_surrogate",
    "kmeans",
    "quantile_labels",
    "predict",
    "held_out_study",
]


def surrogate_pair(r, A, R, start, name="surrogate"):
    """The surrogate ``MarkovPair`` of per-state statistics (module docstring).

    Parameters
    ----------
    r : array (S0,)
        Rejection probability in each state (S0 = number of states including a start state).
    A, R : arrays (S0, S)
        Laws of the next state (one of the first S states) after an accepted / recovered token.
    start : int
        The start state.
    """
    from scdsim.chains import MarkovLM, MarkovPair

    r = np.clip(np.asarray(r, dtype=np.float64), 0.0, 1.0)
    A = np.asarray(A, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    S0, S = A.shape
    if r.shape != (S0,) or R.shape != (S0, S):
        raise ValueError(f"r, A, R must have shapes (S0,), (S0, S), (S0, S); got {r.shape}, "
                         f"{A.shape}, {R.shape}")
    for name_, M in (("A", A), ("R", R)):
        if np.any(M < 0) or not np.allclose(M.sum(axis=1), 1.0, atol=1e-9):
            raise ValueError(f"{name_} rows must be probability vectors")
    z = np.zeros_like(A)
    p = np.concatenate([(1 - r)[:, None] * A, r[:, None] * R, z], axis=1)
    q = np.concatenate([(1 - r)[:, None] * A, z, r[:, None] * A], axis=1)
    state_of = np.tile(np.arange(S), 3)
    return MarkovPair(MarkovLM(p, start=int(start), state_of=state_of),
                      MarkovLM(q, start=int(start), state_of=state_of), name=name)


def _push(mass, state_of, S):
    """Token masses (..., V) pushed to next-state masses (..., S)."""
    out = np.zeros(mass.shape[:-1] + (S,))
    for s in range(S):
        out[..., s] = mass[..., state_of == s].sum(axis=-1)
    return out


def surrogate_of_pair(pair):
    """The exact surrogate of a homogeneous ``MarkovPair`` (its own states, no fitting)."""
    if not pair.homogeneous:
        raise ValueError("surrogate_of_pair needs a homogeneous MarkovPair")
    P, Q = pair.target.kernels, pair.draft.kernels
    S = pair.S
    ov = np.minimum(P, Q)
    ex = np.clip(P - Q, 0.0, None)
    r = 1.0 - ov.sum(axis=1)
    A, R = _push(ov, pair.state_of, S), _push(ex, pair.state_of, S)
    uniform = np.full(S, 1.0 / S)
    A = np.where(A.sum(1, keepdims=True) > 0, A / np.maximum(A.sum(1, keepdims=True), 1e-300),
                 uniform)
    R = np.where(R.sum(1, keepdims=True) > 0, R / np.maximum(R.sum(1, keepdims=True), 1e-300),
                 uniform)
    return surrogate_pair(r, A, R, pair.start, name=f"surrogate({pair.name})")


@dataclass(frozen=True)
class SurrogateFit:
    """A fitted surrogate: the per-state statistics and the pair built from them.

    Attributes
    ----------
    S : number of context states (the pair has S + 1: state S is the start).
    r : (S+1,) rejection probability per state;  A, R : (S+1, S) next-state laws.
    counts : (S+1,) verified positions per state.
    n_accepted, n_recovered : (S+1, S) transitions counted after accepted / recovered tokens.
    pair : the surrogate ``MarkovPair``.
    """

    S: int
    r: np.ndarray
    A: np.ndarray
    R: np.ndarray
    counts: np.ndarray
    n_accepted: np.ndarray
    n_recovered: np.ndarray
    pair: object

    def to_dict(self):
        return {"S": self.S, "r": self.r.tolist(), "A": self.A.tolist(), "R": self.R.tolist(),
                "counts": self.counts.tolist()}


def fit_surrogate(records, labels, S, prior=0.5):
    """Fit the surrogate from engine records and the state label of every context.

    Parameters
    ----------
    records : list (per prompt) of lists of record dicts (CONTRACTS.md)
    labels : list (per prompt) of int arrays
        ``labels[i][t]`` is the state (0..S-1) of the context before new token t of prompt i;
        its length is ``len(records[i])`` or one more (the context after the last token).
    S : int >= 1
        Number of context states.
    prior : float >= 0
        Pseudo-count added to every transition cell, spread uniformly (rows seen rarely lean
        on the pooled transition law instead of being 0/0).

    Returns
    -------
    SurrogateFit
    """
    from real_models.validate import _r

    if len(records) != len(labels):
        raise ValueError(f"records has {len(records)} prompts but labels has {len(labels)}")
    S0 = S + 1
    rsum, cnt = np.zeros(S0), np.zeros(S0)
    CA, CR = np.zeros((S0, S)), np.zeros((S0, S))
    for recs, lab in zip(records, labels):
        lab = np.asarray(lab, dtype=np.int64)
        if lab.shape[0] not in (len(recs), len(recs) + 1):
            raise ValueError(f"labels of a prompt must have {len(recs)} or {len(recs) + 1} "
                             f"entries, got {lab.shape[0]}")
        if lab.size and (lab.min() < 0 or lab.max() >= S):
            raise ValueError(f"labels must lie in [0, {S}), got [{lab.min()}, {lab.max()}]")
        for t, rec in enumerate(recs):
            s = S if t == 0 else int(lab[t])  # the first context: the start state
            kind = rec["kind"]
            if kind in ("accepted", "recovered"):
                rsum[s] += _r(rec)
                cnt[s] += 1
                if t + 1 < lab.shape[0]:
                    (CA if kind == "accepted" else CR)[s, int(lab[t + 1])] += 1
    # pooled laws as the fallback / prior direction
    gA = CA.sum(0) + 1e-12
    gR = CR.sum(0) + CA.sum(0) * 1e-6 + 1e-12
    gA, gR = gA / gA.sum(), gR / gR.sum()
    A = CA + prior * gA
    R = CR + prior * gR
    A = np.where(A.sum(1, keepdims=True) > 0, A, gA)  # a state never seen: the pooled law
    R = np.where(R.sum(1, keepdims=True) > 0, R, gR)
    A /= A.sum(1, keepdims=True)
    R /= R.sum(1, keepdims=True)
    rbar = rsum.sum() / max(cnt.sum(), 1)
    r = np.where(cnt > 0, rsum / np.maximum(cnt, 1), rbar)
    return SurrogateFit(S, r, A, R, cnt, CA, CR, surrogate_pair(r, A, R, S, name=f"surrogate(S={S})"))


def predict(pair, gamma, c=0.0, horizon=256):
    """Exact predictions of a surrogate pair: long-run tokens per call and block-length law.

    Returns
    -------
    dict: ``tokens_per_call`` (stationary), ``block_length_pmf`` (``block_stats`` at
    ``horizon``), ``speedup`` (at cost ratio ``c``, finite horizon), ``alpha``.
    """
    from scdsim import block_stats, rules, stationary_rates

    rates = stationary_rates(pair, rules.lossless, gamma)
    bs = block_stats(pair, rules.lossless, horizon, gamma, c=c)
    return {"tokens_per_call": float(rates.tokens_per_call),
            "block_length_pmf": np.asarray(bs.tokens_per_call_pmf).tolist(),
            "speedup": float(bs.speedup), "alpha": float(bs.alpha)}


def kmeans(X, S, seed=0, iters=50):
    """Lloyd's k-means with k-means++ seeding; returns ``(centroids (S, d), labels (n,))``."""
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    if n < S:
        raise ValueError(f"kmeans needs at least S={S} points, got {n}")
    rng = np.random.default_rng(seed)
    C = [X[rng.integers(n)]]
    d2 = ((X - C[0]) ** 2).sum(1)
    for _ in range(1, S):
        tot = d2.sum()
        i = rng.choice(n, p=d2 / tot) if tot > 0 else rng.integers(n)
        C.append(X[i])
        d2 = np.minimum(d2, ((X - X[i]) ** 2).sum(1))
    C = np.array(C)
    lab = np.zeros(n, dtype=np.int64)
    for _ in range(iters):
        D = (X ** 2).sum(1)[:, None] - 2 * X @ C.T + (C ** 2).sum(1)[None, :]
        new = D.argmin(1)
        if _ and np.array_equal(new, lab):
            break
        lab = new
        for s in range(S):
            m = lab == s
            if m.any():
                C[s] = X[m].mean(0)
    return C, lab


def assign(X, C):
    """Nearest-centroid labels of the rows of ``X``."""
    X = np.asarray(X, dtype=np.float64)
    D = (X ** 2).sum(1)[:, None] - 2 * X @ C.T + (C ** 2).sum(1)[None, :]
    return D.argmin(1)


def quantile_labels(values, S, edges=None):
    """Labels by quantile bins of a scalar feature (e.g. the rejection probability).

    Returns ``(labels, edges)``; pass ``edges`` to label held-out values with the same bins.
    """
    v = np.asarray(values, dtype=np.float64)
    if edges is None:
        edges = np.unique(np.quantile(v, np.linspace(0, 1, S + 1)[1:-1]))
    return np.searchsorted(edges, v, side="right"), edges


def held_out_study(records, features, gamma, Ss=(1, 2, 4, 8, 16), seed=0, method="kmeans"):
    """Fit on half the prompts, predict the other half's tokens per call, for each S.

    Parameters
    ----------
    records : list (per prompt) of record lists.
    features : list (per prompt) of arrays (n_i + 1, d) (``method="kmeans"``) or (n_i + 1,)
        (``method="quantile"``): the feature of the context before each new token, and after
        the last one.
    gamma : int
    Ss : state counts to try.

    Returns
    -------
    dict with ``S``, ``surrogate`` (predicted tokens/call per S), ``iid`` (Leviathan at the
    training alpha), ``observed`` (held-out complete-block mean), relative errors, and
    ``train`` / ``test`` prompt indices.
    """
    from real_models.validate import prompt_summary, score
    from scdsim.cost import expected_tokens

    n = len(records)
    if n < 2:
        raise ValueError(f"held_out_study needs at least 2 prompts, got {n}")
    train = list(range(0, n, 2))
    test = list(range(1, n, 2))
    sc_tr = score([prompt_summary(records[i], gamma) for i in train], gamma, n_boot=10)
    sc_te = score([prompt_summary(records[i], gamma) for i in test], gamma, n_boot=500,
                  seed=seed)
    obs = sc_te["tokens_per_call"]["block_mean"]
    iid = float(expected_tokens(sc_tr["alpha"]["value"], gamma))
    out = {"S": [], "surrogate": [], "surrogate_rel_error": [], "method": method,
           "observed": obs, "observed_ci": sc_te["tokens_per_call"]["block_mean_ci"],
           "iid": iid, "iid_rel_error": iid / obs - 1.0,
           "positional_train": sc_tr["predictions"]["positional"]["tokens_per_call"],
           "train": train, "test": test}
    out["positional_rel_error"] = out["positional_train"] / obs - 1.0
    Xtr = [np.asarray(features[i], dtype=np.float64) for i in train]
    for S in Ss:
        if method == "kmeans":
            allX = np.concatenate([x.reshape(x.shape[0], -1) for x in Xtr])
            if allX.shape[0] < S:
                continue
            C, _ = kmeans(allX, S, seed=seed)
            labels = [assign(x.reshape(x.shape[0], -1), C) for x in Xtr]
        else:
            _, edges = quantile_labels(np.concatenate(Xtr), S)
            labels = [quantile_labels(x, S, edges)[0] for x in Xtr]
        Seff = int(max(lab.max() for lab in labels) + 1)
        fit = fit_surrogate([records[i] for i in train], labels, max(Seff, 1))
        pred = predict(fit.pair, gamma)["tokens_per_call"]
        out["S"].append(int(S))
        out["surrogate"].append(pred)
        out["surrogate_rel_error"].append(pred / obs - 1.0)
    return out
