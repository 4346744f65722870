"""The models axis over devices and hosts.

A 1-D mesh named "models" spans every device (of every process, after `init_distributed`).
Per-model inputs, states and outputs are sharded along it; the dataset and probes are
replicated; `jax.jit` partitions the vmapped program (no pmap). A chunk whose size the device
count does not divide is padded by the trainer (repeating a model, results discarded).

Multi-host: `init_distributed()` wraps `jax.distributed.initialize` (auto-detected on Slurm and
Open MPI; explicit coordinator address otherwise; CPU collectives through gloo). Every process
builds the same per-model inputs from the same config; `gather` brings sharded results to every
host, and only process 0 writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "models"


@dataclass(frozen=True)
class ModelsSharding:
    """A 1-D device mesh over the models axis."""

    mesh: Mesh

    @classmethod
    def over(cls, devices: list | None = None) -> "ModelsSharding":
        """The mesh over `devices` (default: all devices of all processes)."""
        devices = list(devices if devices is not None else jax.devices())
        return cls(Mesh(np.asarray(devices), (AXIS,)))

    @property
    def n_devices(self) -> int:
        return int(self.mesh.devices.size)

    @property
    def models(self) -> NamedSharding:
        return NamedSharding(self.mesh, P(AXIS))

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())

    def shard_models(self, tree: Any) -> Any:
        """Places a pytree with a leading models axis, split along the mesh."""
        return _put(tree, self.models)

    def replicate(self, tree: Any) -> Any:
        """Places a pytree on every device of the mesh."""
        return _put(tree, self.replicated)


def _put(tree: Any, sharding: NamedSharding) -> Any:
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    # Multi-process: every process holds the same global host array (same config, same data);
    # each builds its addressable shards from it.
    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree.map(one, tree)


def gather(tree: Any) -> Any:
    """A (possibly multi-host sharded) pytree as host NumPy arrays, on every process."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return jax.tree.map(
        lambda x: np.asarray(multihost_utils.process_allgather(x, tiled=True)), tree)


def init_distributed(coordinator: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None, cpu_collectives: str = "gloo") -> None:
    """Starts `jax.distributed` before any other JAX call.

    With no arguments JAX auto-detects Slurm and Open MPI clusters; otherwise give the
    coordinator "host:port", the number of processes and this process's id (also read from
    MEMJAX_COORDINATOR, MEMJAX_NUM_PROCESSES, MEMJAX_PROCESS_ID). On CPU the collectives go
    through gloo.
    """
    coordinator = coordinator or os.environ.get("MEMJAX_COORDINATOR")
    if num_processes is None and "MEMJAX_NUM_PROCESSES" in os.environ:
        num_processes = int(os.environ["MEMJAX_NUM_PROCESSES"])
    if process_id is None and "MEMJAX_PROCESS_ID" in os.environ:
        process_id = int(os.environ["MEMJAX_PROCESS_ID"])
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)


def is_writer() -> bool:
    """Whether this process writes result files (process 0)."""
    return jax.process_index() == 0
