"""Sweeps: expansion, resume after SIGKILL without recomputation, shards into one directory."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from memjax import sweep
from memjax.errors import ConfigError

SPEC = Path(__file__).parent / "data" / "tiny_sweep.json"
CLI = [sys.executable, "-m", "memjax.cli", "sweep", str(SPEC), "--no-progress"]


def _stable(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["study", "model"]).reset_index(drop=True)


def test_expand_gives_grid_then_listed_studies():
    studies = sweep.expand(sweep.load_spec(SPEC))
    assert [s.name for s in studies] == ["learning_rate=0.0003", "learning_rate=0.001", "dropout",
                                         "crossed"]
    assert studies[1].config.train.learning_rate == 0.001
    assert studies[2].config.model.name == "mlp_dropout"
    assert all(s.config.train.epochs == 2 for s in studies)


def test_bad_specs_are_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"base": "tiny", "grid": {"train.epochs": []}}))
    with pytest.raises(ConfigError, match="grid"):
        sweep.expand(sweep.load_spec(bad))
    bad.write_text(json.dumps({"base": "tiny", "studies": [{"name": "a/../b", "set": []}]}))
    studies = sweep.expand(sweep.load_spec(bad))  # the name is slugged into one folder
    assert studies[0].name == "a_.._b" and "/" not in studies[0].name
    for name in ("../../x", ".", ".hidden", "chunks", "figures", "studies"):
        bad.write_text(json.dumps({"base": "tiny", "studies": [{"name": name}]}))
        with pytest.raises(ConfigError, match="may not start with"):
            sweep.expand(sweep.load_spec(bad))
    with pytest.raises(ConfigError, match="shard"):
        sweep.parse_shard("3/2")


@pytest.fixture(scope="module")
def uninterrupted(tiny_sweep):
    return tiny_sweep


def test_killed_sweep_resumes_to_the_same_table_without_recomputing(uninterrupted, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(CLI + ["--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    first = out / "studies" / "learning_rate=0.0003" / "MANIFEST.json"
    deadline = time.time() + 600
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # part-way: the first study is complete
    proc.wait()
    assert first.exists()
    done_before = first.stat().st_mtime_ns
    rerun = subprocess.run(CLI + ["--out", str(out)], capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr
    assert first.stat().st_mtime_ns == done_before  # not recomputed
    pd.testing.assert_frame_equal(_stable(pd.read_csv(out / sweep.COMBINED_MODELS)),
                                  _stable(pd.read_csv(uninterrupted / sweep.COMBINED_MODELS)))


def test_two_shard_workers_give_the_same_combined_table(uninterrupted, tmp_path):
    out = tmp_path / "sharded"
    procs = [subprocess.Popen(CLI + ["--out", str(out), "--shard", f"{i}/2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err
    pd.testing.assert_frame_equal(_stable(pd.read_csv(out / sweep.COMBINED_MODELS)),
                                  _stable(pd.read_csv(uninterrupted / sweep.COMBINED_MODELS)))


@pytest.mark.parametrize("name", sweep.shipped_specs())
def test_every_shipped_spec_expands_to_valid_studies(name):
    studies = sweep.expand(sweep.load_spec(name))  # validates every study's config
    assert studies and len({s.name for s in studies}) == len(studies)
    if name == "regularisation-memorised":
        assert all(s.config.population.canary.indices == (28030,) for s in studies)
        assert all(s.config.population.n_seeds == 64 for s in studies)


def test_paired_figure_draws_one_interval_per_study_and_score(uninterrupted, tmp_path):
    from memjax import sweep_plots

    summary = pd.read_csv(uninterrupted / sweep.COMBINED_SUMMARY)
    fig = sweep_plots.plot_paired_by_study(summary, ("M_score", "PD_M"), tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0
    assert len(fig.axes) == 2
    n_studies = summary["study"].nunique()
    assert [len(ax.get_xticks()) for ax in fig.axes] == [n_studies, n_studies]
    assert sweep_plots.plot_paired_by_study(summary.drop(columns="pair_diff")) is None


def test_combined_contrasts_compare_every_study_with_the_first(uninterrupted):
    from memjax.stats import contrast_studies

    models = pd.read_csv(uninterrupted / sweep.COMBINED_MODELS)
    contrasts = pd.read_csv(uninterrupted / sweep.COMBINED_CONTRASTS)
    assert set(contrasts["reference"]) == {"learning_rate=0.0003"}
    assert list(dict.fromkeys(contrasts["study"])) == ["learning_rate=0.001", "dropout", "crossed"]
    assert set(contrasts["score"]) == set(sweep.CONTRAST_SCORES)
    by = contrasts.set_index(["study", "score"])
    # One seed per study here: no interval from one unit; the crossed study is never contrasted.
    assert by.loc[("dropout", "M_score"), "method"].startswith("fewer than 2 seed pairs")
    assert by.loc[("crossed", "M_score"), "method"].startswith("crossed seeds")
    expected = contrast_studies(models, list(sweep.CONTRAST_SCORES),
                                reference="learning_rate=0.0003")
    pd.testing.assert_frame_equal(contrasts, expected, check_dtype=False)


def test_combine_deletes_the_contrasts_when_the_reference_study_is_no_longer_complete(
        uninterrupted, tmp_path):
    import shutil

    out = tmp_path / "sweep"
    shutil.copytree(uninterrupted, out)
    assert (out / sweep.COMBINED_CONTRASTS).is_file()
    # The reference (the spec's first study) loses its manifest, as after a rerun that was
    # killed mid-way: the others are still complete, but nothing may be contrasted with it.
    (out / "studies" / "learning_rate=0.0003" / "MANIFEST.json").unlink()
    combined = sweep.combine(out)
    assert "learning_rate=0.0003" not in set(combined["study"])
    assert set(combined["study"]) == {"learning_rate=0.001", "dropout", "crossed"}
    assert not (out / sweep.COMBINED_CONTRASTS).exists()  # never a stale table
    assert set(pd.read_csv(out / sweep.COMBINED_MODELS)["study"]) == set(combined["study"])


def test_contrasts_figure_draws_each_contrasted_study(uninterrupted, tmp_path):
    from memjax import sweep_plots

    contrasts = pd.read_csv(uninterrupted / sweep.COMBINED_CONTRASTS)
    assert sweep_plots.plot_contrasts(contrasts) is None  # one seed per study: nothing to draw
    table = pd.DataFrame({"study": ["a", "b", "c"], "reference": "plain", "score": "M_score",
                          "contrast": [-0.14, 0.13, np.nan], "contrast_lo": [-0.26, -0.01, np.nan],
                          "contrast_hi": [-0.03, 0.29, np.nan], "p": [0.015, 0.08, np.nan],
                          "p_holm": [0.045, 0.15, np.nan]})
    fig = sweep_plots.plot_contrasts(table, "M_score", tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 0
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "b"]
    assert "plain" in fig.axes[0].get_ylabel()


def test_dp_tradeoff_figure_adds_the_paired_panel_when_given_the_summary(uninterrupted):
    from memjax import sweep_plots
    from memjax.audit import audit_table

    models = pd.read_csv(uninterrupted / sweep.COMBINED_MODELS)
    summary = pd.read_csv(uninterrupted / sweep.COMBINED_SUMMARY)
    audit = pd.concat([audit_table(g, delta=1e-3).assign(study=s)
                       for s, g in models.groupby("study", sort=False)])
    assert len(sweep_plots.plot_dp_tradeoff(models, audit).axes) == 2
    fig = sweep_plots.plot_dp_tradeoff(models, audit, summary=summary)
    assert len(fig.axes) == 3
    n_studies = models["study"].nunique()
    assert len(fig.axes[0].lines) >= 1 and len(fig.axes[0].get_xticks()) == n_studies


def test_crossed_study_decomposes_into_init_order_and_residual(uninterrupted, tmp_path):
    from memjax import sweep_plots
    from memjax.seed_variance import crossed_decomposition

    models = pd.read_csv(uninterrupted / sweep.COMBINED_MODELS)
    crossed = models[models["study"] == "crossed"]
    assert len(crossed) == 8  # 2 init x 2 order seeds x (UF, baseline)
    assert crossed.groupby("condition")[["init_seed", "order_seed"]].nunique().eq(2).all().all()
    table = crossed_decomposition(models, ("M_score",), n_boot=50)
    assert set(table["study"]) == {"crossed"}  # the other studies vary no seed
    assert list(table["of"]) == ["uf", "baseline", "uf-baseline"]
    assert (table[["n_init", "n_order"]] == 2).all().all()
    # The same numbers as decomposing the 2 x 2 table of UF scores by hand.
    from memjax.seed_variance import decompose

    uf = crossed[crossed.condition == "uf"].pivot(index="init_seed", columns="order_seed",
                                                    values="M_score")
    by_hand = decompose(uf.to_numpy(), n_boot=50)
    row = table[table["of"] == "uf"].iloc[0]
    for key in ("var_init", "var_order", "var_residual", "mean_lo", "p_init"):
        assert row[key] == pytest.approx(by_hand[key], nan_ok=True)
    fig = sweep_plots.plot_crossed_components(table, "M_score", tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 0 and len(fig.axes[0].get_xticks()) == 3
    assert sweep_plots.plot_crossed_components(table, "M2") is None


def test_docs_figures_script_draws_from_sweep_directories(uninterrupted, tmp_path):
    """scripts/docs_figures.py on a runs folder whose sweeps are the tiny sweep."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "docs_figures", Path(__file__).parents[1] / "scripts" / "docs_figures.py")
    docs_figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs_figures)
    runs = tmp_path / "runs"
    runs.mkdir()
    for name in ("seed-variance", "dp", "regularisation"):
        (runs / name).symlink_to(uninterrupted, target_is_directory=True)
    out = tmp_path / "figs"
    assert docs_figures.main(["--runs", str(runs), "--out", str(out),
                              "--only", "seed-variance", "dp", "regularisation"]) == 0
    made = sorted(p.name for p in out.iterdir())
    assert made == ["dp_tradeoff.png", "full_mnist_crossed_components.png",
                    "regularisation_pairs.png"]
    assert all((out / name).stat().st_size > 1000 for name in made)
