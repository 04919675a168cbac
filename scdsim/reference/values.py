"""The reference numbers (see the package docstring). Plain Python data: tuples of rows, dicts."""

__all__ = [
    "SOURCES",
    "TARGET3", "DRAFT3", "TARGET4", "DRAFT4",
    "LEVIATHAN_TABLE1", "LEVIATHAN_TABLE4_EXP", "LEVIATHAN_BIGRAM", "LEVIATHAN_ARGMAX_LENIENCE",
    "LEVIATHAN_COR_3_9", "OPTIMAL_GAMMA", "LENIENCE_ALPHA",
    "SINGLE_STEP", "PARETO_EX1", "PARETO_EX2",
    "MULTI_DRAFT_ACCEPTANCE", "UNIFORM_BATCH_IMPROVEMENT",
    "CONTRAST_SCORES", "OBRIEN_CD_LAWS", "LI_CD_SCORES", "SCD_STEP", "SCD_SPEEDUPS",
    "YIN_EXAMPLE", "BATCH_VARIANT_A", "BATCH_VARIANT_A_LIMIT", "BATCH_VARIANT_B_MC",
]

SOURCES = {
    "LEVIATHAN_TABLE1": "Leviathan et al. 2023, Table 1 (c = c_hat = 0), 2 decimals",
    "LEVIATHAN_TABLE4_EXP": "Leviathan et al. 2023, Table 4, column 'Exp' (alpha, c rounded)",
    "LEVIATHAN_BIGRAM": "Leviathan et al. 2023, §3.6 ('1.25X')",
    "LEVIATHAN_ARGMAX_LENIENCE": "Leviathan et al. 2023, App. A.5",
    "LEVIATHAN_COR_3_9": "Leviathan et al. 2023, Cor. 3.9: (1 + a) / (1 + c) at gamma = 1",
    "OPTIMAL_GAMMA": "docs/theory.md §5 [D] (derived from Leviathan Thm 3.8)",
    "LENIENCE_ALPHA": "docs/theory.md §5 [D]",
    "SINGLE_STEP": "docs/theory.md §1",
    "PARETO_EX1": "Yin et al. 2024, Thms 4-5; docs/theory.md §2 [D] (UNO bias)",
    "PARETO_EX2": "Yin et al. 2024, Thms 4-5; docs/theory.md §2 [D] (UNO bias)",
    "MULTI_DRAFT_ACCEPTANCE": "docs/theory.md §4 [D]",
    "UNIFORM_BATCH_IMPROVEMENT": "docs/theory.md §4 [D]",
    "OBRIEN_CD_LAWS": "docs/theory.md §6 [D] (O'Brien & Lewis 2023 form)",
    "LI_CD_SCORES": "docs/theory.md §6 [D] (Li et al. 2023 form)",
    "SCD_STEP": "docs/theory.md §6 [D]",
    "SCD_SPEEDUPS": "docs/theory.md §7 [R] (reconstructed SCD cost model); Leviathan Thm 3.8",
    "YIN_EXAMPLE": "docs/theory.md §3 [D] (Yin et al. 2024 Thm 1 on a 3-token chain, T = 4)",
    "BATCH_VARIANT_A": "docs/theory.md §3-4 [D]",
    "BATCH_VARIANT_A_LIMIT": "docs/theory.md §4 [D] (Yin et al. Prop. 1: the limit is not 0)",
    "BATCH_VARIANT_B_MC": "docs/theory.md §3, a Monte Carlo estimate with its standard error",
}

# one-step pairs of docs/theory.md §1, 2, 4 (stated there in Yin letters: p draft, q target)
DRAFT3, TARGET3 = (0.5, 0.3, 0.2), (0.2, 0.3, 0.5)
DRAFT4, TARGET4 = (0.4, 0.3, 0.2, 0.1), (0.1, 0.2, 0.3, 0.4)

#: (alpha, gamma, operations, speed) at c = 0
LEVIATHAN_TABLE1 = ((0.6, 2, 1.53, 1.96), (0.7, 3, 1.58, 2.53), (0.8, 2, 1.23, 2.44),
                    (0.8, 5, 1.63, 3.69), (0.9, 2, 1.11, 2.71), (0.9, 10, 1.60, 6.86))
#: (alpha, gamma, c, expected speedup)
LEVIATHAN_TABLE4_EXP = ((0.75, 7, 0.02, 3.2), (0.8, 7, 0.04, 3.3), (0.82, 7, 0.11, 2.5),
                        (0.62, 7, 0.02, 2.3), (0.68, 5, 0.04, 2.4), (0.71, 3, 0.11, 2.0),
                        (0.65, 5, 0.02, 2.4), (0.73, 5, 0.04, 2.6), (0.74, 3, 0.11, 2.0),
                        (0.53, 5, 0.02, 1.9), (0.55, 3, 0.04, 1.8), (0.56, 3, 0.11, 1.6))
#: (alpha, gamma, c, speedup)
LEVIATHAN_BIGRAM = (0.2, 3, 0.0, 1.25)
#: gamma, c and (alpha, speedup) rows
LEVIATHAN_ARGMAX_LENIENCE = {"gamma": 8, "c": 0.015,
                             "rows": ((0.75, 3.3), (0.80, 3.9), (0.87, 4.9))}
#: (alpha, c, speedup) at gamma = 1
LEVIATHAN_COR_3_9 = (0.5, 0.1, 1.363636)
#: c -> rows (alpha, optimal gamma, speedup at it)
OPTIMAL_GAMMA = {
    0.01: ((0.5, 5, 1.875), (0.6, 7, 2.297), (0.7, 9, 2.972), (0.8, 14, 4.232),
           (0.9, 24, 7.486), (0.95, 40, 12.542)),
    0.05: ((0.5, 3, 1.630), (0.6, 4, 1.921), (0.7, 6, 2.353), (0.8, 8, 3.092),
           (0.9, 13, 4.674), (0.95, 21, 6.600)),
    0.1: ((0.5, 2, 1.458), (0.6, 3, 1.674), (0.7, 4, 1.981), (0.8, 6, 2.470),
          (0.9, 10, 3.431), (0.95, 15, 4.479)),
}
#: (lenience l, acceptance rate) on (TARGET3, DRAFT3)
LENIENCE_ALPHA = ((1.0, 0.70), (0.5, 0.90), (0.3, 1.00), (0.1, 1.00))
#: single-step identities on the 3- and 4-token pairs
SINGLE_STEP = {"tv3": 0.3, "residual3_at_2": 1.0, "tv4": 0.4, "residual4_at_3": 0.75}
#: (form, eps, P(reject) of OPT, bias of OPT, bias of UNO) on (TARGET3, DRAFT3)
PARETO_EX1 = (("additive", 0.0, 0.3, 0.0, 0.15), ("additive", 0.1, 0.2, 0.1, 0.20),
              ("additive", 0.2, 0.1, 0.2, 0.25), ("additive", 0.4, 0.0, 0.3, 0.30),
              ("ratio", 0.1, 0.25, 0.05, 0.175), ("ratio", 0.4, 0.1, 0.2, 0.25))
#: the same on (TARGET4, DRAFT4)
PARETO_EX2 = (("additive", 0.1, 0.2, 0.2, 0.26), ("additive", 0.2, 0.1, 0.3, 0.33),
              ("ratio", 0.1, 0.33, 0.07, 0.169), ("ratio", 0.4, 0.14, 0.26, 0.302))


def _ber(b):
    """The Bernoulli(b) law on {0, 1}, as the notes write it: (1 - b, b)."""
    return (1 - b, b)


#: label -> (target, draft, acceptance for M = 1..5 of recursive, optimal, k-SEQ)
MULTI_DRAFT_ACCEPTANCE = {
    "Ber(.2)->Ber(.6)": (_ber(0.6), _ber(0.2), (0.6, 0.68, 0.744, 0.7952, 0.83616),
                         (0.6, 0.76, 0.888, 0.9904, 1.0),
                         (0.6, 0.708062, 0.789674, 0.850077, 0.894194)),
    "Ber(.5)->Ber(.9)": (_ber(0.9), _ber(0.5), (0.6, 0.8, 0.9, 0.95, 0.975),
                         (0.6, 0.85, 0.975, 1.0, 1.0),
                         (0.6, 0.815037, 0.915573, 0.961838, 0.982868)),
    "Ber(.7)->Ber(.3)": (_ber(0.3), _ber(0.7), (0.6, 0.72, 0.804, 0.8628, 0.90396),
                         (0.6, 0.81, 0.957, 1.0, 1.0),
                         (0.6, 0.75, 0.846578, 0.907290, 0.944727)),
    "3-token": (TARGET3, DRAFT3, (0.7, 0.76, 0.808, 0.8464, 0.87712),
                (0.7, 0.86, 0.988, 1.0, 1.0), (0.7, 0.791355, 0.858519, 0.906007, 0.938730)),
    "4-token": (TARGET4, DRAFT4, (0.6, 0.72, 0.768, 0.7912, 0.81208),
                (0.6, 0.79, 0.871, 0.9439, 1.0), (0.6, 0.75, 0.793950, 0.831438, 0.863053)),
}
#: V -> batch improvement TV - rejection of recursive(M) for M = 2..5, target delta_0, draft uniform
UNIFORM_BATCH_IMPROVEMENT = {
    2: (0.25, 0.375, 0.4375, 0.46875), 4: (0.1875, 0.328125, 0.433594, 0.512695),
    8: (0.109375, 0.205078, 0.288818, 0.362091), 16: (0.058594, 0.113525, 0.165024, 0.213304),
    32: (0.030273, 0.059601, 0.088012, 0.115535),
}
#: expert and amateur logits and the plausibility (alpha) of the contrastive examples
CONTRAST_SCORES = {"expert": (2.0, 1.5, 0.3, -1.0, -3.0), "amateur": (1.0, 1.8, 0.5, -0.5, -2.0),
                   "plausibility": 0.1}
#: contrast (beta) -> the contrasted law on the 3 plausible tokens
OBRIEN_CD_LAWS = ((0.5, (0.705768, 0.223472, 0.070760)), (1.0, (0.819456, 0.135455, 0.045089)),
                  (0.0, (0.558905, 0.338993, 0.102103)))
#: amateur temperature tau -> Li et al. scores of the 3 plausible tokens
LI_CD_SCORES = ((1.0, (0.7993, -0.5007, -0.4007)), (0.5, (1.2392, -0.8608, 0.5392)))
#: the SCD step at contrast 0.5: acceptance lambda and the residual's mass on token 0
SCD_STEP = {"contrast": 0.5, "acceptance": 0.537838, "residual_at_0": 1.0}
#: (lambda, gamma, c, SCD speedup, SCD speedup with the amateur run gamma+1 times, SD speedup)
SCD_SPEEDUPS = ((0.8, 4, 0.1, 2.3329, 2.2411, 2.4011), (0.7, 4, 0.1, 1.9474, 1.8487, 1.9808),
                (0.6, 3, 0.05, 1.8746, 1.8133, 1.8922), (0.9, 5, 0.02, 4.2144, 4.1836, 4.2596))
#: the 3-token chain of ``chains.yin_example()`` (T = 4), lossless SD drafting to the horizon
YIN_EXAMPLE = {"horizon": 4, "expected_rejections": 1.0514,
               "per_position_tv": (0.30, 0.26, 0.25, 0.2414),
               "x4_marginal": (0.4073, 0.3284, 0.2643)}
#: M -> expected rejections of recursive(M), first-position batch (variant A), on the Yin chain
BATCH_VARIANT_A = {1: 1.051400, 2: 0.926388, 3: 0.842704, 4: 0.785812, 5: 0.746647, 8: 0.686725,
                   16: 0.654367, 64: 0.651050}
BATCH_VARIANT_A_LIMIT = 0.651050
#: (M, Monte Carlo mean, its standard error) of the tree reading (variant B) on the Yin chain
BATCH_VARIANT_B_MC = ((2, 0.8888, 0.0055), (4, 0.6970, 0.0048), (5, 0.6400, 0.0045))
