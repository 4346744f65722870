"""The models axis: seeds x canary placements x conditions -> a table and stacked inputs.

PRNG key tree (all keys are raw uint32 [2] threefry keys, so they stack and save as data):

    root = PRNGKey(population.root_seed)
    ├── fold_in(root, 0) = init stream   -> fold_in(., init_seed)  = model's init_key
    ├── fold_in(root, 1) = order stream  -> fold_in(., order_seed) = model's order_key
    │                                        (epoch e's permutation: fold_in(order_key, e))
    └── fold_in(root, 2) = noise stream  -> fold_in(., init_seed)  = model's noise_key
                                             (dropout/augmentation at epoch e, step i:
                                              split(fold_in(fold_in(noise_key, e), i), 3):
                                              dropout, augmentation, DP-SGD noise)

A UF model and its baseline twin share every key: they differ only by the feature pixels.
Host-side choices (canary indices, control patches) use NumPy generators with saved seeds.
"""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from memjax.canaries import choose_canaries
from memjax.config import PopulationConfig, StudyConfig
from memjax.errors import ConfigError
from memjax.features import render_feature
from memjax.train import ModelInputs

INIT_STREAM, ORDER_STREAM, NOISE_STREAM = 0, 1, 2


def seed_pairs(cfg: PopulationConfig) -> list[tuple[int, int]]:
    """(init_seed, order_seed) pairs of the population, by `seed_mode`."""
    n = cfg.n_seeds
    if cfg.seed_mode == "same":
        return [(s, s) for s in range(n)]
    if cfg.seed_mode == "init":
        return [(s, 0) for s in range(n)]
    if cfg.seed_mode == "order":
        return [(0, s) for s in range(n)]
    return list(itertools.product(range(n), range(cfg.n_order_seeds)))


def build_table(cfg: StudyConfig, train_labels: np.ndarray, train_example_index: np.ndarray
                ) -> pd.DataFrame:
    """One row per model: model, condition, init_seed, order_seed, placement, canary_index,
    canary_example_index, canary_label, lr_mult.

    Args:
      train_labels: int [N] labels of the training set in use.
      train_example_index: int [N] their indices in the official split.
    Raises:
      ConfigError: canary out of range, lr_multipliers of the wrong length.
    """
    canaries = choose_canaries(cfg.population.canary, train_labels)
    rows = []
    for condition in cfg.population.conditions:
        for placement, canary in enumerate(canaries):
            for init_seed, order_seed in seed_pairs(cfg.population):
                rows.append(dict(
                    condition=condition, init_seed=init_seed, order_seed=order_seed,
                    placement=placement, canary_index=int(canary),
                    canary_example_index=int(train_example_index[canary]),
                    canary_label=int(train_labels[canary]),
                ))
    table = pd.DataFrame(rows)
    table.insert(0, "model", np.arange(len(table)))
    mults = cfg.population.lr_multipliers
    if mults and len(mults) != len(table):
        raise ConfigError(
            f"population.lr_multipliers has {len(mults)} values but the population has "
            f"{len(table)} models"
        )
    table["lr_mult"] = np.asarray(mults, np.float32) if mults else np.float32(1.0)
    return table


def training_groups(table: pd.DataFrame, trajectories: bool = False
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The networks a population really trains: baselines that differ only by placement once.

    A baseline model never sees its canary's feature (`train.batch_images` writes it only
    when `insert`), so baselines with the same init seed, order seed and learning-rate
    multiplier train the same network whatever their canary: a study of P placements trains
    S x (P + 1) networks instead of 2 x S x P. Scoring still treats every row as a model, since
    the scores depend on the canary's label. With trajectory probes the per-epoch scores use
    the canary's label inside training, so nothing is shared.

    Returns:
      rows: int [U], the table rows to train (the first of each group, in table order).
      inverse: int [M], model m's network is trained network `inverse[m]`.
    """
    m = len(table)
    if trajectories or m == 0:
        return np.arange(m), np.arange(m)
    baseline = (table["condition"] != "uf").to_numpy()
    keys = [("baseline", int(r.init_seed), int(r.order_seed), float(r.lr_mult)) if b
            else ("model", int(r.model))
            for r, b in zip(table.itertuples(index=False), baseline)]
    first: dict[tuple, int] = {}
    rows, inverse = [], np.empty(m, np.int64)
    for i, key in enumerate(keys):
        if key not in first:
            first[key] = len(rows)
            rows.append(i)
        inverse[i] = first[key]
    return np.asarray(rows, np.int64), inverse


def model_inputs(cfg: StudyConfig, table: pd.DataFrame, image_shape: tuple[int, int, int]
                 ) -> ModelInputs:
    """Stacked per-model inputs [M] for the rows of `table` (see the key tree above)."""
    overlay = render_feature(cfg.feature, image_shape)
    root = jax.random.PRNGKey(cfg.population.root_seed)
    streams = [jax.random.fold_in(root, s) for s in (INIT_STREAM, ORDER_STREAM, NOISE_STREAM)]
    init_seeds = jnp.asarray(table["init_seed"].to_numpy(), jnp.uint32)
    order_seeds = jnp.asarray(table["order_seed"].to_numpy(), jnp.uint32)
    fold = jax.vmap(jax.random.fold_in, in_axes=(None, 0))
    m = len(table)
    return ModelInputs(
        init_key=fold(streams[0], init_seeds),
        order_key=fold(streams[1], order_seeds),
        noise_key=fold(streams[2], init_seeds),
        canary=jnp.asarray(table["canary_index"].to_numpy(), jnp.int32),
        insert=jnp.asarray((table["condition"] == "uf").to_numpy()),
        lr_mult=jnp.asarray(table["lr_mult"].to_numpy(), jnp.float32),
        feature_mask=jnp.broadcast_to(jnp.asarray(overlay.mask), (m,) + overlay.mask.shape),
        feature_value=jnp.broadcast_to(jnp.asarray(overlay.value), (m,) + overlay.value.shape),
    )


def take(inputs: ModelInputs, rows: np.ndarray) -> ModelInputs:
    """The inputs of models `rows` (int [k]), e.g. one chunk of the population."""
    return jax.tree.map(lambda x: x[rows], inputs)
