"""Synthetic language models: finite-state Markov kernels and draft/target pairs of them.

A ``MarkovLM`` is the Markov-chain abstraction of Yin et al. (2024, §2): the law of the next
token depends on the position ``n`` and a finite *state* summarising the prefix.

``kernels[n, s, x]``  law of token ``n+1`` given the state ``s`` after token ``n``
                      (``kernels[0, start]`` is the law of the first token); shape ``(T, S, V)``
                      for a time-inhomogeneous model, ``(S, V)`` for a homogeneous one.
``state_of[x]``       the state after emitting token ``x`` (default: the identity, S = V, so the
                      state is the previous token: a bigram model).

The state map lets a large vocabulary (V = 50,000) live with few states. A ``MarkovPair`` holds a
target and a draft on the same vocabulary and state map; every engine takes one.

Pair families (argument order is always (target, draft); random ones take ``seed``)
----------------------------------------------------------------------------------
``yin_example``     the T = 4, V = 3 time-inhomogeneous chain of docs/theory.md §3
``bernoulli_pair``  Ber(target_prob) vs Ber(draft_prob), one state (Yin Fig. 3, upper)
``uniform_pair``    delta_0 vs Unif(V), one state (Yin Fig. 3, lower)
``dirichlet_pair``  random Dirichlet rows, mean TV over states hit exactly
``zipf_pair``       Zipf-tailed rows over large vocabularies with few states, mean TV hit exactly
``bigram_pair``     add-k bigram target vs unigram / smoothed-bigram draft, counted from real text
``contrast_chain``  the contrastive-decoding law of an expert and an amateur chain, as a chain
``scd_pair``        (contrast_chain(expert, amateur), amateur): SCD is lossless SD against it
"""

from __future__ import annotations

import functools
import os
import re
import types
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from scdsim._validate import as_prob, check_choice, check_int, check_real, renormalised64

__all__ = [
    "MarkovLM",
    "MarkovPair",
    "yin_example",
    "bernoulli_pair",
    "uniform_pair",
    "dirichlet_pair",
    "zipf_pair",
    "bigram_pair",
    "contrast_chain",
    "scd_pair",
]


def _frozen(a, dtype):
    # Always copy: freezing the caller's array in place would make *their* array read-only, and
    # a view of a writable base could still change the model's kernels behind its back.
    a = np.array(a, dtype=dtype, order="C", copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class MarkovLM:
    """A validated finite-state language model.

    Parameters
    ----------
    kernels : array (S, V) or (T, S, V)
        Next-token laws; rows must be probability vectors within the tolerance of their dtype
        (``scdsim._validate.prob_atol``: float16/bfloat16/float32 rows and torch tensors are
        accepted). They are stored as float64, each row renormalised to sum to 1.
    start : int
        State before the first token.
    state_of : int array (V,), optional
        Token -> next state. Default: identity (requires S == V).
    """

    kernels: np.ndarray
    start: int = 0
    state_of: np.ndarray | None = field(default=None)

    def __post_init__(self):
        k = as_prob(self.kernels, "kernels")  # in the input's own dtype and tolerance
        shape = tuple(k.shape)
        if len(shape) not in (2, 3):
            raise ValueError(f"kernels must have shape (S, V) or (T, S, V), got {shape}")
        if 0 in shape:
            raise ValueError(f"kernels must have at least one position, state and token, "
                             f"got shape {shape}")
        k = renormalised64(k)
        S, V = k.shape[-2], k.shape[-1]
        start = check_int(self.start, "start", minimum=0)
        if start >= S:
            raise ValueError(f"start must be a state in [0, {S}), got {start}")
        if self.state_of is None:
            if S != V:
                raise ValueError(
                    f"state_of is required when the number of states S={S} differs from V={V}"
                )
            so = np.arange(V, dtype=np.int64)
        else:
            so = np.asarray(self.state_of)
            if so.shape != (V,) or not np.issubdtype(so.dtype, np.integer):
                raise ValueError(f"state_of must be an integer array of shape ({V},), got "
                                 f"{so.dtype} {so.shape}")
            if so.min() < 0 or so.max() >= S:
                raise ValueError(f"state_of values must lie in [0, {S})")
        object.__setattr__(self, "kernels", _frozen(k, np.float64))
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "state_of", _frozen(so, np.int64))

    @property
    def homogeneous(self) -> bool:
        return self.kernels.ndim == 2

    @property
    def V(self) -> int:
        return self.kernels.shape[-1]

    @property
    def S(self) -> int:
        return self.kernels.shape[-2]

    @property
    def max_horizon(self) -> int | None:
        """Largest horizon the kernels define (None: any, for homogeneous models)."""
        return None if self.homogeneous else self.kernels.shape[0]

    def kernel(self, n: int) -> np.ndarray:
        """``(S, V)`` laws of token ``n+1`` (0-based position ``n``)."""
        # Guard: a negative n would otherwise wrap around silently to the last positions.
        if n < 0 or (self.max_horizon is not None and n >= self.max_horizon):
            hi = "inf" if self.max_horizon is None else self.max_horizon
            raise ValueError(
                f"position n={n} is outside the positions [0, {hi}) the kernels define")
        return self.kernels if self.homogeneous else self.kernels[n]

    def state_matrix(self) -> np.ndarray:
        """One-hot ``(V, S)`` matrix of the state map (token -> next state)."""
        m = np.zeros((self.V, self.S))
        m[np.arange(self.V), self.state_of] = 1.0
        return m


def _check_same_space(a, b, names):
    """Raise unless two models share V, S, start state and state map (``names`` for messages)."""
    for model, role in zip((a, b), names):
        if not isinstance(model, MarkovLM):
            raise TypeError(f"{role} must be a MarkovLM, got {type(model).__name__}")
    (na, nb) = names
    if a.V != b.V:
        raise ValueError(f"vocabulary mismatch: {na} V={a.V}, {nb} V={b.V}")
    if a.S != b.S:
        raise ValueError(f"state-space mismatch: {na} S={a.S}, {nb} S={b.S}")
    if a.start != b.start:
        raise ValueError(f"start state mismatch: {na} start={a.start}, {nb} start={b.start}")
    if not np.array_equal(a.state_of, b.state_of):
        bad = int(np.flatnonzero(a.state_of != b.state_of)[0])
        raise ValueError(f"state map mismatch: {na} and {nb} differ first at token {bad} "
                         f"({a.state_of[bad]} vs {b.state_of[bad]})")


@dataclass(frozen=True, eq=False)
class MarkovPair:
    """A target and a draft ``MarkovLM`` on the same vocabulary, state space and state map.

    ``meta`` (optional) holds read-only facts about how the pair was built, e.g. the
    vocabulary of ``bigram_pair``; it is stored as a read-only mapping.
    """

    target: MarkovLM
    draft: MarkovLM
    name: str = ""
    meta: Mapping | None = None

    def __post_init__(self):
        _check_same_space(self.target, self.draft, ("target", "draft"))
        if self.meta is not None:
            if not isinstance(self.meta, Mapping):
                raise TypeError(f"meta must be a mapping or None, got {type(self.meta).__name__}")
            object.__setattr__(self, "meta", types.MappingProxyType(dict(self.meta)))

    @property
    def V(self) -> int:
        return self.target.V

    @property
    def S(self) -> int:
        return self.target.S

    @property
    def start(self) -> int:
        return self.target.start

    @property
    def state_of(self) -> np.ndarray:
        return self.target.state_of

    @property
    def homogeneous(self) -> bool:
        return self.target.homogeneous and self.draft.homogeneous

    @property
    def max_horizon(self) -> int | None:
        hs = [h for h in (self.target.max_horizon, self.draft.max_horizon) if h is not None]
        return min(hs) if hs else None

    def check_horizon(self, horizon) -> int:
        horizon = check_int(horizon, "horizon", minimum=1)
        if self.max_horizon is not None and horizon > self.max_horizon:
            raise ValueError(
                f"horizon={horizon} exceeds the {self.max_horizon} positions the kernels define"
            )
        return horizon

    def kernels(self, n: int):
        """``(target (S, V), draft (S, V))`` at 0-based position ``n``."""
        return self.target.kernel(n), self.draft.kernel(n)


# ---------------------------------------------------------------------------------------------
# Pair families
# ---------------------------------------------------------------------------------------------

#: Largest ``S * V`` a generated model may have (2e7 float64 entries = 160 MB per model).
MAX_KERNEL_ENTRIES = 20_000_000


def _check_size(S, V, what):
    if S * V > MAX_KERNEL_ENTRIES:
        raise ValueError(
            f"{what}: S*V = {S}*{V} = {S * V:,} exceeds {MAX_KERNEL_ENTRIES:,} kernel entries "
            f"({S * V * 8 / 1e6:,.0f} MB per model); use fewer states S or a smaller V"
        )


def _states(V, S, rng):
    """``(S, state_of)``: identity for ``S in (None, V)``, else a random map onto all S states."""
    if S is None or S == V:
        return V, np.arange(V, dtype=np.int64)
    S = check_int(S, "S", minimum=1)
    if S > V:
        raise ValueError(f"S={S} states cannot all be reached from V={V} tokens; need S <= V")
    # Every state receives floor(V/S) or ceil(V/S) tokens, so every state is reachable.
    state_of = np.arange(V, dtype=np.int64) % S
    rng.shuffle(state_of)
    return S, state_of


def _mix_to_mean_tv(target, other, mean_tv, what):
    """Draft ``(1 - lam) target + lam other`` with mean-over-rows TV exactly ``mean_tv``.

    ``TV(t, (1 - lam) t + lam o) = lam TV(t, o)`` (the difference is ``lam (o - t)``), so the
    mean TV is linear in ``lam`` and ``lam = mean_tv / mean TV(t, o)`` hits it exactly.
    """
    base = float(np.mean(0.5 * np.abs(other - target).sum(axis=-1)))
    if mean_tv > base:
        raise ValueError(
            f"mean_tv={mean_tv} is unreachable for this {what}: the largest mean TV it can give "
            f"is {base:.6g} (try a smaller mean_tv, another seed, or other shape parameters)"
        )
    lam = 0.0 if mean_tv == 0.0 else mean_tv / base
    return (1.0 - lam) * target + lam * other


def yin_example() -> MarkovPair:
    """The explicit T = 4, V = 3 time-inhomogeneous chain of docs/theory.md §3.

    Start state 0 (``x_0 = 0``); the state is the previous token. ``target`` is Yin's ``q``
    table and ``draft`` Yin's ``p`` table (**Yin et al. use q = target, p = draft**).
    Under the target, ``sum_n E[TV_n] = 0.30 + 0.26 + 0.25 + 0.2414 = 1.0514``.

    Returns
    -------
    MarkovPair with ``(4, 3, 3)`` kernels.

    References
    ----------
    Yin et al. (2024), "A Theoretical Perspective for Speculative Decoding Algorithm", Thm 1;
    the chain and its numbers are derived in docs/theory.md §3.
    """
    target = [  # Yin's q_n(.|s), n = 1..4, s = 0, 1, 2
        [[.6, .3, .1], [.2, .5, .3], [.3, .3, .4]],
        [[.5, .4, .1], [.1, .8, .1], [.4, .2, .4]],
        [[.7, .2, .1], [.3, .3, .4], [.2, .6, .2]],
        [[.4, .4, .2], [.25, .25, .5], [.6, .3, .1]],
    ]
    draft = [  # Yin's p_n(.|s)
        [[.3, .3, .4], [.4, .4, .2], [.3, .5, .2]],
        [[.5, .2, .3], [.3, .4, .3], [.2, .2, .6]],
        [[.4, .4, .2], [.3, .5, .2], [.5, .3, .2]],
        [[.2, .5, .3], [.25, .5, .25], [.3, .3, .4]],
    ]
    return MarkovPair(MarkovLM(target, start=0), MarkovLM(draft, start=0),
                      name="yin-example (docs/theory.md §3)")


def bernoulli_pair(target_prob, draft_prob) -> MarkovPair:
    """Homogeneous one-state pair: target ``Ber(b) = (1 - b, b)``, draft ``Ber(a)``.

    ``TV = |b - a|``. V = 2, S = 1 (``state_of = [0, 0]``), start 0.

    Parameters
    ----------
    target_prob : float in [0, 1]
        ``b``, the target's probability of token 1.
    draft_prob : float in [0, 1]
        ``a``, the draft's probability of token 1.

    References
    ----------
    Yin et al. (2024), Fig. 3 (batch improvement, Bernoulli case; **their q is our target,
    their p our draft**); closed forms in docs/theory.md §4.
    """
    b = check_real(target_prob, "target_prob", low=0.0, high=1.0)
    a = check_real(draft_prob, "draft_prob", low=0.0, high=1.0)
    so = np.zeros(2, dtype=np.int64)
    return MarkovPair(MarkovLM([[1.0 - b, b]], state_of=so), MarkovLM([[1.0 - a, a]], state_of=so),
                      name=f"bernoulli(target={b:g}, draft={a:g})")


def uniform_pair(V) -> MarkovPair:
    """Homogeneous one-state pair: target ``delta_0``, draft uniform on V tokens.

    ``TV = 1 - 1/V``. S = 1, start 0.

    References
    ----------
    Yin et al. (2024), Fig. 3 (batch improvement, uniform case); docs/theory.md §4.

    Raises
    ------
    ValueError
        If ``V`` exceeds ``MAX_KERNEL_ENTRIES`` (checked before anything is allocated).
    """
    V = check_int(V, "V", minimum=1)
    _check_size(1, V, "uniform_pair")
    target = np.zeros((1, V))
    target[0, 0] = 1.0
    so = np.zeros(V, dtype=np.int64)
    draft = np.full((1, V), 1.0 / V)
    return MarkovPair(MarkovLM(target, state_of=so), MarkovLM(draft, state_of=so),
                      name=f"uniform(V={V})")


def dirichlet_pair(V, mean_tv, S=None, concentration=1.0, seed=0) -> MarkovPair:
    """Random homogeneous pair whose mean TV over states is exactly ``mean_tv``.

    Target rows ``t_s ~ Dirichlet(concentration * 1_V)``; with ``o_s`` drawn the same way, the
    draft rows are ``(1 - lam) t_s + lam o_s`` with the single ``lam`` that makes
    ``(1/S) sum_s TV(t_s, d_s) = mean_tv`` (a *uniform* average over the S states, not weighted
    by how often the chain visits them).

    Parameters
    ----------
    V : int >= 1
        Vocabulary size.
    mean_tv : float in [0, 1]
        Target mean TV. Must not exceed ``(1/S) sum_s TV(t_s, o_s)`` of the drawn rows.
    S : int, optional
        Number of states. ``None`` or ``V``: the state is the previous token (identity map).
        ``S < V``: a random (seeded) token -> state map that reaches every state.
    concentration : float > 0
        Dirichlet parameter of every coordinate (small: peaked rows).
    seed : int
        Seed of ``np.random.default_rng``.

    Raises
    ------
    ValueError
        If ``mean_tv`` is unreachable with the drawn rows, ``S > V``, or ``S * V`` is too large.
    """
    V = check_int(V, "V", minimum=1)
    mean_tv = check_real(mean_tv, "mean_tv", low=0.0, high=1.0)
    concentration = check_real(concentration, "concentration", low=0.0, low_open=True)
    seed = check_int(seed, "seed", minimum=0)
    _check_size(V if S is None else check_int(S, "S", minimum=1), V, "dirichlet_pair")
    rng = np.random.default_rng(seed)
    S, state_of = _states(V, S, rng)
    alpha = np.full(V, concentration)
    target = rng.dirichlet(alpha, size=S)
    other = rng.dirichlet(alpha, size=S)
    draft = _mix_to_mean_tv(target, other, mean_tv, "dirichlet_pair")
    return MarkovPair(MarkovLM(target, state_of=state_of), MarkovLM(draft, state_of=state_of),
                      name=f"dirichlet(V={V}, S={S}, mean_tv={mean_tv:g}, "
                           f"concentration={concentration:g}, seed={seed})")


def _zipf_rows(z, S, rng):
    """``S`` rows, each the law ``z`` (by rank) laid on a fresh random permutation of tokens."""
    V = z.shape[0]
    perm = rng.permuted(np.broadcast_to(np.arange(V), (S, V)), axis=1)
    rows = np.empty((S, V))
    np.put_along_axis(rows, perm, np.broadcast_to(z, (S, V)), axis=1)
    return rows


def zipf_pair(V, S=16, exponent=1.1, mean_tv=0.3, seed=0) -> MarkovPair:
    """Zipf-tailed homogeneous pair over a large vocabulary with few states.

    Target row ``s`` is the Zipf law ``z(r) = r^-exponent / H`` (rank r = 1..V) laid on a
    per-state random permutation of the vocabulary. The draft row is
    ``(1 - lam) t_s + lam o_s`` where ``o_s`` is the same Zipf law on another random
    permutation, with ``lam`` chosen so the mean TV over the S states (uniform average) is
    exactly ``mean_tv``.

    Parameters
    ----------
    V : int >= 1
        Vocabulary size (50,000 with S = 16 builds in a fraction of a second).
    S : int
        Number of states, ``1 <= S <= V``; ``S == V`` is the identity map, otherwise a random
        map reaching every state. ``S * V`` must not exceed ``MAX_KERNEL_ENTRIES`` (2e7).
    exponent : float >= 0
        Zipf exponent (0: uniform rows, which only allows ``mean_tv = 0``).
    mean_tv : float in [0, 1]
        Target mean TV over states.
    seed : int
        Seed of ``np.random.default_rng``.
    """
    V = check_int(V, "V", minimum=1)
    S = check_int(S, "S", minimum=1)
    exponent = check_real(exponent, "exponent", low=0.0)
    mean_tv = check_real(mean_tv, "mean_tv", low=0.0, high=1.0)
    seed = check_int(seed, "seed", minimum=0)
    _check_size(S, V, "zipf_pair")
    rng = np.random.default_rng(seed)
    S, state_of = _states(V, S, rng)
    z = np.arange(1, V + 1, dtype=np.float64) ** -exponent
    z /= z.sum()
    target = _zipf_rows(z, S, rng)
    other = _zipf_rows(z, S, rng)
    draft = _mix_to_mean_tv(target, other, mean_tv, "zipf_pair")
    return MarkovPair(MarkovLM(target, state_of=state_of), MarkovLM(draft, state_of=state_of),
                      name=f"zipf(V={V}, S={S}, exponent={exponent:g}, mean_tv={mean_tv:g}, "
                           f"seed={seed})")


# --- bigram pairs from real text -------------------------------------------------------------

#: Word-level tokens: runs of word characters, or single non-space symbols (lowercased text).
WORD_PATTERN = r"\w+|[^\w\s]"
#: A sentence starts at the beginning of the text or after ``.``, ``!``, ``?`` plus whitespace.
SENTENCE_START_PATTERN = r"(?:\A\s*|[.!?]\s+)(?=\S)"
UNK = "<unk>"


def _read_source(source):
    if source is None:
        from pydoc_data.topics import topics

        return "\n\n".join(topics[k] for k in sorted(topics))
    try:
        with open(source, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError as exc:
        raise ValueError(f"source={source!r} cannot be read: {exc.strerror}") from exc


@functools.lru_cache(maxsize=8)
def _corpus(source, level):
    """``(tokens, sentence_start_counts)`` of a text, cached per process."""
    text = _read_source(source)
    if level == "word":
        text = text.lower()
        word = re.compile(WORD_PATTERN)
        tokens = tuple(word.findall(text))
        starts = (word.match(text, m.end()) for m in re.finditer(SENTENCE_START_PATTERN, text))
        starts = Counter(m.group() for m in starts if m is not None)
    else:
        tokens = tuple(text)
        starts = Counter(text[m.end()] for m in re.finditer(SENTENCE_START_PATTERN, text))
    return tokens, starts


def bigram_pair(vocab_size=200, level="word", draft="unigram", target_smoothing=0.01,
                draft_smoothing=1.0, source=None) -> MarkovPair:
    """A "real text" pair counted from a corpus: add-k bigram target vs a cruder draft.

    The text is tokenised (``level="word"``: the lowercased text split by ``WORD_PATTERN``
    into words and single punctuation symbols; ``level="char"``: its raw characters, case and
    whitespace kept). The ``vocab_size - 1`` most frequent tokens (ties broken by the token's
    string order) get ids ``0..`` by decreasing frequency; every other token maps to ``<unk>``,
    the last id. V = ``vocab_size``, or fewer when the text has fewer distinct tokens.

    - target: add-k bigram ``(C[s, x] + k) / (C[s].sum() + k V)``, ``k = target_smoothing``,
      state = previous token (S = V, identity map);
    - draft ``"unigram"``: the add-k unigram ``(c[x] + k) / (N + k V)``, ``k = draft_smoothing``,
      counted over all N tokens, the same row in every state;
    - draft ``"smoothed"``: add-k bigram with ``k = draft_smoothing``.

    Start state: the token that most often begins a sentence (the first token of the text, or
    the first after ``.``, ``!`` or ``?`` followed by whitespace; ties: the smaller string), or
    ``<unk>`` if that token is out of the vocabulary. ``pair.meta`` records the vocabulary
    (tuple, by id), ``unk`` (its id), ``start_token``, ``level``, ``source``, ``n_tokens``.

    Parameters
    ----------
    vocab_size : int >= 2
        Number of token ids including ``<unk>``; ``vocab_size**2 <= MAX_KERNEL_ENTRIES``.
    level : {"word", "char"}
    draft : {"unigram", "smoothed"}
    target_smoothing, draft_smoothing : float > 0
        Add-k constants (positive, so every row, even an unseen state's, is a law).
    source : path or None
        A UTF-8 text file; ``None`` uses the CPython documentation shipped as
        ``pydoc_data.topics`` (about 465k characters of English; it differs slightly between
        Python versions, so exact kernels do too). Tokenised text is cached per process.
    """
    vocab_size = check_int(vocab_size, "vocab_size", minimum=2)
    check_choice(level, "level", {"word", "char"})
    check_choice(draft, "draft", {"unigram", "smoothed"})
    k_t = check_real(target_smoothing, "target_smoothing", low=0.0, low_open=True)
    k_d = check_real(draft_smoothing, "draft_smoothing", low=0.0, low_open=True)
    _check_size(vocab_size, vocab_size, "bigram_pair (S = V = vocab_size)")
    if source is not None:
        if not isinstance(source, (str, os.PathLike)):
            raise TypeError(f"source must be a path or None, got {type(source).__name__}")
        source = os.fspath(source)
    tokens, starts = _corpus(source, level)
    if len(tokens) < 2:
        raise ValueError(f"source={source!r} has {len(tokens)} {level} token(s); a bigram "
                         f"model needs at least 2")

    counts = Counter(tokens)
    ranked = sorted(counts, key=lambda tok: (-counts[tok], tok))[: vocab_size - 1]
    vocab = tuple(ranked) + (UNK,)
    V = len(vocab)
    unk = V - 1
    index = {tok: i for i, tok in enumerate(ranked)}
    ids = np.fromiter((index.get(tok, unk) for tok in tokens), dtype=np.int64, count=len(tokens))

    big = np.bincount(ids[:-1] * V + ids[1:], minlength=V * V).reshape(V, V).astype(np.float64)

    def add_k(c, k):
        return (c + k) / (c.sum(axis=-1, keepdims=True) + k * V)

    target = add_k(big, k_t)
    if draft == "unigram":
        draft_k = np.broadcast_to(add_k(np.bincount(ids, minlength=V).astype(np.float64), k_d),
                                  (V, V))
    else:
        draft_k = add_k(big, k_d)

    start_token = min(starts, key=lambda tok: (-starts[tok], tok)) if starts else UNK
    start = index.get(start_token, unk)
    label = "pydoc_data.topics" if source is None else source
    meta = {"vocabulary": vocab, "unk": unk, "start_token": vocab[start], "level": level,
            "source": label, "n_tokens": len(tokens)}
    return MarkovPair(MarkovLM(target, start=start), MarkovLM(draft_k, start=start),
                      name=f"bigram({level}, V={V}, draft={draft}, {os.path.basename(label)})",
                      meta=meta)


# --- contrastive decoding as a chain ---------------------------------------------------------

def contrast_chain(expert, amateur, plausibility=0.1, contrast=0.5, amateur_temperature=1.0,
                   form="logit") -> MarkovLM:
    """The chain whose kernels are the contrastive-decoding law of ``expert`` and ``amateur``.

    Every row is ``scdsim.contrast.contrastive(log p_e, log p_a, ...)`` (zero probabilities
    become ``-inf`` logits): zero outside the plausible set
    ``{x : p_e(x) >= plausibility * max p_e}``. A time-inhomogeneous model with a homogeneous
    one is broadcast over positions.

    Raises ``ValueError`` (from ``contrastive``) where the amateur gives probability 0 to a
    plausible token while ``contrast > 0``: the contrastive law is undefined there.

    Parameters
    ----------
    expert, amateur : MarkovLM
        Must share V, S, start state and state map (and T when both are time-inhomogeneous).
    plausibility, contrast, amateur_temperature, form
        As in ``scdsim.contrast.contrastive`` (alpha, beta, tau of Li et al. / O'Brien & Lewis).

    References
    ----------
    O'Brien & Lewis (2023), §2 (logit form); Li et al. (2023), Eq. 2-3 (plausibility
    constraint); docs/theory.md §6, §7.
    """
    _check_same_space(expert, amateur, ("expert", "amateur"))
    e, a = expert.kernels, amateur.kernels
    if e.ndim == 3 and a.ndim == 3 and e.shape[0] != a.shape[0]:
        raise ValueError(f"horizon mismatch: expert defines T={e.shape[0]} positions, "
                         f"amateur T={a.shape[0]}")
    e, a = np.broadcast_arrays(e, a)
    from scdsim.contrast import contrastive  # lazy: contrast sits above chains in the layers

    with np.errstate(divide="ignore"):
        log_e, log_a = np.log(e), np.log(a)
    probs = np.asarray(contrastive(log_e, log_a, plausibility=plausibility, contrast=contrast,
                                   amateur_temperature=amateur_temperature, form=form),
                       dtype=np.float64)
    return MarkovLM(probs, start=expert.start, state_of=expert.state_of)


def scd_pair(expert, amateur, **contrast_kwargs) -> MarkovPair:
    """``MarkovPair(target=contrast_chain(expert, amateur, ...), draft=amateur)``.

    SCD is lossless SD against the contrasted chain: its output law is the contrastive law,
    not the expert's, and its acceptance rate is ``1 - E[TV(contrasted, amateur)]``.

    References
    ----------
    Yuan et al. (2024), "Speculative Contrastive Decoding"; docs/theory.md §7.
    """
    target = contrast_chain(expert, amateur, **contrast_kwargs)
    args = ", ".join(f"{k}={v}" for k, v in sorted(contrast_kwargs.items()))
    return MarkovPair(target, amateur, name=f"scd({args})" if args else "scd")
