"""Layers shared by the model families.

`Conv3x3` is a 3x3 convolution written as nine shifted slices and one matmul (im2col). It holds
the same parameters as `flax.linen.Conv` (kernel [3, 3, K_in, K_out], bias [K_out]) but keeps one
big GEMM per layer: a vmapped `nn.Conv` with per-model kernels becomes a grouped convolution,
which XLA:CPU runs several times slower (jax-ml/jax#12868), while a vmapped matmul stays a
batched GEMM.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

glorot = nn.initializers.glorot_uniform()
zeros = nn.initializers.zeros


class Conv3x3(nn.Module):
    """3x3 convolution, stride 1, padding "SAME" or "VALID", as one matmul over patches.

    Input [B, H, W, K_in] -> output [B, H', W', K_out]; H' = H ("SAME") or H - 2 ("VALID").
    """

    features: int
    padding: str = "SAME"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k_in = x.shape[-1]
        kernel = self.param("kernel", glorot, (3, 3, k_in, self.features))
        bias = self.param("bias", zeros, (self.features,))
        if self.padding == "SAME":
            x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        h, w = x.shape[1] - 2, x.shape[2] - 2
        # Patches ordered (dy, dx, k_in) to match the kernel's flattened layout.
        patches = jnp.concatenate(
            [x[:, dy : dy + h, dx : dx + w, :] for dy in range(3) for dx in range(3)], axis=-1
        )
        y = patches @ kernel.reshape(9 * k_in, self.features)
        return y + bias


def max_pool2(x: jax.Array) -> jax.Array:
    """2x2 max pooling, stride 2 (floor), [B, H, W, K] -> [B, H//2, W//2, K]."""
    b, h, w, k = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2, :]
    return x.reshape(b, h // 2, 2, w // 2, 2, k).max(axis=(2, 4))


def dense(features: int, name: str | None = None) -> nn.Dense:
    """A Dense layer with the reference's Glorot-uniform kernel and zero bias."""
    return nn.Dense(features, kernel_init=glorot, bias_init=zeros, name=name)


def batch_norm(train: bool, name: str | None = None) -> nn.BatchNorm:
    """Keras-like batch norm (momentum 0.99, epsilon 1e-3)."""
    return nn.BatchNorm(use_running_average=not train, momentum=0.99, epsilon=1e-3, name=name)
