"""Every core paper figure: compute(quick=True) + plot under Agg, and what its data must show.

Expected values come from theory.md (§7.1, §7.3-§7.6) or from closed forms written here, never
from the code under test. Monte Carlo agreement: |MC mean - exact| <= 4.89 s.e. (per-assert
two-sided false-fail rate 1e-6), with the power against a planted bug computed and asserted.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

import paper_figures  # noqa: E402
from paper_figures import common  # noqa: E402

Z = 4.89  # two-sided 1e-6 normal quantile
FALSE_FAIL = 1e-6


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("figcache")
    common.set_cache_dir(d)
    yield d
    common.set_cache_dir(None)


_DATA = {}


def data(name, cache):
    if name not in _DATA:
        _DATA[name] = paper_figures.load(name).compute(quick=True)
    return _DATA[name]


def z_power(shift, sem):
    """Power of the two-sided |z| > Z test against a true mean ``shift`` away (normal)."""
    d = abs(shift) / sem
    return stats.norm.sf(Z - d) + stats.norm.cdf(-Z - d)


@pytest.mark.parametrize("name", paper_figures.CORE)
def test_every_core_figure_draws_a_titled_labelled_legended_figure(name, cache, tmp_path):
    import matplotlib.pyplot as plt

    mod = paper_figures.load(name)
    fig = mod.plot(data(name, cache))
    # the module's TITLE heads every figure (set by the plot or, if it set none, by @styled)
    assert fig._suptitle is not None and fig._suptitle.get_text().startswith(mod.TITLE)
    assert "paper_figures." + name in mod.main.__doc__
    for ax in fig.axes:
        assert ax.get_title(), f"{name}: a panel without a title"
        assert ax.get_xlabel() and ax.get_ylabel(), f"{name}: unlabelled axis"
        assert ax.get_legend() is not None, f"{name}: a panel without a legend"
    paths = common.save_figure(fig, tmp_path, name)
    plt.close(fig)
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert mod.TITLE and mod.CAPTION


def test_fig01_monte_carlo_means_agree_with_theorem1_and_detect_a_planted_bonus(cache):
    import scdsim
    from paper_figures.fig01_mc_convergence import chain_pair
    from scdsim import rules

    d = data("fig01_mc_convergence", cache)
    for c in d["curves"]:
        # two independent exact computations: the rule engine and the Thm 1 closed form
        assert c["exact"] == pytest.approx(c["theorem1"], abs=1e-12)
        assert abs(c["mean_rejections"] - c["exact"]) <= Z * c["sem_rejections"]
        # planted bug: Leviathan blocks of gamma = 4 (bonus positions never rejected)
        planted = scdsim.expected_rejections(chain_pair(100), rules.lossless, c["T"], gamma=4)
        assert z_power(planted - c["exact"], c["sem_rejections"]) >= 1 - FALSE_FAIL
        # the running mean ends at the full-sample mean
        assert c["mean"][-1] == pytest.approx(c["mean_rejections"], rel=1e-12)


def test_fig02_batch_mc_agrees_with_exact_and_the_M_curve_matches_theory_7_3(cache):
    d = data("fig02_batch_sd", cache)
    for c in d["convergence"]:
        assert abs(c["mean_rejections"] - c["exact"]) <= Z * c["sem_rejections"]
    by_batch = {(c["batch"], c["M"]): c for c in d["convergence"]}
    for M in (4, 5):  # the tree reading rejects less than the first-position reading
        assert by_batch[("tree", M)]["exact"] < by_batch[("first", M)]["exact"]
    cv = d["curve"]
    table = {1: 1.051400, 2: 0.926388, 3: 0.842704, 4: 0.785812, 5: 0.746647, 8: 0.686725,
             16: 0.654367, 64: 0.651050}  # reference notes §7.3, variant A (6 decimals)
    first = dict(zip(cv["M"], cv["first"]))
    for M, v in table.items():
        assert first[M] == pytest.approx(v, abs=5e-7)
    assert cv["limit"] == pytest.approx(0.651050, abs=5e-7)
    assert np.all(np.diff(cv["first"]) <= 1e-15)  # decreasing to the limit
    # variant B against the reference Monte Carlo of reference notes §7.3 (20,000 runs each)
    tree = dict(zip(cv["tree_M"], cv["tree"]))
    for M, (m, se) in {2: (0.8888, 0.0055), 4: (0.6970, 0.0048), 5: (0.6400, 0.0045)}.items():
        assert abs(tree[M] - m) <= Z * se
    # variant B keeps falling below variant A's limit (theory.md: 0.401 at M = 16, 0.189 at 64)
    mc = {x["M"]: x for x in cv["tree_mc"]}
    assert mc[64]["mean"] + Z * mc[64]["sem"] < cv["limit"]
    for M, ref in ((16, 0.401), (64, 0.189)):  # reference quoted to 3 decimals, 3,000 runs
        ref_se = math.sqrt(mc[M]["sem"] ** 2 * 2)  # same runs, same variance, both estimates
        assert abs(mc[M]["mean"] - ref) <= Z * ref_se + 5e-4


def test_fig03_batch_improvement_is_the_closed_form_and_theory_7_5(cache):
    d = data("fig03_batch_improvement", cache)
    M = np.asarray(d["M"])
    for c in d["bernoulli"] + d["uniform"]:
        np.testing.assert_allclose(c["improvement"], c["closed_form"], atol=1e-12)
        assert c["improvement"][0] == 0.0
        assert np.all(np.diff(c["improvement"]) >= -1e-15)
    # independent closed forms (reference notes §1.6), written out here
    b = {(x["draft"], x["target"]): np.asarray(x["improvement"]) for x in d["bernoulli"]}
    np.testing.assert_allclose(b[(0.2, 0.6)][:5], [0, .08, .144, .1952, .23616], atol=1e-12)
    np.testing.assert_allclose(b[(0.5, 0.9)][:5], [0, .2, .3, .35, .375], atol=1e-12)
    np.testing.assert_allclose(b[(0.7, 0.3)][:5], [0, .12, .204, .2628, .30396], atol=1e-12)
    u = {x["V"]: np.asarray(x["improvement"]) for x in d["uniform"]}
    np.testing.assert_allclose(u[4][:5], [0, .1875, .328125, .433594, .512695], atol=5e-7)
    np.testing.assert_allclose(u[32][:5], [0, .030273, .059601, .088012, .115535], atol=5e-7)
    for V, row in u.items():  # never above TV, approaching it
        assert np.all(row <= 1 - 1 / V + 1e-15)
    assert M[0] == 1


def test_fig04_front_is_the_line_rejection_plus_bias_equals_tv_and_opt_lies_on_it(cache):
    d = data("fig04_pareto_front", cache)
    eps = list(d["eps"])
    for ex in d["examples"]:
        r, b = np.asarray(ex["front_rejection"]), np.asarray(ex["front_bias"])
        np.testing.assert_allclose(b, np.maximum(0.0, ex["tv"] - r), atol=1e-7)
        for form in ("additive", "ratio"):
            opt = ex["points"][f"{form}/optimal"]
            uno = ex["points"][f"{form}/target"]
            np.testing.assert_allclose(opt["gap"], 0.0, atol=1e-12)
            assert np.all(np.asarray(uno["gap"]) >= -1e-12)
    # reference notes §7.4 Example 1: (form, eps) -> (P(reject), Loss*, UNO)
    ex1 = d["examples"][0]
    assert ex1["tv"] == pytest.approx(0.3, abs=1e-12)
    table = {("additive", 0.0): (0.3, 0.0, 0.15), ("additive", 0.1): (0.2, 0.1, 0.20),
             ("additive", 0.2): (0.1, 0.2, 0.25), ("additive", 0.4): (0.0, 0.3, 0.30),
             ("additive", 0.8): (0.0, 0.3, 0.30), ("ratio", 0.2): (0.2, 0.1, 0.20),
             ("ratio", 0.4): (0.1, 0.2, 0.25), ("ratio", 0.8): (0.0, 0.3, 0.30)}
    for (form, e), (rej, loss, uno) in table.items():
        i = eps.index(e)
        assert ex1["points"][f"{form}/optimal"]["rejection"][i] == pytest.approx(rej, abs=1e-12)
        assert ex1["points"][f"{form}/optimal"]["bias"][i] == pytest.approx(loss, abs=1e-12)
        assert ex1["points"][f"{form}/target"]["bias"][i] == pytest.approx(uno, abs=1e-12)
    # Example 2, additive eps = 0.1: P(reject) 0.2, Loss* 0.2, UNO 0.26
    ex2 = d["examples"][1]
    i = eps.index(0.1)
    assert ex2["points"]["additive/optimal"]["rejection"][i] == pytest.approx(0.2, abs=1e-12)
    assert ex2["points"]["additive/target"]["bias"][i] == pytest.approx(0.26, abs=1e-12)


def test_fig05_optimal_gammas_match_theory_7_1_and_the_engine_matches_eq1(cache):
    d = data("fig05_leviathan_speedup", cache)
    ref = {0.01: [(5, 1.875), (7, 2.297), (9, 2.972), (14, 4.232), (24, 7.486), (40, 12.542)],
           0.05: [(3, 1.630), (4, 1.921), (6, 2.353), (8, 3.092), (13, 4.674), (21, 6.600)],
           0.1: [(2, 1.458), (3, 1.674), (4, 1.981), (6, 2.470), (10, 3.431), (15, 4.479)]}
    assert d["alphas"] == [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    for c, rows in ref.items():
        opt = d["optimal"][str(c)]
        assert list(opt["gamma"]) == [g for g, _ in rows]
        np.testing.assert_allclose(opt["speedup"], [s for _, s in rows], atol=5e-4)
    for a, eng in zip(d["alphas"], d["engine_tokens"]):
        g = np.asarray(d["engine_gammas"], dtype=float)
        np.testing.assert_allclose(eng, (1 - a ** (g + 1)) / (1 - a), rtol=1e-10)
    # Leviathan Table 1 (c = 0): alpha 0.8, gamma 5 -> 3.69X tokens per call
    i = d["alphas"].index(0.8)
    assert d["tokens"][i][5] == pytest.approx(3.6893, abs=5e-5)


def test_fig06_scd_curves_match_theory_7_6_and_cost_more_than_sd(cache):
    from paper_figures.fig06_scd_acceleration import _curves

    rows = [(0.8, 4, 0.1, 2.3329, 2.2411, 2.4011), (0.7, 4, 0.1, 1.9474, 1.8487, 1.9808),
            (0.6, 3, 0.05, 1.8746, 1.8133, 1.8922), (0.9, 5, 0.02, 4.2144, 4.1836, 4.2596)]
    for lam, g, c, scd, always, sd in rows:  # reference notes §7.6 (4 decimals)
        cur = _curves(lam, g, c)
        assert cur["scd"] == pytest.approx(scd, abs=5e-5)
        assert cur["scd_always"] == pytest.approx(always, abs=5e-5)
        assert cur["sd"] == pytest.approx(sd, abs=5e-5)
    d = data("fig06_scd_acceleration", cache)
    for pan in d["panels"]:
        sd, scd, alw = (np.asarray(pan[k]) for k in ("sd", "scd", "scd_always"))
        assert np.all(alw <= scd + 1e-12) and np.all(scd <= sd + 1e-12)
        np.testing.assert_allclose(pan["scd_vs_cd"], scd * (1 + pan["c"]), rtol=1e-12)
    for r in d["ratio"]:
        assert r["ratio"][0] == pytest.approx(1.0, abs=1e-12)  # c = 0: no cost difference
        assert np.all(np.diff(r["ratio"]) <= 1e-12)


def test_fig07_multidraft_acceptance_matches_theory_7_5_and_the_lp(cache):
    d = data("fig07_multidraft_acceptance", cache)
    M = list(d["M"])
    bern = d["pairs"][0]
    assert bern["kind"] == "bernoulli"
    idx = [M.index(m) for m in (2, 3, 4, 5)]
    np.testing.assert_allclose(np.asarray(bern["recursive"])[idx], [.68, .744, .7952, .83616],
                               atol=1e-12)
    np.testing.assert_allclose(np.asarray(bern["optimal"])[idx], [.76, .888, .9904, 1.0],
                               atol=1e-12)
    np.testing.assert_allclose(np.asarray(bern["kseq"])[idx],
                               [.708062, .789674, .850077, .894194], atol=5e-7)
    for pr in d["pairs"]:
        rec, ks, opt = (np.asarray(pr[k]) for k in ("recursive", "kseq", "optimal"))
        assert rec[0] == pytest.approx(1 - pr["mean_tv"], abs=1e-12)  # M = 1: SD
        assert np.all(opt >= rec - 1e-12) and np.all(opt >= ks - 1e-12)
        assert np.all(np.diff(rec) >= -1e-12) and np.all(np.diff(opt) >= -1e-12)
        for m, lp in zip(pr["lp_M"], pr["lp"]):
            assert opt[M.index(m)] == pytest.approx(lp, abs=1e-7)
    unif = d["pairs"][1]  # target delta_0, draft Unif(8): every rule accepts iff a draft is 0
    expect = 1 - (1 - 1 / 8) ** np.asarray(M, dtype=float)
    for k in ("recursive", "kseq", "optimal"):
        np.testing.assert_allclose(unif[k], expect, atol=1e-12)
    assert any(pr["lp_M"] for pr in d["pairs"])


def test_fig08_iid_formula_holds_without_state_dependence_and_fails_with_it(cache):
    d = data("fig08_state_dependence", cache)
    T = d["horizon"]
    rels = {}
    for cv in d["curves"]:
        rel = np.asarray(cv["speedup"]) / np.asarray(cv["iid_speedup"]) - 1
        rels[cv["s"]] = rel
        # delta = 0: the same TV in both regimes, acceptances i.i.d.: only the cut last block
        assert abs(rel[0]) < 5.0 / T
        # the formula overstates the speedup, more with the spread
        assert np.all(np.diff(rel) < 1e-12)
    # i.i.d. regimes (s = 0.5): only the acceptance-conditioning effect, about 1 %
    assert np.all(np.abs(rels[0.5]) < 0.02)
    for s in (0.8, 0.95, 0.99):  # sticky regimes: larger gaps at every spread
        assert np.all(rels[s][1:] < rels[0.5][1:])
        assert rels[s][-1] < -0.05
    pm = d["pmf"]
    assert sum(pm["exact"]) == pytest.approx(1.0, abs=1e-12)
    assert sum(pm["iid"]) == pytest.approx(1.0, abs=1e-12)


def test_cache_key_depends_on_parameters_and_version_and_reuses_data(tmp_path, monkeypatch):
    import scdsim

    common.set_cache_dir(tmp_path)
    try:
        calls = []

        def fn(x):
            calls.append(x)
            return {"y": np.arange(3) * x, "nan": float("nan")}

        a = common.cached("figX", {"x": 2}, fn)
        b = common.cached("figX", {"x": 2}, fn)
        assert calls == [2] and a == b and a["y"] == [0, 2, 4] and a["nan"] is None
        common.cached("figX", {"x": 3}, fn)
        assert calls == [2, 3]
        k1 = common.cache_key("figX", {"x": 2})
        monkeypatch.setattr(scdsim, "__version__", "999")
        assert common.cache_key("figX", {"x": 2}) != k1
        assert len(list(tmp_path.glob("figX-*.json"))) == 2
        assert not list(tmp_path.glob("*.tmp"))
    finally:
        common.set_cache_dir(None)


def test_palette_is_distinct_in_greyscale():
    # luminance (ITU-R BT.709 on sRGB) of consecutive series differs: readable in greyscale
    def lum(h):
        r, g, b = (int(h[i:i + 2], 16) / 255 for i in (1, 3, 5))
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    ls = [lum(c) for c in common.PALETTE]
    assert all(abs(a - b) > 0.1 for a, b in zip(ls, ls[1:]))
    assert len(set(common.MARKERS)) == len(common.MARKERS)


def _cli(*args, cwd=None):
    import os

    env = {**os.environ, "SCDSIM_FIGURES_NO_VALIDATE": "1"}  # never a real-model run here
    return subprocess.run([sys.executable, "-m", "scdsim", "figures", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=600, env=env)


@pytest.mark.parametrize("args, word", [(["--only", "fig99"], "fig99"),
                                        (["--jobs", "0"], "--jobs"),
                                        (["--jobs", "two"], "--jobs")])
def test_figures_cli_rejects_bad_arguments_in_one_line_with_status_2(args, word):
    r = _cli(*args, "--out", "unused-dir")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and word in lines[0] and "Traceback" not in r.stderr


def test_figures_cli_writes_png_and_pdf_and_reuses_the_cache(tmp_path):
    out, cache_dir = tmp_path / "out", tmp_path / "cache"
    r = _cli("--quick", "--only", "3", "--only", "fig06", "--jobs", "2", "--out", str(out),
             "--cache-dir", str(cache_dir))
    assert r.returncode == 0, r.stderr
    for n in ("fig03_batch_improvement", "fig06_scd_acceleration"):
        assert (out / f"{n}.png").stat().st_size > 1000
        assert (out / f"{n}.pdf").stat().st_size > 1000
    files = sorted(p.name for p in cache_dir.iterdir())
    assert len(files) == 2 and all(f.endswith(".json") for f in files)
    mtimes = {p: p.stat().st_mtime_ns for p in cache_dir.iterdir()}
    r = _cli("--quick", "--only", "3,6", "--out", str(out), "--cache-dir", str(cache_dir))
    assert r.returncode == 0
    assert {p: p.stat().st_mtime_ns for p in cache_dir.iterdir()} == mtimes  # reused
    assert not list(out.glob("*.tmp")) and "2 figure(s) written" in r.stdout


def test_real_model_figures_are_skipped_with_one_reason_line_in_quick_mode(tmp_path):
    r = subprocess.run([sys.executable, "-m", "scdsim", "figures", "--quick", "--only", "9",
                        "--out", str(tmp_path), "--cache-dir", str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=600,
                       env={**__import__("os").environ, "SCDSIM_FIGURES_NO_VALIDATE": "1",
                            "SCDSIM_VALIDATE_DIR": str(tmp_path / "none"),
                            "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert r.returncode == 0, r.stderr
    line = [x for x in r.stdout.splitlines() if x.startswith("fig09")]
    assert len(line) == 1 and "skipped: no saved `scdsim validate` results" in line[0]
    assert not (tmp_path / "fig09_real_rejections.png").exists()


def test_figure_names_resolve_from_number_prefix_slug_and_full_name():
    assert paper_figures.resolve("1") == "fig01_mc_convergence"
    assert paper_figures.resolve("fig04") == "fig04_pareto_front"
    assert paper_figures.resolve("state_dependence") == "fig08_state_dependence"
    assert paper_figures.resolve("fig07_multidraft_acceptance") == "fig07_multidraft_acceptance"
    with pytest.raises(ValueError, match="unknown figure 'nope'"):
        paper_figures.resolve("nope")


def _synthetic_validate_dir(root, contrast, seed, n_prompts=12, gamma=4, n_tokens=60):
    """A result directory in the documented ``run_validate`` layout, from a toy SD process.

    Per verified position the rejection probability r ~ U(0.1, 0.5) and the outcome is drawn
    with that probability; rejected positions get a higher entropy, so the figures have
    something to show. Only the fields figures 9-11 read are written.
    """
    import json

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    inputs = {"target": "toy", "draft": "toy-draft", "rule": "lossless", "gamma": gamma,
              "contrast": contrast}
    lines = [json.dumps({"header": inputs})]
    zs, hist = [], np.zeros(gamma + 2)
    tot_obs = tot_exp = tot_var = 0.0
    for i in range(n_prompts):
        recs, k, block, obs, exp, var = [], 0, 0, 0, 0.0, 0.0
        while len(recs) < n_tokens:
            if k == gamma:
                recs.append({"kind": "bonus", "block": block, "entropy_p": 1.0})
                hist[k + 1] += 1
                k, block = 0, block + 1
                continue
            r = rng.uniform(0.1, 0.5)
            rej = rng.random() < r
            exp, var, obs = exp + r, var + r * (1 - r), obs + int(rej)
            recs.append({"kind": "recovered" if rej else "accepted", "block": block,
                         "pos_in_block": k, "rejection_prob": r, "tv": r,
                         "entropy_p": float(rng.gamma(4.0 if rej else 2.0, 0.5))})
            if rej:
                hist[k + 1] += 1
                k, block = 0, block + 1
            else:
                k += 1
        z = (obs - exp) / math.sqrt(var)
        zs.append(z)
        tot_obs, tot_exp, tot_var = tot_obs + obs, tot_exp + exp, tot_var + var
        lines.append(json.dumps({"prompt": i, "records": recs, "summary": {
            "rejections": obs, "expected_rejections": exp, "var_rejections": var, "z": z}}))
    pmf = hist / hist.sum()
    tpc = float(np.arange(gamma + 2) @ pmf)
    score = {"rejections": {"observed": tot_obs, "expected": tot_exp,
                            "z_pooled": (tot_obs - tot_exp) / math.sqrt(tot_var),
                            "z_per_prompt": zs, "ks_pvalue": float(stats.kstest(zs, "norm").pvalue)},
             "tokens_per_call": {"observed": tpc, "ci": [tpc - 0.1, tpc + 0.1],
                                 "block_mean": tpc, "block_mean_ci": [tpc - 0.1, tpc + 0.1]},
             "predictions": {"iid": {"tokens_per_call": tpc + 0.05},
                             "positional": {"tokens_per_call": tpc - 0.02}},
             "block_length_pmf": {"observed": pmf.tolist(), "iid": pmf.tolist(),
                                  "positional": pmf.tolist()}}
    (root / "prompts.jsonl").write_text("\n".join(lines) + "\n")
    (root / "summary.json").write_text(json.dumps({"inputs": inputs, "score": score}))


def test_real_model_figures_draw_saved_results_in_the_documented_layout(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    _synthetic_validate_dir(tmp_path / "runs" / "sd", contrast=None, seed=1)
    _synthetic_validate_dir(tmp_path / "runs" / "scd", contrast=0.5, seed=2)
    monkeypatch.setenv("SCDSIM_VALIDATE_DIR", str(tmp_path / "runs"))
    for name in paper_figures.REAL:
        mod = paper_figures.load(name)
        d = mod.compute(quick=False)
        assert "skipped" not in d, d.get("skipped")
        assert len(d["runs"]) == 2
        assert {r["label"].split()[0] for r in d["runs"]} == {"SD", "SCD"}
        fig = mod.plot(d)
        for ax in fig.axes:
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel() and ax.get_legend()
        common.save_figure(fig, tmp_path / "out", name)
        plt.close(fig)
    d9 = paper_figures.load("fig09").compute()
    for r in d9["runs"]:
        assert len(r["observed"]) == 12 and len(r["z"]) == 12
    d10 = paper_figures.load("fig10").compute()
    for r in d10["runs"]:  # the toy process gives rejected positions the higher entropy
        assert np.mean(r["rejected"]) > np.mean(r["accepted"])
    assert (tmp_path / "out" / "fig11_tokens_per_call.png").stat().st_size > 1000


def test_real_model_figures_skip_with_the_reason_when_nothing_is_saved(tmp_path, monkeypatch):
    monkeypatch.setenv("SCDSIM_VALIDATE_DIR", str(tmp_path / "nothing-here"))
    monkeypatch.chdir(tmp_path)
    for name in paper_figures.REAL:
        d = paper_figures.load(name).compute(quick=False)
        assert "no saved `scdsim validate` results" in d["skipped"]


def test_plot_helpers_draw_results_and_reject_bad_arguments():
    import matplotlib.pyplot as plt

    import scdsim
    from scdsim import chains, plotting, rules

    yin = chains.yin_example()
    res = scdsim.simulate(yin, rules.lossless, 4, runs=500, rng=0)
    ax = plotting.plot_running_mean(None, res, exact=1.0514)
    line = [ln for ln in ax.get_lines() if ln.get_label().startswith("Monte Carlo")][0]
    assert line.get_ydata()[-1] == pytest.approx(res.mean_rejections, rel=1e-12)
    with pytest.raises(ValueError, match="points must be an integer >= 2, got 1"):
        plotting.plot_running_mean(ax, res, points=1)
    bs = scdsim.block_stats(chains.bernoulli_pair(0.3, 0.0), rules.lossless, 200, 3)
    ax = plotting.plot_block_length_pmf(None, bs)
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == pytest.approx(2.0, abs=1e-12)  # two laws of total mass 1
    ax = plotting.plot_pareto_front(None, scdsim.pareto_front([.2, .3, .5], [.5, .3, .2], n=11))
    assert ax.get_xlabel() and ax.get_ylabel()
    plt.close("all")
