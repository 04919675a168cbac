"""Figure 8: exact block-length speedup vs Leviathan's i.i.d. formula as acceptance depends on state.

A family of two-regime pairs (V = 10 tokens, 5 per regime; the state is the regime of the last
token). The target stays in its regime with probability ``s`` (stickiness; its stationary law is
uniform over the regimes). The draft's TV to the target is ``rbar - delta`` in regime 0 and
``rbar + delta`` in regime 1, so the average acceptance rate ``alpha = 1 - rbar`` is the same for
every ``delta`` and ``s``, and Thm 3.8 at that alpha predicts one speedup for all of them.
The exact engine (``scdsim.block_stats``, gamma = 4, c = 0.02) shows the true expected speedup:
at ``delta = 0`` acceptance does not depend on the state and the formula holds (up to the cut
last block, O(1/T)); the stickier the regimes and the larger ``delta``, the further below the
formula the truth falls (acceptances are positively correlated within a block). Even with
``s = 0.5``, where the target's regimes are i.i.d., a small gap remains: an *accepted* draft
token is drawn from ``min(p, q)``, not from p, so it moves the chain towards the regime the
draft over-weights, and the next acceptance depends on the last one. (c): the exact law of tokens per target call against the capped
geometric law the i.i.d. model assumes, at the most state-dependent point.
"""

from __future__ import annotations

import numpy as np

from paper_figures.common import cached, figure_entry, new_figure, series, styled

NAME = "fig08_state_dependence"
TITLE = "Exact speedup vs Leviathan's i.i.d. formula when acceptance depends on the state"
CAPTION = ("Exact expected speedup (block_stats, γ = 4, c = 0.02) on two-regime pairs with the "
           "same average acceptance vs the i.i.d. formula (Thm 3.8): the gap grows with regime "
           "stickiness s and the per-regime TV spread δ; exact vs geometric block-length law")

PARAMS = {
    True: {"k": 5, "rbar": 0.45, "sticky": [0.5, 0.8, 0.95, 0.99], "deltas": 10, "gamma": 4,
           "c": 0.02, "horizon": 1000},
    False: {"k": 5, "rbar": 0.45, "sticky": [0.5, 0.8, 0.95, 0.99], "deltas": 19, "gamma": 4,
            "c": 0.02, "horizon": 4000},
}


def regime_pair(s, delta, k=5, rbar=0.45):
    """The two-regime pair: stickiness ``s``, per-regime TV ``rbar -+ delta`` (V = 2k, S = 2)."""
    from scdsim.chains import MarkovLM, MarkovPair

    V = 2 * k
    state_of = np.repeat([0, 1], k)
    P = np.empty((2, V))
    Q = np.empty((2, V))
    for r in (0, 1):
        P[r] = np.where(state_of == r, s / k, (1.0 - s) / k)
        spike = np.zeros(V)
        spike[(1 - r) * k] = 1.0  # a token of the other regime, target mass (1 - s)/k
        tv_r = rbar - delta if r == 0 else rbar + delta
        lam = tv_r / (1.0 - (1.0 - s) / k)  # TV((1-lam) P + lam spike, P) = lam (1 - P(spike))
        Q[r] = (1.0 - lam) * P[r] + lam * spike
    return MarkovPair(MarkovLM(P, state_of=state_of), MarkovLM(Q, state_of=state_of),
                      name=f"two-regime(s={s:g}, delta={delta:g})")


def _compute(k, rbar, sticky, deltas, gamma, c, horizon):
    import scdsim
    from scdsim import rules

    d = np.linspace(0.0, rbar, deltas)
    curves = []
    for s in sticky:
        rows = [scdsim.block_stats(regime_pair(s, x, k, rbar), rules.lossless, horizon, gamma,
                                   c=c) for x in d]
        curves.append({"s": s, "speedup": [b.speedup for b in rows],
                       "iid_speedup": [b.iid_speedup for b in rows],
                       "alpha": [b.alpha for b in rows],
                       "tokens_per_call": [b.tokens_per_call for b in rows]})
    bs = scdsim.block_stats(regime_pair(max(sticky), rbar, k, rbar), rules.lossless, horizon,
                            gamma, c=c)
    a = bs.alpha
    j = np.arange(gamma + 2)
    geo = np.where(j == 0, 0.0, np.where(j <= gamma, a ** (j - 1.0) * (1 - a), a ** gamma))
    return {"delta": d, "rbar": rbar, "gamma": gamma, "c": c, "horizon": horizon,
            "curves": curves,
            "pmf": {"s": max(sticky), "delta": rbar, "exact": bs.tokens_per_call_pmf,
                    "iid": geo, "alpha": a}}


def compute(quick=False, use_cache=True):
    """Exact and i.i.d. speedups over the (stickiness, delta) grid; one block-length law."""
    return cached(NAME, PARAMS[bool(quick)], _compute, use_cache)


@styled
def plot(data):
    fig, axes = new_figure(3, 1, width=3.9, height=3.5)
    d = np.asarray(data["delta"])
    ax, axg, axp = axes[0]
    for i, cv in enumerate(data["curves"]):
        st = series(i + 1)
        sp, iid = np.asarray(cv["speedup"]), np.asarray(cv["iid_speedup"])
        ax.plot(d, sp, label=f"exact, s = {cv['s']:g}", **st)
        axg.plot(d, 100 * (sp / iid - 1), label=f"s = {cv['s']:g}", **st)
    iid0 = np.asarray(data["curves"][0]["iid_speedup"])
    iid_alpha = data["curves"][0]["alpha"][0]
    ax.plot(d, iid0, color="black", lw=2.0, marker="", linestyle="--",
            label=f"i.i.d. (Thm 3.8), α = {iid_alpha:.3f}")
    ax.set_xlabel("TV spread δ between regimes  (TV = 0.45 ∓ δ)")
    ax.set_ylabel("expected walltime speedup  (× autoregressive)")
    ax.set_title(f"(a) γ = {data['gamma']}, c = {data['c']:g}, T = {data['horizon']}")
    ax.legend(loc="lower left", fontsize=7, title="s: regime stickiness", title_fontsize=7)
    axg.axhline(0.0, color="black", lw=0.8)
    axg.set_xlabel("TV spread δ between regimes  (TV = 0.45 ∓ δ)")
    axg.set_ylabel("exact / i.i.d. − 1  (%)")
    axg.set_title("(b) error of the i.i.d. formula at each pair's α")
    axg.legend(loc="lower left", fontsize=7)
    pm = data["pmf"]
    j = np.arange(len(pm["exact"]))
    w = 0.38
    axp.bar(j - w / 2, pm["exact"], width=w, color=series(3)["color"], label="exact (engine)")
    axp.bar(j + w / 2, pm["iid"], width=w, color="white", edgecolor="black", hatch="///",
            label=f"capped geometric, α = {pm['alpha']:.2f}")
    axp.set_xticks(j[1:])
    axp.set_xlim(0.4, j[-1] + 0.6)
    axp.set_xlabel("tokens emitted per target call  j")
    axp.set_ylabel("fraction of target calls")
    axp.set_title(f"(c) block-length law, s = {pm['s']:g}, δ = {pm['delta']:g}")
    axp.legend(loc="upper center", fontsize=7)
    return fig


main = figure_entry(NAME)


if __name__ == "__main__":
    raise SystemExit(main())
