"""TracIn self-influence (method.md, "Influence") and placing the UF by influence.

    SI(z) = sum_t ||grad_theta loss(theta_t, z)||^2

over checkpoints theta_t of one training run: all trainable weights (the "params" collection),
cross-entropy, no learning-rate weighting. Models are evaluated in eval mode (batch norm uses its
running statistics; no dropout, no augmentation), so SI is a deterministic function of the
checkpoints.

Checkpoints (`checkpoint_epochs`): with loss_0 the training loss of the initial weights and
loss_min the lowest training loss after any epoch, f is the first epoch whose training loss is
below loss_min + 0.05 (loss_0 - loss_min); the checkpoints are the weights after the epochs
np.linspace(1, f, 10, dtype=int), or after epochs 1..10 when f < 10.

"Training loss" here is a full pass over the training set *after* each epoch, in eval mode,
with the run's own training images (the UF in the canary for a UF run): the loss of exactly the
weights that become checkpoints, unlike the epoch-average loss of the training steps (weights
moving during the epoch, dropout on), which is kept beside it as `RunCheckpoints.epoch_loss`.
loss_0 is the same pass on the initial weights.

One run is a 1-model population trained by `memjax.train.make_program` (the study's own
training code, key tree and data order: seed s gives the model with init seed = order seed = s
of `population.root_seed`); the host keeps a copy of the weights after every epoch.

Shapes: N examples, B batch, E epochs, T checkpoints, H, W, K image height, width, channels.
"""
from __future__ import annotations

import dataclasses
import functools
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from tqdm.auto import tqdm

from memjax.config import CanaryConfig, StudyConfig
from memjax.errors import ConfigError, MemjaxError
from memjax.models import build_model
from memjax.population import model_inputs
from memjax.train import ModelInputs, TrainData, batch_images, make_program

N_CHECKPOINTS = 10
LOSS_FRACTION = 0.05
LOSS_BATCH = 1000


class InfluenceError(MemjaxError):
    """A run for self-influence diverged or cannot give checkpoints."""


@dataclass(frozen=True)
class RunCheckpoints:
    """The weights of one run after every epoch, and its training-loss curve.

    Attributes:
      variables: E Flax variable dicts on the host (no models axis); variables[e - 1] holds the
        weights after epoch e (1-based, as `checkpoint_epochs` counts).
      losses: float64 [E + 1]: losses[0] = loss_0 (initial weights), losses[e] = mean
        cross-entropy over the training set after epoch e (eval mode, full pass).
      epoch_loss: float32 [E], the epoch-average training loss of the steps (train mode).
      val_loss: float32 [E], the validation loss after each epoch.
      canary: the training index carrying the UF, or None for a clean run.
      seconds: wall time of the run (including compilation).
    """

    variables: list[dict]
    losses: np.ndarray
    epoch_loss: np.ndarray
    val_loss: np.ndarray
    canary: int | None
    seconds: float

    @property
    def n_epochs(self) -> int:
        return len(self.variables)

    def at(self, epochs: list[int]) -> list[dict]:
        """The variables after each of `epochs` (1-based)."""
        return [self.variables[e - 1] for e in epochs]


def checkpoint_epochs(losses: np.ndarray, n: int = N_CHECKPOINTS,
                      fraction: float = LOSS_FRACTION) -> list[int]:
    """The checkpoint epochs of method.md from a training-loss curve.

    Args:
      losses: float [E + 1]: losses[0] = loss_0 (initial weights), losses[e] after epoch e.
      n: number of checkpoints (10).
      fraction: 0.05: f is the first epoch with loss < loss_min + fraction (loss_0 - loss_min).
    Returns:
      n epochs (1-based, increasing, distinct): np.linspace(1, f, n, dtype=int) when f >= n,
      else 1..n. A run of E < n epochs gives 1..E. A curve that never falls below loss_0
      takes f = the epoch of loss_min.
    Raises:
      ValueError: fewer than one epoch, or a non-finite loss.
    """
    losses = np.asarray(losses, np.float64)
    if losses.ndim != 1 or losses.shape[0] < 2:
        raise ValueError(f"losses: expected [E + 1] with E >= 1, got shape {losses.shape}")
    if not np.all(np.isfinite(losses)):
        bad = np.flatnonzero(~np.isfinite(losses)).tolist()
        raise ValueError(f"losses: non-finite values at epochs {bad}")
    e_max = losses.shape[0] - 1
    loss_0, after = losses[0], losses[1:]
    loss_min = after.min()
    below = np.flatnonzero(after < loss_min + fraction * (loss_0 - loss_min))
    f = int(below[0]) + 1 if below.size else int(np.argmin(after)) + 1
    if f < n:
        return list(range(1, min(n, e_max) + 1))
    return [int(e) for e in np.linspace(1, f, n, dtype=int)]


# --------------------------------------------------------------------------------------------
# Self-influence of given checkpoints


def _stack(variables: list[dict]) -> dict:
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *variables)


def _as_variables(v: Any) -> dict:
    return v if isinstance(v, dict) and "params" in v else {"params": v}


@functools.lru_cache(maxsize=16)
def _programs(model: nn.Module):
    """Jitted per-example squared gradient norms and their sum over checkpoints."""

    def loss_one(params, rest, x1, y1):
        logits = model.apply({"params": params, **rest}, x1[None], train=False)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y1[None])[0]

    per_example = jax.vmap(jax.grad(loss_one), in_axes=(None, None, 0, 0))

    def sq_norms(variables, x, y):
        rest = {k: v for k, v in variables.items() if k != "params"}
        g = per_example(variables["params"], rest, x, y)
        return sum(jnp.sum(jnp.square(leaf.reshape(leaf.shape[0], -1)), axis=1)
                   for leaf in jax.tree.leaves(g))

    def summed(stacked, x, y):
        def body(acc, variables):
            return acc + sq_norms(variables, x, y), None

        acc, _ = jax.lax.scan(body, jnp.zeros(x.shape[0], jnp.float32), stacked)
        return acc

    return jax.jit(sq_norms), jax.jit(summed)


def grad_sq_norms(model: nn.Module, variables: Any, x: Any, y: Any) -> np.ndarray:
    """||grad_theta loss(theta, z_i)||^2 of each example, in eval mode.

    Args:
      model: the Flax module.
      variables: its variables ({"params": ...[, "batch_stats": ...]}) or just the params.
      x: float [B, H, W, K] standardised images; y: int [B] labels.
    Returns:
      float32 [B].
    """
    return np.asarray(_programs(model)[0](_as_variables(variables), jnp.asarray(x),
                                          jnp.asarray(y, jnp.int32)))


def self_influence(model: nn.Module, params_list: list[Any], x: Any, y: Any,
                   batch_size: int = 32, progress: bool = False) -> np.ndarray:
    """TracIn self-influence SI(z_i) = sum_t ||grad_theta loss(theta_t, z_i)||^2.

    Per-example gradients are `jax.vmap(jax.grad(loss_one))` over a batch, squared and summed
    over all parameters, then over the checkpoints (`lax.scan`), in one jitted call per batch.
    Memory: B x (number of parameters) floats for the per-example gradients.

    Args:
      model: the Flax module.
      params_list: T checkpoints, each a variables dict or a params pytree (same structure).
      x: float [N, H, W, K] standardised images; y: int [N] labels.
      batch_size: B, examples per call (the last batch is padded and the padding dropped).
        On CPU, 16-32 was fastest for the MLP (its per-example gradients stay in cache); on an
        accelerator use more. Results agree across batch sizes to float32 summation order.
      progress: show a progress bar over batches.
    Returns:
      float64 [N].
    """
    if not params_list:
        raise ValueError("params_list: give at least one checkpoint")
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.int32)
    n = int(x.shape[0])
    if y.shape != (n,):
        raise ValueError(f"y: expected shape [{n}], got {y.shape}")
    stacked = _stack([_as_variables(v) for v in params_list])
    summed = _programs(model)[1]
    b = min(batch_size, n)
    nb = -(-n // b)
    pad = nb * b - n
    if pad:
        x = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)])
        y = jnp.concatenate([y, jnp.zeros((pad,), y.dtype)])
    out = np.empty(nb * b, np.float64)
    for i in tqdm(range(nb), desc="self-influence", unit="batch", disable=not progress,
                  leave=False):
        sl = slice(i * b, (i + 1) * b)
        out[sl] = np.asarray(summed(stacked, x[sl], y[sl]))
    return out[:n]


def rank_of(index: int, si: np.ndarray) -> int:
    """Rank of example `index` by SI: 0 = most influential (the number with larger SI)."""
    si = np.asarray(si)
    return int(np.sum(si > si[index]))


def percentile_of(index: int, si: np.ndarray) -> float:
    """Percentage of examples with strictly lower SI than example `index`."""
    si = np.asarray(si)
    return float(100.0 * np.mean(si < si[index]))


def top_k(si: np.ndarray, k: int) -> np.ndarray:
    """int64 [k]: the k most influential examples, most influential first (stable on ties)."""
    return np.argsort(-np.asarray(si), kind="stable")[:k].astype(np.int64)


def bottom_k(si: np.ndarray, k: int) -> np.ndarray:
    """int64 [k]: the k least influential examples, least influential first."""
    return np.argsort(np.asarray(si), kind="stable")[:k].astype(np.int64)


def canaries_from_si(si: np.ndarray, k: int, which: str = "top") -> np.ndarray:
    """int64 [k]: `top_k` ("top") or `bottom_k` ("bottom") of `si`.

    Raises:
      ConfigError: `which` not "top" / "bottom", or k not in [1, N].
    """
    if which not in ("top", "bottom"):
        raise ConfigError(f"which={which!r}: use 'top' or 'bottom'")
    n = len(si)
    if not 1 <= k <= n:
        raise ConfigError(f"k={k}: must be in [1, {n}]")
    return top_k(si, k) if which == "top" else bottom_k(si, k)


# --------------------------------------------------------------------------------------------
# One training run with checkpoints


@functools.lru_cache(maxsize=16)
def _loss_program(model: nn.Module):
    """Jitted mean eval-mode cross-entropy over the training set, with the model's feature."""

    def mean_loss(variables, inputs: ModelInputs, data: TrainData):
        n = data.x_train.shape[0]
        b = min(LOSS_BATCH, n)
        nb = -(-n // b)
        idx = jnp.arange(nb * b, dtype=jnp.int32)
        valid = idx < n
        idx = jnp.where(valid, idx, 0).reshape(nb, b)
        valid = valid.reshape(nb, b)

        def body(total, xs):
            i, ok = xs
            logits = model.apply(variables, batch_images(data, i, ok, inputs), train=False)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, data.y_train[i])
            return total + jnp.sum(jnp.where(ok, loss, 0.0)), None

        total, _ = jax.lax.scan(body, jnp.float32(0), (idx, valid))
        return total / n

    return jax.jit(mean_loss)


def _first(tree: Any) -> Any:
    return jax.tree.map(lambda a: a[0], tree)


def train_checkpoints(model_name: str, train_cfg, inputs: ModelInputs, data: TrainData, *,
                      max_epochs: int | None = None, progress: bool = False) -> RunCheckpoints:
    """Trains ONE model (`inputs` with a models axis of 1) and keeps its weights after every
    epoch, until the epoch limit or early stopping.

    Memory: E copies of the weights on the host (MLP: 2.1 MB per epoch).

    Raises:
      InfluenceError: the run diverged (non-finite loss or weights).
    """
    if int(inputs.canary.shape[0]) != 1:
        raise ValueError(f"inputs: expected one model, got {int(inputs.canary.shape[0])}")
    t0 = time.perf_counter()
    program = make_program(model_name, train_cfg)
    mean_loss = _loss_program(program.model)
    one = _first(inputs)
    bs_key = "batch_stats" if program.has_batch_stats else None

    def variables_of(state) -> dict:  # device arrays, no models axis
        v = {"params": _first(state.params)}
        if bs_key:
            v[bs_key] = _first(state.batch_stats)
        return v

    state = program.init(inputs, data)
    losses = [float(mean_loss(variables_of(state), one, data))]
    kept, epoch_loss, val_loss = [], [], []
    e_max = train_cfg.epochs if max_epochs is None else min(max_epochs, train_cfg.epochs)
    for epoch in range(e_max):
        state, met = program.epoch(state, inputs, data, jnp.int32(epoch))
        variables = variables_of(state)
        loss = mean_loss(variables, one, data)
        # Host copies: `epoch` donates the state's buffers, and a host view may alias them.
        variables, loss, met, stopped, diverged = jax.device_get(
            (variables, loss, met, state.stopped[0], state.diverged[0]))
        if diverged or not np.isfinite(loss):
            raise InfluenceError(f"{model_name}: the run diverged at epoch {epoch + 1} "
                                 f"(training loss {float(loss)}); lower train.learning_rate")
        kept.append(jax.tree.map(lambda a: np.array(a, copy=True), variables))
        losses.append(float(loss))
        epoch_loss.append(float(met["train_loss"][0]))
        val_loss.append(float(met["val_loss"][0]))
        if progress:
            print(f"influence run, epoch {epoch + 1}: training loss {float(loss):.4f} "
                  f"(epoch average {epoch_loss[-1]:.4f}), validation {val_loss[-1]:.4f}",
                  file=sys.stderr)
        if stopped:
            break
    canary = int(inputs.canary[0]) if bool(inputs.insert[0]) else None
    return RunCheckpoints(variables=kept, losses=np.asarray(losses, np.float64),
                          epoch_loss=np.asarray(epoch_loss, np.float32),
                          val_loss=np.asarray(val_loss, np.float32), canary=canary,
                          seconds=time.perf_counter() - t0)


def training_images(data: TrainData, inputs: ModelInputs) -> jax.Array:
    """float32 [N, H, W, K]: the standardised training images as one model sees them (its UF in
    its canary); `inputs` without a models axis."""
    n = data.x_train.shape[0]
    idx = jnp.arange(n, dtype=jnp.int32)
    return _batch_images(data, idx, jnp.ones(n, bool), inputs)


_batch_images = jax.jit(batch_images)


def one_model_inputs(cfg: StudyConfig, image_shape: tuple[int, int, int], *, seed: int = 0,
                     canary: int = 0, insert: bool = False) -> ModelInputs:
    """ModelInputs [1] of the model with init seed = order seed = `seed` (the study's key tree),
    carrying `cfg.feature` at training index `canary` when `insert`."""
    table = pd.DataFrame([dict(condition="uf" if insert else "baseline", init_seed=seed,
                               order_seed=seed, canary_index=int(canary), lr_mult=1.0)])
    return model_inputs(cfg, table, image_shape)


# --------------------------------------------------------------------------------------------
# Studies


def _plain(data: TrainData) -> TrainData:
    """The data without trajectory probes (influence runs do not score probes)."""
    return data.replace(trajectory=None)


@dataclass(frozen=True)
class RunInfluence:
    """Self-influence of every training image in one run.

    Attributes:
      si: float64 [N]; epochs: the checkpoint epochs used; run: the checkpoints and loss curve.
    """

    si: np.ndarray
    epochs: list[int]
    run: RunCheckpoints


def run_influence(cfg: StudyConfig, *, canary: int | None = None, seed: int = 0, prep=None,
                  batch_size: int = 32, max_epochs: int | None = None,
                  progress: bool = False) -> RunInfluence:
    """Trains one model of `cfg` (clean when `canary` is None, else with the UF at `canary`),
    picks its checkpoints and computes SI over its training images (with its UF)."""
    from memjax.study import prepare

    prep = prep or prepare(cfg)
    inputs = one_model_inputs(cfg, prep.train.shape, seed=seed, canary=canary or 0,
                              insert=canary is not None)
    data = _plain(prep.data)
    run = train_checkpoints(cfg.model.name, cfg.train, inputs, data,
                            max_epochs=max_epochs, progress=progress)
    epochs = checkpoint_epochs(run.losses)
    x = training_images(data, _first(inputs))
    si = self_influence(build_model(cfg.model.name), run.at(epochs), x, data.y_train,
                        batch_size=batch_size, progress=progress)
    return RunInfluence(si=si, epochs=epochs, run=run)


def clean_run_checkpoints(cfg: StudyConfig, *, seed: int = 0, prep=None,
                          max_epochs: int | None = None, progress: bool = False) -> RunCheckpoints:
    """The clean run of method.md: one model of `cfg` trained with no feature anywhere, its
    weights after every epoch and its training-loss curve (see the module docstring).

    Args:
      cfg: the study (data, model, training; the feature is not used).
      seed: init seed = data-order seed of the model (population.root_seed's key tree).
      prep: a `memjax.study.prepare(cfg)` result to reuse (data already loaded).
      max_epochs: cap below train.epochs (early stopping still applies).
    """
    from memjax.study import prepare

    prep = prep or prepare(cfg)
    inputs = one_model_inputs(cfg, prep.train.shape, seed=seed, insert=False)
    return train_checkpoints(cfg.model.name, cfg.train, inputs, _plain(prep.data),
                             max_epochs=max_epochs, progress=progress)


def influence_canaries(cfg: StudyConfig, k: int, which: str = "top", *, seed: int = 0,
                       path: str | Path | None = None, prep=None, batch_size: int = 32,
                       progress: bool = False) -> np.ndarray:
    """Canary indices by self-influence in a clean run: the k most ("top") or least ("bottom")
    influential training images.

    Args:
      path: if given, a `.npz` with si [N], example_index [N], labels [N], epochs [T],
        losses [E + 1], canaries [k], seed, written atomically.
    Returns:
      int64 [k] training indices (into the training set as loaded), most / least first.
    Raises:
      ConfigError: `which` not "top" / "bottom", or k not in [1, N].
    """
    from memjax.study import prepare

    prep = prep or prepare(cfg)
    canaries_from_si(np.zeros(len(prep.train)), k, which)  # check before training
    res = run_influence(cfg, seed=seed, prep=prep, batch_size=batch_size, progress=progress)
    chosen = canaries_from_si(res.si, k, which)
    if path is not None:
        save_clean_si(path, res, prep, chosen, seed)
    return chosen


def save_clean_si(path: str | Path, res: RunInfluence, prep, chosen: np.ndarray,
                  seed: int) -> None:
    """Atomically writes a clean run's SI: si [N], example_index [N], labels [N], epochs [T],
    losses [E + 1], canaries [k], seed."""
    from memjax.results import write_npz

    write_npz(path, {"si": res.si, "example_index": prep.train.example_index,
                     "labels": prep.train.labels, "epochs": np.asarray(res.epochs),
                     "losses": res.run.losses, "canaries": np.asarray(chosen),
                     "seed": np.asarray(seed)})


def with_influence_canaries(cfg: StudyConfig, k: int, which: str = "top", *,
                            path: str | Path | None = None, seed: int = 0, prep=None,
                            batch_size: int = 32, progress: bool = False) -> StudyConfig:
    """`cfg` with its canaries replaced by the k most / least self-influential training images
    of a clean run (`population.canary = CanaryConfig(method="indices", indices=...)`)."""
    idx = influence_canaries(cfg, k, which, seed=seed, path=path, prep=prep,
                             batch_size=batch_size, progress=progress)
    canary = CanaryConfig(method="indices", indices=tuple(int(i) for i in idx))
    return dataclasses.replace(cfg, population=dataclasses.replace(cfg.population, canary=canary))


@dataclass(frozen=True)
class UFRank:
    """Where the UF image ranks by self-influence in a run trained with the UF.

    Attributes:
      canary: its training index; rank: 0 = most influential; n_train: N;
      percentile: percentage of training images with strictly lower SI;
      si: float64 [N]; epochs: checkpoint epochs; losses: the run's loss curve [E + 1].
    """

    canary: int
    rank: int
    percentile: float
    n_train: int
    si: np.ndarray
    epochs: list[int]
    losses: np.ndarray


def uf_rank_after_training(cfg: StudyConfig, *, canary: int | None = None, seed: int = 0,
                           prep=None, batch_size: int = 32, progress: bool = False) -> UFRank:
    """Trains one UF model of `cfg` (the feature at `canary`, default the study's first canary),
    takes the checkpoints of that run and ranks the UF image among all training images by SI
    (computed on the training images as that model saw them, the UF in the canary)."""
    from memjax.study import prepare

    prep = prep or prepare(cfg)
    if canary is None:
        canary = int(prep.table["canary_index"].iloc[0])
    n = len(prep.train)
    if not 0 <= canary < n:
        raise ConfigError(f"canary {canary} out of range [0, {n})")
    res = run_influence(cfg, canary=canary, seed=seed, prep=prep, batch_size=batch_size,
                        progress=progress)
    return UFRank(canary=canary, rank=rank_of(canary, res.si),
                  percentile=percentile_of(canary, res.si), n_train=n,
                  si=res.si, epochs=res.epochs, losses=res.run.losses)
