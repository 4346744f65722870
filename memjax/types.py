"""Type aliases and the shape legend used in docstrings across memjax.

Shape legend: M models, N examples, B batch, C classes, H, W, K image height, width, channels,
P probes, E epochs, S steps per epoch.
"""
from typing import Any

import jax
import numpy as np

PRNGKey = jax.Array
Array = jax.Array
Params = Any  # a Flax parameter pytree
PyTree = Any
NDArray = np.ndarray
