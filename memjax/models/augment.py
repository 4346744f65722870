"""Training-time augmentation as the reference's Keras preprocessing layers did it.

All functions act on one batch [B, H, W, K] with one PRNG key and are used only in train mode.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def random_contrast(key: jax.Array, x: jax.Array, factor: float) -> jax.Array:
    """Per image, (x - mean) * c + mean with c ~ U[1 - factor, 1 + factor] (mean per channel)."""
    c = jax.random.uniform(key, (x.shape[0], 1, 1, 1), minval=1.0 - factor, maxval=1.0 + factor)
    mean = x.mean(axis=(1, 2), keepdims=True)
    return (x - mean) * c + mean


def random_crop_resize(key: jax.Array, x: jax.Array, crop: int) -> jax.Array:
    """Per image, a random crop of crop x crop pixels resized back (bilinear) to H x W."""
    b, h, w, k = x.shape
    ky, kx = jax.random.split(key)
    oy = jax.random.randint(ky, (b,), 0, h - crop + 1)
    ox = jax.random.randint(kx, (b,), 0, w - crop + 1)

    def one(img, y0, x0):
        patch = jax.lax.dynamic_slice(img, (y0, x0, 0), (crop, crop, k))
        return jax.image.resize(patch, (h, w, k), method="bilinear", antialias=False)

    return jax.vmap(one)(x, oy, ox)


def random_flip(key: jax.Array, x: jax.Array) -> jax.Array:
    """Per image, a horizontal flip with probability 1/2."""
    flip = jax.random.bernoulli(key, 0.5, (x.shape[0], 1, 1, 1))
    return jnp.where(flip, x[:, :, ::-1, :], x)


def augment(key: jax.Array, x: jax.Array, *, contrast: float, crop: int, flip: bool) -> jax.Array:
    """The reference's augmentation pipeline: contrast, crop and resize back, optional flip."""
    k1, k2, k3 = jax.random.split(key, 3)
    x = random_contrast(k1, x, contrast)
    x = random_crop_resize(k2, x, crop)
    if flip:
        x = random_flip(k3, x)
    return x
