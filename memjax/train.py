"""Training ONE model as pure functions; the population is `jax.jit(jax.vmap(...))` of them.

`make_program(model_name, train_cfg)` returns the jitted, vmapped `init` and `epoch` functions of
a population (cached, so a given architecture, data shape and population size is traced once).
One call of `epoch` runs a whole epoch inside `jax.lax.scan` for every model, then evaluates on
the validation set and updates each model's early-stopping state with masks: a stopped (or
diverged) model keeps its weights while the others go on. The host loop over epochs and chunks
lives in `memjax.population_train`.

Shapes: M models, N training examples, V validation examples, B batch, S steps per epoch,
H, W, K image height, width, channels, C classes.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from memjax.config import TrainConfig
from memjax.models import build_model, uses_batch_stats

# Trace counter of the per-model functions (incremented at trace time only; tests read it).
TRACE_COUNTS: dict[str, int] = {"init": 0, "epoch": 0}

EVAL_BATCH = 1000


class ModelInputs(struct.PyTreeNode):
    """Per-model inputs (after stacking, each leaf has a leading models axis M).

    Attributes:
      init_key: uint32 [2], parameter initialisation.
      order_key: uint32 [2], data order (one permutation per epoch: fold_in(order_key, epoch)).
      noise_key: uint32 [2], dropout and augmentation (fold_in(epoch), fold_in(step), split).
      canary: int32 [], the training index that carries the feature when `insert`.
      insert: bool [], True for a UF model, False for a baseline model.
      lr_mult: float32 [], learning-rate multiplier (1.0: the configured rate).
      feature_mask: bool [H, W, K], the feature's pixels.
      feature_value: float32 [H, W, K], their values in [0, 1] pixel space.
    """

    init_key: jax.Array
    order_key: jax.Array
    noise_key: jax.Array
    canary: jax.Array
    insert: jax.Array
    lr_mult: jax.Array
    feature_mask: jax.Array
    feature_value: jax.Array


class TrajectoryProbes(struct.PyTreeNode):
    """A probe subset scored inside the training program after every epoch (trajectories).

    Attributes:
      x01: float32 [Pt, H, W, K] probes in [0, 1]; labels: int32 [Pt].
      ctrl_mask: bool [Pt, H, W, K], ctrl_value: float32 [Pt, H, W, K], the rendered control
        patches; mean, std: float32 [K] standardisation of the probes (0 and 1 for the quirk).
      clip: static; KL with Keras' clipping, as `score.clip` (the final scores) says.
    """

    x01: jax.Array
    labels: jax.Array
    ctrl_mask: jax.Array
    ctrl_value: jax.Array
    mean: jax.Array
    std: jax.Array
    clip: bool = struct.field(pytree_node=False, default=False)


class TrainData(struct.PyTreeNode):
    """The dataset, stored once and shared by every model (never copied per model).

    Attributes:
      x_train: uint8 [N, H, W, K]; y_train: int32 [N];
      x_val: uint8 [V, H, W, K]; y_val: int32 [V];
      mean, std: float32 [K], the standardisation applied after dividing by 255.
      trajectory: optional probes scored after every epoch (None: no trajectories).
    """

    x_train: jax.Array
    y_train: jax.Array
    x_val: jax.Array
    y_val: jax.Array
    mean: jax.Array
    std: jax.Array
    trajectory: TrajectoryProbes | None = None


class ModelState(struct.PyTreeNode):
    """One model's training state, including masked early stopping and divergence flags."""

    params: Any
    batch_stats: Any
    opt_state: Any
    best_params: Any  # {} when early stopping is off
    best_batch_stats: Any
    best_val_loss: jax.Array  # float32 []
    best_epoch: jax.Array  # int32 [], -1 before the first evaluation
    wait: jax.Array  # int32 [], epochs since the last improvement
    stopped: jax.Array  # bool [], early-stopped
    diverged: jax.Array  # bool [], a non-finite loss or parameter was met (model frozen)
    diverged_epoch: jax.Array  # int32 [], -1 if never
    epochs_trained: jax.Array  # int32 []


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """The optax optimiser of `cfg` (Adam with Keras' eps 1e-7 as the reference)."""
    if cfg.optimizer == "adam":
        tx = optax.adam(cfg.learning_rate, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
        if cfg.weight_decay > 0:  # L2 on the gradient (coupled), as Keras' kernel_regularizer
            tx = optax.chain(optax.add_decayed_weights(cfg.weight_decay), tx)
        return tx
    if cfg.optimizer == "adamw":
        return optax.adamw(cfg.learning_rate, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                           weight_decay=cfg.weight_decay)
    tx = optax.sgd(cfg.learning_rate, momentum=cfg.momentum or None)
    if cfg.weight_decay > 0:
        tx = optax.chain(optax.add_decayed_weights(cfg.weight_decay), tx)
    return tx


def steps_per_epoch(n_train: int, cfg: TrainConfig) -> int:
    """S: ceil(N / B), or floor with `drop_remainder` (at least 1)."""
    s = n_train // cfg.batch_size if cfg.drop_remainder else math.ceil(n_train / cfg.batch_size)
    return max(s, 1)


def epoch_order(order_key: jax.Array, epoch: jax.Array, n: int, fixed: bool) -> jax.Array:
    """Training indices of one epoch, int32 [N]: a permutation, or 0..N-1 when fixed."""
    if fixed:
        return jnp.arange(n, dtype=jnp.int32)
    return jax.random.permutation(jax.random.fold_in(order_key, epoch), n).astype(jnp.int32)


def batch_images(
    data: TrainData, idx: jax.Array, valid: jax.Array, inputs: ModelInputs
) -> jax.Array:
    """Standardised training images [B, H, W, K] of indices `idx` [B], with the model's unique
    feature written (in [0, 1] pixel space) into its canary image only."""
    x = data.x_train[idx].astype(jnp.float32) / 255.0
    is_canary = (idx == inputs.canary) & inputs.insert & valid
    x = jnp.where(is_canary[:, None, None, None] & inputs.feature_mask, inputs.feature_value, x)
    return (x - data.mean) / data.std


def _masked_mean(values: jax.Array, valid: jax.Array) -> jax.Array:
    return jnp.sum(jnp.where(valid, values, 0.0)) / jnp.maximum(jnp.sum(valid), 1)


def _select(pred: jax.Array, a: Any, b: Any) -> Any:
    """Tree-wise `where(pred, a, b)` with a scalar predicate."""
    return jax.tree.map(lambda x, y: jnp.where(pred, x, y), a, b)


def _all_finite(tree: Any) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.array(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def over_models(fn: Callable, in_axes: tuple) -> Callable:
    """`jax.vmap(fn, in_axes)`, except that a models axis of size 1 is squeezed instead.

    Under a vmap of one model XLA:CPU computes, e.g., the first MLP layer's weight gradient
    transposed and reads it transposed in the optimiser's elementwise updates; calling the
    per-model function directly was measured 11-15% faster per model-epoch (MLP and CNN2,
    docs/benchmarks.md). The size is static, so the choice is made once per trace. The result
    differs from the vmapped one only by XLA's summation order (parameters within ~1e-6 after
    a few Adam steps; tests/test_train.py).
    """
    batched = jax.vmap(fn, in_axes=in_axes)

    def call(*args):
        sizes = {x.shape[0] for a, ax in zip(args, in_axes) if ax == 0
                 for x in jax.tree.leaves(a)}
        if sizes != {1}:
            return batched(*args)
        squeezed = [jax.tree.map(lambda x: x[0], a) if ax == 0 else a
                    for a, ax in zip(args, in_axes)]
        return jax.tree.map(lambda x: x[None], fn(*squeezed))

    return call


@dataclass(frozen=True)
class Program:
    """The jitted, vmapped functions of one (model, training config).

    init(inputs [M], data) -> state [M]
    epoch(state [M], inputs [M], data, epoch int32) -> (state [M], metrics dict of [M])
    final(state [M]) -> variables [M] (best weights restored when early stopping is on)
    predict(variables [M], x [B, H, W, K] standardised) -> logits [M, B, C]
    """

    model: nn.Module
    init: Callable
    epoch: Callable
    final: Callable
    predict: Callable
    has_batch_stats: bool


@functools.lru_cache(maxsize=32)
def make_program(model_name: str, cfg: TrainConfig) -> Program:
    """Builds (once per model name and training config) the population's jitted functions."""
    model = build_model(model_name)
    has_bs = uses_batch_stats(model_name)
    tx = make_optimizer(cfg)

    def variables_of(params: Any, batch_stats: Any) -> dict:
        return {"params": params, "batch_stats": batch_stats} if has_bs else {"params": params}

    def init_one(inputs: ModelInputs, data: TrainData) -> ModelState:
        TRACE_COUNTS["init"] += 1
        sample = jnp.zeros((1,) + data.x_train.shape[1:], jnp.float32)
        k_params, k_drop, k_aug = jax.random.split(inputs.init_key, 3)
        variables = model.init(
            {"params": k_params, "dropout": k_drop, "augment": k_aug}, sample, train=False
        )
        params = variables["params"]
        batch_stats = variables.get("batch_stats", {})
        es = cfg.early_stopping
        return ModelState(
            params=params,
            batch_stats=batch_stats,
            opt_state=tx.init(params),
            best_params=params if es else {},
            best_batch_stats=batch_stats if es else {},
            best_val_loss=jnp.array(jnp.inf, jnp.float32),
            best_epoch=jnp.array(-1, jnp.int32),
            wait=jnp.array(0, jnp.int32),
            stopped=jnp.array(False),
            diverged=jnp.array(False),
            diverged_epoch=jnp.array(-1, jnp.int32),
            epochs_trained=jnp.array(0, jnp.int32),
        )

    def loss_fn(params, batch_stats, x, y, valid, rngs):
        variables = variables_of(params, batch_stats)
        if has_bs:
            logits, updates = model.apply(
                variables, x, train=True, mask=valid, rngs=rngs, mutable=["batch_stats"]
            )
            new_bs = updates["batch_stats"]
        else:
            logits = model.apply(variables, x, train=True, mask=valid, rngs=rngs)
            new_bs = batch_stats
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        return _masked_mean(losses, valid), (logits, new_bs)

    def dp_grads(params, batch_stats, x, y, valid, rngs, noise_key):
        """DP-SGD: per-example gradients clipped to dp_clip_norm, summed, Gaussian noise of
        std noise_multiplier * clip added, divided by the batch size B (fixed, as the
        accountant assumes)."""
        clip = cfg.dp_clip_norm

        def example_loss(p, x1, y1, i):
            ex_rngs = {k: jax.random.fold_in(v, i) for k, v in rngs.items()}
            logits = model.apply(variables_of(p, batch_stats), x1[None], train=True, rngs=ex_rngs)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y1[None])[0]
            return loss, logits[0]

        grad_fn = jax.vmap(jax.value_and_grad(example_loss, has_aux=True), in_axes=(None, 0, 0, 0))
        (losses, logits), g = grad_fn(params, x, y, jnp.arange(x.shape[0]))
        sq = sum(jnp.sum(leaf.reshape(leaf.shape[0], -1) ** 2, axis=1) for leaf in jax.tree.leaves(g))
        factor = jnp.where(valid, jnp.minimum(1.0, clip / (jnp.sqrt(sq) + 1e-12)), 0.0)
        leaves, treedef = jax.tree.flatten(g)
        keys = jax.random.split(noise_key, len(leaves))
        noisy = [
            (jnp.tensordot(factor, leaf, axes=1)
             + cfg.dp_noise_multiplier * clip * jax.random.normal(k, leaf.shape[1:], leaf.dtype))
            / x.shape[0]
            for leaf, k in zip(leaves, keys)
        ]
        return _masked_mean(losses, valid), logits, jax.tree.unflatten(treedef, noisy)

    def evaluate(params: Any, batch_stats: Any, data: TrainData) -> tuple[jax.Array, jax.Array]:
        """Validation loss and accuracy (eval mode), streamed in batches."""
        v = data.x_val.shape[0]
        eb = min(EVAL_BATCH, v)  # a small validation set is not padded to EVAL_BATCH
        nb = math.ceil(v / eb)
        idx = jnp.arange(nb * eb, dtype=jnp.int32)
        valid = idx < v
        idx = jnp.where(valid, idx, 0).reshape(nb, eb)
        valid = valid.reshape(nb, eb)
        variables = variables_of(params, batch_stats)

        def body(carry, xs):
            i, ok = xs
            x = (data.x_val[i].astype(jnp.float32) / 255.0 - data.mean) / data.std
            logits = model.apply(variables, x, train=False)
            y = data.y_val[i]
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            correct = jnp.argmax(logits, -1) == y
            s_loss, s_acc = carry
            return (s_loss + jnp.sum(jnp.where(ok, loss, 0.0)),
                    s_acc + jnp.sum(jnp.where(ok, correct, 0))), None

        (s_loss, s_acc), _ = jax.lax.scan(body, (jnp.float32(0), jnp.int32(0)), (idx, valid))
        return s_loss / v, s_acc.astype(jnp.float32) / v

    def trajectory_scores(params: Any, batch_stats: Any, inputs: ModelInputs, data: TrainData
                          ) -> dict[str, jax.Array]:
        """M2, M_score (-M3) and PD_M of the current weights on the trajectory probes."""
        from memjax import score as score_lib

        tp = data.trajectory
        variables = variables_of(params, batch_stats)
        x_uf = jnp.where(inputs.feature_mask, inputs.feature_value, tp.x01)
        x_ctrl = jnp.where(tp.ctrl_mask, tp.ctrl_value, tp.x01)
        logits = [model.apply(variables, (x - tp.mean) / tp.std, train=False)
                  for x in (tp.x01, x_uf, x_ctrl)]
        y_star = data.y_train[inputs.canary]
        num_classes = logits[0].shape[-1]
        sums, _ = score_lib.batch_terms(*logits, y_star, tp.labels,
                                        jnp.ones(tp.labels.shape, bool), clip=tp.clip,
                                        num_classes=num_classes)
        nan = jnp.float32(jnp.nan)
        m3 = jnp.where(sums["m3_n"] > 0, sums["m3_sum"] / jnp.maximum(sums["m3_n"], 1), nan)
        pd_n = sums["pd_n"][y_star]
        return {"traj_M2": sums["m2_sum"] / sums["n"], "traj_M_score": -m3,
                "traj_PD_M": jnp.where(pd_n > 0, sums["pd_sum"][y_star] / jnp.maximum(pd_n, 1), nan)}

    def epoch_one(state: ModelState, inputs: ModelInputs, data: TrainData, epoch: jax.Array):
        TRACE_COUNTS["epoch"] += 1
        n = data.x_train.shape[0]
        s = steps_per_epoch(n, cfg)
        b = cfg.batch_size
        order = epoch_order(inputs.order_key, epoch, n, cfg.data_order == "fixed")
        pad = s * b - n
        if pad >= 0:
            order = jnp.concatenate([order, jnp.zeros((pad,), jnp.int32)])
            valid = jnp.arange(s * b) < n
        else:  # drop_remainder
            order = order[: s * b]
            valid = jnp.ones((s * b,), bool)
        order = order.reshape(s, b)
        valid = valid.reshape(s, b)
        active = ~state.stopped & ~state.diverged
        epoch_key = jax.random.fold_in(inputs.noise_key, epoch)

        def step(carry, xs):
            params, batch_stats, opt_state, diverged, s_loss, s_acc, s_n = carry
            idx, ok, i = xs
            k_drop, k_aug, k_noise = jax.random.split(jax.random.fold_in(epoch_key, i), 3)
            x = batch_images(data, idx, ok, inputs)
            y = data.y_train[idx]
            rngs = {"dropout": k_drop, "augment": k_aug}
            if cfg.dp:
                loss, logits, grads = dp_grads(params, batch_stats, x, y, ok, rngs, k_noise)
                new_bs = batch_stats
            else:
                (loss, (logits, new_bs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                    params, batch_stats, x, y, ok, rngs
                )
            updates, new_opt = tx.update(grads, opt_state, params)
            updates = jax.tree.map(lambda u: u * inputs.lr_mult, updates)
            new_params = optax.apply_updates(params, updates)
            finite = jnp.isfinite(loss) & _all_finite(new_params)
            go = active & ~diverged & finite
            params = _select(go, new_params, params)
            batch_stats = _select(go, new_bs, batch_stats)
            opt_state = _select(go, new_opt, opt_state)
            diverged = diverged | (active & ~finite)
            n_ok = jnp.sum(ok)
            correct = jnp.sum(jnp.where(ok, jnp.argmax(logits, -1) == y, 0))
            carry = (params, batch_stats, opt_state, diverged,
                     s_loss + jnp.where(go, loss * n_ok, 0.0), s_acc + jnp.where(go, correct, 0),
                     s_n + jnp.where(go, n_ok, 0))
            return carry, None

        carry0 = (state.params, state.batch_stats, state.opt_state, state.diverged,
                  jnp.float32(0), jnp.int32(0), jnp.int32(0))
        (params, batch_stats, opt_state, diverged, s_loss, s_acc, s_n), _ = jax.lax.scan(
            step, carry0, (order, valid, jnp.arange(s))
        )
        val_loss, val_acc = evaluate(params, batch_stats, data)
        newly_diverged = diverged & ~state.diverged
        consider = active & ~diverged
        improved = consider & (val_loss < state.best_val_loss)
        es = cfg.early_stopping
        wait = jnp.where(consider, jnp.where(improved, 0, state.wait + 1), state.wait)
        new_state = ModelState(
            params=params,
            batch_stats=batch_stats,
            opt_state=opt_state,
            best_params=_select(improved, params, state.best_params) if es else {},
            best_batch_stats=_select(improved, batch_stats, state.best_batch_stats) if es else {},
            best_val_loss=jnp.where(improved, val_loss, state.best_val_loss),
            best_epoch=jnp.where(improved, epoch, state.best_epoch),
            wait=wait,
            stopped=state.stopped | (consider & es & (wait >= cfg.patience)),
            diverged=diverged,
            diverged_epoch=jnp.where(newly_diverged, epoch, state.diverged_epoch),
            epochs_trained=state.epochs_trained + active.astype(jnp.int32),
        )
        nan = jnp.float32(jnp.nan)
        metrics = {
            "train_loss": jnp.where(active & (s_n > 0), s_loss / jnp.maximum(s_n, 1), nan),
            "train_acc": jnp.where(active & (s_n > 0), s_acc / jnp.maximum(s_n, 1), nan),
            "val_loss": jnp.where(consider, val_loss, nan),
            "val_acc": jnp.where(consider, val_acc, nan),
        }
        if data.trajectory is not None:
            traj = trajectory_scores(params, batch_stats, inputs, data)
            metrics.update({k: jnp.where(consider, v, nan) for k, v in traj.items()})
        return new_state, metrics

    def final_one(state: ModelState) -> dict:
        if cfg.early_stopping:
            # Restore the best weights (Keras' restore_best_weights); a model that never
            # improved (diverged at once) keeps its last finite weights.
            has_best = state.best_epoch >= 0
            params = _select(has_best, state.best_params, state.params)
            batch_stats = _select(has_best, state.best_batch_stats, state.batch_stats)
        else:
            params, batch_stats = state.params, state.batch_stats
        return variables_of(params, batch_stats)

    def predict_one(variables: dict, x: jax.Array) -> jax.Array:
        return model.apply(variables, x, train=False)

    return Program(
        model=model,
        init=jax.jit(jax.vmap(init_one, in_axes=(0, None))),
        epoch=jax.jit(over_models(epoch_one, in_axes=(0, 0, None, None)), donate_argnums=(0,)),
        final=jax.jit(jax.vmap(final_one)),
        predict=jax.jit(jax.vmap(predict_one, in_axes=(0, None))),
        has_batch_stats=has_bs,
    )
