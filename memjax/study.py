"""A study end to end: data + feature + population -> train -> score -> statistics -> files.

`train_stage(cfg, workdir)` and `score_stage(workdir)` run the two stages apart, with the
trained population on disk between them; `run_study(cfg, workdir)` runs both and skips training
when the run directory already holds a trained population of the same config.
"""
from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from memjax import results as R
from memjax.config import StudyConfig, from_dict, to_dict, validate
from memjax.data import STATS, Dataset, load_dataset, make_probes
from memjax.errors import ConfigError
from memjax.features import check_fits, render_feature
from memjax.models import model_family
from memjax.population import build_table, model_inputs, take, training_groups
from memjax.scoring import score_population
from memjax.sharding import is_writer
from memjax.stats import summarise, valid_mask
from memjax.train import ModelInputs, TrainData, make_program
from memjax.trainer import TrainResult, make_train_data, train_population

# Scores summarised UF vs baseline in summary.csv (the label-aware M score is -M3).
MAIN_SCORES = ("M2", "M_score", "M6", "M12", "M13", "M14", "M15", "PD_M", "PD_max", "M7", "M9", "M10")
SUMMARY_KEYS = ("epochs_trained", "best_epoch", "stopped", "diverged", "diverged_epoch")


@dataclass
class Prepared:
    """Everything both stages need, rebuilt deterministically from the config."""

    cfg: StudyConfig
    train: Dataset
    val: Dataset
    table: pd.DataFrame
    inputs: ModelInputs
    data: TrainData


def prepare(cfg: StudyConfig) -> Prepared:
    """Validates the config and loads the data; every check happens before compilation.

    Raises:
      ConfigError: invalid field, canary out of range, feature not fitting the image.
      DataError: data missing or corrupt.
    """
    validate(cfg)
    d = cfg.data
    train = load_dataset(d.dataset, "train", d.source, d.data_dir)
    val = load_dataset(d.dataset, "test", d.source, d.data_dir)
    for n, ds, field in ((d.n_train, train, "n_train"), (d.n_val, val, "n_val")):
        if n is not None and n > len(ds):
            raise ConfigError(f"data.{field}={n}: the {ds.split} split from {ds.source} has "
                              f"only {len(ds)} images")
    train, val = train.take(d.n_train), val.take(d.n_val)
    if cfg.train.batch_size > len(train):
        raise ConfigError(f"train.batch_size={cfg.train.batch_size}: larger than the training "
                          f"set ({len(train)} images)")
    if cfg.probes.n is not None:  # fail now, not at scoring after the training
        from memjax.data import PROBE_DATASET

        available = len(load_dataset(PROBE_DATASET[d.dataset], "train", cfg.probes.source,
                                     d.data_dir))
        if cfg.probes.n > available:
            raise ConfigError(f"probes.n={cfg.probes.n}: the probe source has only {available} "
                              f"images ({PROBE_DATASET[d.dataset]} from {cfg.probes.source})")
    check_fits(cfg.feature, train.shape)
    table = build_table(cfg, train.labels, train.example_index)
    inputs = model_inputs(cfg, table, train.shape)
    mean, std = STATS[d.dataset]
    data = make_train_data(train.images, train.labels, val.images, val.labels, mean, std,
                           trajectory=_trajectory_probes(cfg, train.shape))
    return Prepared(cfg, train, val, table, inputs, data)


def _trajectory_probes(cfg: StudyConfig, shape: tuple[int, int, int]):
    """The first `score.trajectory_probes` probes with their control patches (or None)."""
    n = cfg.score.trajectory_probes
    if n == 0:
        return None
    from memjax.features import control_bitmaps, feature_bitmap, render
    from memjax.train import TrajectoryProbes

    probes = make_probes(cfg.data.dataset, n=n, source=cfg.probes.source,
                         data_dir=cfg.data.data_dir)
    # The same control bitmaps as the final scoring's first n probes (same seed, prefix-stable).
    ctrl = control_bitmaps(n, feature_bitmap(cfg.feature).shape, cfg.probes.control_seed)
    mask, value = render(ctrl, shape, tuple(cfg.feature.offset), cfg.feature.scale,
                         cfg.feature.transparent)
    mean, std = STATS[cfg.data.dataset]
    if not (cfg.probes.standardise or shape[-1] == 3):
        mean, std = (0.0,) * shape[-1], (1.0,) * shape[-1]
    return TrajectoryProbes(x01=jnp.asarray(probes.images), labels=jnp.asarray(probes.labels, jnp.int32),
                            ctrl_mask=jnp.asarray(mask), ctrl_value=jnp.asarray(value),
                            mean=jnp.asarray(mean, jnp.float32), std=jnp.asarray(std, jnp.float32),
                            clip=cfg.score.clip)


def environment() -> dict:
    """Package versions, platform and JAX PRNG settings, recorded in every result."""
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("memjax", "jax", "jaxlib", "flax", "optax", "chex", "numpy", "scipy", "pandas",
                "tensorflow-datasets"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "versions": versions,
        "devices": [str(dev) for dev in jax.devices()],
        "prng": {
            "jax_default_prng_impl": str(jax.config.jax_default_prng_impl),
            "jax_threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
            "jax_enable_x64": bool(jax.config.jax_enable_x64),
            "key_tree": "root=PRNGKey(population.root_seed); init=fold_in(fold_in(root,0),init_seed);"
                        " order=fold_in(fold_in(root,1),order_seed); noise=fold_in(fold_in(root,2),"
                        "init_seed); see memjax/population.py",
        },
    }


def _config_record(prep: Prepared) -> dict:
    return {
        "config": to_dict(prep.cfg),
        "data": {
            "train": {"source": prep.train.source, "n": len(prep.train), "checksums": prep.train.checksums},
            "val": {"source": prep.val.source, "n": len(prep.val), "checksums": prep.val.checksums},
        },
        "n_models": len(prep.table),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **environment(),
    }


def read_config(workdir: str | Path) -> StudyConfig:
    """The StudyConfig recorded in a run directory's config.json."""
    path = Path(workdir) / R.CONFIG
    if not path.is_file():
        raise R.ResultsError(f"{path}: missing; run `memjax train` first")
    record = R.read_record(workdir)
    try:
        return from_dict(StudyConfig, record["config"])
    except (KeyError, TypeError, RecursionError) as e:
        raise R.ResultsError(f"{path}: unreadable config ({type(e).__name__}: {e})") from e


def _same_config(workdir: Path, cfg: StudyConfig) -> bool:
    try:
        return to_dict(read_config(workdir)) == to_dict(cfg)
    except (R.ResultsError, ConfigError):
        return False


def epochs_table(table: pd.DataFrame, result_metrics: dict[str, np.ndarray]) -> pd.DataFrame:
    """Tidy per-epoch metrics: one row per (model, epoch) that trained."""
    m, e = result_metrics["train_loss"].shape
    df = pd.DataFrame({"model": np.repeat(table["model"].to_numpy(), e),
                       "epoch": np.tile(np.arange(e), m)})
    for name, values in result_metrics.items():
        df[name] = values.reshape(-1)
    return df[np.isfinite(df["train_loss"]) | np.isfinite(df["val_loss"])].reset_index(drop=True)


def _sharding(cfg: StudyConfig):
    from memjax.sharding import ModelsSharding

    return ModelsSharding.over() if cfg.population.shard else None


def check_workdir(workdir: str | Path, kind: str = "run") -> Path:
    """`workdir` as a Path; ConfigError when it, or the nearest existing folder above it, is
    not a directory (so nothing is computed only to fail at the first write), or when it holds
    the other kind of result: a run (`kind` "run") never goes into a sweep directory, nor a
    sweep ("sweep") into a run directory, where `memjax check` would see only one of them."""
    workdir = Path(workdir)
    blocking = R.blocking_file(workdir)
    if blocking is not None:
        raise ConfigError(f"workdir {workdir}: {blocking} exists and is not a directory")
    other = (R.SWEEP_SPEC,) if kind == "run" else (R.CONFIG, R.MANIFEST)
    for name in other:
        if (workdir / name).exists():
            held = "a sweep" if name == R.SWEEP_SPEC else "a run"
            raise ConfigError(f"workdir {workdir}: holds {held} ({name}); a {kind} needs a "
                              "directory of its own")
    if kind == "run":
        for name in RUN_FILES:
            if (workdir / name).is_dir():
                raise ConfigError(f"workdir {workdir}: {workdir / name} is a directory where "
                                  "memjax writes a file; move it away")
        figures = workdir / R.FIGURES
        if (figures.exists() or figures.is_symlink()) and not figures.is_dir():
            raise ConfigError(f"workdir {workdir}: {figures} is not a directory, where memjax "
                              "writes the figures; move it away")
    return workdir


# The files of a run directory: scoring's (the manifest first) and training's outputs.
SCORE_FILES = (R.MANIFEST, R.REPORT, R.SUMMARY, R.MODELS_CSV, R.MODELS_PARQUET, R.ARRAYS)
TRAIN_FILES = (R.POPULATION, R.EPOCHS)
RUN_FILES = (R.CONFIG, *SCORE_FILES, *TRAIN_FILES)


def clear_outputs(workdir: Path, keep_training: bool = False) -> None:
    """Removes a run directory's outputs (the manifest first, so a kill leaves it incomplete)."""
    for name in SCORE_FILES + (() if keep_training else TRAIN_FILES):
        (workdir / name).unlink(missing_ok=True)
    if (workdir / R.FIGURES).is_dir():
        for f in (workdir / R.FIGURES).glob("*.png"):
            f.unlink()
    if not keep_training:
        for stale in (workdir / R.CHUNKS).glob("chunk-*.npz"):
            stale.unlink()


def train_stage(cfg: StudyConfig, workdir: str | Path, *, progress: bool = True,
                prep: Prepared | None = None) -> TrainResult:
    """Trains the population of `cfg` and writes config.json, population.npz and epochs.csv.

    With several processes (jax.distributed) every process trains its shards and only process
    0 writes; chunk checkpoints are then off.
    """
    workdir = check_workdir(workdir)
    prep = prep or prepare(cfg)
    p = cfg.population
    rows, inverse = training_groups(prep.table, cfg.score.trajectory_probes > 0)
    inputs = take(prep.inputs, rows)
    if not is_writer():
        return train_population(cfg.model.name, cfg.train, inputs, prep.data,
                                strategy=p.strategy, chunk_size=p.chunk_size, progress=False,
                                sharding=_sharding(cfg)).expand(inverse)
    workdir.mkdir(parents=True, exist_ok=True)
    chunks = workdir / R.CHUNKS
    if not _same_config(workdir, cfg):
        # Everything an earlier run of another config left (results, trained population,
        # chunks) goes before the new config.json is written: a kill in between must never
        # pair the new config with old weights.
        clear_outputs(workdir)
        R.write_json(workdir / R.CONFIG, _config_record(prep))
    else:
        # Same config, trained again (`memjax train` on a scored run): the scores, report and
        # manifest belong to the population about to be replaced.
        clear_outputs(workdir, keep_training=True)
    multi = jax.process_count() > 1
    result = train_population(cfg.model.name, cfg.train, inputs, prep.data,
                              strategy=p.strategy, chunk_size=p.chunk_size, progress=progress,
                              sharding=_sharding(cfg), checkpoint_dir=None if multi else chunks
                              ).expand(inverse)
    summary = population_summary(result)
    R.write_table(workdir / R.EPOCHS, epochs_table(prep.table, result.metrics))
    R.save_population(workdir / R.POPULATION, result.variables, summary)  # marks training done
    for done in [*chunks.glob("chunk-*.npz"), *chunks.glob("chunk-*.npz.corrupt")]:
        done.unlink()  # population.npz now holds them all (set-aside files were warned about)
    if chunks.is_dir() and not any(chunks.iterdir()):
        chunks.rmdir()
    return result


def population_summary(result: TrainResult) -> dict[str, np.ndarray]:
    """The per-model training summary saved beside the variables in population.npz."""
    summary = {k: getattr(result, k) for k in SUMMARY_KEYS}
    summary.update({f"metric_{k}": v for k, v in result.metrics.items()})
    summary["chunk_size"] = np.asarray(result.chunk_size)
    summary["networks_trained"] = np.asarray(result.timings.get("networks_trained",
                                                                result.n_models), np.int64)
    summary["train_seconds"] = np.asarray(result.timings["total"])
    summary["first_epoch_seconds"] = np.asarray(result.timings["first_epoch"])
    return summary


def _final_accuracy(summary: dict[str, np.ndarray], early_stopping: bool) -> np.ndarray:
    """Validation accuracy of the weights kept: the best epoch's, or the last trained epoch's."""
    acc = summary["metric_val_acc"]
    m = acc.shape[0]
    epoch = summary["best_epoch"] if early_stopping else summary["epochs_trained"] - 1
    epoch = np.clip(epoch, 0, acc.shape[1] - 1)
    return acc[np.arange(m), epoch]


def score_prepared(prep: Prepared, variables: dict, *, progress: bool = True,
                   clip: bool | None = None):
    """Scores `variables` [M, ...] (the study's population) on the study's probes.

    Args:
      prep: the study's `prepare(cfg)`.
      variables: Flax variables with a models axis, in the order of `prep.table`.
      clip: Keras' clipped KL; None takes `cfg.score.clip`.
    Returns:
      (probes, `memjax.scoring.ScoreOutput`): the probe set (`memjax.data.make_probes`) and
      every model's scores and per-probe values.
    """
    cfg = prep.cfg
    program = make_program(cfg.model.name, cfg.train)
    probes = make_probes(cfg.data.dataset, n=cfg.probes.n, source=cfg.probes.source,
                         data_dir=cfg.data.data_dir)
    mean, std = STATS[cfg.data.dataset]
    k = prep.train.shape[-1]
    y_star = prep.table["canary_label"].to_numpy()
    out = score_population(
        program, variables, prep.inputs, y_star, probes.images, probes.labels, cfg.feature,
        mean=np.asarray(mean), std=np.asarray(std),
        standardise=cfg.probes.standardise or k == 3,
        clip=cfg.score.clip if clip is None else clip,
        control_seed=cfg.probes.control_seed, batch_size=cfg.probes.batch_size,
        chunk_size=64 if model_family(cfg.model.name) == "mlp" else 16, progress=progress,
        sharding=_sharding(cfg), m10_reference=cfg.score.m10_reference,
    )
    return probes, out


def load_trained(workdir: str | Path, action: str, *, also: tuple[str, ...] = (),
                 prep: Prepared | None = None) -> tuple[StudyConfig, Prepared, dict, dict]:
    """A run directory's trained population, checked before use.

    config.json, population.npz and `also` must match MANIFEST.json when the run has one
    (`results.require_intact`), and the population's size the config's.

    Args:
      action: what the caller will do with it, for the messages ("rescore", "analyse").
      prep: the config's `prepare`, when the caller has it already.
    Returns:
      (cfg, prep, variables [M, ...], the saved training summary).
    Raises:
      ResultsError: a missing, unreadable or damaged file, or weights of another population.
    """
    workdir = Path(workdir)
    cfg = read_config(workdir)
    R.require_intact(workdir, (R.CONFIG, R.POPULATION, *also), action)
    prep = prep or prepare(cfg)
    variables, summary = R.load_population(workdir / R.POPULATION)
    _require_population_size(workdir, variables, len(prep.table))
    return cfg, prep, variables, summary


def score_stage(workdir: str | Path, *, progress: bool = True, prep: Prepared | None = None,
                trained: TrainResult | None = None) -> R.RunResults | None:
    """Scores the trained population in `workdir` and writes the tables, figures and report.

    `trained` (with `prep`) skips reading population.npz (multi-process runs score what they
    trained). Returns the loaded results on the writing process, None on the others.
    """
    workdir = check_workdir(workdir)
    if trained is not None and prep is not None:
        cfg = prep.cfg
        variables, summary = trained.variables, population_summary(trained)
    else:
        cfg, prep, variables, summary = load_trained(workdir, "rescore", prep=prep)
    probes, out = score_prepared(prep, variables, progress=progress)
    if not is_writer():
        return None
    (workdir / R.MANIFEST).unlink(missing_ok=True)  # an interrupted re-scoring shows incomplete
    table = prep.table.copy()
    for key in SUMMARY_KEYS:
        table[key] = summary[key]
    table["val_acc"] = _final_accuracy(summary, cfg.train.early_stopping)
    if cfg.train.dp:
        table["dp_epsilon"] = _dp_epsilons(cfg, len(prep.train), table["epochs_trained"])
    arrays: dict[str, np.ndarray] = {}
    for key, val in out.scores.items():
        val = np.asarray(val)
        if val.ndim == 1:
            table[key] = val
        else:
            arrays[key] = val
    table["valid"] = ~table["diverged"].astype(bool) & np.isfinite(table["M2"])
    if cfg.score.keep_per_probe:
        arrays.update({f"per_probe/{k_}": v for k_, v in out.per_probe.items()})
        arrays["probe_example_index"] = probes.example_index
    arrays.update(_examples(prep, probes, out.control, cfg))
    R.write_npz(workdir / R.ARRAYS, arrays)
    R.write_table(workdir / R.MODELS_CSV, table, parquet=True)
    return _write_summary(workdir, cfg, table, {
        "train_seconds": float(summary.get("train_seconds", np.nan)),
        "score_seconds": out.seconds})


def _write_summary(workdir: Path, cfg: StudyConfig, table: pd.DataFrame,
                   timings: dict[str, float]) -> R.RunResults:
    """summary.csv from the models table, then the figures, report and manifest."""
    from memjax import plotting, report

    R.write_table(workdir / R.SUMMARY, summarise(table, list(MAIN_SCORES),
                                                 n_boot=cfg.score.n_boot, seed=0))
    results = R.load(workdir)
    plotting.figures(results, workdir / R.FIGURES)
    R.write_bytes(workdir / R.REPORT, report.render(results, timings=timings).encode())
    R.write_manifest(workdir)
    return R.load(workdir)


def resummarise(workdir: str | Path) -> R.RunResults:
    """Recomputes summary.csv, the figures and the report of a scored run from its models
    table, without training or scoring again (e.g. after the statistics changed).

    The scores, models.csv and arrays.npz are left as they are; the report keeps the recorded
    wall times. The manifest is removed first, so an interrupted call leaves a run that
    `memjax check` reports incomplete, and rewritten last.

    Reads only config.json and models.csv, so it also rebuilds a lost summary.csv; but the new
    manifest vouches for every file it keeps, so each file the old MANIFEST.json lists (other
    than the summary, report and figures it rewrites) must still match it.

    Raises:
      ResultsError: the run is not scored (no models.csv), a file is corrupt, or a file changed
        or went missing since the manifest was written (delete MANIFEST.json to accept it).
    """
    import re

    workdir = check_workdir(workdir)
    cfg = read_config(workdir)
    if not (workdir / R.MODELS_CSV).is_file():
        raise R.ResultsError(f"{workdir / R.MODELS_CSV}: missing; score the run first "
                             f"(memjax score {workdir})")
    # Every file it keeps must be the one the manifest recorded: the new manifest vouches for
    # them all (population.npz, arrays.npz and epochs.csv included).
    R.require_intact(workdir, None, "recompute the statistics of",
                     rewrites=(R.SUMMARY, R.REPORT, R.FIGURES + "/"))
    models = R.read_table(workdir / R.MODELS_CSV)
    _require_models_table(workdir, models, R.read_record(workdir).get("n_models"))
    old = (workdir / R.REPORT).read_text() if (workdir / R.REPORT).is_file() else ""
    timings = {k: float(v) for k, v in re.findall(r"(train_seconds|score_seconds) ([0-9.]+|nan) s", old)}
    (workdir / R.MANIFEST).unlink(missing_ok=True)
    return _write_summary(workdir, cfg, models, timings)


def _require_population_size(workdir: Path, variables: dict, n_models: int) -> None:
    sizes = {np.shape(v)[0] if np.ndim(v) else None for v in jax.tree.leaves(variables)}
    if sizes != {n_models}:
        raise R.ResultsError(f"{workdir / R.POPULATION}: holds models of leading sizes "
                             f"{sorted(sizes, key=str)} but {R.CONFIG} describes {n_models} "
                             "models; they belong to different runs")


# Columns of models.csv that the statistics, the report and the figures read.
MODELS_COLUMNS = ("model", "condition", "valid", "diverged", *MAIN_SCORES)


def _require_models_table(workdir: Path, models: pd.DataFrame, n_models: Any) -> None:
    missing = [c for c in MODELS_COLUMNS if c not in models.columns]
    if missing:
        raise R.ResultsError(f"{workdir / R.MODELS_CSV}: missing columns {missing}")
    if isinstance(n_models, int) and len(models) != n_models:
        raise R.ResultsError(f"{workdir / R.MODELS_CSV}: {len(models)} rows but {R.CONFIG} "
                             f"says n_models={n_models}")
    try:
        valid_mask(models)
    except ValueError as e:
        raise R.ResultsError(f"{workdir / R.MODELS_CSV}: {e}") from e


def _dp_epsilons(cfg: StudyConfig, n_train: int, epochs_trained: pd.Series) -> np.ndarray:
    """The accountant's epsilon of each model (its own number of epochs trained)."""
    from memjax.accounting import config_epsilon

    cache = {int(e): config_epsilon(cfg.train, n_train, int(e)) if e > 0 else 0.0
             for e in set(epochs_trained)}
    return np.asarray([cache[int(e)] for e in epochs_trained])


def _examples(prep: Prepared, probes, control: np.ndarray, cfg: StudyConfig) -> dict:
    """A few images for the report: the canary with the feature, probes clean / UF / control."""
    from memjax.features import insert, render

    overlay = render_feature(cfg.feature, prep.train.shape)
    canary = int(prep.table["canary_index"].iloc[0])
    x = prep.train.images[canary].astype(np.float32) / 255.0
    n = min(4, probes.images.shape[0])
    clean = probes.images[:n]
    c_mask, c_value = render(control[:n], prep.train.shape, tuple(cfg.feature.offset),
                             cfg.feature.scale, cfg.feature.transparent)
    return {
        "example/canary_clean": x,
        "example/canary_uf": insert(x, overlay.mask, overlay.value),
        "example/probe_clean": clean,
        "example/probe_uf": insert(clean, overlay.mask, overlay.value),
        "example/probe_ctrl": insert(clean, c_mask, c_value),
    }


def run_study(cfg: StudyConfig, workdir: str | Path, *, progress: bool = True) -> R.RunResults:
    """Trains (unless already trained with this config) and scores; returns the loaded results."""
    workdir = check_workdir(workdir)
    prep = prepare(cfg)
    if jax.process_count() > 1:  # no file is read back: processes must decide alike
        trained = train_stage(cfg, workdir, progress=progress, prep=prep)
        return score_stage(workdir, progress=progress, prep=prep, trained=trained)
    if not ((workdir / R.POPULATION).is_file() and _same_config(workdir, cfg)):
        train_stage(cfg, workdir, progress=progress, prep=prep)
    elif progress:
        print(f"reusing the trained population in {workdir / R.POPULATION}", file=sys.stderr)
    return score_stage(workdir, progress=progress, prep=prep)
