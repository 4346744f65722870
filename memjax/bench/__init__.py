"""Benchmarks: population training, scoring and the toy, side by side with one model at a time.

Every measurement is one small function returning a dict (one row of the report); `run_bench`
runs them in order and `format_report` turns the rows into the markdown of docs/benchmarks.md.
`scripts/bench.py` is the launcher (``python scripts/bench.py [--quick] [--only ...]``).

Modules: `machine` (FLOPs, roofline, timings, peak RSS, rates), `training` (population rows and
the JAX one-model loop), `baselines` (PyTorch and Keras in subprocesses), `toy`, `scoring`,
`report` (merging runs, targets, markdown); this module holds the sizes and `run_bench`.

How the numbers are made (they are printed with every table):

- FLOPs are analytical: forward = 2 x multiply-adds of the layers, a training example = 3 x
  forward, a validation or probe image = 1 x forward (`forward_macs`; XLA's cost analysis of the
  forward pass is reported beside it as a check).
- A "model-epoch" is 60,000 training + 10,000 validation images (MNIST as the reference
  trained it, validation every epoch). To keep the bench short, each run times `n_train`
  images + `n_train // 6` validation images and scales to a full epoch.
- Compilation is timed apart: every program is compiled ahead of time (``lower().compile()``,
  which fills the same cache the jitted call uses), then the timed run must not trace again
  (the row's ``retraces`` counts traces of the per-model epoch during the timed runs: 0).
- Population runs call `memjax.trainer.train_population` itself, so host-side costs (chunk
  gathering, init, final, device_get) are part of the time.
- PyTorch and Keras run in subprocesses (their own thread pools and peak RSS).
- The machine is shared: each row records the 1-minute load average; each timing is the best
  of a few repeats.

Shapes: M models, k models per vmapped call, N training images, V validation images, P probes.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from memjax.bench.baselines import run_worker, subprocess_row, worker
from memjax.bench.machine import (EPOCH_TRAIN, EPOCH_VAL, MNIST_MEAN, MNIST_STD, PEAK_H200,
                                  PeakRSS, Timing, best_of, forward_macs, load_avg,
                                  machine_info, matmul_roofline, toy_forward_macs,
                                  xla_forward_flops)
from memjax.bench.report import data_source, format_report, merge_results, targets
from memjax.bench.scoring import scoring_row, scoring_rows
from memjax.bench.toy import toy_rows
from memjax.bench.training import (BenchData, jax_loop_row, load_mnist, population_inputs,
                                   precompile, train_row, train_section)

__all__ = [
    "BenchConfig", "BenchData", "EPOCH_TRAIN", "EPOCH_VAL", "FULL", "MNIST_MEAN", "MNIST_STD",
    "PEAK_H200", "PeakRSS", "QUICK", "SECTIONS", "TINY", "Timing", "best_of", "format_report",
    "forward_macs", "jax_loop_row", "load_avg", "load_mnist", "machine_info", "matmul_roofline",
    "merge_results", "population_inputs", "precompile", "run_bench", "run_worker", "scoring_row",
    "scoring_rows", "subprocess_row", "targets", "toy_forward_macs", "toy_rows", "train_row",
    "train_section", "worker", "xla_forward_flops",
]

@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one bench run (`QUICK` for a smoke run, `FULL` for docs/benchmarks.md).

    Attributes:
      mlp_train, cnn_train: training images timed per epoch (validation: a sixth of it).
      mlp_ks, cnn_ks: models per vmapped call swept (strategy "vmap" on k models).
      mlp_ms, cnn_ms: population sizes of the strategy table.
      seq_models: models actually timed for the sequential strategy (its per-model rate does
        not depend on M).
      toy_runs, toy_loop_runs: runs of the vmapped toy program, and of the per-run loops.
      toy_chunk: runs per call of the chunked toy row (timed on at most 8 chunks).
      score_models, score_probes, score_loop_models: scoring sizes (probes x 3 variants).
      baseline_epochs: epochs of the one-model baselines (the first includes warm-up).
      min_seconds: repeat a timing until this much time was spent (at most 3 repeats).
    """

    mlp_train: int = 3072
    cnn_train: int = 384
    mlp_ks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 256)
    cnn_ks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    mlp_ms: tuple[int, ...] = (8, 64, 256)
    cnn_ms: tuple[int, ...] = (8, 64)
    seq_models: int = 8
    toy_runs: int = 500
    toy_loop_runs: int = 25
    toy_chunk: int = 8
    score_models: int = 16
    score_probes: int = 50_000
    score_loop_models: int = 2
    baseline_epochs: int = 3
    min_seconds: float = 2.0


FULL = BenchConfig()
QUICK = BenchConfig(mlp_train=1024, cnn_train=128, mlp_ks=(1, 8), cnn_ks=(1, 4), mlp_ms=(8,),
                    cnn_ms=(), seq_models=2, toy_runs=32, toy_loop_runs=4, score_models=4,
                    score_probes=2000, score_loop_models=1, baseline_epochs=2, min_seconds=0.5)
TINY = BenchConfig(mlp_train=256, cnn_train=128, mlp_ks=(1, 2), cnn_ks=(1,), mlp_ms=(2,),
                   cnn_ms=(), seq_models=1, toy_runs=4, toy_loop_runs=1, score_models=2,
                   score_probes=1000, score_loop_models=1, baseline_epochs=2, min_seconds=0.0)
SECTIONS = ("roofline", "mlp", "cnn", "toy", "scoring")


def run_bench(cfg: BenchConfig = FULL, only: tuple[str, ...] = SECTIONS,
              data_dir: str | os.PathLike | None = None,
              log: Callable[[str], None] = print) -> dict:
    """Runs the sections in `only` and returns {"machine", "config", "rows", "targets"}."""
    t0 = time.perf_counter()
    info = machine_info()
    log(f"machine: {info}")
    roof = matmul_roofline(min_seconds=cfg.min_seconds / 2)
    log(f"roofline: {roof}")
    rows: list[dict] = [roof]
    r = roof["gflops"]
    if "mlp" in only or "scoring" in only:
        mlp_data = load_mnist(cfg.mlp_train, data_dir)
    if "mlp" in only:
        rows += train_section("mlp", cfg, mlp_data, r, log)
    if "cnn" in only:
        rows += train_section("cnn2", cfg, load_mnist(cfg.cnn_train, data_dir), r, log)
    if "toy" in only:
        rows += toy_rows(cfg, r, log)
    if "scoring" in only:
        rows += scoring_rows(cfg, mlp_data, r, log)
    info.update(load_end=load_avg(), seconds=round(time.perf_counter() - t0, 1),
                data_source=data_source(data_dir),
                xla_forward_flops={m: xla_forward_flops(m) for m in ("mlp", "cnn2")},
                analytic_forward_flops={m: 2 * forward_macs(m) for m in ("mlp", "cnn2")})
    return {"machine": info, "config": {**cfg.__dict__, "sections": list(only)}, "rows": rows,
            "targets": targets(rows)}


