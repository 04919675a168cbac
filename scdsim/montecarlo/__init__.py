"""Monte Carlo engine: many speculative-decoding runs on a Markov pair, vectorised over runs.

This is the only package that draws random numbers for synthetic runs. It simulates the
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
(docs/theory.md §4): ``batch="first"`` (variant A) verifies M i.i.d. drafts only at phase 0 and
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

from scdsim.montecarlo.engine import sample_autoregressive, simulate
from scdsim.montecarlo.result import SimResult

__all__ = ["simulate", "SimResult", "sample_autoregressive"]
