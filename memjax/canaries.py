"""Which training images carry the unique feature (the canaries).

A *canary* is the one training image that carries the UF in a UF model; a study has k canary
placements, each trained with several seeds (see ``docs/method.md``). The choice is made on the
host, from its own seeded NumPy generator, never from the global RNG, and the chosen indices are
saved with the results. Every function returns int64 [k] training indices into the dataset as
loaded (after `DataConfig.n_train` truncation).

Methods (`CanaryConfig.method`):

* "reference": the reference code's ``np.random.seed(seed); np.random.randint(0, n_train, k)``.
  Draws are with replacement, as in the reference, so indices may repeat for large k.
* "label": k distinct images of one class, drawn without replacement.
* "indices": the user's explicit indices, checked for range.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from memjax.config import CanaryConfig
from memjax.errors import ConfigError


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_positive(name: str, v: Any) -> None:
    if not _is_int(v) or v < 1:
        raise ConfigError(f"{name}={v!r}: must be an integer >= 1")


def reference_canaries(n_train: int, k: int, seed: int = 123) -> np.ndarray:
    """The reference's canary indices, uniform over the training set (with replacement).

    Equal to NumPy's legacy ``np.random.seed(seed); np.random.randint(0, n_train, k)``, but drawn
    from a private `RandomState` so the global RNG is left untouched. For MNIST (n_train=60000,
    seed 123) the first ten are 52734, 15725, 28030, 17730, 54370, 15377, 7763, 46203, 58937,
    23766.

    Args:
      n_train: number of training images N.
      k: number of canaries.
      seed: the legacy seed (123 in the reference).

    Returns:
      int64 [k] indices in [0, N).

    Raises:
      ConfigError: if n_train or k is not a positive integer.
    """
    _check_positive("n_train", n_train)
    _check_positive("population.canary.k", k)
    # The legacy RandomState is the reference's stream: a Generator would give other numbers.
    rs = np.random.RandomState(seed)
    return rs.randint(0, n_train, k).astype(np.int64)


def canaries_by_label(labels: np.ndarray, label: int, k: int, seed: int) -> np.ndarray:
    """k distinct training images of one class.

    Drawn without replacement by ``np.random.default_rng(seed).choice`` among the indices whose
    label is `label`, kept in draw order (not sorted): the order is part of the seeded choice.

    Args:
      labels: int [N] training labels.
      label: the class.
      k: number of canaries.
      seed: seed of the generator.

    Returns:
      int64 [k] indices i with labels[i] == label.

    Raises:
      ConfigError: if `label` is not one of the classes present, or fewer than k images have it.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ConfigError(f"labels: expected a 1-D array [N], got shape {labels.shape}")
    _check_positive("population.canary.k", k)
    if not _is_int(label):
        raise ConfigError(f"population.canary.label={label!r}: must be an integer class")
    classes = np.unique(labels)
    if label < 0 or label not in classes:
        lo, hi = (int(classes.min()), int(classes.max())) if classes.size else (0, -1)
        raise ConfigError(
            f"population.canary.label={label}: out of range; the training labels are {lo}..{hi}"
        )
    pool = np.flatnonzero(labels == label)
    if pool.size < k:
        raise ConfigError(
            f"population.canary.k={k}: only {pool.size} training images have label {label}; "
            f"use k <= {pool.size} or another label"
        )
    rng = np.random.default_rng(seed)
    return rng.choice(pool, size=k, replace=False).astype(np.int64)


def given_canaries(indices: Any, n_train: int) -> np.ndarray:
    """Explicit canary indices, checked.

    Args:
      indices: a sequence of training indices (repeats allowed: each is one placement).
      n_train: number of training images N.

    Returns:
      int64 [k] copy of `indices`.

    Raises:
      ConfigError: if the list is empty, holds a non-integer, or an index is outside [0, N),
        e.g. "canary index 70000 out of range [0, 60000)".
    """
    _check_positive("n_train", n_train)
    try:
        flat = np.ndim(indices) == 1
    except ValueError:  # ragged nesting
        flat = False
    if not flat:
        raise ConfigError(f"population.canary.indices: expected a flat list, got {indices!r}")
    values = list(indices)
    if not values:
        raise ConfigError("population.canary.indices: give at least one training index")
    for v in values:
        if not _is_int(v):
            raise ConfigError(f"canary index {v!r}: must be an integer")
        if not 0 <= v < n_train:
            raise ConfigError(f"population.canary.indices: canary index {v} out of range [0, {n_train})")
    return np.array([int(v) for v in values], dtype=np.int64)


def choose_canaries(cfg: CanaryConfig, labels: np.ndarray) -> np.ndarray:
    """The canary indices of a study.

    Args:
      cfg: the canary choice (method "reference", "label" or "indices").
      labels: int [N] training labels; N = len(labels) is the training set size.

    Returns:
      int64 [k] training indices, validated to lie in [0, N); k = cfg.k, or len(cfg.indices)
      for method "indices".

    Raises:
      ConfigError: on an unknown method or an invalid choice (see the functions above).
    """
    labels = np.asarray(labels)
    n_train = len(labels)
    if cfg.method == "reference":
        return reference_canaries(n_train, cfg.k, cfg.seed)
    if cfg.method == "label":
        if cfg.label is None:
            raise ConfigError("population.canary.label: required for method 'label'")
        return canaries_by_label(labels, cfg.label, cfg.k, cfg.seed)
    if cfg.method == "indices":
        return given_canaries(cfg.indices, n_train)
    raise ConfigError(
        f"population.canary.method={cfg.method!r}: use 'reference', 'label' or 'indices'"
    )
