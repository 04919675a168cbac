"""Exact sequence-level analysis of speculative decoding on Markov pairs (float64, no randomness).

The process (see the Glossary in ``scdsim.rules``)
--------------------------------------------------
Positions ``n = 0..T-1`` each emit exactly one token. A *block* (one target call) starts at
position ``n0`` with a draft budget ``g = min(gamma, T - n0)`` (``gamma=None``: draft to the
horizon, the form of Yin et al. Alg. 1). At phase ``k`` (drafts accepted so far in the block),
a position with ``k < g`` is a draft position: accepted -> phase ``k+1``; all drafts rejected ->
a recovered token from the residual (one *rejection*) and the block ends. At ``k == gamma`` the
target emits a *bonus* token and the block ends (Leviathan et al. Alg. 1). ``gamma = 0`` is plain
autoregressive decoding.

Because the draft token at a position is drawn from the draft's law given the accepted prefix,
the pair (phase, state) is a Markov chain; this module propagates its law exactly. Multi-draft
rules come in two labelled sequence-level readings of Yin et al.'s Algorithm 4:

``batch="first"`` (variant A, "first-position batch", docs/theory.md §4): the M drafts are verified
    only at the first position of a block; the block then continues along the accepted draft
    with the single-draft rule ``rule.single()``.
``batch="tree"``  (variant B): every draft consistent with the accepted prefix is tried at every
    depth; the number of alive drafts is part of the chain state (exact by enumerating the
    ``V^m`` draft tuples at a position, so small V only).

Costs: one position costs a handful of ``(rows, S) @ (S, V)`` products, where rows is the number
of phases (times ``horizon+1`` when the rejection count is tracked). Homogeneous pairs build
their per-phase operators once, and are fast-forwarded once the law of their (phase, state)
chain has converged to float64 rounding (every later position adds the same quantities), so a
long horizon costs a few dozen positions; periodic or slowly mixing chains are propagated in
full. Scalar results allocate no per-position ``(T, V)`` arrays. Sizes beyond
``EXACT_MAX_BYTES`` (memory), ``EXACT_MAX_WORK`` (time), ``STATIONARY_MAX_STATES`` and
``TREE_MAX_WORK`` raise a ValueError naming the limit before allocating.

References
----------
Yin et al. 2024 (arXiv 2411.00841) Thm 1 (expected rejections), Alg. 4 / Thm 3 (batch);
Leviathan et al. 2023 Alg. 1, Thm 3.8 (speedup). Yin et al. write q for the target and p for the
draft; here p = target, q = draft as in Leviathan et al.
"""

from __future__ import annotations

import dataclasses
import itertools
import numbers
from collections import defaultdict
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from scdsim import cost as _cost
from scdsim import rules as _rules
from scdsim._results import Result
from scdsim._validate import check_int, check_real
from scdsim.chains import MarkovPair
from scdsim.process import Scheme, sequence_args

__all__ = [
    "expected_rejections",
    "expected_rejections_theorem1",
    "expected_rejections_batch_limit",
    "rejection_distribution",
    "position_rejection",
    "output_marginals",
    "exact_joint_law",
    "target_joint_law",
    "joint_tv_to_target",
    "block_stats",
    "BlockStats",
    "stationary_rates",
    "StationaryRates",
    "SequenceLaw",
    "sequence_law",
    "batch_curve",
    "BatchCurve",
    "TREE_MAX_TUPLES",
    "TREE_MAX_WORK",
    "JOINT_MAX_SEQUENCES",
    "EXACT_MAX_BYTES",
    "EXACT_MAX_WORK",
    "STATIONARY_MAX_STATES",
]

#: Limits of the exact tree reading (``batch="tree"``): ``S V^M`` draft tuples, and about
#: ``S V^M M (M + 4)`` operations (a few seconds) with ``M V^M`` numbers per state (under 1 GB).
TREE_MAX_TUPLES = 5_000_000
TREE_MAX_WORK = 2 * 10**8
JOINT_MAX_SEQUENCES = 2_000_000


# ------------------------------------------------------------------------------------------
# validation


def _check_args(pair, rule, horizon, gamma, batch):
    """``(horizon, scheme)``: the arguments validated once, ``gamma`` clipped to the horizon: a
    block never drafts past it, so phases beyond ``T`` would carry no mass (``gamma = 10**9``
    built 10**9 phases)."""
    return sequence_args(pair, rule, horizon, gamma, batch)


# ------------------------------------------------------------------------------------------
# phases and their one-position operators


@dataclass(frozen=True)
class _Phase:
    """A phase of the block chain: ``k`` drafts accepted so far, ``m`` drafts alive (tree)."""

    k: int
    m: int


class _Group(NamedTuple):
    """One operator product of a position.

    ``mass[src_i] @ W`` goes to phase ``dst_i`` (``W`` the accepted sub-law, the bonus law, or,
    when accept and reject lead to the same phase, the whole step law); ``(sum_i mass[src_i] *
    rej) @ res`` goes to the start phase and counts one rejection. ``quiet`` phases (a folded
    bonus) also feed the residual product without counting a rejection.
    """

    srcs: list
    dsts: list
    W: np.ndarray | None = None
    rej: np.ndarray | None = None
    res: np.ndarray | None = None
    quiet: tuple = ()


class _Chain:
    """The (phase, state) chain of one pair and one ``Scheme`` (``gamma`` within the horizon)."""

    def __init__(self, pair, scheme: Scheme, oracle_first=False, split=False):
        self.pair, self.scheme = pair, scheme
        self.rule, self.gamma = scheme.rule, scheme.gamma
        gamma = self.gamma
        self.oracle_first = oracle_first  # M -> infinity limit of variant A: see batch_limit
        self.split = split  # keep accept and reject products apart (needed to count rejections)
        M = scheme.M
        self.batch = scheme.mode
        if self.batch == "tree":
            self._check_tree_size(pair.V, M, pair.S)
        kmax = 1 if gamma is None else gamma  # gamma=None: phase 0 (block start) or 1 (continuing)
        phases = []
        if self.batch == "tree":
            phases = [_Phase(k, m) for k in range(kmax + 1) for m in range(1, M + 1)]
            if gamma is None:
                phases = [_Phase(0, m) for m in range(1, M + 1)]  # depth is irrelevant to the horizon
        elif self.batch == "first":
            phases = [_Phase(k, M if k == 0 else 1) for k in range(kmax + 1)]
        else:
            phases = [_Phase(k, 1) for k in range(kmax + 1)] if gamma is not None else [_Phase(0, 1)]
        self.phases = phases
        self.index = {ph: i for i, ph in enumerate(phases)}
        self.start_phase = self.index[_Phase(0, M if self.batch != "single" else 1)]
        self._cache = None

    @staticmethod
    def _check_tree_size(V, M, S):
        if S * V**M > TREE_MAX_TUPLES:
            raise ValueError(
                f"batch='tree' enumerates V^M draft tuples per state: S*V^M = {S}*{V}^{M} exceeds "
                f"{TREE_MAX_TUPLES}; use scdsim.simulate(..., batch='tree') for this size"
            )
        # each tuple is handled once per draft and compared with every draft: ~ M^2 work and
        # M numbers of memory per tuple (V = 2, M = 20: 10 s and 0.9 GB before this limit)
        if S * V**M * M * (M + 4) > TREE_MAX_WORK or V**M * M > TREE_MAX_TUPLES:
            raise ValueError(
                f"batch='tree' with M={M} drafts enumerates V^M = {V}^{M} draft tuples of M "
                f"tokens per state (S={S}): about {S * V**M * M * (M + 4):.2g} operations and "
                f"{V**M * M * 60 / 2**30:.1f} GB, above the limits TREE_MAX_WORK = "
                f"{TREE_MAX_WORK:.0e} and M V^M <= TREE_MAX_TUPLES = {TREE_MAX_TUPLES}; use "
                "scdsim.simulate(..., batch='tree') for this size"
            )

    def is_bonus(self, ph):
        return self.gamma is not None and ph.k == self.gamma

    def _next(self, ph, m_next):
        if self.gamma is None:
            return _Phase(0, m_next) if self.batch == "tree" else _Phase(
                0 if self.batch == "single" else 1, m_next)
        return _Phase(ph.k + 1, m_next)

    def operators(self, n):
        """Per-position transition pieces (``_Group``), grouped so that phases sharing an
        operator share a product. The rule is read once per position through
        ``Scheme.laws`` (checked there); homogeneous pairs build the groups once."""
        if self.pair.homogeneous and self._cache is not None:
            return self._cache
        P, Q = self.pair.kernels(n)
        bonus = [i for i, ph in enumerate(self.phases) if self.is_bonus(ph)]
        laws = self.scheme.laws(P, Q, bonus=bool(bonus))
        groups = []
        start = self.start_phase
        if self.batch == "tree":
            for m in range(1, self.rule.M + 1):
                srcs = [i for i, ph in enumerate(self.phases) if ph.m == m and not self.is_bonus(ph)]
                if not srcs:
                    continue
                J, rej, res = _tree_step(laws.parts[m], Q, m)
                for mp in range(1, m + 1):
                    dsts = [self.index[self._next(self.phases[i], mp)] for i in srcs]
                    groups.append(_Group(srcs, dsts, J[:, :, mp - 1]))
                groups.append(_Group(srcs, [start] * len(srcs), rej=rej, res=res))
        else:
            by_rule = defaultdict(list)
            for i, ph in enumerate(self.phases):
                if not self.is_bonus(ph):
                    by_rule[ph.m].append(i)
            for m, srcs in by_rule.items():
                if self.oracle_first and m == self.rule.M:
                    W, rej, res = P, np.zeros(P.shape[0]), P  # never rejected, emits the target
                else:
                    parts = laws.parts[m]
                    W, rej, res = parts.accepted_law, parts.all_reject, parts.residual
                dsts = [self.index[self._next(self.phases[i], 1)] for i in srcs]
                if all(d == start for d in dsts) and not self.split:
                    # accept and reject lead to the same phase: one combined step-law product
                    groups.append(_Group(srcs, dsts, W + rej[:, None] * res, rej))
                else:
                    groups.append(_Group(srcs, dsts, W))
                    groups.append(_Group(srcs, [start] * len(srcs), rej=rej, res=res))
        if bonus:
            fold = self._fold_bonus(groups, laws) if not self.split else None
            if fold is None:
                groups.append(_Group(bonus, [start] * len(bonus), laws.bonus))
            else:
                # the bonus law equals the single-draft step law: the bonus phases join the
                # accepted-law product (to the start phase) and feed the residual product
                # without counting a rejection (``quiet``): two operators per position, not three
                wi, ri = fold
                g = groups[wi]
                groups[wi] = g._replace(srcs=g.srcs + bonus, dsts=g.dsts + [start] * len(bonus))
                groups[ri] = groups[ri]._replace(quiet=tuple(bonus))
        if self.pair.homogeneous:
            self._cache = groups
        return groups

    def _fold_bonus(self, groups, laws):
        """Indices ``(W group, residual group)`` of the single-draft verification when the
        bonus law is its step law (``PositionLaws.bonus_is_step``, one tolerance for every
        engine); else None."""
        if self.batch == "tree" or not laws.bonus_is_step:
            return None
        for wi in range(len(groups) - 1):
            g, nxt = groups[wi], groups[wi + 1]
            if (g.W is not None and g.rej is None and nxt.W is None and nxt.res is not None
                    and nxt.srcs == g.srcs and self.phases[g.srcs[0]].m == 1):
                return wi, wi + 1
        return None


def _tree_step(parts, Q, m):
    """Exact one-position law of tree verification with ``m`` alive drafts, by enumeration.

    ``parts`` are the ``m``-draft rule's checked ``rules.SequentialParts`` at the position.
    Returns ``J (S, V, m)``: probability that token ``x`` is accepted and ``m'`` drafts (those
    carrying ``x``) stay alive; ``rej (S,)``: all ``m`` rejected; ``res (S, V)``: recovered law.
    """
    S, V = Q.shape
    a = parts.acceptances  # (S, m, V)
    res = parts.residual
    tuples = np.array(list(itertools.product(range(V), repeat=m)), dtype=np.int64)  # (N, m)
    J = np.zeros((S, V, m))
    rej = np.zeros(S)
    for s in range(S):
        prob = np.prod(Q[s][tuples], axis=1)  # (N,)
        acc_each = a[s, np.arange(m)[None, :], tuples]  # (N, m): a_j(x_j)
        not_before = np.cumprod(np.concatenate([np.ones((len(tuples), 1)), 1 - acc_each[:, :-1]], 1), 1)
        p_acc_j = prob[:, None] * not_before * acc_each  # accept draft j
        for j in range(m):
            x = tuples[:, j]
            alive = (tuples == x[:, None]).sum(axis=1)
            np.add.at(J[s], (x, alive - 1), p_acc_j[:, j])
        rej[s] = np.sum(prob * np.prod(1 - acc_each, axis=1))
    return J, rej, res


# ------------------------------------------------------------------------------------------
# forward propagation


@dataclass(frozen=True, eq=False, repr=False)
class SequenceLaw(Result):
    """Everything the forward pass of the exact engine computes, per position.

    Attributes
    ----------
    marginals : (T, V) law of each emitted token.
    position_rejection : (T,) probability of a recovered token at each position.
    block_starts : (T,) probability that a block (target call) starts at each position.
    expected_blocks_by_length : (min(gamma, T)+2,) expected number of blocks that emitted ``j``
        tokens (index j); None when drafting to the horizon (``gamma=None``), where blocks are
        not tracked by length. (Former name ``block_end_tokens``, kept as a read-only alias.)
    rejection_pmf : (T+1,) law of the number of rejections, or None if not tracked.
    rule, gamma, batch : the process (``gamma`` clipped to the horizon).

    The shared vocabulary (``expected_rejections``, ``expected_target_calls``,
    ``expected_draft_tokens``, ``tokens_per_call``, ``block_length_pmf``, ``speedup(c)``)
    follows from these.
    """

    marginals: np.ndarray
    position_rejection: np.ndarray
    block_starts: np.ndarray
    expected_blocks_by_length: np.ndarray | None
    rejection_pmf: np.ndarray | None
    rule: str = ""
    gamma: int | None = None
    batch: str = "first"

    _summary = ("expected_rejections", "expected_target_calls", "expected_draft_tokens",
                "tokens_per_call", "block_length_pmf", "position_rejection")
    _bulky = ("marginals",)  # (T, V): in to_dict(bulky=True) only

    def __post_init__(self):
        self._freeze()

    def __repr__(self):
        return (f"SequenceLaw({self.rule}, T={self.horizon}, gamma={self.gamma}: rejections "
                f"{self.expected_rejections:.6g})")

    @property
    def horizon(self) -> int:
        return self.marginals.shape[0]

    @property
    def expected_rejections(self) -> float:
        return float(self.position_rejection.sum())

    @property
    def expected_target_calls(self) -> float:
        return float(self.block_starts.sum())

    @property
    def expected_draft_tokens(self) -> float:
        """E[sum over blocks of the draft budget ``min(gamma, T - n0)``]."""
        T = self.horizon
        left = T - np.arange(T)
        budget = left if self.gamma is None else np.minimum(self.gamma, left)
        return float(self.block_starts @ budget)

    @property
    def tokens_per_call(self) -> float:
        """``T / E[target calls]``."""
        return self.horizon / self.expected_target_calls

    @property
    def block_length_pmf(self) -> np.ndarray | None:
        """Law over blocks of the tokens a block emits (index j); None for ``gamma=None``."""
        ends = self.expected_blocks_by_length
        return None if ends is None else ends / ends.sum()

    @property
    def block_end_tokens(self) -> np.ndarray | None:
        """Former name of ``expected_blocks_by_length`` (read-only alias)."""
        return self.expected_blocks_by_length

    def speedup(self, c: float = 0.0) -> float:
        """Leviathan's walltime model at cost ratio ``c``: ``T / (E[calls] + c E[drafts])``."""
        c = check_real(c, "c", low=0.0)
        return self.horizon / (self.expected_target_calls + c * self.expected_draft_tokens)


def _is_identity(pair):
    """True when the state is the last token (``state_of`` is the identity, S = V)."""
    return pair.S == pair.V and bool(np.all(pair.state_of == np.arange(pair.V)))


def _to_states(pair, tok, identity=None):
    """Map token masses ``(..., V)`` to state masses ``(..., S)`` through ``state_of``.

    ``identity`` (optional) is ``_is_identity(pair)``, computed once by callers in a loop.
    """
    if _is_identity(pair) if identity is None else identity:
        return tok
    flat = tok.reshape(-1, pair.V)
    rows = flat.shape[0]
    # one bincount over (row, state) pairs instead of one call per row
    idx = (np.arange(rows)[:, None] * pair.S + pair.state_of[None, :]).ravel()
    out = np.bincount(idx, weights=flat.ravel(), minlength=rows * pair.S)
    return out.reshape(tok.shape[:-1] + (pair.S,))


#: Below this many rows, row-by-row vector-matrix products beat one skinny matrix product
#: (OpenBLAS packs the whole (S, V) operator for every gemm call; measured crossover ~8 rows).
_GEMV_ROWS = 8


def _times(A, W):
    """``A @ W`` for ``A`` of shape ``(r, S)``, row by row when ``r`` is small."""
    if A.shape[0] >= _GEMV_ROWS:
        return A @ W
    out = np.empty((A.shape[0], W.shape[1]))
    for i in range(A.shape[0]):
        np.dot(A[i], W, out=out[i])
    return out


#: Memory one exact-engine call may allocate for its state and token masses and the
#: per-position arrays it returns (about 1 GB); above it the call raises before allocating.
EXACT_MAX_BYTES = 2**30

#: Work one exact-engine call may spend propagating positions it cannot fast-forward, in
#: multiply-adds (about 10 s here); each position also counts ``_POSITION_OVERHEAD`` for its
#: Python overhead (about 25 us). Checked before starting, for homogeneous pairs (whose
#: horizon is unbounded) and for the rejection count law (cost x (T+1)).
EXACT_MAX_WORK = 2 * 10**10
_POSITION_OVERHEAD = 50_000

#: Fast-forward of a homogeneous pair: the propagated (phase, state) law has converged when the
#: distance still to go, bounded by ``delta lam / (1 - lam)`` with ``delta`` the L1 change over
#: the last position and ``lam`` its geometric decay rate over the last ``_FF_WINDOW`` positions,
#: is below ``_FF_TOL``; ``lam`` must be at most ``_FF_MAX_RATE`` (a slowly mixing or periodic
#: chain never fast-forwards: it is propagated position by position).
_FF_TOL = 1e-15
_FAST_FORWARD = True  # off: propagate every position (the benchmark's "before")
_FF_WINDOW = 4
_FF_MAX_RATE = 0.95
_FF_MAX_PROBE = 10_000
_FF_NOISE = 1e-14


@dataclass(frozen=True)
class _Run:
    """What the forward pass computed: positions ``0..n-1`` explicitly; positions ``n..T-1``
    (``tail = T - n`` of them, 0 unless fast-forwarded) repeat position ``n - 1`` exactly."""

    horizon: int
    pos_rej: np.ndarray  # (n,)
    starts: np.ndarray  # (n,) mass at the start phase before each position
    marginals: np.ndarray | None  # (n, V) or None when not stored
    ends: np.ndarray | None
    pmf: np.ndarray | None
    rule_rej: float | None  # sum_n E[rejection_prob at the state before position n]
    tail: int

    def full(self, x):
        """A per-position array of the computed positions, extended over the tail."""
        if not self.tail:
            return x
        return np.concatenate([x, np.repeat(x[-1:], self.tail, axis=0)])

    def total(self, x):
        """Sum over all ``T`` positions of a per-position quantity ``x`` ``(n,)``."""
        return float(x.sum() + self.tail * x[-1]) if self.tail else float(x.sum())


def _position_work(chain, J):
    """Multiply-adds of one position: every phase row times an ``(S, V)`` operator, plus the
    residual products, plus ``_POSITION_OVERHEAD``."""
    S, V = chain.pair.S, chain.pair.V
    return (len(chain.phases) + 2) * J * S * V + _POSITION_OVERHEAD


def _check_size(chain, horizon, track_counts, store_marginals, full):
    """Raise before allocating if the pass would exceed ``EXACT_MAX_BYTES`` or, where the
    horizon is not bounded by the kernels, ``EXACT_MAX_WORK``; return the number of positions
    to compute before fast-forwarding must have happened (``horizon`` if no limit applies).
    ``full``: the caller returns its per-position arrays over all ``T`` positions."""
    pair = chain.pair
    K, S, V = len(chain.phases), pair.S, pair.V
    J = horizon + 1 if track_counts else 1
    per = _position_work(chain, J)
    budget = horizon
    if (pair.homogeneous or track_counts) and horizon * per > EXACT_MAX_WORK:
        if track_counts or not pair.homogeneous:
            raise ValueError(
                f"the exact rejection-count law at horizon={horizon} costs about "
                f"{horizon * per:.2g} multiply-adds (T x (T+1) rows), above the limit "
                f"EXACT_MAX_WORK = {EXACT_MAX_WORK:.0e}; use expected_rejections for the mean "
                "or scdsim.simulate(...) for the law"
            )
        # fast-forwarding must happen within these positions (it happens within a few
        # hundred when it happens at all: the change decays at least as fast as 0.95^n)
        budget = max(1, min(EXACT_MAX_WORK // per, _FF_MAX_PROBE))
    # (inhomogeneous pairs: the kernels themselves hold T x S x V numbers, linear in the input)
    state_bytes = 8 * K * J * (2 * S + 2 * V)  # masses, token masses and temporaries
    per_pos = 3 + (V if store_marginals else 0)
    out_bytes = 8 * per_pos * (horizon if full else min(horizon, budget))
    if state_bytes + out_bytes > EXACT_MAX_BYTES:
        what = (f"the (T, V) = ({horizon}, {V}) marginals" if store_marginals
                and out_bytes > state_bytes else
                f"{horizon} per-position values" if out_bytes > state_bytes else
                f"{K} phases x {J} rejection counts x (S + V) = ({S} + {V}) masses")
        raise ValueError(
            f"the exact engine would allocate about {(state_bytes + out_bytes) / 2**30:.1f} GB "
            f"for {what}, above the limit EXACT_MAX_BYTES = 1 GB; scalar results "
            "(expected_rejections, block_stats) store no per-position arrays, and "
            "scdsim.simulate(...) estimates these quantities at any size"
        )
    return budget


def _run(chain, horizon, track_counts=False, store_marginals=True, rule_rej=None, full=False):
    """The exact forward pass. ``rule_rej(n) -> (S,)``, optional: also accumulate
    ``sum_n s_n @ rule_rej(n)`` with ``s_n`` the state law before position ``n``. ``full``:
    the caller will expand the per-position arrays to all ``T`` positions (memory check).

    A homogeneous pair without the rejection count is fast-forwarded once its (phase, state)
    law has converged (see ``_FF_TOL``): every later position adds the same quantities.
    """
    pair = chain.pair
    budget = _check_size(chain, horizon, track_counts, store_marginals, full)
    K, S, V = len(chain.phases), pair.S, pair.V
    J = horizon + 1 if track_counts else 1
    fast = _FAST_FORWARD and pair.homogeneous and not track_counts
    n_alloc = min(horizon, budget)
    mass = np.zeros((K, J, S))
    mass[chain.start_phase, 0, pair.start] = 1.0
    marg = np.zeros((n_alloc, V)) if store_marginals else None
    pos_rej = np.zeros(n_alloc)
    starts = np.zeros(n_alloc)
    ends = np.zeros(chain.gamma + 2) if chain.gamma is not None else None
    rule_total = 0.0 if rule_rej is not None else None
    identity = _is_identity(pair)
    conv = _Convergence()
    tail = 0
    # with the identity state map (S = V) token masses are state masses: two buffers, swapped
    new_tok = np.zeros((K, J, V))
    for n in range(horizon):
        if n == n_alloc:
            raise ValueError(
                f"horizon={horizon}: the block chain of this homogeneous pair did not reach its "
                f"stationary law within {n_alloc} positions (it mixes slowly or is periodic), "
                f"and propagating all {horizon} positions exceeds the limit EXACT_MAX_WORK = "
                f"{EXACT_MAX_WORK:.0e} multiply-adds; use stationary_rates(...) for the "
                "long-run rates, a shorter horizon, or scdsim.simulate(...)"
            )
        starts[n] = mass[chain.start_phase].sum()
        if rule_total is not None:
            last_rule = float(mass.sum(axis=(0, 1)) @ rule_rej(n))
            rule_total += last_rule
        ends_before = ends.copy() if fast and ends is not None else None
        prev = mass
        new_tok.fill(0.0)
        for srcs, dsts, W, rej, res, quiet in chain.operators(n):
            m_src = mass[srcs]  # (len, J, S)
            if W is not None:
                out = _times(m_src.reshape(-1, S), W).reshape(len(srcs), J, V)
                for i, d in enumerate(dsts):
                    new_tok[d] += out[i]
                    if rej is None and res is None and chain.is_bonus(chain.phases[srcs[i]]):
                        ends[chain.gamma + 1] += m_src[i].sum()
            if rej is not None:
                per_src = m_src * rej  # (len, J, S)
                pos_rej[n] += per_src.sum()
                if ends is not None:
                    for i, si in enumerate(srcs):
                        ends[chain.phases[si].k + 1] += per_src[i].sum()
                if res is not None:
                    into = per_src.sum(axis=0)  # (J, S)
                    if quiet:  # folded bonus phases: through the residual, not a rejection
                        into = into + (mass[list(quiet)] * rej).sum(axis=0)
                    rt = _times(into, res)  # (J, V)
                    if track_counts:
                        rt = np.concatenate([np.zeros((1, V)), rt[:-1]], axis=0)
                    new_tok[chain.start_phase] += rt
        if marg is not None:
            marg[n] = new_tok.sum(axis=(0, 1))
        if identity:
            mass, new_tok = new_tok, mass
        else:
            mass = _to_states(pair, new_tok, identity=False)
        if fast and n + 1 < horizon and conv.step(float(np.abs(mass - prev).sum())):
            tail = horizon - n - 1
            if ends is not None:
                ends += tail * (ends - ends_before)
            if rule_total is not None:
                rule_total += tail * last_rule
            n_done = n + 1
            pos_rej, starts = pos_rej[:n_done], starts[:n_done]
            marg = marg[:n_done] if marg is not None else None
            break
    if ends is not None:  # blocks cut by the horizon emitted k tokens
        for i, ph in enumerate(chain.phases):
            if ph.k > 0:
                ends[ph.k] += mass[i].sum()
    pmf = mass.sum(axis=(0, 2)) if track_counts else None
    return _Run(horizon, pos_rej, starts, marg, ends, pmf, rule_total, tail)


class _Convergence:
    """Fast-forward test of a homogeneous pair's propagated law, fed the L1 change ``delta``
    of the law over each position (see ``_FF_TOL``).

    The decay rate compares the largest change of the last ``_FF_WINDOW`` positions with that
    of the ``_FF_WINDOW`` before (an oscillating, complex-eigenvalue decay is not
    underestimated). It is measured while the change is above the rounding noise
    ``_FF_NOISE``; below it the law's distance to its limit is bounded by extrapolating the
    last measured decay, and the observed change must stay at noise level.
    """

    def __init__(self):
        self.deltas = []
        self.ref = None  # (position, change, rate) of the last measurement above the noise

    def step(self, delta):
        d = self.deltas
        d.append(delta)
        if delta == 0.0:
            return True
        w = _FF_WINDOW
        if len(d) < 2 * w:
            return False
        recent, before = max(d[-w:]), max(d[-2 * w:-w])
        if recent >= _FF_NOISE:
            rate = (recent / before) ** (1.0 / w)
            self.ref = (len(d), recent, rate)
            return rate <= _FF_MAX_RATE and recent * rate / (1.0 - rate) <= _FF_TOL
        if self.ref is None:  # noise from the start: the law is already at its limit
            return True
        n0, d0, rate = self.ref
        if rate > _FF_MAX_RATE:
            return False
        still = d0 * rate ** (len(d) - n0)  # the change the measured decay predicts now
        return still * rate / (1.0 - rate) <= _FF_TOL


def _propagate(chain, horizon, track_counts=False):
    run = _run(chain, horizon, track_counts, full=True)
    pos_rej = run.full(run.pos_rej)
    starts = run.full(run.starts)
    if chain.gamma is None:
        # drafting to the horizon, a block starts at n = 0 and after every rejection; the phase
        # chain need not (and for single drafts does not) tell a fresh block from a continuing one
        starts = np.concatenate([[1.0], pos_rej[:-1]])
    return SequenceLaw(run.full(run.marginals), pos_rej, starts, run.ends, run.pmf)


def sequence_law(pair, rule, horizon, gamma=None, batch="first", track_counts=False):
    """Run the exact forward pass and return every per-position quantity.

    Parameters
    ----------
    pair : MarkovPair
        Target and draft Markov models (``S`` states, vocabulary ``V``).
    rule : Rule
        A samplable rule (``rules.lossless``, ``rules.recursive(M)``, ...).
    horizon : int
        Number of tokens ``T`` (at most the positions the kernels define).
    gamma : int >= 0 or None, optional
        Draft budget per block; None drafts to the horizon (Yin et al. Alg. 1); clipped to
        ``T``.
    batch : {"first", "tree"}, optional
        Sequence-level reading of a multi-draft rule (module docstring).
    track_counts : bool, optional
        Also compute the law of the number of rejections (cost and memory x ``(T+1)``).

    Returns
    -------
    SequenceLaw
        ``marginals (T, V)``, ``position_rejection (T,)``, ``block_starts (T,)``,
        ``expected_blocks_by_length (min(gamma, T)+2,)`` or None, ``rejection_pmf (T+1,)`` or
        None, and the shared vocabulary (``expected_rejections``, ``block_length_pmf``, ...).

    Raises
    ------
    ValueError
        Above ``EXACT_MAX_BYTES`` of arrays (the ``(T, V)`` marginals at large ``T V``) or,
        for a homogeneous pair that does not converge, ``EXACT_MAX_WORK``: use a scalar
        function (``expected_rejections``, ``block_stats``) or ``scdsim.simulate``.

    See Also
    --------
    expected_rejections, position_rejection, output_marginals, block_stats

    References
    ----------
    Leviathan et al. 2023, Alg. 1; Yin et al. 2024 (arXiv 2411.00841), Alg. 1 and Alg. 4.

    Examples
    --------
    >>> from scdsim import chains, rules
    >>> from scdsim.exact import markov as mk
    >>> pair = chains.yin_example()  # docs/theory.md §3: T = 4, V = 3
    >>> law = mk.sequence_law(pair, rules.lossless, 4, gamma=2)
    >>> law.block_starts.round(4).tolist()
    [1.0, 0.3, 0.26, 0.62]
    >>> law.marginals.shape
    (4, 3)
    """
    horizon, scheme = _check_args(pair, rule, horizon, gamma, batch)
    chain = _Chain(pair, scheme, split=track_counts)
    law = _propagate(chain, horizon, track_counts=track_counts)
    return dataclasses.replace(law, rule=scheme.rule.name, gamma=scheme.gamma, batch=scheme.batch)


# ------------------------------------------------------------------------------------------
# public quantities


def expected_rejections(pair, rule, horizon, gamma=None, batch="first"):
    """Exact expected number of rejections (recovered tokens) over ``horizon`` tokens.

    For lossless SD drafting to the horizon this is Yin et al.'s Theorem 1,
    ``sum_n E_{prefix ~ target}[TV(p_n, q_n)]``; for lossy rules the prefix follows the
    rule's own output law, which the propagation tracks; with ``gamma`` blocks, bonus
    positions are never rejected. Multi-draft rules use ``batch`` ("first": variant A;
    "tree": variant B). A homogeneous pair is fast-forwarded exactly once the law of its
    block chain has converged, so long horizons cost a few dozen products, and no ``(T, V)``
    array is allocated.

    Parameters
    ----------
    pair : MarkovPair
        Target and draft Markov models.
    rule : Rule
        A samplable rule.
    horizon : int
        Number of tokens ``T``.
    gamma : int >= 0 or None, optional
        Draft budget per block (None: draft to the horizon).
    batch : {"first", "tree"}, optional
        Sequence-level reading of a multi-draft rule.

    Returns
    -------
    float
        ``E[N_rej]``.

    See Also
    --------
    expected_rejections_theorem1 : the closed form for lossless SD, by a separate path.
    rejection_distribution : the whole law of ``N_rej``.
    stationary_rates : the long-run rate per token.

    References
    ----------
    Yin et al. 2024 (arXiv 2411.00841), Theorem 1 (and Theorem 3 for batches).

    Examples
    --------
    >>> from scdsim import chains, rules
    >>> from scdsim.exact import markov as mk
    >>> pair = chains.yin_example()  # docs/theory.md §3: T = 4, V = 3
    >>> round(mk.expected_rejections(pair, rules.lossless, 4), 4)
    1.0514
    >>> round(mk.expected_rejections(pair, rules.recursive(2), 4), 4)
    0.9264
    """
    horizon, scheme = _check_args(pair, rule, horizon, gamma, batch)
    run = _run(_Chain(pair, scheme), horizon, store_marginals=False)
    return run.total(run.pos_rej)


def rejection_distribution(pair, rule, horizon, gamma=None, batch="first"):
    """Exact law of the number of rejections over ``horizon`` tokens.

    Parameters
    ----------
    pair, rule, horizon, gamma, batch
        As in :func:`expected_rejections`.

    Returns
    -------
    numpy.ndarray, shape (T+1,)
        ``P(N_rej = j)`` for ``j = 0..T``.

    Raises
    ------
    ValueError
        When the ``T x (T+1)`` propagation exceeds ``EXACT_MAX_WORK`` or ``EXACT_MAX_BYTES``
        (use ``expected_rejections`` for the mean or ``scdsim.simulate`` for the law).

    See Also
    --------
    expected_rejections

    References
    ----------
    Yin et al. 2024 (arXiv 2411.00841), Theorem 1 (its mean).

    Examples
    --------
    >>> from scdsim import chains, rules
    >>> from scdsim.exact import markov as mk
    >>> pair = chains.yin_example()  # docs/theory.md §3: T = 4, V = 3
    >>> mk.rejection_distribution(pair, rules.lossless, 4).round(4).tolist()
    [0.2815, 0.4398, 0.2282, 0.047, 0.0036]
    """
    return sequence_law(pair, rule, horizon, gamma, batch, track_counts=True).rejection_pmf


def position_rejection(pair, rule, horizon, gamma=None, batch="first"):
    """Probability that position ``n`` emits a recovered token, for ``n = 0..T-1``.

    Parameters
    ----------
    pair, rule, horizon, gamma, batch
        As in :func:`expected_rejections`.

    Returns
    -------
    numpy.ndarray, shape (T,)
        Its sum is :func:`expected_rejections`.

    See Also
    --------
    expected_rejections, sequence_law

    References
    ----------
    Yin et al. 2024 (arXiv 2411.00841), Theorem 1 (the summands).

    Examples
    --------
    >>> from scdsim import chains, rules
    >>> from scdsim.exact import markov as mk
    >>> pair = chains.yin_example()  # docs/theory.md §3: T = 4, V = 3
    >>> mk.position_rejection(pair, rules.lossless, 4).round(4).tolist()
    [0.3, 0.26, 0.25, 0.2414]
    """
    horizon, scheme = _check_args(pair, rule, horizon, gamma, batch)
    run = _run(_Chain(pair, scheme), horizon, store_marginals=False, full=True)
    return run.full(run.pos_rej)


def output_marginals(pair, rule, horizon, gamma=None, batch="first"):
    """Exact law of each emitted token under ``rule``.

    Parameters
    ----------
    pair, rule, horizon, gamma, batch
        As in :func:`expected_rejections`.

    Returns
    -------
    numpy.ndarray, shape (T, V)
        Row ``n``: the law of token ``n``; the target's own marginals when ``rule`` is
        lossless.

    Raises
    ------
    ValueError
        When ``T V`` float64 exceed ``EXACT_MAX_BYTES`` (1 GB).

    See Also
    --------
    sequence_law, exact_joint_law

    References
    ----------
    Leviathan et al. 2023, Appendix A.1 (lossless SD samples the target).

    Examples
    --------
    >>> from scdsim import chains, rules
    >>> from scdsim.exact import markov as mk
    >>> pair = chains.yin_example()  # docs/theory.md §3: T = 4, V = 3
    >>> mk.output_marginals(pair, rules.lossless, 4)[1].round(4).tolist()
    [0.37, 0.5, 0.13]
    """
    return sequence_law(pair, rule, horizon, gamma, batch).marginals


def expected_rejections_theorem1(pair, horizon):
    """Yin et al.'s Theorem 1 closed form, ``sum_n E_{x_{1:n-1} ~ target}[TV(p_n, q_n)]``.

    Computed from the target chain's state marginals alone, independently of the rule engine;
    it is the engine's value for lossless SD drafting to the horizon. A homogeneous pair is
    fast-forwarded once its state law has converged.

    Parameters
    ----------
    pair : MarkovPair
        Target and draft Markov models.
    horizon : int
        Number of tokens ``T``.

    Returns
    -------
    float

    See Also
    --------
    expected_rejections

    References
    ----------
    Yin et al. 2024 (arXiv 2411.00841), Theorem 1.

    Examples
    --------
    >>> from scdsim import chains, rules
    >>> from scdsim.exact import markov as mk
    >>> pair = chains.yin_example()  # docs/theory.md §3: T = 4, V = 3
    >>> round(mk.expected_rejections_theorem1(pair, 4), 4)
    1.0514
    """
    if not isinstance(pair, MarkovPair):
        raise TypeError(f"pair must be a scdsim.MarkovPair, got {type(pair).__name__}")
    horizon = pair.check_horizon(horizon)
    tv = _per_position(pair, horizon, lambda P, Q: 1.0 - np.minimum(P, Q).sum(axis=1))
    return _state_average(pair, horizon, tv, lambda n, s: s @ pair.target.kernel(n))


def _per_position(pair, horizon, fn):
    """``fn(P, Q)`` for each position ``n < horizon``: evaluated once for a homogeneous pair."""
    if pair.homogeneous:
        value = fn(*pair.kernels(0))
        return lambda n: value
    values = [fn(*pair.kernels(n)) for n in range(horizon)]
    return lambda n: values[n]


def _state_average(pair, horizon, per_state, token_law):
    """``sum_n E[per_state(n)[s_n]]``, the state ``s_n`` before token ``n`` following
    ``token_law(n, state law) -> (V,)`` (the law of token ``n``) through ``state_of``.

    A homogeneous pair fast-forwards once the state law has converged (as ``_run`` does)."""
    identity = _is_identity(pair)
    s = np.zeros(pair.S)
    s[pair.start] = 1.0
    total = 0.0
    limit = horizon
    if pair.homogeneous:
        per = pair.S * pair.V + _POSITION_OVERHEAD
        limit = horizon if horizon * per <= EXACT_MAX_WORK else min(EXACT_MAX_WORK // per,
                                                                     _FF_MAX_PROBE)
    conv = _Convergence()
    for n in range(horizon):
        if n == limit:
            raise ValueError(
                f"horizon={horizon}: the target chain of this homogeneous pair did not reach its "
                f"stationary law within {limit} positions (it mixes slowly or is periodic), and "
                f"all {horizon} positions exceed the limit EXACT_MAX_WORK = {EXACT_MAX_WORK:.0e} "
                "multiply-adds; use a shorter horizon or scdsim.simulate(...)"
            )
        term = float(s @ per_state(n))
        total += term
        prev, s = s, _to_states(pair, token_law(n, s), identity)
        if _FAST_FORWARD and pair.homogeneous and n + 1 < horizon and conv.step(float(np.abs(s - prev).sum())):
            return total + (horizon - n - 1) * term
    return total


def expected_rejections_batch_limit(pair, horizon, gamma=None):
    """The ``M -> infinity`` limit of variant A ("first-position batch") expected rejections.

    As M grows (draft with full support), the first position of a block is never rejected and
    emits the target's law; later positions use lossless SD. The limit is not zero (Yin et
    al.'s Proposition 1).

    Parameters
    ----------
    pair : MarkovPair
    horizon : int
        Number of tokens ``T``.
    gamma : int >= 0 or None, optional
        Draft budget per block.

    Returns
    -------
    float

    See Also
    --------
    batch_curve, expected_rejections

    References
    ----------
    Yin et al. 2024 (arXiv 2411.00841), Theorem 3 and Proposition 1; docs/theory.md §4.

    Examples
    --------
    >>> from scdsim import chains, rules
    >>> from scdsim.exact import markov as mk
    >>> pair = chains.yin_example()  # docs/theory.md §3: T = 4, V = 3
    >>> round(mk.expected_rejections_batch_limit(pair, 4), 6)
    0.65105
    """
    from scdsim.rules import recursive

    rule = recursive(2)
    horizon, scheme = _check_args(pair, rule, horizon, gamma, "first")
    chain = _Chain(pair, scheme, oracle_first=True)
    run = _run(chain, horizon, store_marginals=False)
    return run.total(run.pos_rej)


# ------------------------------------------------------------------------------------------
# joint laws over whole sequences (small V^T)


def exact_joint_law(pair, rule, horizon, gamma=None, batch="first"):
    """Exact joint law of the emitted sequence (small ``V^T`` only).

    Propagates the block chain over full prefixes instead of states.

    Parameters
    ----------
    pair, rule, horizon, gamma, batch
        As in :func:`expected_rejections`; ``V^T <= JOINT_MAX_SEQUENCES``.

    Returns
    -------
    numpy.ndarray, shape (V,) * T

    See Also
    --------
    target_joint_law, joint_tv_to_target

    References
    ----------
    Leviathan et al. 2023, Appendix A.1.

    Examples
    --------
    >>> from scdsim import chains, rules
    >>> from scdsim.exact import markov as mk
    >>> pair = chains.yin_example()  # docs/theory.md §3: T = 4, V = 3
    >>> law = mk.exact_joint_law(pair, rules.lossless, 2)
    >>> law.shape, round(float(law.sum()), 12)
    ((3, 3), 1.0)
    """
    horizon, scheme = _check_args(pair, rule, horizon, gamma, batch)
    V = pair.V
    if V**horizon > JOINT_MAX_SEQUENCES:
        raise ValueError(
            f"exact_joint_law enumerates V^T = {V}^{horizon} sequences, above {JOINT_MAX_SEQUENCES}"
        )
    chain = _Chain(pair, scheme, split=True)
    K = len(chain.phases)
    mass = np.zeros((1, K))  # (prefixes, phases)
    mass[0, chain.start_phase] = 1.0
    states = np.array([pair.start])
    for n in range(horizon):
        groups = chain.operators(n)
        new = np.zeros((mass.shape[0], V, K))
        for srcs, dsts, W, rej, res, _ in groups:
            if W is not None:
                for i, d in zip(srcs, dsts):
                    new[:, :, d] += mass[:, i, None] * W[states]
            if rej is not None:
                rm = (mass[:, srcs] * rej[states][:, None]).sum(axis=1)
                new[:, :, chain.start_phase] += rm[:, None] * res[states]
        mass = new.reshape(-1, K)
        states = np.tile(pair.state_of, len(states))
    return mass.sum(axis=1).reshape((V,) * horizon)


def target_joint_law(pair, horizon):
    """Joint law of ``horizon`` tokens sampled autoregressively from the target chain.

    Parameters
    ----------
    pair : MarkovPair
    horizon : int
        Number of tokens ``T``; ``V^T <= JOINT_MAX_SEQUENCES``.

    Returns
    -------
    numpy.ndarray, shape (V,) * T

    See Also
    --------
    exact_joint_law

    Examples
    --------
    >>> from scdsim import chains, rules
    >>> from scdsim.exact import markov as mk
    >>> pair = chains.yin_example()  # docs/theory.md §3: T = 4, V = 3
    >>> mk.target_joint_law(pair, 2)[0].round(4).tolist()
    [0.3, 0.24, 0.06]
    """
    horizon = pair.check_horizon(horizon)
    V = pair.V
    if V**horizon > JOINT_MAX_SEQUENCES:
        raise ValueError(f"V^T = {V}^{horizon} sequences exceed {JOINT_MAX_SEQUENCES}")
    law = np.ones(1)
    states = np.array([pair.start])
    for n in range(horizon):
        P = pair.target.kernel(n)
        law = (law[:, None] * P[states]).reshape(-1)
        states = np.tile(pair.state_of, len(states))
    return law.reshape((V,) * horizon)


def joint_tv_to_target(pair, rule, horizon, gamma=None, batch="first"):
    """Total variation between the rule's joint sequence law and the target's.

    Zero (to rounding) for every lossless rule.

    Parameters
    ----------
    pair, rule, horizon, gamma, batch
        As in :func:`exact_joint_law`.

    Returns
    -------
    float

    See Also
    --------
    exact_joint_law, target_joint_law

    References
    ----------
    Yin et al. 2024 (arXiv 2411.00841), Theorems 4-5 (the bias of over-acceptance).

    Examples
    --------
    >>> from scdsim import chains, rules
    >>> from scdsim.exact import markov as mk
    >>> pair = chains.yin_example()  # docs/theory.md §3: T = 4, V = 3
    >>> mk.joint_tv_to_target(pair, rules.lossless, 4) < 1e-12
    True
    >>> round(mk.joint_tv_to_target(pair, rules.over_accept(0.1), 4), 4)
    0.2558
    """
    a = exact_joint_law(pair, rule, horizon, gamma, batch)
    b = target_joint_law(pair, horizon)
    return float(0.5 * np.abs(a - b).sum())


# ------------------------------------------------------------------------------------------
# blocks, speedup, long-horizon rates


@dataclass(frozen=True, eq=False, repr=False)
class BlockStats(Result):
    """Exact block (target call) statistics of one configuration.

    Attributes
    ----------
    horizon, gamma, c : the configuration.
    expected_target_calls : E[number of blocks].
    expected_draft_tokens : E[sum over blocks of the draft budget min(gamma, T - n0)].
    block_length_pmf : (min(gamma, T)+2,) law of the tokens a block emits (index = tokens), over
        blocks (former name ``tokens_per_call_pmf``, kept as a read-only alias).
    tokens_per_call : T / E[calls] (= the mean of that law).
    expected_rejections : E[rejections].
    speedup : T / (E[calls] + c E[draft tokens]), the ratio of expected walltimes (target call = 1).
    alpha : 1 - E[rejection prob] averaged over the T positions (i.i.d.-model acceptance rate).
    iid_speedup : Leviathan Thm 3.8 with that alpha: the i.i.d. prediction.
    iid_gap : speedup - iid_speedup (the finding: per-state acceptance is not i.i.d.).
    """

    horizon: int
    gamma: int
    c: float
    expected_target_calls: float
    expected_draft_tokens: float
    block_length_pmf: np.ndarray
    tokens_per_call: float
    expected_rejections: float
    speedup: float
    alpha: float
    iid_speedup: float
    iid_gap: float

    _summary = ()

    def __post_init__(self):
        self._freeze()

    def __repr__(self):
        return (f"BlockStats(T={self.horizon}, gamma={self.gamma}, c={self.c:g}: speedup "
                f"{self.speedup:.6g}, tokens/call {self.tokens_per_call:.6g})")

    def summary(self) -> str:
        lines = [repr(self)]
        for name, v in self.to_dict().items():
            lines.append(f"  {name:<26} {v}")
        return "\n".join(lines)

    @property
    def tokens_per_call_pmf(self) -> np.ndarray:
        """Former name of ``block_length_pmf`` (read-only alias)."""
        return self.block_length_pmf


def block_stats(pair, rule, horizon, gamma, c=0.0, batch="first"):
    """Exact block (target call) statistics and speedup of SD with blocks of ``gamma`` drafts.

    Computed on the Markov chain over (state, position in block) and compared with the
    i.i.d. formula of Leviathan et al. Thm 3.8 at the average acceptance rate. No ``(T, V)``
    array is allocated; homogeneous pairs fast-forward once the law has converged.

    Parameters
    ----------
    pair, rule, horizon, batch
        As in :func:`expected_rejections`.
    gamma : int >= 0
        Draft budget per block.
    c : float >= 0, optional
        Cost of a draft token relative to a target call.

    Returns
    -------
    BlockStats

    See Also
    --------
    stationary_rates, scdsim.cost.speedup

    References
    ----------
    Leviathan et al. 2023, Alg. 1 and Theorem 3.8 (walltime improvement).

    Examples
    --------
    >>> from scdsim import chains, rules
    >>> from scdsim.exact import markov as mk
    >>> pair = chains.yin_example()  # docs/theory.md §3: T = 4, V = 3
    >>> stats = mk.block_stats(pair, rules.lossless, 4, 2, c=0.1)
    >>> round(stats.tokens_per_call, 4), round(stats.speedup, 4)
    (1.8349, 1.5662)
    """
    gamma = check_int(gamma, "gamma", minimum=0)
    c = check_real(c, "c", low=0.0)
    T, scheme = _check_args(pair, rule, horizon, gamma, batch)
    rule_rej = _per_position(pair, T, lambda P, Q: _rules.rejection_prob(rule, P, Q))
    run = _run(_Chain(pair, scheme), T, store_marginals=False, rule_rej=rule_rej)
    calls = run.total(run.starts)
    n = len(run.starts)
    drafts = float(run.starts @ np.minimum(gamma, T - np.arange(n)))
    if run.tail:  # positions n..T-1 start a block with the same probability: sum of budgets
        drafts += float(run.starts[-1]) * _budget_sum(gamma, T - n)
    ends = run.ends
    pmf = ends / ends.sum()  # expected blocks emitting j tokens / expected blocks
    rej = run.total(run.pos_rej)
    # clipped: rounding in the state law can put the mean rejection a few ulps above 1
    alpha = min(1.0, max(0.0, 1.0 - run.rule_rej / T))
    iid = float(_cost.speedup(alpha, gamma, c))
    sp = T / (calls + c * drafts)
    return BlockStats(T, gamma, c, calls, drafts, pmf, T / calls, rej, sp, alpha, iid, sp - iid)


def _budget_sum(gamma, L):
    """``sum_{m=1..L} min(gamma, m)``: the draft budgets of blocks starting ``L..1`` positions
    before the horizon."""
    if L <= gamma:
        return L * (L + 1) // 2
    return gamma * (gamma + 1) // 2 + (L - gamma) * gamma


#: Largest (phase, state) chain ``stationary_rates`` solves densely (least squares, N^3).
STATIONARY_MAX_STATES = 2_000


def _block_chain_phases(M, gamma, batch):
    """Number of phases ``_Chain`` builds, computed without building it."""
    k = 2 if gamma is None else gamma + 1
    if M == 1:
        return 1 if gamma is None else gamma + 1
    if batch == "tree":
        return M if gamma is None else (gamma + 1) * M
    return k


@dataclass(frozen=True, repr=False)
class StationaryRates(Result):
    """Long-horizon rates of a homogeneous pair from the stationary law of the block chain."""

    rejections_per_token: float
    calls_per_token: float
    tokens_per_call: float
    draft_positions_per_token: float

    def __repr__(self):
        return (f"StationaryRates(rejections/token {self.rejections_per_token:.6g}, "
                f"tokens/call {self.tokens_per_call:.6g})")

    def summary(self) -> str:
        return "\n".join([repr(self)] + [f"  {k:<26} {v}" for k, v in self.to_dict().items()])


def stationary_rates(pair, rule, gamma=None, batch="first"):
    """Long-run rejections per token and tokens per target call of a homogeneous pair.

    Builds the transition matrix of the (phase, state) chain and solves for its stationary law
    restricted to the states reachable from the start; raises if that law is not unique.

    Parameters
    ----------
    pair : MarkovPair
        A homogeneous pair.
    rule : Rule
        A samplable rule.
    gamma : int >= 0 or None, optional
        Draft budget per block.
    batch : {"first", "tree"}, optional

    Returns
    -------
    StationaryRates

    Raises
    ------
    ValueError
        When the chain has more than ``STATIONARY_MAX_STATES`` (phases x states): the dense
        solve grows as ``N^3``. Use ``expected_rejections(pair, rule, T, gamma) / T`` at a
        long horizon (fast-forwarded) or ``scdsim.simulate``.

    See Also
    --------
    expected_rejections, block_stats

    References
    ----------
    Yin et al. 2024 (arXiv 2411.00841), Theorem 1 per token; Leviathan et al. 2023, Thm 3.8.

    Examples
    --------
    >>> from scdsim import chains, rules
    >>> from scdsim.exact import markov as mk
    >>> pair = chains.dirichlet_pair(20, 0.3, seed=3)
    >>> round(mk.stationary_rates(pair, rules.lossless, gamma=4).rejections_per_token, 4)
    0.2763
    """
    if not isinstance(pair, MarkovPair) or not pair.homogeneous:
        raise ValueError("stationary_rates needs a homogeneous MarkovPair (kernels of shape (S, V))")
    scheme = Scheme(rule, gamma, batch)  # no horizon: gamma is not clipped
    gamma = scheme.gamma
    N = _block_chain_phases(scheme.M, gamma, scheme.batch) * pair.S  # before building anything
    if N > STATIONARY_MAX_STATES:
        raise ValueError(
            f"stationary_rates solves a dense {N}x{N} system (phases x S states), above the "
            f"limit STATIONARY_MAX_STATES = {STATIONARY_MAX_STATES} (its cost grows as N^3: "
            f"N = 2,000 takes seconds, N = 10,000 minutes); use expected_rejections(pair, rule, "
            "T, gamma) / T at a long horizon T (homogeneous pairs fast-forward once the law "
            "has converged) or scdsim.simulate(...)"
        )
    chain = _Chain(pair, scheme, split=True)
    K, S = len(chain.phases), pair.S
    N = K * S
    Tm = np.zeros((N, N))
    rej_rate = np.zeros(N)
    call_end = np.zeros(N)
    draft_pos = np.zeros(N)
    Smap = pair.target.state_matrix()
    for srcs, dsts, W, rej, res, _ in chain.operators(0):
        for i, d in zip(srcs, dsts):
            if W is not None:
                Tm[i * S:(i + 1) * S, d * S:(d + 1) * S] += W @ Smap
                if chain.is_bonus(chain.phases[i]):
                    call_end[i * S:(i + 1) * S] += W.sum(axis=1)
            if rej is not None:
                Tm[i * S:(i + 1) * S, d * S:(d + 1) * S] += rej[:, None] * (res @ Smap)
                rej_rate[i * S:(i + 1) * S] += rej
                call_end[i * S:(i + 1) * S] += rej
            if not chain.is_bonus(chain.phases[i]):
                draft_pos[i * S:(i + 1) * S] = 1.0
    # with gamma=None a block ends only by rejection; drafting positions are all positions
    start = chain.start_phase * S + pair.start
    reach = np.zeros(N, bool)
    reach[start] = True
    frontier = [start]
    while frontier:
        nxt = np.nonzero((Tm[frontier] > 0).any(axis=0) & ~reach)[0]
        reach[nxt] = True
        frontier = list(nxt)
    idx = np.nonzero(reach)[0]
    A = Tm[np.ix_(idx, idx)].T - np.eye(len(idx))
    A = np.vstack([A, np.ones(len(idx))])
    b = np.zeros(len(idx) + 1)
    b[-1] = 1.0
    pi, _, rank, _ = np.linalg.lstsq(A, b, rcond=None)
    if rank < len(idx):
        raise ValueError("the block chain from the start state has no unique stationary law")
    pi = np.clip(pi, 0.0, None)
    pi /= pi.sum()
    r = float(pi @ rej_rate[idx])
    calls = float(pi @ call_end[idx]) if gamma is not None else r
    return StationaryRates(r, calls, 1.0 / calls if calls > 0 else np.inf, float(pi @ draft_pos[idx]))


@dataclass(frozen=True, eq=False, repr=False)
class BatchCurve(Result):
    """Expected rejections against the number of drafts ``M`` (Yin et al. Fig. 3 / Thm 3).

    Attributes
    ----------
    M : int (k,) the draft counts.
    expected_rejections : (k,) E[N_rej] with ``M`` drafts.
    improvement : (k,) E[N_rej] at M = 1 minus E[N_rej] at M (the batch improvement).
    rule : name of the rule at the first M; horizon, gamma, batch : the configuration.

    ``curve["M"]``, ``curve["rejections"]`` and ``curve["improvement"]`` still work (the former
    dict keys).
    """

    M: np.ndarray
    expected_rejections: np.ndarray
    improvement: np.ndarray
    rule: str
    horizon: int
    gamma: int | None
    batch: str

    _summary = ("M", "expected_rejections", "improvement")
    _keys = {"M": "M", "rejections": "expected_rejections", "improvement": "improvement"}

    def __post_init__(self):
        self._freeze()

    def __repr__(self):
        return (f"BatchCurve({self.rule}, T={self.horizon}, M={self.M.tolist()}: rejections "
                f"{np.array2string(self.expected_rejections, precision=4)})")

    def __getitem__(self, key):
        try:
            return getattr(self, self._keys[key])
        except KeyError:
            raise KeyError(f"{key!r}; a BatchCurve has {sorted(self._keys)}") from None

    def keys(self):
        return self._keys.keys()


def batch_curve(pair, horizon, Ms, gamma=None, batch="first", rule_factory=None) -> BatchCurve:
    """Expected rejections and batch improvement against the number of drafts ``M``.

    Parameters
    ----------
    pair : MarkovPair
    horizon : int
    Ms : iterable of int >= 1
        Draft counts.
    gamma : int >= 0 or None, optional
    batch : {"first", "tree"}, optional
    rule_factory : callable, optional
        ``M -> Rule``; default ``rules.recursive``.

    Returns
    -------
    BatchCurve
        ``M`` (array), ``expected_rejections`` (E[N_rej] with ``rule_factory(M)``) and
        ``improvement`` (E at M=1 minus E at M), the quantity of Yin et al. Fig. 3 / Thm 3.
        The former dict keys still work: ``curve["M"]``, ``curve["rejections"]``,
        ``curve["improvement"]``.

    See Also
    --------
    expected_rejections_batch_limit

    References
    ----------
    Yin et al. 2024 (arXiv 2411.00841), Theorem 3 and Fig. 3.

    Examples
    --------
    >>> from scdsim import chains, rules
    >>> from scdsim.exact import markov as mk
    >>> pair = chains.yin_example()  # docs/theory.md §3: T = 4, V = 3
    >>> curve = mk.batch_curve(pair, 4, [1, 2, 3])
    >>> curve["improvement"].round(4).tolist()
    [0.0, 0.125, 0.2087]
    """
    from scdsim.rules import recursive

    factory = recursive if rule_factory is None else rule_factory
    if isinstance(Ms, (numbers.Number, str, bytes)) or not hasattr(Ms, "__iter__"):
        raise TypeError(f"Ms must be a sequence of draft counts, got {Ms!r} (e.g. [1, 2, 4]; "
                        "signature: batch_curve(pair, horizon, Ms, gamma=None, batch=...))")
    Ms = np.asarray([check_int(m, "M", minimum=1) for m in Ms], dtype=np.int64)
    base = expected_rejections(pair, factory(1), horizon, gamma, batch)
    rej = np.array([expected_rejections(pair, factory(int(m)), horizon, gamma, batch) for m in Ms])
    name = factory(int(Ms[0])).name if Ms.size else factory(1).name
    return BatchCurve(Ms, rej, base - rej, name, int(horizon), gamma, batch)
