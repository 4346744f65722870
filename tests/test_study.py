"""The study end to end on the tiny preset: files, tables, resume, CLI, train/score apart."""
import json
import subprocess
import sys

import jax
import numpy as np
import pandas as pd
import pytest

from memjax import results as R
from memjax.config import override
from memjax.errors import ConfigError, FeatureError
from memjax.presets import PRESETS, get_preset
from memjax.study import prepare, run_study


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("tiny")
    return run_study(get_preset("tiny"), workdir, progress=False)


def test_run_directory_holds_every_documented_file(tiny_run):
    d = tiny_run.path
    for name in (R.CONFIG, R.POPULATION, R.EPOCHS, R.MODELS_CSV, R.MODELS_PARQUET, R.SUMMARY,
                 R.ARRAYS, R.REPORT, R.MANIFEST, "figures/scores.png", "figures/pairs.png",
                 "figures/roc.png",
                 "figures/examples.png", "figures/training.png"):
        assert (d / name).is_file(), name
    manifest = json.loads((d / R.MANIFEST).read_text())
    assert manifest["files"][R.MODELS_CSV]["sha256"] == R.sha256_file(d / R.MODELS_CSV)
    assert not list(d.glob(".*.tmp"))


def test_config_json_records_versions_prng_and_checksums(tiny_run):
    cfg = tiny_run.config
    assert cfg["config"]["name"] == "tiny"
    assert cfg["versions"]["jax"] and cfg["versions"]["flax"] and cfg["versions"]["optax"]
    assert cfg["prng"]["jax_default_prng_impl"]
    assert "fold_in" in cfg["prng"]["key_tree"]
    assert cfg["data"]["train"]["source"] == "embedded"
    assert all(len(v) == 64 for v in cfg["data"]["train"]["checksums"].values())


def test_models_table_is_tidy_and_complete(tiny_run):
    df = tiny_run.models
    assert len(df) == 4
    assert sorted(df["condition"]) == ["baseline", "baseline", "uf", "uf"]
    for col in ("init_seed", "order_seed", "canary_index", "canary_label", "val_acc",
                "epochs_trained", "valid", "M2", "M3", "M_score", "M3_t_p", "M3_U_p", "M6", "M12",
                "M13", "M14", "M15", "M7", "M9", "M10", "M11_clean", "PD_M", "PD_M_p", "PD_max",
                "PD_max_label"):
        assert col in df, col
    assert df["valid"].all()
    assert (df["val_acc"] > 0.5).all()
    # UF and baseline twins share keys: same canary, same seeds.
    uf, base = df[df.condition == "uf"], df[df.condition == "baseline"]
    np.testing.assert_array_equal(uf["init_seed"].to_numpy(), base["init_seed"].to_numpy())
    np.testing.assert_array_equal(uf["canary_index"].to_numpy(), base["canary_index"].to_numpy())
    pq = pd.read_parquet(tiny_run.path / R.MODELS_PARQUET)
    assert list(pq.columns) == list(df.columns)


def test_summary_and_arrays(tiny_run):
    s = tiny_run.summary
    assert {"M2", "M_score", "PD_M"} <= set(s["score"])
    assert {"mean_uf", "mean_base", "diff", "diff_lo", "diff_hi", "auc", "mw_p",
            "frac_above", "frac_above_lo", "frac_above_hi"} <= set(s.columns)
    assert tiny_run.arrays["PD_Mk"].shape == (4, 10)
    assert tiny_run.arrays["example/probe_ctrl"].shape[1:] == (28, 28, 1)
    assert len(tiny_run.epochs) == 4 * 2


def test_rerun_reuses_the_trained_population_and_gives_identical_results(tiny_run):
    before = (tiny_run.path / R.POPULATION).stat().st_mtime_ns
    again = run_study(get_preset("tiny"), tiny_run.path, progress=False)
    assert (tiny_run.path / R.POPULATION).stat().st_mtime_ns == before
    pd.testing.assert_frame_equal(again.models, tiny_run.models)


def test_cli_score_stage_rescores_from_disk(tiny_run):
    out = subprocess.run([sys.executable, "-m", "memjax.cli", "score", str(tiny_run.path),
                          "--no-progress"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "M_score" in out.stdout
    rescored = R.load(tiny_run.path)
    pd.testing.assert_frame_equal(rescored.models, tiny_run.models)


def test_cli_score_stats_only_recomputes_the_summary_without_scoring(tiny_run, tmp_path):
    import shutil

    from memjax.check import check_dir
    from memjax.study import resummarise

    run = tmp_path / "run"
    shutil.copytree(tiny_run.path, run)
    arrays_before = (run / R.ARRAYS).stat().st_mtime_ns
    report_before = (run / R.REPORT).read_text()
    out = subprocess.run([sys.executable, "-m", "memjax.cli", "score", str(run), "--stats-only"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "M_score" in out.stdout
    again = R.load(run)
    pd.testing.assert_frame_equal(again.summary, tiny_run.summary)
    assert (run / R.ARRAYS).stat().st_mtime_ns == arrays_before  # nothing rescored
    wall = [line for line in report_before.splitlines() if line.startswith("- wall time")]
    assert wall and wall[0] in (run / R.REPORT).read_text()  # recorded times kept
    assert check_dir(run).ok
    # The summary follows the models table: a changed score changes it.
    models = again.models.copy()
    models.loc[models["condition"] == "uf", "M_score"] += 10.0
    R.write_table(run / R.MODELS_CSV, models, parquet=True)
    with pytest.raises(R.ResultsError, match="damaged run: models.csv"):
        resummarise(run)  # the manifest still vouches for the old table
    (run / R.MANIFEST).unlink()  # deliberately accepting the edit
    shifted = resummarise(run).summary.set_index("score")
    assert shifted.loc["M_score", "diff"] == pytest.approx(
        tiny_run.summary.set_index("score").loc["M_score", "diff"] + 10.0)
    (run / R.SUMMARY).unlink()  # a lost summary is rebuilt from models.csv
    pd.testing.assert_frame_equal(resummarise(run).summary.set_index("score"), shifted)
    (run / R.MODELS_CSV).unlink()
    bad = subprocess.run([sys.executable, "-m", "memjax.cli", "score", str(run), "--stats-only"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "models.csv" in bad.stderr


def test_cli_rejects_bad_overrides_before_any_work(tmp_path):
    out = subprocess.run([sys.executable, "-m", "memjax.cli", "run", "tiny", "--set",
                          "train.epochs=0", "--workdir", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "train.epochs=0" in out.stderr
    assert not (tmp_path / "x").exists()


def test_presets_resolve_and_validate():
    from memjax.config import StudyConfig, validate

    for name in PRESETS:
        cfg = get_preset(name)
        if isinstance(cfg, StudyConfig):
            validate(cfg)
    assert set(PRESETS) >= {"tiny", "default", "paper-mnist-mlp", "paper-fashion-mlp",
                            "paper-cifar-cnn", "toy-rare-concept"}


def test_prepare_refuses_bad_feature_and_canary_before_compilation():
    cfg = get_preset("tiny")
    with pytest.raises(FeatureError, match="offset"):
        prepare(override(cfg, ["feature.offset=[25, 25]"]))
    with pytest.raises(ConfigError, match="out of range"):
        prepare(override(cfg, ['population.canary.method="indices"',
                               "population.canary.indices=[5000]"]))
    with pytest.raises(ConfigError, match="n_train"):
        prepare(override(cfg, ["data.n_train=999999"]))


def test_override_parses_types_and_refuses_unknown_fields():
    cfg = override(get_preset("tiny"), ["train.epochs=5", "train.learning_rate=0.001",
                                        'population.conditions=["uf"]', "feature.text=BOB"])
    assert cfg.train.epochs == 5 and cfg.train.learning_rate == 0.001
    assert cfg.population.conditions == ("uf",) and cfg.feature.text == "BOB"
    with pytest.raises(ConfigError, match="no field"):
        override(cfg, ["train.epoch=5"])
    with pytest.raises(ConfigError, match="integer"):
        override(cfg, ["train.epochs=2.5"])


def test_baselines_shared_across_placements_train_once_and_match_the_unshared_run(tmp_path):
    """A baseline never sees its canary's feature: P placements x S seeds train S baselines,
    each equal to the same baseline trained per placement, and every row is still scored."""
    from memjax.population import training_groups
    from memjax.study import train_stage
    from memjax.trainer import train_population

    cfg = override(get_preset("tiny"), ["population.canary.k=2", "train.epochs=1",
                                        'population.strategy="chunks"',
                                        "population.chunk_size=1"])
    prep = prepare(cfg)
    table = prep.table
    assert len(table) == 8  # 2 conditions x 2 placements x 2 seeds
    rows, inverse = training_groups(table)
    assert len(rows) == 6  # 4 UF models + one baseline per seed
    np.testing.assert_array_equal(training_groups(table, trajectories=True)[0], np.arange(8))
    result = train_stage(cfg, tmp_path, progress=False, prep=prep)
    assert result.n_models == 8 and result.timings["networks_trained"] == 6
    unshared = train_population(cfg.model.name, cfg.train, prep.inputs, prep.data,
                                strategy="chunks", chunk_size=1, progress=False)
    for a, b in zip(jax.tree.leaves(result.variables), jax.tree.leaves(unshared.variables)):
        np.testing.assert_array_equal(a, b)  # same single-model program: bitwise
    base = table.index[table.condition == "baseline"]
    for seed in (0, 1):
        same = base[table.loc[base, "init_seed"] == seed]
        assert len(same) == 2 and inverse[same[0]] == inverse[same[1]]
    _, summary = R.load_population(tmp_path / R.POPULATION)
    assert int(summary["networks_trained"]) == 6
    scored = run_study(cfg, tmp_path, progress=False)  # reuses the population
    assert len(scored.models) == 8 and scored.models["valid"].all()


def test_training_groups_keep_baselines_with_other_seeds_or_learning_rates_apart():
    from memjax.population import training_groups

    table = pd.DataFrame({
        "model": range(6), "condition": ["uf", "uf", "baseline", "baseline", "baseline", "baseline"],
        "init_seed": [0, 0, 0, 0, 0, 1], "order_seed": [0, 0, 0, 0, 0, 1],
        "lr_mult": [1.0, 1.0, 1.0, 1.0, 0.5, 1.0]})
    rows, inverse = training_groups(table)
    np.testing.assert_array_equal(rows, [0, 1, 2, 4, 5])
    np.testing.assert_array_equal(inverse, [0, 1, 2, 2, 3, 4])
