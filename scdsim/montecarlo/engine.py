"""The Monte Carlo engine: all runs advance together, one position at a time (see the package
docstring); the rule is read once per position through ``process.Scheme.laws``."""

from __future__ import annotations

import math

import numpy as np

from scdsim._validate import check_int
from scdsim.chains import MarkovLM, MarkovPair
from scdsim.montecarlo.alias import AliasTable, split
from scdsim.montecarlo.result import SimResult
from scdsim.montecarlo.streams import Streams, seed_from
from scdsim.process import Scheme, sequence_args

__all__ = ["simulate", "sample_autoregressive", "chunk_positions", "CHUNK_BYTES", "MIN_CHUNK"]


def tqdm(*args, **kwargs):
    """``tqdm.auto.tqdm``, imported on first use (it pulls in asyncio: 0.2 s of ``import scdsim``)."""
    from tqdm.auto import tqdm as _tqdm

    return _tqdm(*args, **kwargs)


# Uniforms are drawn in chunks of positions whose size keeps one chunk under this budget
# (small enough to stay in cache while the chunk's positions are simulated), with at least
# MIN_CHUNK positions (so that each stream's call draws more than it costs).
CHUNK_BYTES = 2 * 2**20
MIN_CHUNK = 8
# Positions per block when the chunk's tokens are copied to the run-major output.
FLUSH_BLOCK = 16
# Block counts per (run, length) are a dense table up to this many cells (BlockCounts).
DENSE_BLOCK_CELLS = 1 << 22
#: Memory a simulation may take by default (tokens and per-run buffers), bytes: a larger
#: request is refused at once rather than grown into the machine's memory.
MAX_BYTES = 1 << 30


def memory_estimate(runs: int, horizon: int, n_slots: int, chunk: int) -> int:
    """Bytes a simulation allocates in proportion to ``runs``: the ``(runs, T)`` int64 tokens,
    a chunk of uniforms and their split columns/coins, the chunk's tokens and phases, and a
    dozen per-run vectors (states, phases, counts), and the sparse block counts with their
    merge temporaries (a run's blocks have at most ``sqrt(2 T) + 1`` distinct lengths, since
    distinct lengths sum to at most T), with a margin of 1.25 for temporaries (measured peaks
    are 0.55-0.82 of the estimate)."""
    distinct = math.isqrt(2 * horizon) + 1
    per_run = (8 * horizon + 8 * chunk * n_slots + 16 * chunk * n_slots + 16 * (chunk + 1)
               + 8 * 16 + 64 * distinct + 8 * 8)
    dense_blocks = 8 * min(runs * (horizon + 2), DENSE_BLOCK_CELLS)
    return int(1.25 * (runs * per_run + dense_blocks))


def check_memory(runs: int, horizon: int, n_slots: int, chunk: int, max_bytes, what: str):
    """Refuse a simulation whose ``memory_estimate`` exceeds ``max_bytes`` (None: MAX_BYTES)."""
    limit = MAX_BYTES if max_bytes is None else check_int(max_bytes, "max_bytes", minimum=1)
    need = memory_estimate(runs, horizon, n_slots, chunk)
    if need > limit:
        raise ValueError(
            f"{what}(runs={runs}, horizon={horizon}) needs about {need / 2**30:.3g} GiB (the "
            f"(runs, T) int64 tokens and per-run buffers), above the limit max_bytes = "
            f"{limit / 2**30:.3g} GiB; use fewer runs, or several calls with different seeds "
            "and pool their means, or raise max_bytes"
        )


# ------------------------------------------------------------------------------------------
# per-position tables of a rule


class _Tables:
    """Alias tables and acceptance tables of one position, built on first use from the
    scheme's checked laws (``process.PositionLaws``: the rule is called and checked there,
    once per position).

    ``acc(m)``: flat ``(S m V,)`` acceptances of the ``m``-draft rule; ``res(m)``: alias table
    of its residual; ``draft`` / ``bonus``: alias tables of ``q`` and ``rule.bonus(p)``;
    ``bonus_by_step``: whether the single-draft rule's one-step law ``q a + (1 - sum q a) r``
    is ``rule.bonus(p)`` (lossless rules, greedy), so that a bonus token may be drawn as one
    more verification step with the tables at hand (Leviathan et al. §2.3: its law is the
    step law).
    """

    def __init__(self, laws, Q):
        self.laws, self.Q = laws, Q
        self.S, self.V = Q.shape
        self._rule = laws.scheme.rule
        self._draft = self._bonus = None
        self._acc = {}
        self._res = {}

    @property
    def draft(self):
        if self._draft is None:
            self._draft = AliasTable(self.Q, "draft kernel")
        return self._draft

    @property
    def bonus(self):
        if self._bonus is None:
            self._bonus = AliasTable(np.asarray(self.laws.bonus, dtype=np.float64),
                                      f"rule {self._rule.name}: bonus law")
        return self._bonus

    @property
    def bonus_by_step(self) -> bool:
        return self.laws.bonus_is_step

    def acc(self, m):
        if m not in self._acc:
            a = np.asarray(self.laws.parts[m].acceptances, dtype=np.float64)
            self._acc[m] = np.ascontiguousarray(a).reshape(-1)
        return self._acc[m]

    def res(self, m):
        if m not in self._res:
            r = self.laws.scheme.rule_for(m)
            law = np.asarray(self.laws.parts[m].residual, dtype=np.float64)
            self._res[m] = AliasTable(law, f"rule {r.name}: residual")
        return self._res[m]


# ------------------------------------------------------------------------------------------
# the engine


def _check_sim_args(pair, scheme, horizon, runs):
    horizon, clipped = sequence_args(pair, scheme, horizon, None, None)
    return horizon, clipped, check_int(runs, "runs", minimum=1)


def chunk_positions(runs, n_slots, horizon):
    return int(min(horizon, max(MIN_CHUNK, CHUNK_BYTES // (8 * runs * n_slots))))


def simulate(pair, rule, horizon, gamma=None, runs=10_000, rng=None, batch="first",
             progress=False, max_bytes=None) -> SimResult:
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
        plain autoregressive sampling from ``rule.bonus(target)`` (the target itself, its
        argmax for greedy).
    runs : int >= 1
        Number of independent runs.
    rng : int, numpy.random.Generator or None
        Seed of the per-run streams (a Generator is asked for one seed; None: fresh entropy).
        The seed used is stored in the result.
    batch : {"first", "tree"}
        Sequence-level reading of a multi-draft rule (ignored when ``rule.M == 1``).
    progress : bool
        Show a tqdm progress bar over positions.
    max_bytes : int or None
        Memory the run may take (``MAX_BYTES``, 1 GiB, when None); a larger request is refused
        before anything is allocated.

    Returns
    -------
    SimResult

    Raises
    ------
    TypeError
        ``pair`` not a MarkovPair, ``rule`` not a Rule or not samplable (e.g. ``rules.optimal``).
    ValueError
        ``horizon`` < 1 or beyond the kernels, ``gamma`` < 0, ``runs`` < 1, unknown ``batch``,
        or a run whose memory would exceed ``max_bytes``; a rule whose outputs are malformed
        (named in the message).

    References
    ----------
    Leviathan et al. 2023, Alg. 1; Yin et al. 2024, Alg. 1 and Alg. 4.
    """
    if not isinstance(pair, MarkovPair):
        raise TypeError(f"pair must be a scdsim.MarkovPair, got {type(pair).__name__}")
    asked = Scheme(rule, gamma, batch)  # validated once; reported with the caller's gamma
    horizon, scheme, runs = _check_sim_args(pair, asked, horizon, runs)
    seed = seed_from(rng)
    T, M = horizon, scheme.M
    # slot layout of one position: drafts [0, M) (slot 0 also the bonus), acceptances
    # [M, 2M), residual 2M
    n_slots = 2 * M + 1
    chunk = chunk_positions(runs, n_slots, T)
    check_memory(runs, T, n_slots, chunk, max_bytes, "simulate")
    streams = Streams(seed, runs, n_slots)
    run = _Runs(pair, scheme, T, runs, chunk)
    tables = None
    token_slots = list(range(M)) + [2 * M]  # uniforms that draw a token: split once per chunk
    with tqdm(total=T, disable=not progress, desc=f"simulate {rule.name}", unit="pos") as bar:
        for n0 in range(0, T, chunk):
            n1 = min(T, n0 + chunk)
            U = streams.uniforms(n0, n1)
            C, F = split(U[:, token_slots], pair.V)
            for n in range(n0, n1):
                if tables is None or not pair.homogeneous:
                    P, Q = pair.kernels(n)
                    tables = _Tables(scheme.laws(P, Q), Q)
                j = n - n0
                run.step(j, tables, C[j], F[j], U[j, M:2 * M])
                bar.update(1)
            run.flush(n0, n1)
    return run.result(rule.name, asked.gamma, batch, seed)


class _Runs:
    """The state of all runs and the deterministic step that advances them by one position.

    ``step`` takes the position's pre-drawn uniforms and the rule tables and draws no random
    numbers itself: ``c, f (M + 1, runs)`` are the columns and coins of the draft slots (rows
    ``0..M-1``) and of the residual slot (row ``M``), ``ua (M, runs)`` the acceptance
    uniforms. States are kept as row offsets ``s V`` (one flat gather per lookup).

    The step records only each run's token and phase ``k``; the statistics follow from the
    phases once per chunk (``flush``): a block ends at ``n`` exactly when the phase at
    ``n + 1`` is 0, with ``k + 1`` tokens, by a rejection when ``k < gamma`` (always when
    drafting to the horizon) and by a bonus when ``k == gamma``; a block starts where the phase
    is 0. The phases' counts per value follow from the block counts (``result``).
    """

    def __init__(self, pair, scheme, T, runs, chunk):
        gamma, M = scheme.gamma, scheme.M
        self.mode, self.M, self.T, self.gamma = scheme.mode, M, T, gamma
        self.V, self.S = pair.V, pair.S
        self.rowV = np.asarray(pair.state_of, dtype=np.intp) * self.V  # token -> next s V
        self.K = K = T if gamma is None else gamma
        self.L = K + 2
        self.bonus_on = gamma is not None and gamma < T
        # phase after a position: k + 1 if a draft was accepted, else 0; a bonus (k == gamma)
        # ends the block, so its successor is 0 too
        self.next_k = np.arange(1, K + 2, dtype=np.intp)
        if gamma is not None:
            self.next_k[gamma] = 0
        self.tokens = np.empty((runs, T), dtype=np.int64)
        self.buf = np.empty((chunk, runs), dtype=np.intp)  # position-major: row writes
        self.kbuf = np.empty((chunk + 1, runs), dtype=np.intp)  # phases, one more position
        # blocks by (run, length) as sparse counts of the flat cell run L + length: a dense
        # (runs, T + 2) table would be mostly zeros (BlockCounts)
        self.blocks = BlockCounts(runs, self.L)
        self.run_L1 = np.arange(runs, dtype=np.int64) * self.L + 1  # cell (run, k + 1)
        self.budget = np.zeros(runs, dtype=np.int64)  # gamma blocks: budget - gamma per block
        self.pos_rej = np.zeros(T, dtype=np.int64)
        self.sV = np.full(runs, pair.start * self.V, dtype=np.intp)
        self.k = np.zeros(runs, dtype=np.intp)
        self.alive = np.full(runs, M, dtype=np.intp)  # tree: drafts carrying the prefix

    # -- one position -----------------------------------------------------------------------

    def step(self, j, tables, c, f, ua):
        """Advance every run by one position (the ``j``-th of its chunk)."""
        self.kbuf[j] = self.k
        if self.mode == "single":
            x, ok = self._step_single(tables, c, f, ua)
        else:
            x, ok = self._step_multi(tables, c, f, ua)
        self.buf[j] = x
        self.k = self.next_k[self.k] * ok
        self.sV = self.rowV[x]
        if self.mode == "tree":
            # a new block starts with all M drafts alive
            self.alive[self.k == 0] = self.M

    def _step_single(self, tables, c, f, ua):
        sV = self.sV
        x, ok = tables.draft.accepting(tables.acc(1)).draw_accept(sV, c[0], f[0], ua[0])
        if self.bonus_on and not tables.bonus_by_step:
            ib = np.flatnonzero(self.k == self.gamma)
            if ib.size:
                # all g drafts accepted: the bonus token (from the slot of the draft that such
                # a position does not use), the block ends. When the rule's one-step law is
                # the bonus law, the step just drawn is the bonus token instead.
                x[ib] = tables.bonus.draw(sV[ib], c[0, ib], f[0, ib])
                ok[ib] = True
        ir = np.flatnonzero(~ok)
        if ir.size:
            # the draft rejected: a recovered token from the residual, the block ends
            x[ir] = tables.res(1).draw(sV[ir], c[1, ir], f[1, ir])
        return x, ok

    def _step_multi(self, tables, c, f, ua):
        M, k, sV = self.M, self.k, self.sV
        runs = k.size
        x = np.empty(runs, dtype=np.intp)
        ok = np.zeros(runs, dtype=bool)
        if self.bonus_on:
            bon = k == self.gamma
            ib = np.flatnonzero(bon)
            if ib.size:
                # all g drafts accepted: the bonus token, the block ends
                x[ib] = tables.bonus.draw(sV[ib], c[0, ib], f[0, ib])
                ok[ib] = True
            drafting = ~bon
        else:
            drafting = np.ones(runs, dtype=bool)
        d = np.where(k == 0, M, 1) if self.mode == "first" else self.alive
        for m in np.unique(d[drafting]).tolist():
            idx = np.flatnonzero(drafting & (d == m))
            self._verify(tables, c, f, ua, m, idx, x, ok)
        return x, ok

    def _verify(self, tables, c, f, ua, m, idx, x, ok):
        """Draft positions of the runs ``idx``, each with ``m`` i.i.d. drafts ~ q."""
        M, V = self.M, self.V
        si = self.sV[idx]
        acc = tables.acc(m)
        if m == 1:
            X = tables.draft.draw(si, c[0, idx], f[0, idx])
            ok_m = ua[0, idx] < acc[si + X]
            xa = X[ok_m]
            Xa = xa[:, None]
        else:
            X = tables.draft.draw(si[:, None], c[:m, idx].T, f[:m, idx].T)
            flat = si[:, None] * m + np.arange(m) * V + X  # (s, j, X) of the (S, m, V) table
            ok_each = ua[:m, idx].T < acc[flat]
            ok_m = ok_each.any(axis=1)
            first = np.argmax(ok_each[ok_m], axis=1)
            Xa = X[ok_m]
            xa = Xa[np.arange(first.size), first]
        # accepted: emit the (first accepted) draft token, phase k+1
        ia = idx[ok_m]
        x[ia] = xa
        ok[ia] = True
        if self.mode == "tree":
            # drafts carrying the emitted token stay alive, those rejected earlier included
            self.alive[ia] = np.count_nonzero(Xa == xa[:, None], axis=1)
        # all m drafts rejected: recovered token from the m-draft rule's residual, block ends
        ir = idx[~ok_m]
        if ir.size:
            x[ir] = tables.res(m).draw(self.sV[ir], c[M, ir], f[M, ir])

    # -- statistics -------------------------------------------------------------------------

    def flush(self, n0, n1):
        """Statistics of positions ``[n0, n1)`` from their phases, and their tokens copied to
        the run-major output a few positions at a time (a whole-array transpose would miss the
        cache on every element)."""
        C = n1 - n0
        self.kbuf[C] = self.k  # the phase at n1 (after the horizon: 0 iff the block ended)
        cur, nxt = self.kbuf[:C], self.kbuf[1:C + 1]
        ends = nxt == 0
        self.blocks.add_positions(cur + self.run_L1, ends)  # cell (run, k + 1) of a block end
        rejected = ends if self.gamma is None else ends & (cur < self.gamma)
        self.pos_rej[n0:n1] = np.count_nonzero(rejected, axis=1)
        if self.gamma is None:  # budget T - n of a block starting at n
            self.budget += (self.T - np.arange(n0, n1)) @ (cur == 0)
        else:  # only blocks starting after T - gamma have less than gamma
            for n in range(max(n0, self.T - self.gamma + 1), n1):
                self.budget[cur[n - n0] == 0] -= self.gamma - (self.T - n)
        for a in range(n0, n1, FLUSH_BLOCK):
            b = min(n1, a + FLUSH_BLOCK)
            self.tokens[:, a:b] = self.buf[a - n0:b - n0].T

    def result(self, rule_name, gamma, batch, seed):
        K, k = self.K, self.k
        runs = k.size
        # every ended block with at most K tokens ended by a rejection after k = tokens - 1
        # accepted drafts (a bonus block has gamma + 1 tokens)
        run, length, count = self.blocks.coo()
        by_rej = np.where((length >= 1) & (length <= K), count, 0)
        rejections = np.bincount(run, weights=by_rej, minlength=runs).astype(np.int64)
        rej_at = np.bincount(length, weights=by_rej, minlength=K + 2)[1:K + 1].astype(np.int64)
        # blocks still open reached the horizon with all g = k drafts accepted: k tokens
        io = np.flatnonzero(k)
        self.blocks.add(self.run_L1[io] - 1 + k[io])
        run, length, count = self.blocks.coo()
        calls = np.bincount(run, weights=count, minlength=runs).astype(np.int64)
        drafts = self.budget if self.gamma is None else self.gamma * calls + self.budget
        # phase 0 is visited once per block; phase j+1 once per draft accepted at phase j,
        # except at the last position (those runs end in phase j+1)
        attempts = np.zeros(K, dtype=np.int64)
        last = np.bincount(k, minlength=K + 1)
        if K:
            attempts[0] = calls.sum()
            for j in range(K - 1):
                attempts[j + 1] = attempts[j] - rej_at[j] - last[j + 1]
        return SimResult(
            tokens=self.tokens, rejections=rejections, target_calls=calls,
            draft_tokens=drafts, block_runs=run, block_lengths=length, block_counts=count,
            n_lengths=self.L, position_rejection=self.pos_rej / runs, phase_attempts=attempts,
            phase_accepts=attempts - rej_at, rule=rule_name,
            gamma=gamma, batch=batch, horizon=self.T, runs=runs, seed=seed,
        )


class BlockCounts:
    """Counts of blocks per (run, length) cell ``run L + length``.

    A dense table while ``runs x L`` is at most ``DENSE_BLOCK_CELLS`` (32 MB: the usual gamma
    blocks); beyond, sparse: the cells of ended blocks are gathered and merged (``np.unique``)
    whenever the pending ones outgrow the merged ones, so memory follows the number of distinct
    cells, not ``runs x L`` (drafting to the horizon: ``L = T + 2``).
    """

    def __init__(self, runs, L):
        self.runs, self.L = runs, L
        self._dense = np.zeros(runs * L, dtype=np.int64) if runs * L <= DENSE_BLOCK_CELLS else None
        self._cells = np.zeros(0, dtype=np.int64)
        self._counts = np.zeros(0, dtype=np.int64)
        self._pending = []
        self._n_pending = 0

    def add_positions(self, cells, ends):
        """Blocks ending at the positions of a chunk: ``cells (C, runs)``, mask ``ends``."""
        if self._dense is not None:
            for i in range(cells.shape[0]):  # runs are distinct within a position
                self._dense[cells[i][ends[i]]] += 1
        else:
            self.add(cells[ends])

    def add(self, cells):
        """One block in each of ``cells`` (distinct cells)."""
        if self._dense is not None:
            self._dense[cells] += 1
        elif cells.size:
            self._pending.append(np.asarray(cells, dtype=np.int64))
            self._n_pending += cells.size
            if self._n_pending > max(8 * self.runs, 2 * self._cells.size, 4096):
                self._merge()

    def _merge(self):
        if not self._pending:
            return
        cells = np.concatenate([self._cells] + self._pending)
        counts = np.concatenate([self._counts] + [np.ones(c.size, np.int64) for c in self._pending])
        self._cells, inv = np.unique(cells, return_inverse=True)
        self._counts = np.bincount(inv.ravel(), weights=counts).astype(np.int64)
        self._pending, self._n_pending = [], 0

    def coo(self):
        """``(run, length, count)`` of every nonzero cell, ordered by run then length."""
        if self._dense is not None:
            nz = np.flatnonzero(self._dense)
            return nz // self.L, nz % self.L, self._dense[nz]
        self._merge()
        return self._cells // self.L, self._cells % self.L, self._counts


def sample_autoregressive(model, horizon, runs=10_000, rng=None, progress=False,
                          max_bytes=None) -> np.ndarray:
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
    max_bytes : int or None, the memory limit (``MAX_BYTES`` when None); see ``simulate``.
    """
    if not isinstance(model, MarkovLM):
        raise TypeError(f"model must be a scdsim.MarkovLM, got {type(model).__name__}")
    horizon = check_int(horizon, "horizon", minimum=1)
    if model.max_horizon is not None and horizon > model.max_horizon:
        raise ValueError(
            f"horizon={horizon} exceeds the {model.max_horizon} positions the kernels define"
        )
    runs = check_int(runs, "runs", minimum=1)
    chunk = chunk_positions(runs, 1, horizon)
    check_memory(runs, horizon, 1, chunk, max_bytes, "sample_autoregressive")
    streams = Streams(seed_from(rng), runs, 1)
    tokens = np.empty((runs, horizon), dtype=np.int64)
    rowV = np.asarray(model.state_of, dtype=np.intp) * model.V
    sV = np.full(runs, model.start * model.V, dtype=np.intp)
    table = None
    with tqdm(total=horizon, disable=not progress, desc="sample_autoregressive",
              unit="pos") as bar:
        for n0 in range(0, horizon, chunk):
            n1 = min(horizon, n0 + chunk)
            U = streams.uniforms(n0, n1)
            for n in range(n0, n1):
                if table is None or not model.homogeneous:
                    table = AliasTable(model.kernel(n), "kernel")
                x = table.sample(sV, U[n - n0, 0])
                tokens[:, n] = x
                sV = rowV[x]
                bar.update(1)
    return tokens
