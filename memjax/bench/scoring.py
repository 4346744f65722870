"""Scoring throughput: models x probes x 3 variants per second, against a per-model loop."""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import numpy as np

from memjax.bench.machine import (MNIST_MEAN, MNIST_STD, PeakRSS, best_of, forward_macs, fresh,
                                  load_avg, logged)
from memjax.bench.training import BenchData, population_inputs

if TYPE_CHECKING:
    from memjax.bench import BenchConfig

def scoring_row(n_models: int, n_probes: int, chunk: int, data: BenchData, roofline: float,
                model_name: str = "mlp", min_seconds: float = 0.0) -> dict:
    """`memjax.scoring.score_population` of M untrained models on P probes x 3 variants
    (speed does not depend on the weights; probes are training images, repeated to P)."""
    from memjax.config import FeatureConfig, TrainConfig
    from memjax.scoring import score_population
    from memjax.train import make_program
    from memjax.trainer import make_train_data

    fresh()
    program = make_program(model_name, TrainConfig(epochs=1, early_stopping=False))
    tdata = make_train_data(data.x_train, data.y_train, data.x_val, data.y_val,
                            MNIST_MEAN, MNIST_STD)
    inputs = population_inputs(n_models, data.y_train)
    variables = jax.device_get(program.final(program.init(inputs, tdata)))
    reps = math.ceil(n_probes / len(data.y_train))
    probes = np.tile(data.x_train, (reps, 1, 1, 1))[:n_probes].astype(np.float32) / 255.0
    labels = np.tile(data.y_train, reps)[:n_probes]
    y_star = np.asarray(data.y_train)[np.asarray(inputs.canary)]

    def score(p: int):
        return score_population(program, variables, inputs, y_star, probes[:p], labels[:p],
                                FeatureConfig(), mean=np.float32(MNIST_MEAN),
                                std=np.float32(MNIST_STD), batch_size=1000, chunk_size=chunk,
                                progress=False)

    with PeakRSS() as rss:
        t = time.perf_counter()
        score(min(1000, n_probes))  # compiles the batch step (same shapes as the timed run)
        first = time.perf_counter() - t
        timing = best_of(lambda: score(n_probes), min_seconds)
    per_batch = timing.best / (math.ceil(n_probes / 1000) * math.ceil(n_models / chunk))
    rate = n_probes * n_models / timing.best
    gflops = rate * 3 * 2 * forward_macs(model_name) / 1e9
    return {"section": "scoring", "model": model_name, "impl": "memjax",
            "strategy": "per-model loop" if chunk == 1 else f"chunks of {chunk}",
            "M": n_models, "P": n_probes, "chunk": chunk, "seconds": round(timing.best, 3),
            "probe_models_per_s": round(rate), "gflops": round(gflops, 1),
            "frac_roofline": round(gflops / roofline, 3),
            "cpu_share": round(timing.cpu_share, 2),
            "gflops_cpu": round(gflops / timing.cpu_share, 1),
            "compile_s": round(max(first - per_batch, 0.0), 2), "repeats": timing.repeats,
            "peak_rss_mb": rss.peak_mb, "load": load_avg()}


def scoring_rows(cfg: BenchConfig, data: BenchData, roofline: float,
                 log: Callable[[str], None] = print) -> list[dict]:
    """Scoring M models in one chunk vs a per-model loop (chunks of 1, fewer models)."""
    rows = [scoring_row(cfg.score_models, cfg.score_probes, cfg.score_models, data, roofline),
            scoring_row(cfg.score_loop_models, cfg.score_probes, 1, data, roofline)]
    return [logged(r, log) for r in rows]


