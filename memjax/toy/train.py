"""One toy run, then the population of runs: ``jax.jit(jax.vmap(train_run))`` or, on a CPU, ``jax.lax.map``.

Key tree of the runs (JAX keys; the data's NumPy draws are separate, see `memjax.toy.data`):

    root = jax.random.key(cfg.root_seed)
    sigma_key = jax.random.fold_in(root, sigma_index)    # index into cfg.sigmas
    run keys  = jax.random.split(sigma_key, cfg.n_runs)  # run r gets row r
    run key   -> init_mlp (the only randomness of a run: full batch, no dropout)

With JAX's default partitionable threefry (``jax_threefry_partitionable``, on by default since
JAX 0.5), row r of ``split(k, n)`` does not depend on n, so the first 32 runs of a 500-run study
are the runs of a 32-run study. The key tree does not involve data_seed: when the data are
redrawn, the init keys stay (common random numbers, so a redraw measures the data alone).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp
import optax

from memjax.toy.config import ToyConfig
from memjax.toy.model import apply_mlp, init_mlp
from memjax.types import Array, Params, PRNGKey, PyTree


class TrainFn(Protocol):
    """A per-run trainer: ``(key, data, cfg) -> params`` (see `train_run`)."""

    def __call__(self, key: PRNGKey, data: dict[str, Array], cfg: ToyConfig) -> Params: ...


class TrainState(NamedTuple):
    """Carry of the training scan."""

    params: Params
    opt_state: optax.OptState


def run_keys(cfg: ToyConfig, sigma_index: int) -> PRNGKey:
    """[n_runs] keys of the runs at sigma ``cfg.sigmas[sigma_index]`` (tree in the module doc)."""
    sigma_key = jax.random.fold_in(jax.random.key(cfg.root_seed), sigma_index)
    return jax.random.split(sigma_key, cfg.n_runs)


def loss_fn(params: Params, x: Array, y: Array) -> Array:
    """Mean softmax cross-entropy. x: [N, 3], y: [N] int labels. Returns a scalar."""
    return optax.softmax_cross_entropy_with_integer_labels(apply_mlp(params, x), y).mean()


def train_run(key: PRNGKey, data: dict[str, Array], cfg: ToyConfig) -> Params:
    """Train one MLP: full-batch Adam on the mean cross-entropy, one step per epoch.

    Adam is optax's, with PyTorch's defaults (b1 0.9, b2 0.999, eps 1e-8 added outside the
    square root, as ``torch.optim.Adam``), so a step matches PyTorch's up to float rounding.

    Args:
      key: this run's key; it only initialises the weights.
      data: {"x": [N, 3] float32, "y": [N] int32} (other entries are ignored).
      cfg: uses layer_sizes, epochs and learning_rate (all static).

    Returns:
      The trained params (see `init_mlp`).
    """
    opt = optax.adam(cfg.learning_rate, b1=0.9, b2=0.999, eps=1e-8)
    params = init_mlp(key, cfg.layer_sizes)
    x, y = data["x"], data["y"]

    def epoch(state: TrainState, _: None) -> tuple[TrainState, None]:
        grads = jax.grad(loss_fn)(state.params, x, y)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        return TrainState(optax.apply_updates(state.params, updates), opt_state), None

    state, _ = jax.lax.scan(epoch, TrainState(params, opt.init(params)), length=cfg.epochs)
    return state.params


def _vmap_runs(one: Callable[[PRNGKey, dict[str, Array]], PyTree]) -> Callable:
    """``jax.jit(jax.vmap(one))`` over keys, with the shared data broadcast to the batch.

    The broadcast is deliberate: with unbatched data, vmap turns the first layer's product and
    its gradient into one matmul over all runs, whose summation order differs from a single
    run's; batched on both sides, every matmul is a batch of per-run matmuls, and a run is
    bitwise the run trained alone (on CPU; see `memjax.toy.model`). It costs M copies of the
    data (6 MB for 500 runs).
    """

    def population(keys: PRNGKey, data: dict[str, Array]) -> PyTree:
        m = keys.shape[0]
        batched = jax.tree.map(lambda a: jnp.broadcast_to(a, (m, *a.shape)), data)
        return jax.vmap(one)(keys, batched)

    return jax.jit(population)


def _map_runs(one: Callable[[PRNGKey, dict[str, Array]], PyTree]) -> Callable:
    """``jax.jit`` of ``jax.lax.map(one)`` over keys: the runs one after another, unbatched,
    inside one compiled program (the fastest on XLA:CPU, where a batch of small per-run GEMMs
    runs less efficiently than one run's GEMMs; see ToyConfig.runs_axis). Bitwise equal to
    `_vmap_runs` and to a run alone (tests/test_toy.py)."""

    def population(keys: PRNGKey, data: dict[str, Array]) -> PyTree:
        return jax.lax.map(lambda key: one(key, data), keys)

    return jax.jit(population)


def _runs(cfg: ToyConfig) -> Callable:
    return _map_runs if cfg.map_runs else _vmap_runs


def make_train_population(
    cfg: ToyConfig, train_fn: TrainFn = train_run
) -> Callable[[PRNGKey, dict[str, Array]], Params]:
    """``jax.jit(jax.vmap(train_fn))`` (or ``lax.map``, `ToyConfig.runs_axis`) over keys, the data shared by all runs.

    Returns:
      ``(keys [M], {"x": [N, 3], "y": [N]}) -> params`` with a leading M axis on every leaf.
      It compiles once per M (and data shape).
    """

    def one(key: PRNGKey, data: dict[str, Array]) -> Params:
        return train_fn(key, data, cfg)

    return _runs(cfg)(one)


def make_population_fn(
    cfg: ToyConfig, train_fn: TrainFn = train_run
) -> Callable[[PRNGKey, dict[str, Array]], dict[str, Array]]:
    """Train M runs and return what the memorisation test needs, in one compiled call.

    The trained params stay on the device; only per-point class-1 logits and two training
    metrics and the canary's logit come back, so a chunk's host traffic is O(M P) floats.

    Returns:
      ``(keys [M], data) -> outputs`` where data holds x [N, 3], y [N], clean [P, 3] and
      unique [P, 3], and outputs hold
        logit1_clean, logit1_unique: [M, P] raw class-1 logits on the clean / unique inputs;
        train_loss, train_accuracy: [M] on the training set after the last epoch;
        canary_logit1: [M] class-1 logit on the canary (the last training point).
    """

    def one(key: PRNGKey, data: dict[str, Array]) -> dict[str, Array]:
        params = train_fn(key, {"x": data["x"], "y": data["y"]}, cfg)
        logits = apply_mlp(params, data["x"])
        return {
            "logit1_clean": apply_mlp(params, data["clean"])[:, 1],
            "logit1_unique": apply_mlp(params, data["unique"])[:, 1],
            "train_loss": optax.softmax_cross_entropy_with_integer_labels(
                logits, data["y"]
            ).mean(),
            "train_accuracy": jnp.mean(jnp.argmax(logits, axis=-1) == data["y"]),
            "canary_logit1": logits[-1, 1],
        }

    return _runs(cfg)(one)
