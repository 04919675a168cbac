# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Real models: does the theory predict what a real pair does?
#
# `scdsim validate` runs speculative decoding with a real target and draft, records every
# emitted token (accepted, recovered or bonus, with the realised TV(p_t, q_t) and the rule's
# rejection probability), and scores the theory's predictions against what happened. This
# notebook validates one small pair on the embedded model, reads the result files, and draws
# figures 9-11.
#
# It needs the models extra (`pip install -e '.[models]'`: torch, transformers) and the
# real-model engine (`real_models.validate`). Without them every cell below prints why it does
# nothing, and the notebook still runs to the end.

# %%
import os
import tempfile
from pathlib import Path

from paper_figures import real

SMALL = os.environ.get("SCDSIM_NB_SMALL") == "1"
REASON = real.engine_reason()
ENGINE = REASON is None
if ENGINE:
    print("real-model engine available")
else:
    print(f"SKIPPED: {REASON}. The cells below do nothing.")

# %% [markdown]
# ## 1. Validate a pair, with SD and with SCD
#
# Full size: `scdsim validate --preset quick` (the embedded SmolLM2-135M target with its
# early-exit draft, lossless SD, γ = 4), once as plain SD and once as SCD (the draft is the
# amateur, the target is the contrastive law). In the test suite (`SCDSIM_NB_SMALL=1`) the pair
# is two seeded random tiny Llamas instead, so the notebook runs in seconds. Each run writes
# `prompts.jsonl` (one line per prompt, as it finishes: an interrupted run resumes) and
# `summary.json` (the scores) into its output directory.

# %%
OUT = Path(os.environ.get("SCDSIM_NB_OUT") or tempfile.mkdtemp(prefix="scdsim-validate-"))
CONTRAST = {"plausibility": 0.1, "contrast": 0.5}
if ENGINE and SMALL:
    from real_models.tiny import random_lm
    from real_models.validate import run_validate
    from scdsim import rules

    target = random_lm(vocab_size=32, seed=0)
    draft = random_lm(vocab_size=32, seed=1, scale=0.5)
    prompts = [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 11], [12, 13]]
    for name, contrast in (("sd", None), ("scd", CONTRAST)):
        run_validate(target, draft, rules.lossless, 4, prompts=prompts, out=OUT / name,
                     max_new_tokens=24, contrast=contrast, measure_ar=False, profile=False,
                     surrogate_states=(1, 2), n_boot=100, progress=False)
elif ENGINE:
    from real_models.cli import main as validate

    for name, extra in (("sd", []), ("scd", ["--contrast", "plausibility=0.1,contrast=0.5"])):
        rc = validate(["--preset", "quick", "--out", str(OUT / name)] + extra)
        assert rc == 0
if ENGINE:
    for name in ("sd", "scd"):
        print(name, sorted(p.name for p in (OUT / name).iterdir()))

# %% [markdown]
# ## 2. Read the results
#
# `summary.json` holds the inputs that made the run and its scores: observed vs predicted
# rejections (a martingale z-score per prompt and pooled), tokens per call against three
# predictions (i.i.d., per-position, Markov surrogate), and the block-length law.

# %%
if ENGINE:
    for name in ("sd", "scd"):
        run = real.load_run(OUT / name)
        score = run["summary"]["score"]
        rej = score["rejections"]
        print(f"{real.run_label(run)}: {len(run['prompts'])} prompts; rejections observed "
              f"{rej['observed']}, predicted {rej['expected']:.2f}, pooled z = "
              f"{rej['z_pooled']:+.2f}")
        print("  tokens per call:", round(score["tokens_per_call"]["observed"], 4),
              {k: round(v["tokens_per_call"], 4) for k, v in score["predictions"].items()})
        # the martingale identity behind the z-score: observed - expected has mean 0; with
        # this few prompts only a gross failure would show, at 4.89 standard deviations
        assert abs(rej["z_pooled"]) < 4.89
        assert len(run["prompts"]) == len(run["header"]["prompt_ids"])
    print(run["summary"].get("table", ""))

# %% [markdown]
# ## 3. Figures 9-11 from these results
#
# The figure modules read result directories from `$SCDSIM_VALIDATE_DIR`; point it at ours.

# %%
if ENGINE:
    import matplotlib

    if SMALL:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paper_figures import fig09_real_rejections, fig10_entropy, fig11_tokens_per_call

    os.environ["SCDSIM_VALIDATE_DIR"] = str(OUT)
    for mod in (fig09_real_rejections, fig10_entropy, fig11_tokens_per_call):
        data = mod.compute(quick=False)
        if "skipped" in data:
            print(f"{mod.NAME}: skipped: {data['skipped']}")
            continue
        fig = mod.plot(data)
        if not SMALL:
            plt.show()
        plt.close(fig)
        print(f"{mod.NAME}: drawn")
