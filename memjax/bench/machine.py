"""The machine and the arithmetic of a row: FLOPs, the matmul roofline, timings, peak RSS,
rates (GFLOP/s and the fraction of the roofline)."""
from __future__ import annotations

import os
import platform
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

EPOCH_TRAIN, EPOCH_VAL = 60_000, 10_000  # a model-epoch (MNIST train, validation on test)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
PEAK_H200 = {  # NVIDIA H200 SXM datasheet (dense; TF32 tensor-core figure is without sparsity)
    "fp32": 67e12, "tf32": 494.5e12,
}


def forward_macs(model_name: str, image_shape: tuple[int, int, int] = (28, 28, 1)) -> int:
    """Multiply-adds of one forward pass of `model_name` on one image (bias adds left out)."""
    h, w, k = image_shape
    if model_name.startswith("mlp"):
        sizes = (h * w * k, 512, 256, 10)
        return sum(a * b for a, b in zip(sizes, sizes[1:]))
    if model_name.startswith("cnn2"):
        macs = 0
        for width in (32, 64):
            for _ in range(2):
                macs += h * w * 9 * k * width
                k = width
            h, w = h // 2, w // 2
        return macs + h * w * k * 1024 + 1024 * 10
    raise ValueError(f"no FLOP model for {model_name!r}")


def toy_forward_macs(sizes: tuple[int, ...]) -> int:
    """Multiply-adds of the toy MLP per point ([h, 1] @ [[w], [b]] per layer)."""
    return sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))


def xla_forward_flops(model_name: str, image_shape=(28, 28, 1), batch: int = 128) -> float | None:
    """FLOPs per image of the forward pass by XLA's cost analysis (None where unavailable)."""
    from memjax.models import build_model

    model = build_model(model_name)
    x = jnp.zeros((batch, *image_shape), jnp.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
    try:
        cost = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, x)
        cost = cost.compile().cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        return float(cost["flops"]) / batch
    except Exception:  # noqa: BLE001 - cost analysis is optional and backend-dependent
        return None


def load_avg() -> float:
    """The 1-minute load average (other jobs share this machine)."""
    return round(os.getloadavg()[0], 2)


def machine_info() -> dict[str, Any]:
    """CPU, cores, vector extensions and library versions."""
    info: dict[str, Any] = {
        "platform": jax.devices()[0].platform, "device": jax.devices()[0].device_kind,
        "cores": os.cpu_count(), "python": platform.python_version(),
        "jax": jax.__version__, "load_start": load_avg(),
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                           if line.startswith("model name"))
        flags = set(next(line for line in cpuinfo.splitlines() if line.startswith("flags")).split())
        info["simd"] = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16") if f in flags)
    except (OSError, StopIteration):
        pass
    info["mem_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    for mod in ("flax", "optax", "torch", "tensorflow"):
        info[mod] = package_version(mod)
    return info


def package_version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for dist in (module, f"{module}-cpu"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakRSS:
    """Peak resident memory of this process inside a `with` block (sampled every 20 ms)."""

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)

    @property
    def delta_mb(self) -> float:
        return round((self.peak - self.start) / 2**20, 1)


@dataclass(frozen=True)
class Timing:
    """Wall seconds of repeated runs, and the process CPU seconds of the best one."""

    best: float
    median: float
    repeats: int
    cpu: float

    @property
    def cpu_share(self) -> float:
        """Share of the machine's cores this process used in the best run (1: all of them;
        much less: other jobs took the rest)."""
        return self.cpu / (self.best * (os.cpu_count() or 1))


def best_of(fn: Callable[[], Any], min_seconds: float, max_repeats: int = 20) -> Timing:
    """Runs `fn` until `min_seconds` were spent (at least once, at most `max_repeats`)."""
    runs: list[tuple[float, float]] = []
    while not runs or (sum(r[0] for r in runs) < min_seconds and len(runs) < max_repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - t, time.process_time() - c))
    best = min(runs)
    return Timing(best[0], float(np.median([r[0] for r in runs])), len(runs), best[1])


def matmul_roofline(sizes: tuple[int, ...] = (1024, 2048), min_seconds: float = 1.0) -> dict:
    """GFLOP/s of one large fp32 `jnp.dot` (the best size); the reference for every fraction."""
    rates, shares = {}, {}
    for n in sizes:
        a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
        f = jax.jit(jnp.dot)
        f(a, a).block_until_ready()
        timing = best_of(lambda: f(a, a).block_until_ready(), min_seconds, max_repeats=10)
        rates[n] = round(2 * n**3 / timing.best / 1e9, 1)
        shares[n] = round(timing.cpu_share, 2)
    return {"section": "roofline", "gflops": max(rates.values()), "by_size": rates,
            "cpu_share": shares, "load": load_avg()}


def train_flops(model_name: str, n_train: int, n_val: int) -> float:
    macs = forward_macs(model_name)
    return 6.0 * macs * n_train + 2.0 * macs * n_val


def scaled(seconds_per_model_epoch: float, n_train: int) -> float:
    return seconds_per_model_epoch * EPOCH_TRAIN / n_train



def rates(s_per_model_epoch: float, flops_per_model_epoch: float, roofline: float,
           cpu_share: float | None = None) -> dict:
    """Rates of one row. `cpu_share` (see `Timing.cpu_share`) gives "gflops_cpu", the rate
    per CPU-second times the cores: what the run would reach with the machine to itself if it
    is compute-bound (an estimate for a shared machine, not a measurement)."""
    gflops = flops_per_model_epoch / s_per_model_epoch / 1e9
    out = {"s_per_model_epoch": round(s_per_model_epoch, 4),
           "model_epochs_per_s": round(1.0 / s_per_model_epoch, 4),
           "gflops": round(gflops, 1), "frac_roofline": round(gflops / roofline, 3)}
    if cpu_share:
        out.update(cpu_share=round(cpu_share, 2), gflops_cpu=round(gflops / cpu_share, 1))
    return out


def baseline_row(model_name: str, impl: str, times: list[float], cpus: list[float],
                  n_train: int, n_val: int, roofline: float, **extra) -> dict:
    """A one-model row from per-epoch wall and CPU seconds (the first epoch is warm-up)."""
    steady = times[1:] or times
    i = times.index(min(steady), 1 if len(times) > 1 else 0)
    row = {"section": "train", "model": model_name, "impl": impl, "strategy": "one at a time",
           "M": 1, "chunk": 1, "timed_models": 1, "load": load_avg()}
    row.update(rates(scaled(times[i], n_train), train_flops(model_name, EPOCH_TRAIN, EPOCH_VAL),
                      roofline, cpus[i] / (times[i] * (os.cpu_count() or 1))))
    row.update(first_epoch_s=round(times[0], 3),
               compile_s=round(max(times[0] - min(steady), 0.0), 2), epochs=len(times), **extra)
    return row


def logged(row: dict, log: Callable[[str], None]) -> dict:
    keys = ("model", "impl", "strategy", "M", "chunk", "s_per_model_epoch", "gflops",
            "frac_roofline", "compile_s", "skipped", "load")
    log(" ".join(f"{k}={row[k]}" for k in keys if k in row))
    return row


def fresh() -> None:
    """Empties JAX's and memjax's program caches, so the next compile is timed in full."""
    from memjax.train import make_program

    make_program.cache_clear()
    jax.clear_caches()
