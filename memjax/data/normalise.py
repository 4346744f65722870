"""Per-channel standardisation with the reference's constants (method.md, "Training setups").

Shape legend: H, W, K image height, width, channels.
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np

from memjax.data.dataset import check_name, image_shape
from memjax.errors import ConfigError

# mean, std per channel of images divided by 255, as the reference used them.
STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.28604,), (0.35302,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}

ArrayT = TypeVar("ArrayT")


def standardise(x01: ArrayT, name: str) -> ArrayT:
    """(x - mean) / std per channel.

    Plain arithmetic with float32 NumPy constants, so it runs unchanged on NumPy arrays and on
    JAX arrays inside `jax.jit`, and keeps float32 inputs float32.

    Args:
      x01: float images in [0, 1], [..., H, W, K].
      name: the dataset whose statistics to use.

    Returns:
      Standardised images, same shape (float32 for float32 input).

    Raises:
      ConfigError: unknown dataset, or K does not match its channels.
    """
    check_name(name)
    k = image_shape(name)[-1]
    if x01.shape[-1] != k:  # type: ignore[attr-defined]
        raise ConfigError(f"standardise({name}): images have {x01.shape[-1]} channels, "  # type: ignore[attr-defined]
                          f"expected {k} (shape [..., H, W, K])")
    mean, std = (np.asarray(v, dtype=np.float32) for v in STATS[name])
    return (x01 - mean) / std  # type: ignore[operator, return-value]
