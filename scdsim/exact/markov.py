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

``batch="first"`` (variant A, "first-position batch", theory.md §1.6): the M drafts are verified
    only at the first position of a block; the block then continues along the accepted draft
    with the single-draft rule ``rule.single()``.
``batch="tree"``  (variant B): every draft consistent with the accepted prefix is tried at every
    depth; the number of alive drafts is part of the chain state (exact by enumerating the
    ``V^m`` draft tuples at a position, so small V only).

Costs: one position costs a handful of ``(rows, S) @ (S, V)`` products, where rows is the number
of phases (times ``horizon+1`` when the rejection count is tracked). Homogeneous pairs build
their per-phase operators once.

References
----------
Yin et al. 2024 (arXiv 2411.00841) Thm 1 (expected rejections), Alg. 4 / Thm 3 (batch);
Leviathan et al. 2023 Alg. 1, Thm 3.8 (speedup). Yin et al. write q for the target and p for the
draft; here p = target, q = draft as in Leviathan et al.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from scdsim import cost as _cost
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
    "JOINT_MAX_SEQUENCES",
]

TREE_MAX_TUPLES = 5_000_000
JOINT_MAX_SEQUENCES = 2_000_000


# ------------------------------------------------------------------------------------------
# validation


def _check_args(pair, rule, horizon, gamma, batch):
    """``(horizon, scheme)``: the arguments validated once, ``gamma`` clipped to the horizon."""
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


def _propagate(chain, horizon, track_counts=False):
    pair = chain.pair
    K, S, V = len(chain.phases), pair.S, pair.V
    J = horizon + 1 if track_counts else 1
    mass = np.zeros((K, J, S))
    mass[chain.start_phase, 0, pair.start] = 1.0
    marg = np.zeros((horizon, V))
    pos_rej = np.zeros(horizon)
    starts = np.zeros(horizon)
    ends = np.zeros(chain.gamma + 2) if chain.gamma is not None else None
    identity = _is_identity(pair)
    # with the identity state map (S = V) token masses are state masses: two buffers, swapped
    new_tok = np.zeros((K, J, V))
    for n in range(horizon):
        starts[n] = mass[chain.start_phase].sum()
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
        marg[n] = new_tok.sum(axis=(0, 1))
        if identity:
            mass, new_tok = new_tok, mass
        else:
            mass = _to_states(pair, new_tok, identity=False)
    if chain.gamma is None:
        # drafting to the horizon, a block starts at n = 0 and after every rejection; the phase
        # chain need not (and for single drafts does not) tell a fresh block from a continuing one
        starts = np.concatenate([[1.0], pos_rej[:-1]])
    if ends is not None:  # blocks cut by the horizon emitted k tokens
        for i, ph in enumerate(chain.phases):
            if ph.k > 0:
                ends[ph.k] += mass[i].sum()
    pmf = mass.sum(axis=(0, 2)) if track_counts else None
    return SequenceLaw(marg, pos_rej, starts, ends, pmf)


def sequence_law(pair, rule, horizon, gamma=None, batch="first", track_counts=False):
    """Run the exact forward pass and return a :class:`SequenceLaw`.

    Parameters
    ----------
    pair : MarkovPair
    rule : samplable Rule (multi-draft rules with ``batch``).
    horizon : int, number of tokens T.
    gamma : int >= 0 or None (draft to the horizon).
    batch : {"first", "tree"}, the sequence-level reading of a multi-draft rule.
    track_counts : bool, also compute the law of the number of rejections (cost x (T+1)).
    """
    horizon, scheme = _check_args(pair, rule, horizon, gamma, batch)
    chain = _Chain(pair, scheme, split=track_counts)
    law = _propagate(chain, horizon, track_counts=track_counts)
    return dataclasses.replace(law, rule=scheme.rule.name, gamma=scheme.gamma, batch=scheme.batch)


# ------------------------------------------------------------------------------------------
# public quantities


def expected_rejections(pair, rule, horizon, gamma=None, batch="first"):
    """Exact expected number of rejections (recovered tokens) over ``horizon`` tokens.

    For lossless SD drafting to the horizon this is Yin et al. Thm 1,
    ``sum_n E_{prefix ~ target}[TV(p_n, q_n)]``; for lossy rules the prefix follows the rule's
    own output law, which the propagation tracks; with ``gamma`` blocks, bonus positions are
    never rejected. Multi-draft rules use ``batch`` ("first": variant A; "tree": variant B).
    """
    return float(sequence_law(pair, rule, horizon, gamma, batch).position_rejection.sum())


def rejection_distribution(pair, rule, horizon, gamma=None, batch="first"):
    """Exact law of the number of rejections, a pmf over ``0..horizon`` (shape ``(T+1,)``)."""
    return sequence_law(pair, rule, horizon, gamma, batch, track_counts=True).rejection_pmf


def position_rejection(pair, rule, horizon, gamma=None, batch="first"):
    """``(T,)`` probability that position ``n`` emits a recovered token."""
    return sequence_law(pair, rule, horizon, gamma, batch).position_rejection


def output_marginals(pair, rule, horizon, gamma=None, batch="first"):
    """``(T, V)`` exact law of each emitted token under ``rule`` (the target's law if lossless)."""
    return sequence_law(pair, rule, horizon, gamma, batch).marginals


def expected_rejections_theorem1(pair, horizon):
    """Yin et al. Thm 1 closed form: ``sum_n E_{x_{1:n-1} ~ target}[TV(p_n, q_n)]``.

    Computed from the target chain's state marginals alone, independently of the rule engine;
    it is the engine's value for lossless SD drafting to the horizon.
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
    ``token_law(n, state law) -> (V,)`` (the law of token ``n``) through ``state_of``."""
    identity = _is_identity(pair)
    s = np.zeros(pair.S)
    s[pair.start] = 1.0
    total = 0.0
    for n in range(horizon):
        total += float(s @ per_state(n))
        s = _to_states(pair, token_law(n, s), identity)
    return total


def expected_rejections_batch_limit(pair, horizon, gamma=None):
    """The ``M -> infinity`` limit of variant A ("first-position batch") expected rejections.

    As M grows (draft with full support), the first position of a block is never rejected and
    emits the target's law; later positions use lossless SD. theory.md §1.6 gives 0.651050 on
    the §7.3 chain (Yin et al.'s Proposition 1: the limit is not zero).
    """
    from scdsim.rules import recursive

    rule = recursive(2)
    horizon, scheme = _check_args(pair, rule, horizon, gamma, "first")
    chain = _Chain(pair, scheme, oracle_first=True)
    return float(_propagate(chain, horizon).position_rejection.sum())


# ------------------------------------------------------------------------------------------
# joint laws over whole sequences (small V^T)


def exact_joint_law(pair, rule, horizon, gamma=None, batch="first"):
    """Exact joint law of the emitted sequence, shape ``(V,) * horizon`` (small ``V^T`` only).

    Propagates the block chain over full prefixes instead of states.
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
    """Joint law of ``horizon`` tokens sampled autoregressively from the target chain."""
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
    """TV distance between the rule's joint sequence law and the target's (0 if lossless)."""
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
    """Exact block statistics and speedup of SD with blocks of ``gamma`` drafts (Leviathan Alg. 1).

    Computed on the Markov chain over (state, position in block); compared with the i.i.d.
    formula of Leviathan et al. Thm 3.8 at the average acceptance rate.
    """
    gamma = check_int(gamma, "gamma", minimum=0)
    c = check_real(c, "c", low=0.0)
    law = sequence_law(pair, rule, horizon, gamma, batch)
    T = law.marginals.shape[0]
    calls = float(law.block_starts.sum())
    budget = np.minimum(gamma, T - np.arange(T))
    drafts = float(law.block_starts @ budget)
    ends = law.expected_blocks_by_length
    pmf = ends / ends.sum()  # expected blocks emitting j tokens / expected blocks
    rej = float(law.position_rejection.sum())
    # clipped: rounding in the state law can put the mean rejection a few ulps above 1
    alpha = min(1.0, max(0.0, 1.0 - _mean_rule_rejection(pair, rule, law.marginals)))
    iid = float(_cost.speedup(alpha, gamma, c))
    sp = T / (calls + c * drafts)
    return BlockStats(T, gamma, c, calls, drafts, pmf, T / calls, rej, sp, alpha, iid, sp - iid)


def _mean_rule_rejection(pair, rule, marginals):
    """Average over positions of the single-position rejection probability at the current state."""
    from scdsim.rules import rejection_prob

    T = marginals.shape[0]
    rej = _per_position(pair, T, lambda P, Q: rejection_prob(rule, P, Q))
    return _state_average(pair, T, rej, lambda n, s: marginals[n]) / T


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
    """Long-run rejections per token and tokens per target call for a homogeneous pair.

    Builds the transition matrix of the (phase, state) chain and solves for its stationary law
    restricted to the states reachable from the start; raises if that law is not unique.
    """
    if not isinstance(pair, MarkovPair) or not pair.homogeneous:
        raise ValueError("stationary_rates needs a homogeneous MarkovPair (kernels of shape (S, V))")
    scheme = Scheme(rule, gamma, batch)  # no horizon: gamma is not clipped
    gamma = scheme.gamma
    chain = _Chain(pair, scheme, split=True)
    K, S = len(chain.phases), pair.S
    N = K * S
    if N > 20_000:
        raise ValueError(f"stationary_rates builds a dense {N}x{N} matrix; too large")
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

    Returns a ``BatchCurve`` with ``M`` (array), ``expected_rejections`` (E[N_rej] with
    ``rule_factory(M)``, default ``rules.recursive``) and ``improvement`` (E at M=1 minus E at
    M), the quantity of Yin et al. Fig. 3 / Thm 3.
    """
    from scdsim.rules import recursive

    factory = recursive if rule_factory is None else rule_factory
    if isinstance(Ms, (str, bytes)) or not hasattr(Ms, "__iter__"):
        raise TypeError(f"Ms must be a sequence of draft counts, got {Ms!r}")
    Ms = np.asarray([check_int(m, "M", minimum=1) for m in Ms], dtype=np.int64)
    base = expected_rejections(pair, factory(1), horizon, gamma, batch)
    rej = np.array([expected_rejections(pair, factory(int(m)), horizon, gamma, batch) for m in Ms])
    name = factory(int(Ms[0])).name if Ms.size else factory(1).name
    return BatchCurve(Ms, rej, base - rej, name, int(horizon), gamma, batch)
