"""The toy experiment's MLP: R runs in one program against per-run loops in JAX and PyTorch."""
from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from memjax.bench.baselines import run_worker
from memjax.bench.machine import PeakRSS, best_of, fresh, load_avg, logged, toy_forward_macs

if TYPE_CHECKING:
    from memjax.bench import BenchConfig

def toy_rows(cfg: BenchConfig, roofline: float, log: Callable[[str], None] = print) -> list[dict]:
    """The toy's MLP: R runs in one vmapped program vs per-run loops in JAX and PyTorch."""
    from memjax.toy import ToyConfig, make_population_fn, make_toy_data, run_keys, train_run

    toy = ToyConfig(sigmas=(0.25,), n_runs=cfg.toy_runs)
    raw = make_toy_data(toy, 0.25)
    data = {k: jnp.asarray(raw[k]) for k in ("x", "y", "clean", "unique")}
    n_points = int(data["x"].shape[0])
    flops_run = 6.0 * toy_forward_macs(toy.layer_sizes) * n_points * toy.epochs
    keys = run_keys(toy, 0)
    rows = []
    fresh()
    with PeakRSS() as rss:
        fn = make_population_fn(dataclasses.replace(toy, runs_axis="vmap"))
        t = time.perf_counter()
        fn.lower(keys, data).compile()
        compile_s = time.perf_counter() - t
        timing = best_of(lambda: jax.block_until_ready(fn(keys, data)), cfg.min_seconds)
    rows.append(_toy_row("memjax vmap", cfg.toy_runs, cfg.toy_runs, timing.best, timing.cpu,
                         flops_run, roofline, compile_s=round(compile_s, 2),
                         repeats=timing.repeats, peak_rss_mb=rss.peak_mb))

    def chunked_row(impl: str, fn: Callable, size: int, n_calls: int) -> dict:
        """`fn` compiled for calls of `size` runs, timed on up to `n_calls` calls."""
        chunks = [keys[i:i + size] for i in range(0, min(cfg.toy_runs, n_calls * size), size)]
        t = time.perf_counter()
        fn.lower(chunks[0], data).compile()
        compile_s = time.perf_counter() - t
        timing = best_of(lambda: [jax.block_until_ready(fn(c, data)) for c in chunks], 0.0)
        return _toy_row(impl, cfg.toy_runs, sum(len(c) for c in chunks), timing.best,
                        timing.cpu, flops_run, roofline, compile_s=round(compile_s, 2))

    k = cfg.toy_chunk
    if k < cfg.toy_runs:  # ToyConfig.chunk_size = k: the same program on chunks of k runs
        rows.append(chunked_row(f"memjax vmap, chunks of {k}", fn, k, 8))
    # runs_axis="map" (the CPU default): lax.map of unbatched runs, in calls of toy_loop_runs.
    fresh()
    r = min(cfg.toy_loop_runs, cfg.toy_runs)
    rows.append(chunked_row(f"memjax lax.map, calls of {r}",
                            make_population_fn(dataclasses.replace(toy, runs_axis="map")), r, 2))
    fresh()
    one = jax.jit(lambda key, d: train_run(key, d, toy))
    d2 = {"x": data["x"], "y": data["y"]}
    t = time.perf_counter()
    one.lower(keys[0], d2).compile()
    compile_s = time.perf_counter() - t
    r = cfg.toy_loop_runs
    timing = best_of(lambda: [jax.block_until_ready(one(keys[i], d2)) for i in range(r)], 0.0)
    rows.append(_toy_row("jax loop", cfg.toy_runs, r, timing.best, timing.cpu, flops_run,
                         roofline, compile_s=round(compile_s, 2)))
    rows.append(_toy_torch_row(toy, raw, cfg, flops_run, roofline))
    return [logged(row, log) for row in rows]


def _toy_row(impl: str, runs: int, timed: int, seconds: float, cpu: float, flops_run: float,
             roofline: float, **extra) -> dict:
    """A toy row: `seconds` wall and `cpu` process seconds for `timed` of the `runs` runs."""
    per_run = seconds / timed
    gflops = flops_run / per_run / 1e9
    share = cpu / (seconds * (os.cpu_count() or 1))
    return {"section": "toy", "impl": impl, "runs": runs, "timed_runs": timed,
            "s_per_run": round(per_run, 5), "s_for_runs": round(per_run * runs, 2),
            "gflops": round(gflops, 2), "frac_roofline": round(gflops / roofline, 4),
            "cpu_share": round(share, 2), "gflops_cpu": round(gflops / max(share, 1e-9), 2),
            "load": load_avg(), **extra}


def _toy_torch_row(toy, raw: dict, cfg: BenchConfig, flops_run: float, roofline: float) -> dict:
    job = {"impl": "torch-toy", "sizes": list(toy.layer_sizes), "epochs": toy.epochs,
           "lr": toy.learning_rate, "runs": cfg.toy_loop_runs}
    out = run_worker(job, {"x": np.asarray(raw["x"], np.float32), "y": np.asarray(raw["y"])})
    if "skipped" in out:
        return {"section": "toy", "impl": "torch loop", **out}
    return _toy_row("torch loop", cfg.toy_runs, cfg.toy_loop_runs, sum(out["times"]),
                    sum(out["cpus"]), flops_run, roofline, version=out["version"])


