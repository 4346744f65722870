"""Host side of population training: chunks, the epoch loop, progress, results.

The device runs one jitted, vmapped epoch per call (`memjax.train.make_program`); the host
loops over chunks of the models axis and over epochs, shows progress, stops a chunk when every
model in it has early-stopped or diverged, and gathers results as NumPy arrays.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from memjax.config import TrainConfig
from memjax.models import model_family
from memjax.population import take
from memjax.sharding import gather
from memjax.strategy import forward_bytes, per_model_bytes, plan_chunk_size, tree_bytes
from memjax.train import ModelInputs, TrainData, make_program

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")
TRAJECTORY_METRICS = ("traj_M2", "traj_M_score", "traj_PD_M")


@dataclass
class TrainResult:
    """A trained population, on the host.

    Attributes:
      variables: Flax variables with a leading models axis [M, ...] (best weights when early
        stopping is on).
      metrics: name -> float32 [M, E]: train_loss, train_acc, val_loss, val_acc per epoch
        (NaN for epochs a model did not train), and traj_M2, traj_M_score, traj_PD_M when the
        data carry trajectory probes.
      epochs_trained, best_epoch, diverged_epoch: int32 [M] (-1: none).
      stopped, diverged: bool [M].
      chunk_size: models per vmapped call.
      timings: seconds: "first_epoch" (includes compilation) and "total".
    """

    variables: dict
    metrics: dict[str, np.ndarray]
    epochs_trained: np.ndarray
    best_epoch: np.ndarray
    stopped: np.ndarray
    diverged: np.ndarray
    diverged_epoch: np.ndarray
    chunk_size: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def n_models(self) -> int:
        return int(self.epochs_trained.shape[0])

    def expand(self, inverse: np.ndarray) -> TrainResult:
        """The result for models whose network is trained network `inverse[m]` (int [M']);
        see `memjax.population.training_groups`."""
        timings = dict(self.timings, networks_trained=float(self.n_models))
        if np.array_equal(inverse, np.arange(self.n_models)):  # nothing shared: no copies
            return replace(self, timings=timings)
        take = lambda x: np.asarray(x)[inverse]  # noqa: E731
        return TrainResult(
            variables=jax.tree.map(take, self.variables),
            metrics={k: take(v) for k, v in self.metrics.items()},
            epochs_trained=take(self.epochs_trained), best_epoch=take(self.best_epoch),
            stopped=take(self.stopped), diverged=take(self.diverged),
            diverged_epoch=take(self.diverged_epoch), chunk_size=self.chunk_size,
            timings=timings,
        )


def make_train_data(x_train, y_train, x_val, y_val, mean, std, trajectory=None) -> TrainData:
    """Puts the dataset on the device once (uint8 images, int32 labels)."""
    return TrainData(
        x_train=jnp.asarray(x_train, jnp.uint8),
        y_train=jnp.asarray(y_train, jnp.int32),
        x_val=jnp.asarray(x_val, jnp.uint8),
        y_val=jnp.asarray(y_val, jnp.int32),
        mean=jnp.asarray(mean, jnp.float32),
        std=jnp.asarray(std, jnp.float32),
        trajectory=trajectory,
    )


def _one_model_inputs(data: TrainData) -> ModelInputs:
    """Abstract inputs [1] of one model (ShapeDtypeStructs, for `jax.eval_shape`)."""
    return ModelInputs(
        init_key=jax.ShapeDtypeStruct((1, 2), jnp.uint32),
        order_key=jax.ShapeDtypeStruct((1, 2), jnp.uint32),
        noise_key=jax.ShapeDtypeStruct((1, 2), jnp.uint32),
        canary=jax.ShapeDtypeStruct((1,), jnp.int32),
        insert=jax.ShapeDtypeStruct((1,), jnp.bool_),
        lr_mult=jax.ShapeDtypeStruct((1,), jnp.float32),
        feature_mask=jax.ShapeDtypeStruct((1,) + data.x_train.shape[1:], jnp.bool_),
        feature_value=jax.ShapeDtypeStruct((1,) + data.x_train.shape[1:], jnp.float32),
    )


def _abstract_model(program, data: TrainData) -> tuple[Any, dict]:
    """One model's training state [1, ...] and final variables [...] (no models axis), as
    ShapeDtypeStructs from `jax.eval_shape` (traces, compiles nothing)."""
    state = jax.eval_shape(program.init, _one_model_inputs(data), data)
    variables = jax.eval_shape(program.final, state)
    return state, jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), variables)


def estimate_model_bytes(model_name: str, cfg: TrainConfig, data: TrainData) -> int:
    """Device bytes of one model in the population program (abstract evaluation only).

    Counts the state, the larger of a training batch's activations and the peak of a
    validation batch (`train.EVAL_BATCH` images) or of the trajectory probes (x3 variants), and
    DP-SGD's per-example gradients (`memjax.strategy.per_model_bytes`).
    """
    from memjax.train import EVAL_BATCH

    program = make_program(model_name, cfg)
    state, variables = _abstract_model(program, data)
    shape = data.x_train.shape[1:]
    batch = jax.ShapeDtypeStruct((cfg.batch_size,) + shape, jnp.float32)
    activations = forward_bytes(program.model, variables, batch)
    n_val = min(EVAL_BATCH, data.x_val.shape[0])
    activations = max(activations, forward_bytes(
        program.model, variables, jax.ShapeDtypeStruct((n_val,) + shape, jnp.float32), "peak"))
    if data.trajectory is not None:
        n_traj = data.trajectory.x01.shape[0]
        activations = max(activations, 3 * forward_bytes(
            program.model, variables, jax.ShapeDtypeStruct((n_traj,) + shape, jnp.float32),
            "peak"))
    dp = cfg.batch_size * tree_bytes(state.params) if cfg.dp else 0
    return per_model_bytes(tree_bytes(state), activations, dp)


def train_population(
    model_name: str,
    cfg: TrainConfig,
    inputs: ModelInputs,
    data: TrainData,
    *,
    strategy: str = "auto",
    chunk_size: int | None = None,
    progress: bool = True,
    sharding: Any = None,
    checkpoint_dir: str | Path | None = None,
) -> TrainResult:
    """Trains every model of `inputs` [M] and returns their final state on the host.

    Args:
      model_name: a key of `memjax.models.MODELS`.
      cfg: the training configuration (shared by all models).
      inputs: stacked per-model inputs [M].
      data: the shared dataset (`make_train_data`).
      strategy, chunk_size: see `memjax.strategy.plan_chunk_size`.
      progress: show a progress bar over chunks x epochs.
      sharding: optional `memjax.sharding.ModelsSharding` to spread each chunk's models axis
        over devices.
      checkpoint_dir: if given, each finished chunk is saved there (atomically) and chunks
        already saved by an earlier, interrupted call with the same chunking are loaded instead
        of retrained. The caller guarantees the folder belongs to the same config.
    Returns:
      TrainResult with arrays of leading size M (chunk padding removed).
    """
    program = make_program(model_name, cfg)
    m = int(inputs.canary.shape[0])
    n_dev = sharding.n_devices if sharding is not None else 1
    if sharding is not None:
        data = sharding.replicate(data)
    host = gather if sharding is not None else jax.device_get
    k = plan_chunk_size(m, strategy, chunk_size, estimate_model_bytes(model_name, cfg, data),
                        model_family(model_name), n_devices=n_dev)
    n_chunks = math.ceil(m / k)
    e_max = cfg.epochs
    names = METRICS + (TRAJECTORY_METRICS if data.trajectory is not None else ())
    metrics = {name: np.full((m, e_max), np.nan, np.float32) for name in names}
    expected: dict[str, tuple] = {}  # a checkpoint's weight shapes, filled when one is found
    outs: list[dict] = []
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    bar = tqdm(total=n_chunks * e_max, desc=f"train {model_name} x{m}", unit="epoch",
               disable=not progress, leave=False)
    for c in range(n_chunks):
        rows = np.arange(c * k, min((c + 1) * k, m))
        ckpt = _chunk_path(checkpoint_dir, k, c, n_chunks, m) if checkpoint_dir else None
        loaded = None
        if ckpt is not None and ckpt.exists():
            expected = expected or _expected_chunk(program, data)
            loaded = _load_chunk(ckpt, len(rows), e_max, names, expected)
        if loaded is not None:
            out, chunk_metrics = loaded
            for name in names:
                metrics[name][rows] = chunk_metrics[name]
            outs.append(out)
            bar.update(e_max)
            continue
        padded = np.concatenate([rows, np.full(k - len(rows), rows[-1])])  # fixed shape: no retrace
        chunk_inputs = take(inputs, padded)
        if sharding is not None:
            chunk_inputs = sharding.shard_models(chunk_inputs)
        state = program.init(chunk_inputs, data)
        for epoch in range(e_max):
            state, met = program.epoch(state, chunk_inputs, data, jnp.int32(epoch))
            done, met = host((state.stopped | state.diverged, met))
            for name in names:
                metrics[name][rows, epoch] = np.asarray(met[name])[: len(rows)]
            if "first_epoch" not in timings:
                timings["first_epoch"] = time.perf_counter() - t0
            bar.update(1)
            if done.all():
                bar.update(e_max - epoch - 1)
                break
        variables = host(program.final(state))
        summary = host({
            "epochs_trained": state.epochs_trained, "best_epoch": state.best_epoch,
            "stopped": state.stopped, "diverged": state.diverged,
            "diverged_epoch": state.diverged_epoch,
        })
        n = len(rows)
        out = jax.tree.map(lambda x: np.asarray(x)[:n], {"variables": variables, **summary})
        if ckpt is not None:
            _save_chunk(ckpt, out, {name: metrics[name][rows] for name in names})
        outs.append(out)
    bar.close()
    timings["total"] = time.perf_counter() - t0
    merged = jax.tree.map(lambda *xs: np.concatenate(xs, axis=0), *outs)
    return TrainResult(
        variables=merged["variables"],
        metrics=metrics,
        epochs_trained=merged["epochs_trained"],
        best_epoch=merged["best_epoch"],
        stopped=merged["stopped"],
        diverged=merged["diverged"],
        diverged_epoch=merged["diverged_epoch"],
        chunk_size=k,
        timings=timings,
    )


def _chunk_path(folder: str | Path, k: int, c: int, n_chunks: int, m: int) -> Path:
    return Path(folder) / f"chunk-m{m}-k{k}-{c:05d}-of-{n_chunks:05d}.npz"


def _save_chunk(path: Path, out: dict, chunk_metrics: dict[str, np.ndarray]) -> None:
    from memjax.results import write_tree

    write_tree(path, {"out": out, "metrics": chunk_metrics})


SUMMARY_KEYS = ("epochs_trained", "best_epoch", "stopped", "diverged", "diverged_epoch")


def _expected_chunk(program, data: TrainData) -> dict[str, tuple]:
    """"variables/..." path -> (per-model shape, dtype) of a chunk checkpoint's weights."""
    from flax import traverse_util

    _, variables = _abstract_model(program, data)
    flat = traverse_util.flatten_dict({"variables": variables}, sep="/")
    return {k: (tuple(v.shape), np.dtype(v.dtype)) for k, v in flat.items()}


def _check_chunk(out: dict, chunk_metrics: dict, n_rows: int, n_epochs: int,
                 names: tuple[str, ...], expected: dict[str, tuple]) -> None:
    """Raises ValueError unless a loaded chunk has this run's models, epochs and weights."""
    from flax import traverse_util

    for key in SUMMARY_KEYS:
        if np.shape(out.get(key)) != (n_rows,):
            raise ValueError(f"{key} has shape {np.shape(out.get(key))}, expected ({n_rows},)")
    for name in names:
        if np.shape(chunk_metrics.get(name)) != (n_rows, n_epochs):
            raise ValueError(f"metric {name} has shape {np.shape(chunk_metrics.get(name))}, "
                             f"expected ({n_rows}, {n_epochs})")
    flat = traverse_util.flatten_dict({"variables": out.get("variables") or {}}, sep="/")
    if set(flat) != set(expected) or not flat:
        raise ValueError(f"weights {sorted(flat)[:3]}... do not match this model's "
                         f"{sorted(expected)[:3]}...")
    for k, (shape, dtype) in expected.items():
        v = np.asarray(flat[k])
        if v.shape != (n_rows,) + shape or v.dtype != dtype:
            raise ValueError(f"{k} is {v.dtype}{list(v.shape)}, expected {dtype}{[n_rows, *shape]}")


def _load_chunk(path: Path, n_rows: int, n_epochs: int, names: tuple[str, ...],
                expected: dict[str, tuple]) -> tuple[dict, dict[str, np.ndarray]] | None:
    """A finished chunk's (out, metrics), or None when the file is corrupt or incomplete.

    A bad checkpoint (a damaged disk, a file from another program version) is renamed to
    `<name>.corrupt` with a warning and its chunk is trained again; it never stops a resume
    and is never merged into the results.
    """
    from memjax.results import ResultsError, read_tree

    try:
        tree = read_tree(path)
        out, chunk_metrics = tree.get("out", {}), tree.get("metrics", {})
        _check_chunk(out, chunk_metrics, n_rows, n_epochs, names, expected)
    except (ResultsError, KeyError, IndexError, TypeError, ValueError) as e:
        bad = path.with_name(path.name + ".corrupt")
        os.replace(path, bad)
        warnings.warn(f"chunk checkpoint {path.name} is unusable ({e}); moved to {bad.name} "
                      "and training that chunk again", stacklevel=3)
        return None
    return out, chunk_metrics
