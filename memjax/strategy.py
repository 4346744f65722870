"""Execution strategy over the models axis: all at once, chunks of k, or one at a time.

`plan_chunk_size` picks k. With "auto" it takes the smallest of: the population size, the
number of models whose training state fits in a memory budget (from `jax.eval_shape`, no
compilation), and the preferred chunk size of the model family on this device kind, which
comes from measurements (`scripts/bench.py`, table in docs/benchmarks.md). The CPU values are
measured on the project's 2-core machine; the GPU/TPU values are not measured yet.
"""
from __future__ import annotations

import math
import os

import jax
import numpy as np

from memjax.errors import ConfigError

# Preferred models per vmapped call, per (platform, model family). CPU: measured by
# scripts/bench.py (docs/benchmarks.md): MLP one model per call (unbatched, see
# `memjax.train.over_models`) 1.13-1.17 s per model-epoch, k=2 1.29, k=8 1.58, k=64 1.63;
# CNN2 one per call 106 s per model-epoch, k=2 111, k=4 120, k=16 142. GPU/TPU: unmeasured
# guesses (scripts/gpu_check.sh has not run on a GPU yet).
# On XLA:CPU a vmapped GEMM becomes a batched GEMM that runs less efficiently than one large
# GEMM, and big stacked states fall out of cache; on GPUs small models gain from wide vmaps.
PREFERRED_CHUNK = {
    ("cpu", "mlp"): 1,
    ("cpu", "cnn"): 1,
    ("gpu", "mlp"): 1024,
    ("gpu", "cnn"): 256,
    ("tpu", "mlp"): 1024,
    ("tpu", "cnn"): 256,
}

# Activations, gradients and optimiser temporaries on top of the state, per model: a factor
# over the state's bytes plus a per-example term.
STATE_FACTOR = 2.0
# Share of `forward_bytes` (every intermediate of the jaxpr) counted as live: XLA fuses the
# elementwise chains. CNN2 at batch 128 grows RSS by ~390 MB per model (k = 2 -> 16 in
# docs/benchmarks.md) against 689 MB of jaxpr intermediates (0.57); 0.75 keeps a margin
# without refusing populations that fit (16 CNN2 models ran in 7.8 GB on this 24 GB machine).
ACTIVATION_FACTOR = 0.75


def available_memory_bytes(device: jax.Device | None = None) -> int:
    """Free memory of the device (accelerator) or of the host (CPU), in bytes."""
    device = device or jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        limit = stats.get("bytes_limit")
        used = stats.get("bytes_in_use", 0)
        if limit:
            return int(limit - used)
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        return int(pages * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def tree_bytes(tree) -> int:
    """Bytes of a pytree of arrays or ShapeDtypeStructs."""
    return int(sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def _intermediate_bytes(jaxpr):
    """Yields the bytes of every intermediate value of a jaxpr, nested jaxprs included."""
    for eqn in jaxpr.eqns:
        for v in eqn.outvars:
            shape = getattr(v.aval, "shape", None)
            if shape is not None:
                yield math.prod(shape) * np.dtype(v.aval.dtype).itemsize
        for p in eqn.params.values():
            inner = getattr(p, "jaxpr", p)  # ClosedJaxpr -> Jaxpr
            if hasattr(inner, "eqns"):
                yield from _intermediate_bytes(inner)


def jaxpr_bytes(jaxpr) -> int:
    """Bytes of every intermediate value of a jaxpr (nested jaxprs included).

    An upper bound on a forward pass's live activations: XLA fuses elementwise chains, so the
    peak is lower (CNN2 at batch 128: 657 MiB here against ~390 MB of measured RSS growth per
    model, docs/benchmarks.md), but the big buffers (im2col patches, layer outputs) that the
    backward pass keeps are all counted.
    """
    return int(sum(_intermediate_bytes(jaxpr)))


def largest_bytes(jaxpr) -> int:
    """Bytes of the largest single intermediate of a jaxpr (nested jaxprs included)."""
    return int(max(_intermediate_bytes(jaxpr), default=0))


def forward_bytes(model, variables, batch: jax.ShapeDtypeStruct, measure: str = "sum") -> int:
    """Bytes of one eval-mode forward pass of `batch` (abstract: traces, compiles nothing).

    measure "sum": `jaxpr_bytes`, the activations a training step keeps for its backward pass;
    "peak": 2 x `largest_bytes` (the largest buffer, e.g. a convolution's im2col patches, and
    its neighbours, each smaller), the live set of an inference-only pass such as validation,
    which frees as it goes.
    """
    closed = jax.make_jaxpr(lambda v, x: model.apply(v, x, train=False))(variables, batch)
    if measure == "peak":
        return 2 * largest_bytes(closed.jaxpr)
    return jaxpr_bytes(closed.jaxpr)


def per_model_bytes(state_bytes: int, activation_bytes: int, per_example_grad_bytes: int = 0
                    ) -> int:
    """Estimated device bytes of one model in a population program.

    The training state (parameters, optimiser moments, early-stopping copies) times
    STATE_FACTOR for gradients and optimiser temporaries, ACTIVATION_FACTOR x the larger
    activation need of the epoch (a training batch's forward intermediates, or the peak of a
    validation or trajectory batch: `forward_bytes`), and under DP-SGD the batch's
    per-example gradients.
    """
    return int(state_bytes * STATE_FACTOR + ACTIVATION_FACTOR * activation_bytes
               + per_example_grad_bytes)


def plan_chunk_size(
    n_models: int,
    strategy: str,
    chunk_size: int | None,
    model_bytes: int,
    family: str,
    n_devices: int = 1,
    budget_bytes: int | None = None,
) -> int:
    """Models per vmapped call (k), a multiple of `n_devices` when sharding.

    Raises:
      ConfigError: when even one model per device does not fit in memory (names the largest
        population that fits).
    """
    budget = budget_bytes if budget_bytes is not None else int(0.6 * available_memory_bytes())
    fit = budget * n_devices // max(model_bytes, 1)
    if fit < n_devices:
        raise ConfigError(
            f"one model needs about {model_bytes / 2**20:.0f} MiB but only "
            f"{budget / 2**20:.0f} MiB are free per device; reduce the batch size or model"
        )
    if strategy == "vmap":
        k = n_models
    elif strategy == "sequential":
        k = 1
    elif strategy == "chunks":
        k = int(chunk_size)
    else:
        platform = jax.devices()[0].platform
        k = PREFERRED_CHUNK.get((platform, family), 64) * n_devices
        if chunk_size:
            k = min(k, chunk_size)
    if k > fit:
        if strategy in ("vmap", "chunks"):
            raise ConfigError(
                f"population.strategy={strategy!r} asks for {k} models at once but about {fit} "
                f"fit in memory ({model_bytes / 2**20:.0f} MiB each); use strategy auto or "
                f"chunk_size <= {fit}"
            )
        k = fit
    k = max(1, min(k, n_models if n_devices == 1 else math.ceil(n_models / n_devices) * n_devices))
    if n_devices > 1:
        k = max(n_devices, k // n_devices * n_devices)
    return k
