"""Population training rows (memjax strategies) and the JAX one-model loop, per model family."""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from memjax.bench.baselines import subprocess_row
from memjax.bench.machine import (EPOCH_TRAIN, EPOCH_VAL, MNIST_MEAN, MNIST_STD, PeakRSS,
                                  baseline_row, best_of, fresh, load_avg, logged, rates,
                                  scaled, train_flops)

if TYPE_CHECKING:
    from memjax.bench import BenchConfig

@dataclass(frozen=True)
class BenchData:
    """MNIST arrays for the bench: uint8 images [N, 28, 28, 1], int32 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    source: str


def load_mnist(n_train: int, data_dir: str | os.PathLike | None = None) -> BenchData:
    """The first `n_train` training and `n_train // 6` test images of MNIST (local files in
    `data_dir` if given, else the embedded subset)."""
    from memjax.data import load_dataset

    source = "local" if data_dir else "embedded"
    train = load_dataset("mnist", "train", source, data_dir).take(n_train)
    val = load_dataset("mnist", "test", source, data_dir).take(max(n_train // 6, 1))
    return BenchData(train.images, train.labels.astype(np.int32), val.images,
                     val.labels.astype(np.int32), source)


def population_inputs(n_models: int, labels: np.ndarray):
    """Stacked `ModelInputs` [M] of M UF models (seeds 0..M-1, the reference canary)."""
    from memjax.config import PopulationConfig, StudyConfig
    from memjax.population import build_table, model_inputs

    cfg = StudyConfig(population=PopulationConfig(n_seeds=n_models, conditions=("uf",)))
    table = build_table(cfg, labels, np.arange(len(labels)))
    return model_inputs(cfg, table, (28, 28, 1))


@contextlib.contextmanager
def eval_batch(size: int) -> Iterator[None]:
    """Sets `memjax.train.EVAL_BATCH` (read at trace time) so a bench-sized validation set is
    not padded to 1,000 images; restores it after."""
    from memjax import train

    old = train.EVAL_BATCH
    train.EVAL_BATCH = size
    try:
        yield
    finally:
        train.EVAL_BATCH = old



def precompile(model_name: str, cfg, inputs, data) -> float:
    """Compiles init, epoch and final for a chunk of `inputs` ahead of time; returns seconds."""
    from memjax.train import make_program

    program = make_program(model_name, cfg)
    t = time.perf_counter()
    program.init.lower(inputs, data).compile()
    state = program.init(inputs, data)
    program.epoch.lower(state, inputs, data, jnp.int32(0)).compile()
    program.final.lower(state).compile()
    return time.perf_counter() - t


def train_row(model_name: str, strategy: str, n_models: int, chunk: int, data: BenchData,
              roofline: float, *, min_seconds: float = 2.0, timed_models: int | None = None,
              end_to_end: bool = True) -> dict:
    """One population-training measurement.

    Steady state: `program.epoch` of one chunk of k models (`memjax.train.make_program`),
    compiled ahead of time, best of a few calls. End to end: one call of
    `memjax.trainer.train_population` with the strategy (1 epoch per chunk, so its per-chunk
    init, gather and transfer weigh ~20x more than in a real 60,000-image epoch).

    Args:
      strategy: "vmap", "chunks" or "sequential" (`chunk` models per call).
      n_models: the population size M the row stands for.
      timed_models: models trained end to end (default M; fewer for "sequential", whose
        per-model rate does not depend on M).
      end_to_end: also run `train_population` (skipped for the largest sweeps).
    Returns:
      A row: steady and end-to-end seconds per model-epoch, model-epochs/s, GFLOP/s, fraction
      of the roofline, compile seconds, peak RSS, retraces during the timed runs, load.
    """
    from memjax.config import TrainConfig
    from memjax.population import take
    from memjax.train import TRACE_COUNTS, make_program
    from memjax.trainer import make_train_data, train_population

    m = timed_models or n_models
    n_train, n_val = len(data.y_train), len(data.y_val)
    cfg = TrainConfig(epochs=1, early_stopping=False)
    row = {"section": "train", "model": model_name, "impl": "memjax", "strategy": strategy,
           "M": n_models, "chunk": chunk, "timed_models": m, "load": load_avg()}
    fresh()
    with eval_batch(n_val), PeakRSS() as rss:
        tdata = make_train_data(data.x_train, data.y_train, data.x_val, data.y_val,
                                MNIST_MEAN, MNIST_STD)
        inputs = population_inputs(max(m, chunk), data.y_train)
        chunk_inputs = take(inputs, np.arange(chunk))
        row["compile_s"] = round(precompile(model_name, cfg, chunk_inputs, tdata), 2)
        traces = TRACE_COUNTS["epoch"]
        program = make_program(model_name, cfg)
        state = [program.init(chunk_inputs, tdata)]

        def epoch() -> None:
            state[0], _ = program.epoch(state[0], chunk_inputs, tdata, jnp.int32(1))
            jax.block_until_ready(state[0])

        timing = best_of(epoch, min_seconds)
        del state[0]
        if end_to_end:
            res = train_population(model_name, cfg, take(inputs, np.arange(m)), tdata,
                                   strategy=strategy, chunk_size=chunk, progress=False)
            assert res.chunk_size == chunk, (res.chunk_size, chunk)
            row["e2e_s_per_model_epoch"] = round(scaled(res.timings["total"] / m, n_train), 4)
    row.update(rates(scaled(timing.best / chunk, n_train),
                      train_flops(model_name, EPOCH_TRAIN, EPOCH_VAL), roofline,
                      timing.cpu_share))
    row.update(median_s_per_model_epoch=round(scaled(timing.median / chunk, n_train), 4),
               repeats=timing.repeats, retraces=TRACE_COUNTS["epoch"] - traces,
               peak_rss_mb=rss.peak_mb, rss_delta_mb=rss.delta_mb, load_end=load_avg())
    return row



def jax_loop_row(model_name: str, data: BenchData, roofline: float, epochs: int = 3) -> dict:
    """One model, a jitted train step and a Python loop over steps (data on the device,
    parameters and optimiser state donated). Same model, Adam and batch size as memjax."""
    import optax

    from memjax.config import TrainConfig
    from memjax.models import build_model
    from memjax.train import make_optimizer

    fresh()
    cfg = TrainConfig()
    model, tx = build_model(model_name), make_optimizer(cfg)
    b = cfg.batch_size
    mean, std = jnp.float32(MNIST_MEAN[0]), jnp.float32(MNIST_STD[0])
    xs, ys = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    xv, yv = jnp.asarray(data.x_val), jnp.asarray(data.y_val)

    def prep(x_u8):
        return (x_u8.astype(jnp.float32) / 255.0 - mean) / std

    @jax.jit
    def init(key):
        params = model.init(key, jnp.zeros((1, 28, 28, 1)), train=False)["params"]
        return params, tx.init(params)

    def step(params, opt_state, idx):
        x, y = prep(xs[idx]), ys[idx]

        def loss_fn(p):
            logits = model.apply({"params": p}, x, train=True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    step = jax.jit(step, donate_argnums=(0, 1))

    @jax.jit
    def evaluate(params):
        logits = model.apply({"params": params}, prep(xv), train=False)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yv).mean()

    rng = np.random.default_rng(0)
    n = len(data.y_train)
    times, cpus = [], []
    with PeakRSS() as rss:
        params, opt_state = init(jax.random.PRNGKey(0))
        for _ in range(epochs):
            t, c = time.perf_counter(), time.process_time()
            order = rng.permutation(n)
            for i in range(0, n, b):  # a last partial batch is its own (one extra) shape
                params, opt_state, loss = step(params, opt_state, jnp.asarray(order[i:i + b]))
            float(evaluate(params))
            times.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
    return baseline_row(model_name, "jax-loop", times, cpus, n, len(data.y_val), roofline,
                         peak_rss_mb=rss.peak_mb)



def train_section(model_name: str, cfg: BenchConfig, data: BenchData, roofline: float,
                  log: Callable[[str], None] = print) -> list[dict]:
    """The chunk sweep (vmap of k models), the strategy table at each M, and the baselines."""
    from memjax.errors import ConfigError
    from memjax.models import model_family
    from memjax.strategy import available_memory_bytes, plan_chunk_size

    ks = cfg.mlp_ks if model_name.startswith("mlp") else cfg.cnn_ks
    ms = cfg.mlp_ms if model_name.startswith("mlp") else cfg.cnn_ms
    rows: list[dict] = []
    per_model_mb = 0.0  # RSS growth per model at the largest k so far (fixed costs included)
    for k in ks:  # the sweep: one call of k models = strategy "vmap" with M = k
        need_mb = per_model_mb * k
        if need_mb > 0.5 * available_memory_bytes() / 2**20:
            rows.append(logged({"section": "train", "model": model_name, "impl": "memjax",
                                 "strategy": "vmap", "M": k, "chunk": k,
                                 "skipped": f"needs about {need_mb / 1024:.1f} GiB"}, log))
            continue
        try:
            row = train_row(model_name, "vmap", k, k, data, roofline,
                            min_seconds=cfg.min_seconds, end_to_end=k <= 64)
        except ConfigError as e:  # the planner refuses what its memory estimate says won't fit
            rows.append(logged({"section": "train", "model": model_name, "impl": "memjax",
                                 "strategy": "vmap", "M": k, "chunk": k,
                                 "skipped": f"refused by the planner: {e}"}, log))
            continue
        per_model_mb = row["rss_delta_mb"] / k
        rows.append(logged(row, log))
    measured = {r["M"]: r for r in rows if "skipped" not in r}
    for m in ms:
        fits = [k for k in measured if k < m and m % k == 0]
        best_k = max(fits, key=lambda k: measured[k]["model_epochs_per_s"]) if fits else 1
        rows.append(logged(train_row(model_name, "chunks", m, best_k, data, roofline,
                                      min_seconds=cfg.min_seconds), log))
        family = model_family(model_name)
        k_auto = plan_chunk_size(m, "auto", None, 1, family, budget_bytes=1 << 40)
        rows.append({"section": "train", "model": model_name, "impl": "memjax", "strategy": "auto",
                     "M": m, "chunk": k_auto, "same_as": _same_as(rows, m, k_auto)})
    seq = min(cfg.seq_models, max(ms, default=1))
    if seq > 1:  # its per-model rate does not depend on M: timed on `seq` models
        rows.append(logged(train_row(model_name, "sequential", max(ms), 1, data, roofline,
                                      min_seconds=cfg.min_seconds, timed_models=seq), log))
    rows.append(logged(jax_loop_row(model_name, data, roofline, cfg.baseline_epochs), log))
    for impl in ("torch", "keras"):
        rows.append(logged(subprocess_row(impl, model_name, data, roofline,
                                           cfg.baseline_epochs), log))
    return rows


def _same_as(rows: list[dict], m: int, k: int) -> str:
    for r in rows:
        if r.get("chunk") == k and "skipped" not in r and r.get("strategy") != "auto" and (
                r["M"] == m or (r["strategy"] == "vmap" and r["M"] == k)):
            return f"{r['strategy']} M={r['M']} k={k}"
    return "not measured"




