"""Monte Carlo engine: many speculative-decoding runs on a Markov pair, vectorised over runs.

This is the only module that draws random numbers for synthetic runs. It simulates the
sequence-level process that the exact engine (``scdsim.exact.markov``) propagates, so the two
agree in law; see the glossary in ``scdsim.rules``.

Notation and glossary
---------------------
``p``, ``q``   target and draft laws at a position (Leviathan's letters; Yin et al. swap them)
``T``          horizon: positions ``n = 0..T-1``, position ``n`` emits token ``n+1``
``gamma``      draft budget of a block (``None``: draft to the horizon, Yin et al. Alg. 1)
block          one target call; starts at ``n0`` with budget ``g = min(gamma, T - n0)``
phase ``k``    drafts accepted so far in the current block
accepted       a draft token kept by the rule (phase ``k -> k+1``, the block goes on)
recovered      drawn from the rule's residual after every draft at a position was rejected: one
               *rejection*, the block ends
bonus          drawn from ``p`` at phase ``k == g`` (all drafts accepted), the block ends; a block
               whose drafts reach the horizon ends without one

Multi-draft rules (``rule.M > 1``) run in one of two labelled readings of Yin et al. Alg. 4
(theory.md §1.6): ``batch="first"`` (variant A) verifies M i.i.d. drafts only at phase 0 and
continues along the accepted draft with ``rule.single()``; ``batch="tree"`` (variant B) keeps
the number ``m`` of alive drafts (those carrying the accepted prefix), draws their ``m`` next
tokens i.i.d. from ``q`` and verifies them with ``rule.with_drafts(m)``.

How runs are simulated
----------------------
All runs emit one token per position, so they advance together: the loop is over positions
(and over draft counts ``m <= M``), and every operation inside acts on all runs at once. A rule
is used only through its array functions: ``rule.acceptances(P, Q)`` and
``rule.residual(P, Q)`` on the whole ``(S, V)`` kernels of a position, computed once per
position (once in all for homogeneous pairs) and looked up per run. Tokens are drawn by
inverse CDF: one search of ``s + u`` in a flattened cumulative table whose row ``s`` is offset
by ``s`` (narrowed by a guide table once a table is reused enough), exact in float64 and unable
to return a token of probability 0.

Randomness
----------
Run ``i`` owns the stream of uniforms ``Generator(Philox(key=k, counter=c)).random()`` (53-bit
doubles in [0, 1)) with the uint64 arrays ``k = [w0, i]``, ``c = [0, 0, 0, w1]`` and
``(w0, w1) = SeedSequence(seed).generate_state(2, uint64)``. Position ``n`` consumes the fixed
slots ``n * n_slots + j``: ``M`` draft-token uniforms, ``M`` acceptance uniforms, one residual
and one bonus uniform (independent draws; unused slots are skipped, never shifted). So run ``i``
is the same whatever ``runs`` is or how the draws are chunked. Sampling uses ``u`` in [0, 1);
acceptance uses ``1 - u`` in (0, 1] and a draft is accepted iff ``1 - u <= a`` (``a = 0`` never,
``a = 1`` always accepts).

References
----------
Leviathan, Kalman, Matias 2023, "Fast Inference from Transformers via Speculative Decoding",
Alg. 1 and §2.3. Yin, Chen, Huang, Wang 2024, "A Theoretical Perspective for Speculative
Decoding Algorithm", Alg. 1 (draft to the horizon), Thm 1, Alg. 4 (batch).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from scdsim._validate import check_choice, check_int
from scdsim.chains import MarkovLM, MarkovPair
from scdsim.rules import Rule

__all__ = ["simulate", "SimResult", "sample_autoregressive"]

# Uniforms are drawn in chunks of positions whose size keeps one chunk under this budget.
_CHUNK_BYTES = 32 * 2**20
# Tolerance on the rows of a rule's residual (same as _validate.PROB_ATOL for float64).
_ROW_ATOL = 1e-6
# Above this many queries, sort them before the table search.
_SORT_QUERIES = 256


# ------------------------------------------------------------------------------------------
# randomness


def _seed_from(rng) -> int:
    """Normalise ``rng`` (int, Generator or None) to a non-negative integer seed, once."""
    if rng is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, 2**63, dtype=np.int64))
    if isinstance(rng, bool) or not isinstance(rng, numbers.Integral):
        raise TypeError(
            f"rng must be an int seed, a numpy.random.Generator or None, got {type(rng).__name__}"
        )
    return check_int(rng, "rng", minimum=0)


class _Streams:
    """Per-run Philox streams; ``uniforms(n0, n1)`` gives the draws of positions ``[n0, n1)``.

    Run ``i`` is ``Philox(key=[w0, i], counter=[0, 0, 0, w1])`` read through
    ``Generator.random`` (one raw output per 53-bit double in [0, 1)); position ``n`` owns draws
    ``n * n_slots .. (n+1) * n_slots - 1`` of that stream. One bit generator is re-keyed per run
    (cheaper than building ``runs`` generators) and jumped to the chunk by its counter.
    """

    def __init__(self, seed: int, runs: int, n_slots: int):
        w0, w1 = np.random.SeedSequence(seed).generate_state(2, np.uint64)
        self.runs, self.n_slots = runs, n_slots
        # uint64 arrays, not lists of Python ints: numpy converts such lists through float64
        self._bg = np.random.Philox(key=np.array([w0, 0], dtype=np.uint64),
                                    counter=np.array([0, 0, 0, w1], dtype=np.uint64))
        self._gen = np.random.Generator(self._bg)
        self._state = self._bg.state
        self._w0, self._w1 = w0, w1
        self._buf = None

    def uniforms(self, n0: int, n1: int) -> np.ndarray:
        """``(runs, (n1 - n0) * n_slots)`` uniforms in [0, 1); the buffer is reused by the next
        call."""
        start = n0 * self.n_slots
        count = (n1 - n0) * self.n_slots
        if self._buf is None or self._buf.shape[1] < count:
            self._buf = np.empty((self.runs, count), dtype=np.float64)
        out = self._buf[:, :count]
        st = self._state
        # Philox emits blocks of 4 outputs; block b (0-based) uses counter b+1, and the counter
        # is incremented before each block, so setting counter = b resumes at output 4 b.
        ctr = np.array([start // 4, 0, 0, self._w1], dtype=np.uint64)
        skip = start % 4
        key = np.array([self._w0, 0], dtype=np.uint64)
        st["buffer_pos"] = 4
        bg, gen = self._bg, self._gen
        for i in range(self.runs):
            key[1] = i
            st["state"]["key"] = key
            st["state"]["counter"] = ctr
            bg.state = st
            if skip:
                bg.random_raw(skip)
            gen.random(out=out[i])
        return out


# ------------------------------------------------------------------------------------------
# sampling from rows of a law


class _RowSampler:
    """Inverse-CDF sampling from the rows of an ``(S, V)`` law, many runs per call.

    The cumulative sums of row ``s`` are shifted by ``s`` and flattened, so the token of a run
    in state ``s`` with uniform ``u`` is ``searchsorted(flat, s + u, side="right") - s V``. A
    token of probability 0 has the same cumulative value as its predecessor (or 0 as the first
    token) and is never the first entry ``> s + u``; trailing zero-probability tokens are
    excluded by clipping to the last token of positive probability (``s + u`` may round up to
    ``s + 1``). Rounding ``s + u`` costs at most ``ulp(S)`` (~1e-13 for S = 1000) of
    probability per token boundary.

    Once a table has served about ``S V / 32`` queries, a guide table (Chen & Asau's method,
    ``V`` equal buckets per row) narrows each search to the tokens of one bucket: the result is
    the same token, faster on tables larger than the cache.
    """

    def __init__(self, rows: np.ndarray, what: str):
        rows = np.asarray(rows, dtype=np.float64)
        S, V = rows.shape
        if not np.all(np.isfinite(rows)) or np.any(rows < 0):
            raise ValueError(f"{what} has negative or non-finite entries")
        tot = rows.sum(axis=1)
        worst = float(np.max(np.abs(tot - 1.0)))
        if worst > _ROW_ATOL:
            raise ValueError(
                f"{what} rows must sum to 1 within {_ROW_ATOL:g}; worst is off by {worst:.3g}"
            )
        cum = np.cumsum(rows / tot[:, None], axis=1)
        np.minimum(cum, 1.0, out=cum)
        positive = rows > 0
        self.last = (V - 1 - np.argmax(positive[:, ::-1], axis=1)).astype(np.int64)
        cum[np.arange(V)[None, :] >= self.last[:, None]] = 1.0
        cum += np.arange(S, dtype=np.float64)[:, None]
        self.flat = cum.ravel()
        self.S, self.V = S, V
        self._guide = None
        self._queries = 0

    def _build_guide(self):
        # G[s, b] = searchsorted(flat, q_b, "right") with q_b = fl(s + fl(b / B)), capped at the
        # row's end: for any u in [b/B, (b+1)/B), fl is monotone, so q_b <= fl(s + u) <= q_{b+1}
        # and the token lies in [G[s, b], G[s, b+1]] (after the clip to the row's last token).
        # Entry x is <= q_b iff b >= k_x; k_x is guessed as ceil(cum B), corrected by exact
        # comparisons, and checked (a search builds G if the check ever fails).
        S, V, B = self.S, self.V, self.V
        srow = np.arange(S, dtype=np.float64)[:, None]
        flat = self.flat.reshape(S, V)
        k = np.clip(np.ceil((flat - srow) * B), 1, B - 1).astype(np.int64) if B > 1 else \
            np.zeros(flat.shape, dtype=np.int64)
        if B > 1:  # the exact k_x is within one of the guess: fix it with two comparisons
            k += (flat > srow + k / B).astype(np.int64) - (flat <= srow + (k - 1) / B)
        exact = np.all(flat <= srow + k / B) and np.all((k == 0) | (flat > srow + (k - 1) / B))
        if exact:
            k += (np.arange(S, dtype=np.int64) * (B + 1))[:, None]
            # every row has V entries, so the running count over the flattened rows is G itself
            G = np.cumsum(np.bincount(k.ravel(), minlength=S * (B + 1))).reshape(S, B + 1)
        else:  # pragma: no cover - rounding never needed more than two corrections in tests
            q = (srow + np.arange(B + 1)[None, :] / B).ravel()
            G = np.searchsorted(self.flat, q, side="right").reshape(S, B + 1)
            G = np.minimum(G, (np.arange(S, dtype=np.int64) * V + V)[:, None])
        dt = np.int32 if self.flat.size < 2**31 - 1 else np.int64
        self._guide = G.astype(dt)

    def sample(self, states: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Tokens for ``states`` (any shape) with uniforms ``u`` in [0, 1) of the same shape."""
        shape = np.shape(states)
        s = np.ravel(states)
        uu = np.ravel(u)
        t = s + uu
        self._queries += t.size
        if self._guide is None and self._queries * 32 >= self.S * self.V:
            self._build_guide()
        if self._guide is not None:
            idx = self._guided(s, uu, t)
        elif t.size > _SORT_QUERIES:
            # sorted keys walk the table monotonically (cache-friendly)
            order = np.argsort(t)
            idx = np.empty(t.size, dtype=np.int64)
            idx[order] = np.searchsorted(self.flat, t[order], side="right")
        else:
            idx = np.searchsorted(self.flat, t, side="right")
        return np.minimum(idx - s * self.V, self.last[s]).reshape(shape)

    def _guided(self, s, u, t):
        """``searchsorted(flat, t, "right")`` by bisection inside the guide's bracket."""
        B = self.V
        y = u * B
        c = y.astype(np.int64)  # floor(fl(u B)); it may exceed floor(u B) by one only when
        amb = y == c            # fl(u B) is an integer, so then the bracket starts a bucket early
        row = s * (B + 1)
        guide = self._guide.reshape(-1)
        lo = guide[row + np.maximum(c - amb, 0)]
        hi = guide[row + np.minimum(c + 1, B)]
        act = np.flatnonzero(lo < hi)
        if act.size:
            lo_a, hi_a, t_a = lo[act], hi[act], t[act]
            while True:
                mid = (lo_a + hi_a) >> 1
                above = self.flat[mid] > t_a
                hi_a = np.where(above, mid, hi_a)
                lo_a = np.where(above, lo_a, mid + 1)
                open_ = lo_a < hi_a
                if not open_.all():
                    lo[act] = lo_a
                    act, lo_a, hi_a, t_a = act[open_], lo_a[open_], hi_a[open_], t_a[open_]
                    if act.size == 0:
                        break
        return lo


# ------------------------------------------------------------------------------------------
# per-position tables of a rule


class _Tables:
    """Laws and rule tables at one position, computed on first use.

    ``acc(m)``: ``(S, m, V)`` acceptances of the ``m``-draft rule; ``res(m)``: sampler of its
    residual; ``draft`` / ``bonus``: samplers of ``q`` and ``p``.
    """

    def __init__(self, P, Q, rule_of):
        self.P, self.Q, self._rule_of = P, Q, rule_of
        self.draft = _RowSampler(Q, "draft kernel")
        self._bonus = None
        self._acc = {}
        self._res = {}

    @property
    def bonus(self):
        if self._bonus is None:
            self._bonus = _RowSampler(self.P, "target kernel")
        return self._bonus

    def acc(self, m):
        if m not in self._acc:
            r = self._rule_of[m]
            a = np.asarray(r.acceptances(self.P, self.Q), dtype=np.float64)
            S, V = self.P.shape
            if a.shape != (S, m, V):
                raise ValueError(
                    f"rule {r.name}: acceptances must have shape {(S, m, V)}, got {a.shape}"
                )
            if not np.all((a >= 0) & (a <= 1)):  # also catches NaN
                raise ValueError(f"rule {r.name}: acceptance probabilities must lie in [0, 1]")
            self._acc[m] = a
        return self._acc[m]

    def res(self, m):
        if m not in self._res:
            r = self._rule_of[m]
            self._res[m] = _RowSampler(r.residual(self.P, self.Q), f"rule {r.name}: residual")
        return self._res[m]


def _rules_by_drafts(rule: Rule, mode: str) -> dict:
    """The rule used at a position with ``m`` drafts, for every ``m`` the mode can reach."""
    M = rule.M
    if mode == "single":
        need = {1: rule}
    elif mode == "first":
        need = {M: rule, 1: rule.single()}
    else:
        need = {m: rule.with_drafts(m) for m in range(1, M + 1)}
    for m, r in need.items():
        if r.M != m:
            raise ValueError(f"rule {rule.name}: with_drafts({m}) returned a rule with M={r.M}")
    return need


# ------------------------------------------------------------------------------------------
# result


def _frozen(a):
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class SimResult:
    """Monte Carlo runs of speculative decoding on a Markov pair.

    Attributes
    ----------
    tokens : int64 (runs, T)
        Emitted tokens.
    rejections : int64 (runs,)
        Recovered tokens per run (Yin et al.'s N_rej).
    target_calls : int64 (runs,)
        Blocks started per run.
    draft_tokens : int64 (runs,)
        Sum over blocks of the draft budget ``g = min(gamma, T - n0)`` (cost model
        ``target_calls + c * draft_tokens``).
    block_tokens_hist : int64 (runs, L)
        Number of blocks of each run that emitted ``j`` tokens (column ``j``);
        ``L = gamma + 2``, or ``T + 2`` when drafting to the horizon.
    position_rejected : float (T,)
        Fraction of runs whose token at position ``n`` is a recovered token.
    phase_attempts, phase_accepts : int64 (K,)
        Draft positions visited at phase ``k`` and those that accepted a draft, summed over
        runs (``K = gamma``, or ``T`` when drafting to the horizon); their ratio is the
        conditional per-position acceptance rate as vLLM defines it.
    rule, gamma, batch, horizon, runs, seed
        The inputs (``rule`` by name; ``seed`` reproduces the runs with ``rng=seed``).
    """

    tokens: np.ndarray
    rejections: np.ndarray
    target_calls: np.ndarray
    draft_tokens: np.ndarray
    block_tokens_hist: np.ndarray
    position_rejected: np.ndarray
    phase_attempts: np.ndarray
    phase_accepts: np.ndarray
    rule: str
    gamma: int | None
    batch: str
    horizon: int
    runs: int
    seed: int

    def __post_init__(self):
        for name in ("tokens", "rejections", "target_calls", "draft_tokens", "block_tokens_hist",
                     "position_rejected", "phase_attempts", "phase_accepts"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @staticmethod
    def _sem(x):
        # standard error of the mean; undefined (NaN) for a single run
        if x.shape[0] < 2:
            return math.nan
        return float(np.std(x, ddof=1) / math.sqrt(x.shape[0]))

    @property
    def mean_rejections(self) -> float:
        """Mean number of rejections per run (estimates Yin et al.'s E[N_rej])."""
        return float(self.rejections.mean())

    @property
    def sem_rejections(self) -> float:
        """Standard error of ``mean_rejections`` (NaN when ``runs == 1``)."""
        return self._sem(self.rejections)

    @property
    def mean_target_calls(self) -> float:
        """Mean number of target calls (blocks) per run."""
        return float(self.target_calls.mean())

    @property
    def sem_target_calls(self) -> float:
        """Standard error of ``mean_target_calls`` (NaN when ``runs == 1``)."""
        return self._sem(self.target_calls)

    @property
    def mean_draft_tokens(self) -> float:
        """Mean of ``draft_tokens`` per run."""
        return float(self.draft_tokens.mean())

    @property
    def tokens_per_call(self) -> float:
        """Mean tokens emitted per block, over all blocks of all runs (``T runs / calls``)."""
        return self.horizon * self.runs / float(self.target_calls.sum())

    def acceptance_by_phase(self) -> np.ndarray:
        """``phase_accepts / phase_attempts`` per phase; NaN where a phase was never reached."""
        out = np.full(self.phase_attempts.shape, np.nan)
        np.divide(self.phase_accepts, self.phase_attempts, out=out, where=self.phase_attempts > 0)
        return out


# ------------------------------------------------------------------------------------------
# the engine


def _check_sim_args(pair, rule, horizon, gamma, runs, batch):
    if not isinstance(pair, MarkovPair):
        raise TypeError(f"pair must be a scdsim.MarkovPair, got {type(pair).__name__}")
    if not isinstance(rule, Rule):
        raise TypeError(f"rule must be a scdsim rule (e.g. rules.lossless), got {rule!r}")
    if not rule.samplable:
        raise TypeError(
            f"rule {rule.name} is not samplable (no sequential acceptance/residual form); "
            "the Monte Carlo engine cannot run it"
        )
    horizon = pair.check_horizon(horizon)
    gamma = check_int(gamma, "gamma", minimum=0, allow_none=True)
    runs = check_int(runs, "runs", minimum=1)
    check_choice(batch, "batch", {"first", "tree"})
    return horizon, gamma, runs


def _chunk_positions(runs, n_slots, horizon):
    return int(max(1, min(horizon, _CHUNK_BYTES // (8 * runs * n_slots))))


def simulate(pair, rule, horizon, gamma=None, runs=10_000, rng=None, batch="first",
             progress=False) -> SimResult:
    """Simulate ``runs`` independent speculative-decoding runs of ``horizon`` tokens.

    Parameters
    ----------
    pair : MarkovPair
        Target and draft Markov models.
    rule : Rule
        A samplable verification rule (``rules.lossless``, ``rules.recursive(M)``, ...).
    horizon : int
        Number of tokens ``T`` (at most the number of positions the kernels define).
    gamma : int >= 0 or None
        Draft budget per block; ``None`` drafts to the horizon (Yin et al. Alg. 1); ``0`` is
        plain autoregressive sampling from the target.
    runs : int >= 1
        Number of independent runs.
    rng : int, numpy.random.Generator or None
        Seed of the per-run streams (a Generator is asked for one seed; None: fresh entropy).
        The seed used is stored in the result.
    batch : {"first", "tree"}
        Sequence-level reading of a multi-draft rule (ignored when ``rule.M == 1``).
    progress : bool
        Show a tqdm progress bar over positions.

    Returns
    -------
    SimResult

    Raises
    ------
    TypeError
        ``pair`` not a MarkovPair, ``rule`` not a Rule or not samplable (e.g. ``rules.optimal``).
    ValueError
        ``horizon`` < 1 or beyond the kernels, ``gamma`` < 0, ``runs`` < 1, unknown ``batch``.

    References
    ----------
    Leviathan et al. 2023, Alg. 1; Yin et al. 2024, Alg. 1 and Alg. 4.
    """
    horizon, gamma, runs = _check_sim_args(pair, rule, horizon, gamma, runs, batch)
    seed = _seed_from(rng)
    T, M = horizon, rule.M
    mode = "single" if M == 1 else batch
    rule_of = _rules_by_drafts(rule, mode)
    # slot layout of one position: drafts [0, M), acceptances [M, 2M), residual 2M, bonus 2M+1
    n_slots = 2 * M + 2
    streams = _Streams(seed, runs, n_slots)
    run = _Runs(pair, rule_of, mode, M, T, gamma, runs)
    tables = None
    chunk = _chunk_positions(runs, n_slots, T)
    with tqdm(total=T, disable=not progress, desc=f"simulate {rule.name}", unit="pos") as bar:
        for n0 in range(0, T, chunk):
            n1 = min(T, n0 + chunk)
            U = streams.uniforms(n0, n1)
            for n in range(n0, n1):
                if tables is None or not pair.homogeneous:
                    P, Q = pair.kernels(n)
                    tables = _Tables(P, Q, rule_of)
                run.step(n, tables, U[:, (n - n0) * n_slots:(n - n0 + 1) * n_slots])
                bar.update(1)
    run.finish()
    return SimResult(
        tokens=np.ascontiguousarray(run.tokens.T), rejections=run.rejections,
        target_calls=run.calls, draft_tokens=run.drafts_budget, block_tokens_hist=run.hist,
        position_rejected=run.pos_rej / runs, phase_attempts=run.attempts,
        phase_accepts=run.accepts, rule=rule.name, gamma=gamma, batch=batch, horizon=T,
        runs=runs, seed=seed,
    )


class _Runs:
    """The state of all runs and the deterministic step that advances them by one position.

    ``step`` takes the position's pre-drawn uniforms ``u (runs, n_slots)`` and the rule tables;
    it draws no random numbers itself.
    """

    def __init__(self, pair, rule_of, mode, M, T, gamma, runs):
        self.rule_of, self.mode, self.M, self.T, self.gamma = rule_of, mode, M, T, gamma
        self.V = pair.V
        self.state_of = pair.state_of
        self.tokens = np.empty((T, runs), dtype=np.int64)  # position-major: row writes
        self.rejections = np.zeros(runs, dtype=np.int64)
        self.calls = np.zeros(runs, dtype=np.int64)
        self.drafts_budget = np.zeros(runs, dtype=np.int64)
        self.hist = np.zeros((runs, (T if gamma is None else gamma) + 2), dtype=np.int64)
        self.K = T if gamma is None else gamma
        self.attempts = np.zeros(self.K, dtype=np.int64)
        self.accepts = np.zeros(self.K, dtype=np.int64)
        self.pos_rej = np.zeros(T, dtype=np.int64)
        self.s = np.full(runs, pair.start, dtype=np.int64)
        self.k = np.zeros(runs, dtype=np.int64)  # phase: drafts accepted in the block
        self.g = np.zeros(runs, dtype=np.int64)  # draft budget of the block
        self.alive = np.full(runs, M, dtype=np.int64)  # tree: drafts carrying the prefix
        self.in_block = np.zeros(runs, dtype=bool)

    def _end(self, idx, n_tokens):
        self.hist[idx, n_tokens] += 1
        self.in_block[idx] = False

    def step(self, n, tables, u):
        M, k, s = self.M, self.k, self.s
        x = self.tokens[n]
        new = np.flatnonzero(~self.in_block)
        if new.size:
            budget = self.T - n if self.gamma is None else min(self.gamma, self.T - n)
            self.g[new] = budget
            k[new] = 0
            self.alive[new] = M
            self.calls[new] += 1
            self.drafts_budget[new] += budget
            self.in_block[new] = True
        drafting = k < self.g
        bonus = np.flatnonzero(~drafting)
        if self.mode == "single":
            groups = [(1, np.flatnonzero(drafting))]
        else:
            d = np.where(k == 0, M, 1) if self.mode == "first" else self.alive
            groups = [(int(m), np.flatnonzero(drafting & (d == m)))
                      for m in np.unique(d[drafting])]
        for m, idx in groups:
            if idx.size:
                self._verify(n, tables, u, m, idx, x)
        if bonus.size:
            # all g drafts accepted: the bonus token from the target, the block ends
            x[bonus] = tables.bonus.sample(s[bonus], u[bonus, 2 * M + 1])
            self._end(bonus, k[bonus] + 1)
        self.s = self.state_of[x]

    def _verify(self, n, tables, u, m, idx, x):
        """Draft positions of the runs ``idx``, each with ``m`` i.i.d. drafts ~ q."""
        M, K, V, k = self.M, self.K, self.V, self.k
        si = self.s[idx]
        kk = k[idx]
        self.attempts += np.bincount(kk, minlength=K)
        acc = tables.acc(m).reshape(-1)  # flat (S, m, V)
        if m == 1:
            X = tables.draft.sample(si, u[idx, 0])
            ok = (1.0 - u[idx, M]) <= acc[si * V + X]  # 1 - u lies in (0, 1]
            xa = X[ok]
            Xa = xa[:, None]
        else:
            X = tables.draft.sample(np.repeat(si[:, None], m, axis=1), u[idx, :m])
            flat = (si[:, None] * m + np.arange(m)[None, :]) * V + X
            ok_each = (1.0 - u[idx, M:M + m]) <= acc[flat]
            ok = ok_each.any(axis=1)
            first = np.argmax(ok_each[ok], axis=1)
            Xa = X[ok]
            xa = Xa[np.arange(first.size), first]
        # accepted: emit the (first accepted) draft token, phase k+1
        ia = idx[ok]
        x[ia] = xa
        self.accepts += np.bincount(kk[ok], minlength=K)
        if self.mode == "tree":
            # drafts carrying the emitted token stay alive, those rejected earlier included
            self.alive[ia] = np.count_nonzero(Xa == xa[:, None], axis=1)
        k[ia] += 1
        # all m drafts rejected: recovered token from the m-draft rule's residual, block ends
        ir = idx[~ok]
        if ir.size:
            x[ir] = tables.res(m).sample(self.s[ir], u[ir, 2 * M])
            self.rejections[ir] += 1
            self.pos_rej[n] += ir.size
            self._end(ir, k[ir] + 1)

    def finish(self):
        # blocks still open reached the horizon with all g drafts accepted: g tokens, no bonus
        io = np.flatnonzero(self.in_block)
        self._end(io, self.k[io])


def sample_autoregressive(model, horizon, runs=10_000, rng=None, progress=False) -> np.ndarray:
    """Plain autoregressive sampling of a ``MarkovLM`` (Yin et al. Alg. 3), ``(runs, T)`` tokens.

    The baseline every lossless rule must match in law; ``simulate(..., gamma=0)`` has the same
    law (with different streams). Run ``i`` uses the per-run stream described in the module
    docstring with one slot per position.

    Parameters
    ----------
    model : MarkovLM
    horizon : int, number of tokens T.
    runs : int >= 1
    rng : int, numpy.random.Generator or None
    progress : bool, show a tqdm progress bar.
    """
    if not isinstance(model, MarkovLM):
        raise TypeError(f"model must be a scdsim.MarkovLM, got {type(model).__name__}")
    horizon = check_int(horizon, "horizon", minimum=1)
    if model.max_horizon is not None and horizon > model.max_horizon:
        raise ValueError(
            f"horizon={horizon} exceeds the {model.max_horizon} positions the kernels define"
        )
    runs = check_int(runs, "runs", minimum=1)
    streams = _Streams(_seed_from(rng), runs, 1)
    tokens = np.empty((horizon, runs), dtype=np.int64)
    s = np.full(runs, model.start, dtype=np.int64)
    sampler = None
    chunk = _chunk_positions(runs, 1, horizon)
    with tqdm(total=horizon, disable=not progress, desc="sample_autoregressive",
              unit="pos") as bar:
        for n0 in range(0, horizon, chunk):
            n1 = min(horizon, n0 + chunk)
            U = streams.uniforms(n0, n1)
            for n in range(n0, n1):
                if sampler is None or not model.homogeneous:
                    sampler = _RowSampler(model.kernel(n), "kernel")
                tokens[n] = sampler.sample(s, U[:, n - n0])
                s = model.state_of[tokens[n]]
                bar.update(1)
    return np.ascontiguousarray(tokens.T)
