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
# ## 1. Validate a pair
#
# The quick preset: the embedded target with a cheap draft, lossless SD, a handful of prompts.
# The run writes `prompts.jsonl` (one line per prompt, as it finishes: an interrupted run
# resumes) and `summary.json` (the scores) into the output directory.

# %%
OUT = Path(os.environ.get("SCDSIM_NB_OUT") or tempfile.mkdtemp(prefix="scdsim-validate-"))
if ENGINE:
    from real_models import validate

    kwargs = real._quick_kwargs(validate, OUT / "sd")
    if SMALL:  # the test suite's size: as small as the engine allows
        import inspect

        params = inspect.signature(validate.run_validate).parameters
        for key, value in (("n_prompts", 2), ("max_new_tokens", 16)):
            if key in params:
                kwargs[key] = value
    print("run_validate(", kwargs, ")")
    validate.run_validate(**kwargs)
    print(sorted(p.name for p in (OUT / "sd").iterdir()))

# %% [markdown]
# ## 2. Read the results
#
# `summary.json` holds the inputs that made the run and its scores: observed vs predicted
# rejections (a martingale z-score per prompt and pooled), tokens per call against three
# predictions (i.i.d., per-position, Markov surrogate), and the block-length law.

# %%
if ENGINE:
    run = real.load_run(OUT / "sd")
    score = run["summary"]["score"]
    rej = score["rejections"]
    print(f"{len(run['prompts'])} prompts; rejections observed {rej['observed']}, "
          f"predicted {rej['expected']:.2f}, pooled z = {rej['z_pooled']:+.2f}")
    print("tokens per call:", score["tokens_per_call"])
    print("predictions    :", {k: v.get("tokens_per_call") for k, v in score["predictions"].items()})
    assert rej["observed"] >= 0 and rej["expected"] >= 0
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
