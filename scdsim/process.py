"""The decoding process: one verification rule run over blocks of drafts, validated once.

Every sequence engine (the exact engine ``scdsim.exact.markov``, the Monte Carlo engine
``scdsim.montecarlo`` and the real-model engine in ``real_models``) runs the same process; this
module is its one home. A ``Scheme`` holds what the process needs besides the models: the rule,
the draft budget ``gamma`` and the multi-draft reading ``batch``. It holds no pair, so an engine
on real models takes the same object.

Glossary (``p`` target law, ``q`` draft law, as in Leviathan et al.; Yin et al. swap the letters)
-------------------------------------------------------------------------------------------
position        one emitted token; positions ``n = 0..T-1`` (``T`` the horizon)
block           one target call; starts at ``n0`` with draft budget ``g = min(gamma, T - n0)``
                (``gamma=None``: draft to the horizon, Yin et al. Alg. 1; ``gamma=0``: plain
                autoregressive decoding)
phase ``k``     drafts accepted so far in the current block
accepted        a draft token kept by the rule (phase ``k -> k+1``; the block goes on)
recovered       drawn from the rule's residual after every draft at the position was rejected:
                one *rejection*; the block ends
bonus           drawn from ``rule.bonus(p)`` at phase ``k == gamma`` (every draft accepted); the
                block ends. A block whose drafts reach the horizon ends without one.

Modes (``Scheme.mode``)
-----------------------
``"single"``  a single-draft rule (``rule.M == 1``), whatever ``batch`` says.
``"first"``   variant A of Yin et al. Alg. 4 ("first-position batch"): the ``M`` drafts are
              verified at the first position of a block only, the block then continues along
              the accepted draft with ``rule.single()``.
``"tree"``    variant B: every draft carrying the accepted prefix stays alive; a position with
              ``m`` alive drafts is verified by ``rule.with_drafts(m)``.

The rule's outputs are checked once per position, in ``Scheme.laws`` (through
``rules.sequential_parts``, which ``step_law`` and ``rejection_prob`` share): acceptances with
the ``(..., M, V)`` shape and values in [0, 1], residual and bonus laws that are laws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from scdsim._validate import check_choice, check_int, namespace
from scdsim.chains import MarkovPair
from scdsim.rules import Rule, SequentialParts, check_law, sequential_parts

__all__ = ["Scheme", "PositionLaws", "MODES", "BONUS_STEP_ATOL", "bonus_step_atol", "sequence_args"]

MODES = ("single", "first", "tree")

#: The bonus law "is" the single-draft step law ``W + (prod rho) r`` when they agree to this on
#: every entry. Rounding of the step law is a few ulps (< 2e-16 measured up to V = 1000); the
#: engines then draw (Monte Carlo) or propagate (exact) the bonus as one more verification step,
#: so a larger tolerance would let a difference into exact claims (1e-12).
BONUS_STEP_ATOL = 1e-14


def bonus_step_atol(dtype) -> float:
    """``BONUS_STEP_ATOL`` in float64; the same number of ulps (about 45) in float32 (5.4e-6),
    whose rounding of the step law is coarser; float16/bfloat16 get float32's (a coarser
    tolerance would fold laws that differ: without the fold the bonus is drawn from its own
    law, always correct)."""
    eps64 = float(np.finfo(np.float64).eps)
    if type(dtype).__module__.startswith("torch"):  # torch is already imported by the caller
        import torch

        eps = float(torch.finfo(dtype).eps)
    else:
        eps = float(np.finfo(dtype).eps)
    eps32 = float(np.finfo(np.float32).eps)  # half precisions fold only what float32 would
    return BONUS_STEP_ATOL * min(max(eps, eps64), eps32) / eps64


@dataclass(frozen=True)
class Scheme:
    """The block process of speculative decoding with one verification rule, validated once.

    Parameters
    ----------
    rule : Rule
        A samplable verification rule (``rules.lossless``, ``rules.recursive(M)``, ...).
    gamma : int >= 0 or None
        Draft budget of a block; ``None`` drafts to the horizon (Yin et al. Alg. 1).
    batch : {"first", "tree"}
        Sequence-level reading of a multi-draft rule (ignored when ``rule.M == 1``).

    Attributes
    ----------
    mode : {"single", "first", "tree"}
        The process actually run (see the module docstring).
    draft_counts : tuple of int
        Every number of drafts ``m`` a position can be verified with.

    Raises
    ------
    TypeError
        ``rule`` is not a Rule or has no sequential form (``rules.optimal``); ``gamma`` is not an
        integer.
    ValueError
        ``gamma < 0``, an unknown ``batch``, or a rule whose ``with_drafts(m)`` does not have
        ``m`` drafts.

    Examples
    --------
    >>> from scdsim import rules
    >>> from scdsim.process import Scheme
    >>> s = Scheme(rules.recursive(3), gamma=4)
    >>> s.mode, s.draft_counts, s.rule_for(1)
    ('first', (1, 3), rules.recursive(1))
    >>> Scheme(rules.lossless, gamma=10**9).for_horizon(4).gamma  # a budget past T is T
    4
    """

    rule: Rule
    gamma: int | None = None
    batch: str = "first"
    mode: str = field(init=False, compare=False)
    _by_drafts: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        rule = self.rule
        if not isinstance(rule, Rule):
            raise TypeError(
                f"rule must be a scdsim rule (e.g. rules.lossless or rules.recursive(2)), got {rule!r}"
            )
        if not rule.samplable:
            raise TypeError(
                f"rule {rule.name} has no sequential (acceptance, residual) form; the sequence "
                "engines (exact, Monte Carlo, real-model) need a samplable rule (its one-step "
                "rate is rules.rejection_prob)"
            )
        object.__setattr__(self, "gamma", check_int(self.gamma, "gamma", minimum=0,
                                                    allow_none=True))
        check_choice(self.batch, "batch", {"first", "tree"})
        M = check_int(rule.M, f"rule {rule.name}: M", minimum=1)
        mode = "single" if M == 1 else self.batch
        if mode == "single":
            need = {1: rule}
        elif mode == "first":
            need = {M: rule, 1: rule.single()}
        else:
            need = {m: rule.with_drafts(m) for m in range(1, M + 1)}
        for m, r in need.items():
            if not isinstance(r, Rule) or r.M != m:
                raise ValueError(
                    f"rule {rule.name}: with_drafts({m}) returned "
                    f"{'a rule with M=' + str(r.M) if isinstance(r, Rule) else repr(r)}"
                )
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "_by_drafts", dict(sorted(need.items())))

    def __repr__(self):
        return f"Scheme({self.rule!r}, gamma={self.gamma}, batch={self.batch!r})"

    @property
    def M(self) -> int:
        """Drafts verified at the first position of a block."""
        return self.rule.M

    @property
    def draft_counts(self) -> tuple:
        return tuple(self._by_drafts)

    def rule_for(self, m: int) -> Rule:
        """The rule that verifies a position with ``m`` drafts."""
        try:
            return self._by_drafts[m]
        except KeyError:
            raise ValueError(
                f"{self!r} never verifies {m} drafts; draft counts are {self.draft_counts}"
            ) from None

    @property
    def has_bonus(self) -> bool:
        """Whether a block can end with a bonus token (``gamma`` is not None)."""
        return self.gamma is not None

    def for_horizon(self, horizon: int) -> Scheme:
        """The same process on ``horizon`` positions, with ``gamma`` clipped to the horizon.

        A block never holds more than ``T`` drafts, so ``gamma >= T`` and ``gamma = T`` run the
        same process; the clip keeps the engines' per-phase work bounded by ``T``.
        """
        if self.gamma is None or self.gamma <= horizon:
            return self
        return Scheme(self.rule, horizon, self.batch)

    def laws(self, P, Q, *, bonus=None) -> PositionLaws:
        """The rule's checked laws at one position (see ``PositionLaws``)."""
        return PositionLaws(self, P, Q, bonus=self.has_bonus if bonus is None else bonus)


class PositionLaws:
    """Everything the process needs at one position, from the rule's outputs checked once.

    Parameters
    ----------
    scheme : Scheme
    P, Q : array ``(..., V)``
        Target and draft laws at the position (the engines pass the ``(S, V)`` kernels).
    bonus : bool
        Also compute (and check) the bonus law.

    Attributes
    ----------
    parts : dict ``m -> rules.SequentialParts``
        For every draft count of the scheme; acceptances and residual broadcast to the full
        batch shape of ``(P, Q)``.
    bonus : array ``(..., V)`` or None
        ``rule.bonus(P)``, checked to be a law.
    bonus_is_step : bool
        Whether the bonus law equals the single-draft step law ``W + (prod rho) r`` to
        ``BONUS_STEP_ATOL`` on every entry (lossless rules: Leviathan et al. §2.3; greedy).
    """

    def __init__(self, scheme: Scheme, P, Q, *, bonus: bool = True):
        self.scheme = scheme
        self.parts: dict[int, SequentialParts] = {
            m: sequential_parts(scheme.rule_for(m), P, Q) for m in scheme.draft_counts
        }
        self.bonus = None
        if bonus:
            rule = scheme.rule
            b = rule.bonus(P)
            check_law(rule, b, tuple(P.shape[:-1]), P.shape[-1], "bonus")
            xp = namespace(b)
            if tuple(b.shape) != tuple(P.shape):
                b = xp.broadcast_to(b, tuple(P.shape))
            self.bonus = b

    @cached_property
    def bonus_is_step(self) -> bool:
        if self.bonus is None or 1 not in self.parts:
            return False
        one = self.parts[1]
        xp = namespace(one.accepted_law)
        step = one.accepted_law + one.all_reject[..., None] * one.residual
        return bool(float(xp.max(xp.abs(step - self.bonus))) <= bonus_step_atol(step.dtype))


def sequence_args(pair, rule, horizon, gamma, batch):
    """Check the arguments the sequence engines share; return ``(horizon, scheme)``.

    ``pair`` must be a ``MarkovPair``, ``horizon`` a number of positions it defines; the scheme
    is validated once and its ``gamma`` clipped to the horizon (``Scheme.for_horizon``).
    """
    if not isinstance(pair, MarkovPair):
        raise TypeError(f"pair must be a scdsim.MarkovPair, got {type(pair).__name__}")
    scheme = rule if isinstance(rule, Scheme) else Scheme(rule, gamma, batch)
    horizon = pair.check_horizon(horizon)
    return horizon, scheme.for_horizon(horizon)
