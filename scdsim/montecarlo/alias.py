"""Walker alias tables: O(1) draws from the rows of an ``(S, V)`` law, built for all rows at once.

References
----------
Walker 1977, "An efficient method for generating discrete random variables with general
distributions", ACM TOMS 3(3); Hübschle-Schneider & Sanders 2022, "Parallel Weighted Random
Sampling", ACM TOMS 48(3), §4 (the sweeping construction).
"""

from __future__ import annotations

import numpy as np

__all__ = ["AliasTable", "alias_tables", "split", "ROW_ATOL"]

# Tolerance on the rows of a law handed to the engine (same as _validate.PROB_ATOL for float64).
ROW_ATOL = 1e-6
# Records of an alias table column, and of a draft column with its acceptances.
REC = np.dtype([("prob", np.float64), ("alias", np.intp)])
REC_ACC = np.dtype([("prob", np.float64), ("alias", np.intp), ("acc", np.float64),
                    ("acc_alias", np.float64)])


def alias_tables(w: np.ndarray) -> np.ndarray:
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

    rec = np.empty(S * V, dtype=REC)
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


def split(u: np.ndarray, V: int):
    """``(c, f)``: the column ``floor(u V)`` and the coin ``frac(u V)`` of uniforms ``u``.

    ``u V < V`` for every double ``u < 1`` (round to nearest), so ``c <= V - 1``; ``f`` keeps
    the ``53 - log2(V)`` low bits of ``u`` (~1e-13 resolution at V = 1000).
    """
    y = u * V
    c = y.astype(np.intp)
    y -= c
    return c, y


class AliasTable:
    """O(1) sampling from the rows of an ``(S, V)`` law (Walker's alias method).

    A draw in row ``s`` with column ``c`` and coin ``f`` (``split`` of one uniform) is ``c``
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
        if not worst <= ROW_ATOL:
            raise ValueError(
                f"{what} rows must sum to 1 within {ROW_ATOL:g}; worst is off by {worst:.3g}"
            )
        self.rec = alias_tables(rows * (V / tot)[:, None])
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
        return self.draw(base, *split(np.asarray(u, dtype=np.float64), self.V))

    def accepting(self, acc: np.ndarray) -> AliasTable:
        """Attach the flat ``(S V,)`` acceptances ``a`` of the law's tokens (single draft)."""
        if self._acc is not acc:
            rec = np.empty(self.S * self.V, dtype=REC_ACC)
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
