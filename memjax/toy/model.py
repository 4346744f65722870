"""The toy's MLP as two pure functions on a params pytree.

Plain functions rather than a flax Module: the model is four dense layers, and a list of
{"w", "b"} dicts vmaps, scans and compares leaf by leaf with no framework state in the way.

Each layer computes [h, 1] @ [[w], [b]] rather than h @ w + b. It is the same affine map, but
the bias gradient then comes out of the same matmul as the weight gradient instead of a
separate sum over the N points, whose summation order XLA chooses per shape and which
therefore differs between one run and a vmapped batch of runs. Adam turns such last-bit
differences in near-zero gradients into full-size steps, so after 100 epochs a run trained
alone and the same run in a batch differed by ~4e-3 in their weights; with the bias inside
the matmul (and the data broadcast to the batch, see `memjax.toy.train`) they are bitwise equal
on CPU.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from memjax.types import Array, Params, PRNGKey


def init_mlp(key: PRNGKey, sizes: tuple[int, ...]) -> Params:
    """Dense layers initialised as PyTorch's ``nn.Linear``.

    PyTorch draws weights with kaiming_uniform(a=sqrt(5)), whose bound sqrt(6 / ((1 + 5) fan_in))
    is 1 / sqrt(fan_in), and biases uniform in the same +-1 / sqrt(fan_in).

    Args:
      key: PRNG key; layer l uses split(key, L)[l], split again into (weight, bias).
      sizes: widths from input to output, e.g. (3, 32, 128, 128, 2).

    Returns:
      A list of L = len(sizes) - 1 dicts {"w": [fan_in, fan_out], "b": [fan_out]}, float32.
    """
    params = []
    for layer_key, fan_in, fan_out in zip(jax.random.split(key, len(sizes) - 1), sizes, sizes[1:]):
        w_key, b_key = jax.random.split(layer_key)
        bound = 1.0 / fan_in**0.5
        params.append(
            {
                "w": jax.random.uniform(w_key, (fan_in, fan_out), jnp.float32, -bound, bound),
                "b": jax.random.uniform(b_key, (fan_out,), jnp.float32, -bound, bound),
            }
        )
    return params


def apply_mlp(params: Params, x: Array) -> Array:
    """Logits of the MLP: ReLU after every layer but the last.

    Args:
      params: from `init_mlp`.
      x: [N, 3] inputs.

    Returns:
      [N, C] logits (C = 2 for the toy).
    """
    h = x
    for layer in params[:-1]:
        h = jax.nn.relu(_dense(layer, h))
    return _dense(params[-1], h)


def _dense(layer: dict[str, Array], h: Array) -> Array:
    """h @ w + b as one matmul [h, 1] @ [[w], [b]] (why: the module docstring). h: [N, I]."""
    ones = jnp.ones((h.shape[0], 1), h.dtype)
    return jnp.concatenate([h, ones], axis=1) @ jnp.concatenate([layer["w"], layer["b"][None]])
