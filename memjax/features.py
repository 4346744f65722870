"""Unique features (UFs), their control patches, and insertion into images.

A unique feature is a small pattern written into exactly one training image (the canary); see
``docs/method.md``, "Unique feature and where it goes". This module turns a `FeatureConfig` into
pixels and writes them into images:

* `feature_bitmap` gives the feature's [h, w] pixel values in [0, 1] before upscaling: 5x5
  capital letters from `FONT` (a name is letters side by side), a solid square, or a user bitmap.
* `render` upscales a bitmap (nearest neighbour), places it at an offset and writes it into every
  channel, giving a boolean mask and the values to write, both [..., H, W, K].
* `insert` writes them into images: ``where(mask, value, x)``; pixels outside the mask are
  returned bit for bit.

Control patches. The scores compare the UF against a *control patch*: a random binary bitmap of
the same (h, w) as the feature's bitmap before upscaling, rendered exactly like the feature (same
offset, scale, channels, transparency), one per probe. They are i.i.d. Bernoulli(1/2) bitmaps
drawn once per study from a fixed seed (`control_bitmaps`) and shared by every model scored, so
that models differ only in their weights, never in their probes. Render them with the same call
as the feature: ``render(control_bitmaps(P, bitmap.shape, seed), image_shape, offset, scale,
transparent)`` gives [P, H, W, K] masks and values.

Everything here works in pixel space [0, 1], before standardisation. `render` and `insert` take
``xp=numpy`` or ``xp=jax.numpy``; with `jax.numpy` they run inside `jax.jit` with the bitmap (and
images) traced, while offset, scale, image shape and transparency are static Python values.

Shape legend: P probes, H, W, K image height, width, channels, h, w bitmap height, width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from memjax.config import FeatureConfig
from memjax.errors import FeatureError

# --------------------------------------------------------------------------------------------
# The font

# 5x5 capitals, one string of five rows per letter. 'A' is the reference UF of method.md and must
# stay exactly as written there; the other letters only need to be clear and pairwise distinct.
_GLYPHS: dict[str, tuple[str, ...]] = {
    "A": ("00100", "01010", "11111", "10001", "10001"),
    "B": ("11110", "10001", "11110", "10001", "11110"),
    "C": ("01111", "10000", "10000", "10000", "01111"),
    "D": ("11110", "10001", "10001", "10001", "11110"),
    "E": ("11111", "10000", "11110", "10000", "11111"),
    "F": ("11111", "10000", "11110", "10000", "10000"),
    "G": ("01111", "10000", "10011", "10001", "01111"),
    "H": ("10001", "10001", "11111", "10001", "10001"),
    "I": ("11111", "00100", "00100", "00100", "11111"),
    "J": ("00111", "00010", "00010", "10010", "01100"),
    "K": ("10001", "10010", "11100", "10010", "10001"),
    "L": ("10000", "10000", "10000", "10000", "11111"),
    "M": ("10001", "11011", "10101", "10001", "10001"),
    "N": ("10001", "11001", "10101", "10011", "10001"),
    "O": ("01110", "10001", "10001", "10001", "01110"),
    "P": ("11110", "10001", "11110", "10000", "10000"),
    "Q": ("01110", "10001", "10101", "10010", "01101"),
    "R": ("11110", "10001", "11110", "10010", "10001"),
    "S": ("01111", "10000", "01110", "00001", "11110"),
    "T": ("11111", "00100", "00100", "00100", "00100"),
    "U": ("10001", "10001", "10001", "10001", "01110"),
    "V": ("10001", "10001", "10001", "01010", "00100"),
    "W": ("10001", "10001", "10101", "11011", "10001"),
    "X": ("10001", "01010", "00100", "01010", "10001"),
    "Y": ("10001", "01010", "00100", "00100", "00100"),
    "Z": ("11111", "00010", "00100", "01000", "11111"),
}


def _glyph(rows: tuple[str, ...]) -> np.ndarray:
    a = np.array([[int(c) for c in row] for row in rows], dtype=np.uint8)
    a.setflags(write=False)  # shared module-level constants: nobody may edit a letter in place
    return a


FONT: dict[str, np.ndarray] = {ch: _glyph(rows) for ch, rows in _GLYPHS.items()}
"""'A'..'Z' -> read-only uint8 [5, 5] bitmaps of 0/1."""


def letter_bitmap(ch: str) -> np.ndarray:
    """The 5x5 bitmap of one capital letter.

    Args:
      ch: one letter A-Z (lower case is accepted and upper-cased).

    Returns:
      uint8 [5, 5] of 0/1 (a fresh, writable copy).

    Raises:
      FeatureError: if `ch` is not a single letter A-Z.
    """
    if not isinstance(ch, str) or len(ch) != 1 or ch.upper() not in FONT:
        raise FeatureError(f"letter {ch!r}: the font has the letters A-Z only")
    return FONT[ch.upper()].copy()


def text_bitmap(text: str, spacing: int = 1) -> np.ndarray:
    """Letters side by side, `spacing` blank columns between them.

    Args:
      text: one or more letters A-Z (case-insensitive), e.g. "A" or a name.
      spacing: blank columns between consecutive letters (>= 0).

    Returns:
      uint8 [5, 5 n + spacing (n - 1)] of 0/1, n = len(text).

    Raises:
      FeatureError: on an empty text, a character outside A-Z or a negative spacing.
    """
    if not isinstance(text, str) or len(text) == 0:
        raise FeatureError(f"feature text {text!r}: give one or more letters A-Z")
    bad = sorted({c for c in text if c.upper() not in FONT})
    if bad:
        raise FeatureError(f"feature text {text!r}: characters {bad} are not letters A-Z")
    if not _is_int(spacing) or spacing < 0:
        raise FeatureError(f"feature spacing={spacing!r}: must be an integer >= 0")
    gap = np.zeros((5, spacing), dtype=np.uint8)
    parts: list[np.ndarray] = []
    for i, c in enumerate(text.upper()):
        if i:
            parts.append(gap)
        parts.append(FONT[c])
    return np.concatenate(parts, axis=1)


# --------------------------------------------------------------------------------------------
# Feature configs -> bitmaps and sizes


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _user_bitmap(rows: Any) -> np.ndarray:
    """Validates a user bitmap (rows of values in [0, 1]) and returns it as float32 [h, w]."""
    if rows is None:
        raise FeatureError("feature.bitmap: required for kind 'bitmap' (rows of values in [0, 1])")
    try:
        a = np.asarray(rows, dtype=np.float64)
    except (ValueError, TypeError) as e:  # ragged rows or non-numbers
        raise FeatureError(
            f"feature.bitmap: must be rectangular rows of numbers in [0, 1] ({e})"
        ) from None
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise FeatureError(
            f"feature.bitmap: must be a non-empty 2-D array (rows x columns), got shape {a.shape}"
        )
    if not np.all(np.isfinite(a)):
        raise FeatureError("feature.bitmap: contains NaN or infinite values; use values in [0, 1]")
    if a.min() < 0.0 or a.max() > 1.0:
        raise FeatureError(
            f"feature.bitmap: values must be in [0, 1], got range [{a.min():g}, {a.max():g}]"
        )
    return a.astype(np.float32)


def feature_bitmap(cfg: FeatureConfig) -> np.ndarray:
    """The feature's pixel values before upscaling.

    Args:
      cfg: the feature; kind "text" (letters, 1 = ink), "square" (`size` x `size`, all `value`)
        or "bitmap" (`cfg.bitmap`, rows of values in [0, 1]).

    Returns:
      float32 [h, w], values in [0, 1].

    Raises:
      FeatureError: on an unknown kind, bad letters, a bad square or a malformed bitmap.
    """
    if cfg.kind == "text":
        return text_bitmap(cfg.text, cfg.spacing).astype(np.float32)
    if cfg.kind == "square":
        if not _is_int(cfg.size) or cfg.size < 1:
            raise FeatureError(f"feature.size={cfg.size!r}: must be an integer >= 1")
        v = cfg.value
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not (
            math.isfinite(v) and 0.0 <= v <= 1.0
        ):
            raise FeatureError(f"feature.value={v!r}: must be a number in [0, 1]")
        return np.full((cfg.size, cfg.size), v, dtype=np.float32)
    if cfg.kind == "bitmap":
        return _user_bitmap(cfg.bitmap)
    raise FeatureError(f"feature.kind={cfg.kind!r}: use 'text', 'square' or 'bitmap'")


def feature_extent(cfg: FeatureConfig) -> tuple[int, int]:
    """(rows, columns) the feature covers in the image after upscaling: (h * scale, w * scale).

    Raises:
      FeatureError: if the feature is malformed or the scale is not an integer >= 1.
    """
    _check_scale(cfg.scale)
    h, w = feature_bitmap(cfg).shape
    return h * cfg.scale, w * cfg.scale


def _describe(cfg: FeatureConfig) -> str:
    if cfg.kind == "text":
        return f"text {cfg.text!r}"
    if cfg.kind == "square":
        return f"square of side {cfg.size}"
    return "bitmap"


def _check_scale(scale: Any) -> None:
    if not _is_int(scale) or scale < 1:
        raise FeatureError(f"feature.scale={scale!r}: must be an integer >= 1")


def _check_placement(
    size: tuple[int, int], image_shape: tuple[int, ...], offset: Any, what: str
) -> None:
    """Raises FeatureError unless a [size] block at `offset` lies inside an [H, W, K] image."""
    if len(image_shape) != 3 or not all(_is_int(d) and d >= 1 for d in image_shape):
        raise FeatureError(f"image shape {tuple(image_shape)}: expected (H, W, K) positive ints")
    if (
        not isinstance(offset, (tuple, list))
        or len(offset) != 2
        or not all(_is_int(o) and o >= 0 for o in offset)
    ):
        raise FeatureError(f"feature.offset={offset!r}: expected (row, column), integers >= 0")
    H, W, K = image_shape
    (r, c), (fh, fw) = offset, size
    if r + fh > H or c + fw > W:
        raise FeatureError(
            f"{what} of {fh}x{fw} pixels at offset ({r}, {c}) needs rows {r}..{r + fh - 1} and "
            f"columns {c}..{c + fw - 1}, but the image is {H}x{W}x{K} (rows 0..{H - 1}, "
            f"columns 0..{W - 1}); "
            + (
                f"use an offset of at most ({H - fh}, {W - fw})"
                if fh <= H and fw <= W
                else "the feature is larger than the image: use a smaller feature or scale"
            )
        )


def check_fits(cfg: FeatureConfig, image_shape: tuple[int, int, int]) -> None:
    """Checks that the upscaled feature at its offset lies inside the image.

    Call before any compilation, so that a misplaced feature fails with a message rather than
    a shape error deep inside a traced function.

    Args:
      cfg: the feature.
      image_shape: (H, W, K) of one image.

    Raises:
      FeatureError: naming the feature's size, its offset and the image's size, if the feature
        would extend past the bottom or right edge (or is malformed).
    """
    fh, fw = feature_extent(cfg)
    _check_placement(
        (fh, fw), tuple(image_shape), cfg.offset, f"feature ({_describe(cfg)}, scale {cfg.scale})"
    )


# --------------------------------------------------------------------------------------------
# Rendering and insertion


@dataclass(frozen=True, eq=False)  # eq=False: array fields have no meaningful ==
class Overlay:
    """A rendered feature, ready for `insert`.

    Attributes:
      mask: bool [H, W, K], True where the feature writes.
      value: float32 [H, W, K], what it writes there (zero elsewhere).
    """

    mask: np.ndarray
    value: np.ndarray


def render(
    bitmap: Any,
    image_shape: tuple[int, int, int],
    offset: tuple[int, int],
    scale: int = 1,
    transparent: bool = False,
    xp: ModuleType = np,
) -> tuple[Any, Any]:
    """Places a bitmap (or a batch of them) in an image-sized canvas.

    The bitmap is upscaled by nearest neighbour (each pixel becomes a `scale` x `scale` block),
    its top-left pixel put at `offset`, and it is written into every channel.

    Args:
      bitmap: [..., h, w] pixel values in [0, 1]; leading batch dims are kept (e.g. [P, h, w]
        control bitmaps). May be a traced array when `xp` is `jax.numpy`.
      image_shape: (H, W, K), static.
      offset: (row, column) of the top-left pixel, static.
      scale: integer upscale factor >= 1, static.
      transparent: if True the mask covers only the non-zero ("ink") pixels, otherwise all the
        feature's pixels (overwrite mode), static.
      xp: `numpy` or `jax.numpy`.

    Returns:
      (mask, value): bool [..., H, W, K] and float32 [..., H, W, K]; value is 0 outside the
      feature.

    Raises:
      FeatureError: if the bitmap is not at least 2-D, or it does not fit at `offset`.
    """
    _check_scale(scale)
    b = xp.asarray(bitmap)
    if b.ndim < 2:
        raise FeatureError(f"bitmap of shape {tuple(b.shape)}: expected [..., h, w]")
    *batch, h, w = b.shape
    _check_placement((h * scale, w * scale), tuple(image_shape), offset, "bitmap")
    H, W, K = image_shape
    r, c = offset
    # Cast first so that the float32 values are exact copies whatever the input dtype (0/1 uint8
    # letters, float user bitmaps); repeat is nearest-neighbour upscaling in both libraries.
    b = b.astype(xp.float32)
    if scale > 1:
        b = xp.repeat(xp.repeat(b, scale, axis=-2), scale, axis=-1)
    pad = [(0, 0)] * len(batch) + [(r, H - r - h * scale), (c, W - c - w * scale)]
    value = xp.pad(b, pad)
    if transparent:
        mask = value != 0
    else:
        # The footprint does not depend on the bitmap's values: build it from a ones block so
        # that it is a constant under jit.
        mask = xp.pad(xp.ones(b.shape, dtype=bool), pad)
    full = (*batch, H, W, K)
    return (
        xp.broadcast_to(mask[..., None], full),
        xp.broadcast_to(value[..., None], full),
    )


def render_feature(cfg: FeatureConfig, image_shape: tuple[int, int, int]) -> Overlay:
    """The feature of `cfg` rendered in NumPy for images of shape (H, W, K).

    Returns:
      Overlay with mask bool [H, W, K] and value float32 [H, W, K].

    Raises:
      FeatureError: if the feature is malformed or does not fit (see `check_fits`).
    """
    check_fits(cfg, image_shape)
    mask, value = render(
        feature_bitmap(cfg), tuple(image_shape), tuple(cfg.offset), cfg.scale, cfg.transparent
    )
    # Contiguous, read-only copies: broadcast views are awkward to save or to hand to jax.
    mask, value = np.array(mask), np.array(value)
    mask.setflags(write=False)
    value.setflags(write=False)
    return Overlay(mask=mask, value=value)


def insert(x: Any, mask: Any, value: Any, xp: ModuleType = np) -> Any:
    """Writes a rendered feature into images: ``where(mask, value, x)``.

    Pixels outside the mask are returned bit for bit; pixels inside take `value` cast to x's
    dtype (exact for 0/1 and for float32 values into float32/float64 images).

    Args:
      x: float [..., H, W, K] images in [0, 1] pixel space (before standardisation).
      mask: bool, broadcastable to x (e.g. [H, W, K] for one feature, [P, H, W, K] per probe).
      value: float, broadcastable to x, same layout as `mask`.
      xp: `numpy` or `jax.numpy` (works under `jax.jit`).

    Returns:
      Array of x's dtype and the broadcast shape of (x, mask, value).

    Raises:
      FeatureError: if x is not a floating-point array (e.g. raw uint8 pixels).
    """
    x = xp.asarray(x)
    if not _is_floating(x.dtype):
        raise FeatureError(
            f"insert: images must be floating point in [0, 1] (divide uint8 pixels by 255), "
            f"got dtype {x.dtype}"
        )
    # Keep x's dtype: a float32 value must not promote a bfloat16/float16 batch, and the cast
    # is exact for the values features use.
    return xp.where(mask, xp.asarray(value).astype(x.dtype), x)


def _is_floating(dtype: Any) -> bool:
    # np.issubdtype misses ml_dtypes' bfloat16 (jax's); its name still says float.
    return np.issubdtype(dtype, np.floating) or "float" in str(dtype)


# --------------------------------------------------------------------------------------------
# Control patches


def control_bitmaps(n: int, shape: tuple[int, int], seed: int) -> np.ndarray:
    """Random binary control bitmaps, one per probe (see the module docstring).

    Each pixel is an independent Bernoulli(1/2) draw from ``np.random.default_rng(seed)``. The
    draws are taken probe by probe in order, so the first m bitmaps do not depend on n: asking
    for more probes keeps the controls of the ones already used.

    Args:
      n: number of probes P (>= 0).
      shape: (h, w) of the feature's bitmap before upscaling (`feature_bitmap(cfg).shape`).
      seed: the study's control seed (`ProbeConfig.control_seed`).

    Returns:
      uint8 [P, h, w] of 0/1.

    Raises:
      FeatureError: on a negative n or a non-positive shape.
    """
    if not _is_int(n) or n < 0:
        raise FeatureError(f"control bitmaps: n={n!r} must be an integer >= 0")
    if len(shape) != 2 or not all(_is_int(s) and s >= 1 for s in shape):
        raise FeatureError(f"control bitmaps: shape={tuple(shape)!r} must be (h, w), ints >= 1")
    rng = np.random.default_rng(seed)
    # random() consumes one 64-bit draw per pixel in C order, which is what makes the prefix
    # property above hold (integers() on small dtypes buffers draws and would not promise it).
    return (rng.random((n, *shape)) < 0.5).astype(np.uint8)
