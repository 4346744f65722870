"""Benchmarks: population training, scoring and the toy, side by side with one model at a time.

Every measurement is one small function returning a dict (one row of the report); `run_bench`
runs them in order and `format_report` turns the rows into the markdown of docs/benchmarks.md.
`scripts/bench.py` is the launcher (``python scripts/bench.py [--quick] [--only ...]``).

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

import contextlib
import dataclasses
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from memjax.results import write_npz

EPOCH_TRAIN, EPOCH_VAL = 60_000, 10_000  # a model-epoch (MNIST train, validation on test)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
PEAK_H200 = {  # NVIDIA H200 SXM datasheet (dense; TF32 tensor-core figure is without sparsity)
    "fp32": 67e12, "tf32": 494.5e12,
}


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


# --------------------------------------------------------------------------------------------
# FLOPs, machine, memory


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
        info[mod] = _version(mod)
    return info


def _version(module: str) -> str | None:
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


# --------------------------------------------------------------------------------------------
# Data and populations


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


def _fresh() -> None:
    """Empties JAX's and memjax's program caches, so the next compile is timed in full."""
    from memjax.train import make_program

    make_program.cache_clear()
    jax.clear_caches()


def _train_flops(model_name: str, n_train: int, n_val: int) -> float:
    macs = forward_macs(model_name)
    return 6.0 * macs * n_train + 2.0 * macs * n_val


def _scaled(seconds_per_model_epoch: float, n_train: int) -> float:
    return seconds_per_model_epoch * EPOCH_TRAIN / n_train


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
    _fresh()
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
            row["e2e_s_per_model_epoch"] = round(_scaled(res.timings["total"] / m, n_train), 4)
    row.update(_rates(_scaled(timing.best / chunk, n_train),
                      _train_flops(model_name, EPOCH_TRAIN, EPOCH_VAL), roofline,
                      timing.cpu_share))
    row.update(median_s_per_model_epoch=round(_scaled(timing.median / chunk, n_train), 4),
               repeats=timing.repeats, retraces=TRACE_COUNTS["epoch"] - traces,
               peak_rss_mb=rss.peak_mb, rss_delta_mb=rss.delta_mb, load_end=load_avg())
    return row


def _rates(s_per_model_epoch: float, flops_per_model_epoch: float, roofline: float,
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


# --------------------------------------------------------------------------------------------
# One model at a time: JAX with a Python loop, PyTorch, Keras


def jax_loop_row(model_name: str, data: BenchData, roofline: float, epochs: int = 3) -> dict:
    """One model, a jitted train step and a Python loop over steps (data on the device,
    parameters and optimiser state donated). Same model, Adam and batch size as memjax."""
    import optax

    from memjax.config import TrainConfig
    from memjax.models import build_model
    from memjax.train import make_optimizer

    _fresh()
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
    return _baseline_row(model_name, "jax-loop", times, cpus, n, len(data.y_val), roofline,
                         peak_rss_mb=rss.peak_mb)


def _baseline_row(model_name: str, impl: str, times: list[float], cpus: list[float],
                  n_train: int, n_val: int, roofline: float, **extra) -> dict:
    """A one-model row from per-epoch wall and CPU seconds (the first epoch is warm-up)."""
    steady = times[1:] or times
    i = times.index(min(steady), 1 if len(times) > 1 else 0)
    row = {"section": "train", "model": model_name, "impl": impl, "strategy": "one at a time",
           "M": 1, "chunk": 1, "timed_models": 1, "load": load_avg()}
    row.update(_rates(_scaled(times[i], n_train), _train_flops(model_name, EPOCH_TRAIN, EPOCH_VAL),
                      roofline, cpus[i] / (times[i] * (os.cpu_count() or 1))))
    row.update(first_epoch_s=round(times[0], 3),
               compile_s=round(max(times[0] - min(steady), 0.0), 2), epochs=len(times), **extra)
    return row


def subprocess_row(impl: str, model_name: str, data: BenchData, roofline: float,
                   epochs: int = 3) -> dict:
    """A one-model baseline ("torch" or "keras") in a subprocess (own threads and peak RSS).

    Returns a row, or one with "skipped" when the framework is not installed or fails.
    """
    row = {"section": "train", "model": model_name, "impl": impl, "strategy": "one at a time",
           "M": 1, "chunk": 1}
    out = run_worker({"impl": impl, "model": model_name, "epochs": epochs},
                     {"x_train": data.x_train, "y_train": data.y_train, "x_val": data.x_val,
                      "y_val": data.y_val})
    if "skipped" in out:
        return {**row, **out}
    return _baseline_row(model_name, impl, out["times"], out["cpus"], len(data.y_train),
                         len(data.y_val), roofline, peak_rss_mb=out["peak_rss_mb"],
                         version=out["version"])


def run_worker(job: dict, arrays: dict[str, np.ndarray], timeout: int = 1200) -> dict:
    """Runs `worker` in a subprocess on `job` and `arrays`; returns its JSON output, or
    {"skipped": reason} when the framework is missing or the job fails."""
    module = {"torch": "torch", "torch-toy": "torch", "keras": "tensorflow"}[job["impl"]]
    if _version(module) is None:
        return {"skipped": f"{module} not installed (pip install -e .[bench])"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        write_npz(path, arrays)
        # PASSIVE: OpenMP threads sleep at barriers instead of spinning; on a shared machine
        # spinning made PyTorch 10-40x slower (measured), on an idle one it costs little.
        env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
               "KERAS_BACKEND": "tensorflow"}
        proc = subprocess.run(
            [sys.executable, "-c", "from memjax.bench import worker; worker()",
             json.dumps({**job, "data": str(path)})],
            capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        return {"skipped": f"{job['impl']} failed: {proc.stderr.strip()[-300:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def worker() -> None:
    """Subprocess entry: runs one job (JSON in argv[1]) and prints its times as JSON."""
    job = json.loads(sys.argv[1])
    with np.load(job["data"], allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    if job["impl"] == "torch-toy":
        times, cpus, version = _torch_toy(arrays, job)
    else:
        run = {"torch": _torch_train, "keras": _keras_train}[job["impl"]]
        times, cpus, version = run(job["model"], arrays, job["epochs"])
    print(json.dumps({"times": times, "cpus": cpus, "version": version,
                      "peak_rss_mb": round(_peak_rss_bytes() / 2**20, 1)}))


def _peak_rss_bytes() -> int:
    """This process's peak RSS (VmHWM; ru_maxrss would carry the parent's over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _standardise(x_u8: np.ndarray) -> np.ndarray:
    return ((x_u8.astype(np.float32) / 255.0 - MNIST_MEAN[0]) / MNIST_STD[0]).astype(np.float32)


def _torch_train(model_name: str, arrays: dict, epochs: int
                 ) -> tuple[list[float], list[float], str]:
    """A standard PyTorch loop: shuffled mini-batches, Adam, validation every epoch."""
    import torch
    from torch import nn

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    x = torch.from_numpy(_standardise(arrays["x_train"])).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(arrays["y_train"]).long()
    xv = torch.from_numpy(_standardise(arrays["x_val"])).permute(0, 3, 1, 2).contiguous()
    yv = torch.from_numpy(arrays["y_val"]).long()
    if model_name.startswith("mlp"):
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256),
                            nn.ReLU(), nn.Linear(256, 10))
    else:
        def conv(a, b):
            return [nn.Conv2d(a, b, 3, padding=1), nn.ReLU()]
        net = nn.Sequential(*conv(1, 32), *conv(32, 32), nn.MaxPool2d(2), *conv(32, 64),
                            *conv(64, 64), nn.MaxPool2d(2), nn.Flatten(),
                            nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Linear(1024, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-4, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    times, cpus = [], []
    for _ in range(epochs):
        t, c = time.perf_counter(), time.process_time()
        net.train()
        for idx in torch.randperm(len(y)).split(128):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            for i in range(0, len(yv), 1000):
                loss_fn(net(xv[i:i + 1000]), yv[i:i + 1000]).item()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return times, cpus, torch.__version__


def _keras_train(model_name: str, arrays: dict, epochs: int
                 ) -> tuple[list[float], list[float], str]:
    """Keras `fit` as the reference: batch 128, Adam, validation every epoch."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    layers = keras.layers
    if model_name.startswith("mlp"):
        body = [layers.Flatten(), layers.Dense(512, activation="relu"),
                layers.Dense(256, activation="relu")]
    else:
        body = []
        for width in (32, 64):
            body += [layers.Conv2D(width, 3, padding="same", activation="relu"),
                     layers.Conv2D(width, 3, padding="same", activation="relu"),
                     layers.MaxPooling2D(2)]
        body += [layers.Flatten(), layers.Dense(1024, activation="relu")]
    net = keras.Sequential([keras.Input((28, 28, 1)), *body, layers.Dense(10)])
    net.compile(optimizer=keras.optimizers.Adam(3e-4, epsilon=1e-7),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
    times: list[float] = []
    cpus: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t, self.c = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)
            cpus.append(time.process_time() - self.c)

    net.fit(_standardise(arrays["x_train"]), arrays["y_train"], batch_size=128, epochs=epochs,
            validation_data=(_standardise(arrays["x_val"]), arrays["y_val"]), verbose=0,
            callbacks=[Timer()])
    return times, cpus, f"tensorflow {tf.__version__}, keras {keras.__version__}"


# --------------------------------------------------------------------------------------------
# Training sections


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
            rows.append(_logged({"section": "train", "model": model_name, "impl": "memjax",
                                 "strategy": "vmap", "M": k, "chunk": k,
                                 "skipped": f"needs about {need_mb / 1024:.1f} GiB"}, log))
            continue
        try:
            row = train_row(model_name, "vmap", k, k, data, roofline,
                            min_seconds=cfg.min_seconds, end_to_end=k <= 64)
        except ConfigError as e:  # the planner refuses what its memory estimate says won't fit
            rows.append(_logged({"section": "train", "model": model_name, "impl": "memjax",
                                 "strategy": "vmap", "M": k, "chunk": k,
                                 "skipped": f"refused by the planner: {e}"}, log))
            continue
        per_model_mb = row["rss_delta_mb"] / k
        rows.append(_logged(row, log))
    measured = {r["M"]: r for r in rows if "skipped" not in r}
    for m in ms:
        fits = [k for k in measured if k < m and m % k == 0]
        best_k = max(fits, key=lambda k: measured[k]["model_epochs_per_s"]) if fits else 1
        rows.append(_logged(train_row(model_name, "chunks", m, best_k, data, roofline,
                                      min_seconds=cfg.min_seconds), log))
        family = model_family(model_name)
        k_auto = plan_chunk_size(m, "auto", None, 1, family, budget_bytes=1 << 40)
        rows.append({"section": "train", "model": model_name, "impl": "memjax", "strategy": "auto",
                     "M": m, "chunk": k_auto, "same_as": _same_as(rows, m, k_auto)})
    seq = min(cfg.seq_models, max(ms, default=1))
    if seq > 1:  # its per-model rate does not depend on M: timed on `seq` models
        rows.append(_logged(train_row(model_name, "sequential", max(ms), 1, data, roofline,
                                      min_seconds=cfg.min_seconds, timed_models=seq), log))
    rows.append(_logged(jax_loop_row(model_name, data, roofline, cfg.baseline_epochs), log))
    for impl in ("torch", "keras"):
        rows.append(_logged(subprocess_row(impl, model_name, data, roofline,
                                           cfg.baseline_epochs), log))
    return rows


def _same_as(rows: list[dict], m: int, k: int) -> str:
    for r in rows:
        if r.get("chunk") == k and "skipped" not in r and r.get("strategy") != "auto" and (
                r["M"] == m or (r["strategy"] == "vmap" and r["M"] == k)):
            return f"{r['strategy']} M={r['M']} k={k}"
    return "not measured"


def _logged(row: dict, log: Callable[[str], None]) -> dict:
    keys = ("model", "impl", "strategy", "M", "chunk", "s_per_model_epoch", "gflops",
            "frac_roofline", "compile_s", "skipped", "load")
    log(" ".join(f"{k}={row[k]}" for k in keys if k in row))
    return row


# --------------------------------------------------------------------------------------------
# Toy experiment


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
    _fresh()
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
    _fresh()
    r = min(cfg.toy_loop_runs, cfg.toy_runs)
    rows.append(chunked_row(f"memjax lax.map, calls of {r}",
                            make_population_fn(dataclasses.replace(toy, runs_axis="map")), r, 2))
    _fresh()
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
    return [_logged(row, log) for row in rows]


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


def _torch_toy(arrays: dict, job: dict) -> tuple[list[float], list[float], str]:
    """PyTorch, one toy run after another: full-batch Adam, `epochs` steps per run."""
    import torch
    from torch import nn

    torch.set_num_threads(os.cpu_count() or 1)
    x, y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"]).long()
    sizes = job["sizes"]
    times, cpus = [], []
    for run in range(job["runs"]):
        t, c = time.perf_counter(), time.process_time()
        torch.manual_seed(run)
        layers: list[nn.Module] = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        net = nn.Sequential(*layers[:-1])
        opt = torch.optim.Adam(net.parameters(), lr=job["lr"])
        for _ in range(job["epochs"]):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return times, cpus, torch.__version__


# --------------------------------------------------------------------------------------------
# Scoring


def scoring_row(n_models: int, n_probes: int, chunk: int, data: BenchData, roofline: float,
                model_name: str = "mlp", min_seconds: float = 0.0) -> dict:
    """`memjax.scoring.score_population` of M untrained models on P probes x 3 variants
    (speed does not depend on the weights; probes are training images, repeated to P)."""
    from memjax.config import FeatureConfig, TrainConfig
    from memjax.scoring import score_population
    from memjax.train import make_program
    from memjax.trainer import make_train_data

    _fresh()
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
    return [_logged(r, log) for r in rows]


# --------------------------------------------------------------------------------------------
# The whole run and its report


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
                data_source=_data_source(data_dir),
                xla_forward_flops={m: xla_forward_flops(m) for m in ("mlp", "cnn2")},
                analytic_forward_flops={m: 2 * forward_macs(m) for m in ("mlp", "cnn2")})
    return {"machine": info, "config": {**cfg.__dict__, "sections": list(only)}, "rows": rows,
            "targets": targets(rows)}


def _row_key(r: dict) -> tuple:
    """What a row measures (a "chunks" row's k is each run's own best, so not part of it)."""
    return tuple(r.get(k) for k in ("section", "model", "impl", "strategy", "M", "P", "runs"))


def merge_results(results: list[dict]) -> dict:
    """The best of several `run_bench` results of the same sizes, row by row (highest GFLOP/s;
    on a shared machine the best run is the one least disturbed). Targets are recomputed."""
    best: dict[tuple, dict] = {}
    for res in results:
        for r in res["rows"]:
            key = _row_key(r)
            old = best.get(key)
            if old is None or r.get("gflops", -1) > old.get("gflops", -1):
                best[key] = {**r, "run": results.index(res)}
    fullest = max(results, key=lambda res: len(res["rows"]))["rows"]
    order = {_row_key(r): i for i, r in enumerate(fullest)}
    rows = sorted(best.values(), key=lambda r: order.get(_row_key(r), len(order)))
    roof = max(r["gflops"] for r in rows if r["section"] == "roofline")
    for r in rows:  # against the best roofline of all runs (a busy run measures a low one)
        if r["section"] != "roofline" and "gflops" in r:
            r["frac_roofline"] = round(r["gflops"] / roof, 4)
    info = dict(results[-1]["machine"])
    info.update(runs_merged=len(results),
                load_start=min(x["machine"]["load_start"] for x in results),
                load_end=max(x["machine"].get("load_end", 0) for x in results),
                seconds=sum(x["machine"].get("seconds", 0) for x in results))
    return {"machine": info, "config": results[-1]["config"], "rows": rows,
            "targets": targets(rows)}


def _data_source(data_dir) -> str:
    return f"local MNIST files ({data_dir})" if data_dir else "embedded MNIST subset"


def _best(rows: list[dict], **match) -> dict | None:
    cands = [r for r in rows if "skipped" not in r and "gflops" in r
             and all(r.get(k) == v for k, v in match.items())]
    return max(cands, key=lambda r: r["gflops"], default=None)


def targets(rows: list[dict]) -> list[dict]:
    """The issue's targets: the measured value (wall clock), the same from CPU seconds
    ("value_cpu", see `_rates`), the goal and whether the wall-clock value meets it."""
    out = []
    roof = next((r for r in rows if r.get("section") == "roofline"), None)

    def add(name: str, pair: tuple[float, float | None] | None, goal: float, unit: str) -> None:
        value, value_cpu = pair if pair else (None, None)
        out.append({"target": name, "value": None if value is None else round(value, 3),
                    "value_cpu": None if value_cpu is None else round(value_cpu, 3),
                    "goal": goal, "unit": unit,
                    "met": None if value is None else bool(value >= goal)})

    def frac(r: dict | None) -> tuple[float, float | None] | None:
        if r is None or roof is None:
            return None
        shares = roof.get("cpu_share") or {}
        roof_cpu = max([roof["gflops"]] + [g / max(shares.get(n, 1.0), 1e-9)
                                           for n, g in roof["by_size"].items()])
        return r["frac_roofline"], r.get("gflops_cpu") and r["gflops_cpu"] / roof_cpu

    def ratio(fast: dict | None, slow: dict | None) -> tuple[float, float | None] | None:
        if fast is None or slow is None:
            return None
        cpu = fast.get("gflops_cpu") and slow.get("gflops_cpu") and \
            fast["gflops_cpu"] / slow["gflops_cpu"]
        return slow["s_per_model_epoch"] / fast["s_per_model_epoch"], cpu

    memjax = [r for r in rows if r.get("section") == "train" and r.get("impl") == "memjax"]
    best_mlp = _best([r for r in memjax if r.get("M", 0) >= 64], model="mlp")
    add("MLP population (M>=64, best strategy): fraction of roofline", frac(best_mlp), 0.70,
        "x roofline")
    for impl, goal in (("keras", 2.0), ("torch", 1.5)):
        add(f"MLP population (M>=64) vs {impl} one at a time",
            ratio(best_mlp, _best(rows, model="mlp", impl=impl)), goal, "x faster")
    add("CNN2 population vs torch one at a time",
        ratio(_best(memjax, model="cnn2"), _best(rows, model="cnn2", impl="torch")), 1.0,
        "x faster")
    toy = [r for r in rows if r.get("section") == "toy" and "skipped" not in r]
    best_toy = max((r for r in toy if r["impl"].startswith("memjax")),
                   key=lambda r: r["gflops"], default=None)
    for impl in ("jax loop", "torch loop"):
        base = next((r for r in toy if r["impl"] == impl), None)
        add(f"toy population vs {impl}", best_toy and base and (
            base["s_per_run"] / best_toy["s_per_run"],
            best_toy["gflops_cpu"] / base["gflops_cpu"]), 1.0, "x faster")
    add("scoring: fraction of roofline", frac(_best(rows, section="scoring")), 0.60,
        "x roofline")
    return out


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join("" if v is None else str(v) for v in r) + " |" for r in rows]
    return out + [""]


def _cell(r: dict, key: str, fmt: str = "{}") -> str:
    return fmt.format(r[key]) if r.get(key) is not None else ""


def format_report(result: dict) -> str:
    """Markdown tables of a `run_bench` result."""
    rows = result["rows"]
    info = result["machine"]
    roof = next(r for r in rows if r["section"] == "roofline")
    lines = [
        f"Machine: {info.get('cpu', '?')}, {info['cores']} cores ({info.get('simd', '')}), "
        f"{info['mem_gb']} GB; JAX {info['jax']} ({info['platform']}), flax {info['flax']}, "
        f"optax {info['optax']}, torch {info['torch']}, tensorflow {info['tensorflow']}. "
        f"Load average {info['load_start']} at start, {info.get('load_end')} at end; "
        f"{info.get('seconds')} s in all. Data: {info.get('data_source')}."
        + (f" Each row is the best of {info['runs_merged']} runs of the same command."
           if info.get("runs_merged") else ""),
        "",
        f"fp32 matmul roofline (best jnp.dot, n x n): **{roof['gflops']} GFLOP/s** "
        f"{roof['by_size']} (share of the 2 cores used: {roof.get('cpu_share')}, load "
        f"{roof['load']}).",
        "",
        "`x roofline` divides by the roofline measured in the same run (by the best one when "
        "runs are merged). `cpu` is the share of "
        "the machine's cores the run got (CPU seconds / wall / cores); `GFLOP/s if idle` = "
        "GFLOP/s / cpu, an estimate of the rate with the machine to itself.",
        "",
    ]
    train = [r for r in rows if r.get("section") == "train"]
    if train:
        body = []
        for r in train:
            m = r["M"] if r.get("timed_models", r["M"]) == r["M"] else \
                f"{r['M']} ({r['timed_models']} timed)"
            head = [r["model"], r["impl"], r["strategy"], m, r.get("chunk")]
            if "skipped" in r or "same_as" in r:
                body.append(head + [r.get("skipped") or f"picks k={r['chunk']}: {r['same_as']}"]
                            + [""] * 10)
                continue
            body.append(head + [
                f"{r['s_per_model_epoch']:.3f}", f"{r['model_epochs_per_s']:.3g}", r["gflops"],
                f"{r['frac_roofline']:.2f}", _cell(r, "cpu_share"), _cell(r, "gflops_cpu"),
                _cell(r, "e2e_s_per_model_epoch"), _cell(r, "compile_s"),
                _cell(r, "peak_rss_mb"), _cell(r, "retraces"), r["load"]])
        lines += _table(["model", "impl", "strategy", "M", "k", "s / model-epoch",
                         "model-epochs/s", "GFLOP/s", "x roofline", "cpu", "GFLOP/s if idle",
                         "end-to-end s / model-epoch", "compile s", "peak RSS MB", "retraces",
                         "load"], body)
    toy = [r for r in rows if r.get("section") == "toy"]
    if toy:
        body = [[r["impl"], r["skipped"]] + [""] * 8 if "skipped" in r else
                [r["impl"], f"{r['runs']} ({r['timed_runs']})", r["s_per_run"], r["s_for_runs"],
                 r["gflops"], f"{r['frac_roofline']:.3f}", r["cpu_share"], r["gflops_cpu"],
                 _cell(r, "compile_s"), r["load"]] for r in toy]
        lines += _table(["toy", "runs (timed)", "s / run", "s for all runs", "GFLOP/s",
                         "x roofline", "cpu", "GFLOP/s if idle", "compile s", "load"], body)
    sc = [r for r in rows if r.get("section") == "scoring"]
    if sc:
        body = [[r["strategy"], r["M"], r["P"], r["seconds"], r["probe_models_per_s"],
                 r["gflops"], f"{r['frac_roofline']:.2f}", r["cpu_share"], r["gflops_cpu"],
                 r["compile_s"], r["peak_rss_mb"], r["load"]] for r in sc]
        lines += _table(["scoring", "M", "probes (x 3 variants)", "s", "probe-models/s",
                         "GFLOP/s", "x roofline", "cpu", "GFLOP/s if idle", "compile s",
                         "peak RSS MB", "load"], body)
    if result["targets"]:
        body = [[t["target"], t["value"], t.get("value_cpu"), f">= {t['goal']} {t['unit']}",
                 {True: "yes", False: "**no**", None: "n/a"}[t["met"]]]
                for t in result["targets"]]
        lines += _table(["target", "measured", "from CPU seconds", "goal", "met (measured)"],
                        body)
    return "\n".join(lines)
