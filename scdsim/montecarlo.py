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
bonus          drawn from ``rule.bonus(p)`` (``p`` itself, the argmax of ``p`` for greedy) at
               phase ``k == g`` (all drafts accepted), the block ends; a block whose drafts
               reach the horizon ends without one

Since ``k <= n - n0 < T - n0``, a position is a bonus position exactly when ``k == gamma``: the
budget never needs to be stored.

Multi-draft rules (``rule.M > 1``) run in one of two labelled readings of Yin et al. Alg. 4
(theory.md §1.6): ``batch="first"`` (variant A) verifies M i.i.d. drafts only at phase 0 and
continues along the accepted draft with ``rule.single()``; ``batch="tree"`` (variant B) keeps
the number ``m`` of alive drafts (those carrying the accepted prefix), draws their ``m`` next
tokens i.i.d. from ``q`` and verifies them with ``rule.with_drafts(m)``. The bonus law is the
rule's own, ``rule.bonus(p)``.

How runs are simulated
----------------------
All runs emit one token per position, so they advance together: the loop is over positions
(and over draft counts ``m <= M``), and every operation inside acts on all runs at once. A rule
is used only through its array functions ``rule.acceptances(P, Q)``, ``rule.residual(P, Q)``
and ``rule.bonus(P)`` on the whole ``(S, V)`` kernels of a position, computed once per position
(once in all for homogeneous pairs) and looked up per run with one flat gather
``table[s * V + x]``. Tokens are drawn in O(1) from Walker alias tables of the rows (one
uniform picks a column and the coin inside it), built for all rows at once by a vectorised
sweep (``_alias_tables``); a token of probability 0 is never a column's own pick nor an alias,
so it is never drawn. With a single draft, a bonus token is drawn as one more verification
step (draft, acceptance, residual) whenever the rule's one-step law ``q a + (1 - sum q a) r``
equals ``rule.bonus(p)`` on every row to 1e-12 (lossless rules: Leviathan et al. §2.3;
greedy): same law, no table of its own. A step records only each run's token and phase; the
statistics follow from the phases (``_Runs``).

Randomness
----------
Runs are grouped in lanes of 64: run ``i = 64 b + l`` owns every 64th output (offset ``l``) of
the stream ``Generator(PCG64DXSM(SeedSequence(seed, spawn_key=(b,)))).random()`` (53-bit
doubles in [0, 1); child ``b`` of ``SeedSequence(seed).spawn``); its ``t``-th uniform is output
``64 t + l``. Position ``n`` consumes the slots ``t = n * n_slots + j``
(``n_slots = 2 M + 1``): ``M`` draft-token uniforms, ``M`` acceptance uniforms and one
residual uniform. A bonus position uses the draft slot 0 for its token (or slots 0, M and 2M
when drawn as a step): a position is either a draft or a bonus position, never both. Unused
slots are skipped, never shifted. So every uniform a run uses is a fresh independent draw, and
run ``i`` is the same whatever ``runs`` is (a group of 64 is always drawn whole) or how the
draws are chunked. A draft is accepted iff ``u < a`` (probability ``a`` to within ``2**-53``;
``a = 0`` never, ``a = 1`` always accepts).

References
----------
Leviathan, Kalman, Matias 2023, "Fast Inference from Transformers via Speculative Decoding",
Alg. 1 and §2.3. Yin, Chen, Huang, Wang 2024, "A Theoretical Perspective for Speculative
Decoding Algorithm", Alg. 1 (draft to the horizon), Thm 1, Alg. 4 (batch). Walker 1977, "An
efficient method for generating discrete random variables with general distributions", ACM
TOMS 3(3); Hübschle-Schneider & Sanders 2022, "Parallel Weighted Random Sampling", ACM TOMS
48(3), §4 (the sweeping construction).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from scdsim._validate import check_int
from scdsim.chains import MarkovLM, MarkovPair
from scdsim.process import Scheme, sequence_args

__all__ = ["simulate", "SimResult", "sample_autoregressive"]

# Uniforms are drawn in chunks of positions whose size keeps one chunk under this budget
# (small enough to stay in cache while the chunk's positions are simulated), with at least
# _MIN_CHUNK positions (so that each stream's call draws more than it costs).
_CHUNK_BYTES = 2 * 2**20
_MIN_CHUNK = 8
# Runs per random stream (see _Streams).
_LANES = 64
# Tolerance on the rows of a law handed to the engine (same as _validate.PROB_ATOL for float64).
_ROW_ATOL = 1e-6
# Records of an alias table column, and of a draft column with its acceptances.
_REC = np.dtype([("prob", np.float64), ("alias", np.intp)])
_REC_ACC = np.dtype([("prob", np.float64), ("alias", np.intp), ("acc", np.float64),
                     ("acc_alias", np.float64)])
# Positions per block when the chunk's tokens are copied to the run-major output.
_FLUSH_BLOCK = 16


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
    """Per-run uniforms, drawn position-major: ``uniforms(n0, n1)`` is ``(n1 - n0, n_slots,
    runs)``.

    Runs are grouped in lanes of ``_LANES``: run ``i = _LANES b + l`` reads the outputs
    ``t _LANES + l`` (``t = n n_slots + j`` for slot ``j`` of position ``n``) of the stream
    ``Generator(PCG64DXSM(SeedSequence(seed, spawn_key=(b,)))).random()``, i.e. of child ``b``
    of ``SeedSequence(seed).spawn(...)``. A group's stream is drawn whole (all its lanes, even
    past ``runs``), so run ``i`` does not depend on ``runs``; a group's draws are position-major
    in its stream, so every position's slots reach all runs without a transpose. Positions are
    drawn in order, each group's generator continuing, so chunking changes no draw either.
    """

    def __init__(self, seed: int, runs: int, n_slots: int):
        self.runs, self.n_slots = runs, n_slots
        self._gens = [
            np.random.Generator(np.random.PCG64DXSM(np.random.SeedSequence(seed,
                                                                            spawn_key=(b,))))
            for b in range(-(-runs // _LANES))
        ]
        self._next = 0
        self._buf = self._tmp = None

    def uniforms(self, n0: int, n1: int) -> np.ndarray:
        """``(n1 - n0, n_slots, runs)`` uniforms in [0, 1) (positions drawn in order); the
        buffer is reused by the next call."""
        if n0 != self._next:
            raise AssertionError(f"positions are drawn in order: expected {self._next}, got {n0}")
        self._next = n1
        rows = (n1 - n0) * self.n_slots
        R = self.runs
        if self._buf is None or self._buf.shape[0] < rows:
            self._buf = np.empty((rows, R), dtype=np.float64)
            self._tmp = np.empty((rows, _LANES), dtype=np.float64)
        out, tmp = self._buf[:rows], self._tmp[:rows]
        for b, gen in enumerate(self._gens):
            lo = b * _LANES
            gen.random(out=tmp)
            # the last group's lanes past ``runs`` are drawn and dropped
            out[:, lo:lo + _LANES] = tmp[:, :min(_LANES, R - lo)]
        return out.reshape(n1 - n0, self.n_slots, R)


# ------------------------------------------------------------------------------------------
# alias tables


def _alias_tables(w: np.ndarray) -> np.ndarray:
    """Walker alias tables of the rows of ``w`` (``(S, V)``, each row summing to ``V``).

    Returns the flat ``(S V,)`` records ``(prob, alias)`` (``prob`` in [0, 1]): a draw in row
    ``s`` picks a column ``c`` uniformly and returns ``c`` with probability ``prob[s V + c]``,
    else ``alias[s V + c]``.

    Construction: the sweep of Hübschle-Schneider & Sanders (2022, §4), for every row at once.
    Light tokens (``w <= 1``) and heavy tokens (``w > 1``) are each taken in token order, with
    ``D_i`` the deficit ``1 - w`` of lights ``0..i`` and ``E_j`` the excess ``w - 1`` of heavies
    ``0..j``. Heavy ``j`` fills the lights until the deficits reach ``E_j``, after light
    ``i*(j) = #{i : D_i < E_j}``, then becomes a column of its own with
    ``prob = E_j + 1 - D_i*`` (in [0, 1]) filled by the next heavy; so light ``i`` is filled by
    heavy ``#{j : i*(j) < i}``. The ``i*`` of all rows are one ``searchsorted`` with row ``s``
    shifted by ``s (V + 2)`` (a row's values lie in [0, V]); the shift rounds the keys by at
    most ``ulp(S (V + 2))``, which can move a heavy's ``prob`` by as much (it is clipped to
    [0, 1]): ~1e-13 of probability at S = V = 1000, like an inverse-CDF table. Every light
    keeps its own ``prob = w`` and every alias is a heavy token, so a token of probability 0
    is never drawn.
    """
    S, V = w.shape
    heavy = w > 1.0
    x = w - 1.0
    E = np.cumsum(np.maximum(x, 0.0), axis=1)
    np.negative(x, out=x)
    np.maximum(x, 0.0, out=x)
    D = np.cumsum(x, axis=1)
    del x
    hf = heavy.ravel()
    hidx = np.flatnonzero(hf)
    lidx = np.flatnonzero(~hf)
    nh = np.count_nonzero(heavy, axis=1)
    nl = V - nh
    rows = np.arange(S)
    rh = np.repeat(rows, nh)
    rl = np.repeat(rows, nl)
    last_h = np.cumsum(nh) - 1  # global index of each row's last heavy
    lend = np.cumsum(nl)        # global index just past each row's last light
    Eh = E.ravel()[hidx]
    Dl = D.ravel()[lidx]
    htok = hidx - rh * V

    rec = np.empty(S * V, dtype=_REC)
    prob, alias = rec["prob"], rec["alias"]
    prob[:] = w.ravel()  # a light column keeps its own mass w <= 1
    if hidx.size == 0:  # every row uniform up to rounding: no column needs an alias
        alias[:] = np.tile(np.arange(V), S)
        return rec
    W = V + 2.0
    ig = np.searchsorted(Dl + rl * W, Eh + rh * W, side="left")  # lstart + i*
    has = ig < lend[rh]  # else no light of the row exhausts heavy j (rounding): prob 1
    r = np.ones(hidx.size)
    r[has] = Eh[has] + 1.0 - Dl[ig[has]]
    np.clip(r, 0.0, 1.0, out=r)
    prob[hidx] = r
    nxt = np.arange(1, hidx.size + 1)
    nxt[last_h[nh > 0]] -= 1  # the row's last heavy is its own alias
    alias[hidx] = htok[nxt]
    if lidx.size:
        # light i of a row: heavies j with i*(j) < i, counted by a running sum over all
        # lights; heavies left with no i* (``~has``) in earlier rows are added back
        start = np.bincount(ig[has] + 1, minlength=lidx.size + 1)
        j = np.cumsum(start[:lidx.size])
        unc = nh - np.bincount(rh[has], minlength=S)
        j += (np.cumsum(unc) - unc)[rl]
        # rounding can leave the last lights of a row past its last heavy: that heavy fills
        # them (their deficit is rounding noise)
        np.minimum(j, last_h[rl], out=j)
        al = htok[j]
        empty = nh[rl] == 0  # a row without heavies is uniform up to rounding: any alias
        if empty.any():
            al[empty] = lidx[empty] - rl[empty] * V
        alias[lidx] = al
    return rec


def _split(u: np.ndarray, V: int):
    """``(c, f)``: the column ``floor(u V)`` and the coin ``frac(u V)`` of uniforms ``u``.

    ``u V < V`` for every double ``u < 1`` (round to nearest), so ``c <= V - 1``; ``f`` keeps
    the ``53 - log2(V)`` low bits of ``u`` (~1e-13 resolution at V = 1000).
    """
    y = u * V
    c = y.astype(np.intp)
    y -= c
    return c, y


class _AliasTable:
    """O(1) sampling from the rows of an ``(S, V)`` law (Walker's alias method).

    A draw in row ``s`` with column ``c`` and coin ``f`` (``_split`` of one uniform) is ``c``
    if ``f < prob[s V + c]``, else ``alias[s V + c]``. A column is one record (``prob``,
    ``alias``; with ``accepting(a)``, also ``a`` at the column's token and at its alias), so a
    draw reads one cache line: the tables are larger than the cache and are hit at random.
    """

    def __init__(self, rows: np.ndarray, what: str):
        rows = np.asarray(rows, dtype=np.float64)
        S, V = rows.shape
        if not rows.min() >= 0:  # NaN fails too; an infinite entry fails the sums below
            raise ValueError(f"{what} has negative or non-finite entries")
        tot = rows.sum(axis=1)
        worst = float(np.max(np.abs(tot - 1.0)))
        if not worst <= _ROW_ATOL:
            raise ValueError(
                f"{what} rows must sum to 1 within {_ROW_ATOL:g}; worst is off by {worst:.3g}"
            )
        self.rec = _alias_tables(rows * (V / tot)[:, None])
        self.S, self.V = S, V
        self._acc = self._rec_acc = None

    @property
    def prob(self) -> np.ndarray:
        return self.rec["prob"]

    @property
    def alias(self) -> np.ndarray:
        return self.rec["alias"]

    def draw(self, base, c, f) -> np.ndarray:
        """Tokens for row offsets ``base = s V``, columns ``c`` and coins ``f``."""
        r = np.take(self.rec, base + c)
        return np.where(f < r["prob"], c, r["alias"])

    def sample(self, base, u) -> np.ndarray:
        """Tokens for row offsets ``base = s V`` and uniforms ``u`` in [0, 1)."""
        return self.draw(base, *_split(np.asarray(u, dtype=np.float64), self.V))

    def accepting(self, acc: np.ndarray) -> _AliasTable:
        """Attach the flat ``(S V,)`` acceptances ``a`` of the law's tokens (single draft)."""
        if self._acc is not acc:
            rec = np.empty(self.S * self.V, dtype=_REC_ACC)
            rec["prob"] = self.rec["prob"]
            rec["alias"] = self.rec["alias"]
            rec["acc"] = acc
            rows = np.repeat(np.arange(self.S, dtype=np.intp) * self.V, self.V)
            rec["acc_alias"] = acc[rows + self.rec["alias"]]
            self._acc, self._rec_acc = acc, rec
        return self

    def draw_accept(self, base, c, f, ua):
        """``(tokens, accepted)``: ``draw(base, c, f)`` and ``ua < a(token)``."""
        r = np.take(self._rec_acc, base + c)
        keep = f < r["prob"]
        x = np.where(keep, c, r["alias"])
        return x, ua < np.where(keep, r["acc"], r["acc_alias"])

    def law(self) -> np.ndarray:
        """The ``(S, V)`` law the table samples: ``(prob + mass aliased to x) / V`` per row."""
        S, V = self.S, self.V
        rows = np.repeat(np.arange(S) * V, V)
        out = self.prob + np.bincount(rows + self.alias, weights=1.0 - self.prob,
                                      minlength=S * V)
        return (out / V).reshape(S, V)


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
            self._draft = _AliasTable(self.Q, "draft kernel")
        return self._draft

    @property
    def bonus(self):
        if self._bonus is None:
            self._bonus = _AliasTable(np.asarray(self.laws.bonus, dtype=np.float64),
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
            self._res[m] = _AliasTable(law, f"rule {r.name}: residual")
        return self._res[m]


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
        """Mean tokens emitted per block, over all blocks of all runs (``T runs / calls``): the
        mean *acceptance length* (tau) that EAGLE/Medusa-style papers report. The accepted
        lengths of single blocks are in ``block_tokens_hist`` (a block of ``j`` tokens
        accepted ``j - 1`` drafts, or ``j`` when it reached the horizon without a bonus)."""
        return self.horizon * self.runs / float(self.target_calls.sum())

    def acceptance_by_phase(self) -> np.ndarray:
        """``phase_accepts / phase_attempts`` per phase; NaN where a phase was never reached."""
        out = np.full(self.phase_attempts.shape, np.nan)
        np.divide(self.phase_accepts, self.phase_attempts, out=out, where=self.phase_attempts > 0)
        return out


# ------------------------------------------------------------------------------------------
# the engine


def _check_sim_args(pair, scheme, horizon, runs):
    horizon, clipped = sequence_args(pair, scheme, horizon, None, None)
    return horizon, clipped, check_int(runs, "runs", minimum=1)


def _chunk_positions(runs, n_slots, horizon):
    return int(min(horizon, max(_MIN_CHUNK, _CHUNK_BYTES // (8 * runs * n_slots))))


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
    if not isinstance(pair, MarkovPair):
        raise TypeError(f"pair must be a scdsim.MarkovPair, got {type(pair).__name__}")
    asked = Scheme(rule, gamma, batch)  # validated once; reported with the caller's gamma
    horizon, scheme, runs = _check_sim_args(pair, asked, horizon, runs)
    seed = _seed_from(rng)
    T, M = horizon, scheme.M
    # slot layout of one position: drafts [0, M) (slot 0 also the bonus), acceptances
    # [M, 2M), residual 2M
    n_slots = 2 * M + 1
    streams = _Streams(seed, runs, n_slots)
    chunk = _chunk_positions(runs, n_slots, T)
    run = _Runs(pair, scheme, T, runs, chunk)
    tables = None
    token_slots = list(range(M)) + [2 * M]  # uniforms that draw a token: split once per chunk
    with tqdm(total=T, disable=not progress, desc=f"simulate {rule.name}", unit="pos") as bar:
        for n0 in range(0, T, chunk):
            n1 = min(T, n0 + chunk)
            U = streams.uniforms(n0, n1)
            C, F = _split(U[:, token_slots], pair.V)
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
        self.hist = np.zeros((runs, self.L), dtype=np.int64)
        self.hist_flat = self.hist.reshape(-1)
        self.run_L1 = np.arange(runs, dtype=np.intp) * self.L + 1  # hist column k + 1
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
        col = cur + self.run_L1  # flat hist cell (run, k + 1) of a block ending here
        for i in range(C):  # runs are distinct within a position: no repeated cell
            self.hist_flat[col[i][ends[i]]] += 1
        rejected = ends if self.gamma is None else ends & (cur < self.gamma)
        self.pos_rej[n0:n1] = np.count_nonzero(rejected, axis=1)
        if self.gamma is None:  # budget T - n of a block starting at n
            self.budget += (self.T - np.arange(n0, n1)) @ (cur == 0)
        else:  # only blocks starting after T - gamma have less than gamma
            for n in range(max(n0, self.T - self.gamma + 1), n1):
                self.budget[cur[n - n0] == 0] -= self.gamma - (self.T - n)
        for a in range(n0, n1, _FLUSH_BLOCK):
            b = min(n1, a + _FLUSH_BLOCK)
            self.tokens[:, a:b] = self.buf[a - n0:b - n0].T

    def result(self, rule_name, gamma, batch, seed):
        K, k, hist = self.K, self.k, self.hist
        runs = k.size
        # every ended block with at most K tokens ended by a rejection after k = tokens - 1
        # accepted drafts (a bonus block has gamma + 1 tokens)
        rejections = hist[:, 1:K + 1].sum(axis=1)
        rej_at = hist[:, 1:K + 1].sum(axis=0)
        # blocks still open reached the horizon with all g = k drafts accepted: k tokens
        io = np.flatnonzero(k)
        self.hist_flat[self.run_L1[io] - 1 + k[io]] += 1
        calls = hist.sum(axis=1)
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
            draft_tokens=drafts, block_tokens_hist=hist,
            position_rejected=self.pos_rej / runs, phase_attempts=attempts,
            phase_accepts=attempts - rej_at, rule=rule_name,
            gamma=gamma, batch=batch, horizon=self.T, runs=runs, seed=seed,
        )


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
    tokens = np.empty((runs, horizon), dtype=np.int64)
    rowV = np.asarray(model.state_of, dtype=np.intp) * model.V
    sV = np.full(runs, model.start * model.V, dtype=np.intp)
    table = None
    chunk = _chunk_positions(runs, 1, horizon)
    with tqdm(total=horizon, disable=not progress, desc="sample_autoregressive",
              unit="pos") as bar:
        for n0 in range(0, horizon, chunk):
            n1 = min(horizon, n0 + chunk)
            U = streams.uniforms(n0, n1)
            for n in range(n0, n1):
                if table is None or not model.homogeneous:
                    table = _AliasTable(model.kernel(n), "kernel")
                x = table.sample(sV, U[n - n0, 0])
                tokens[:, n] = x
                sV = rowV[x]
                bar.update(1)
    return tokens
