"""Parser of the IDX format of MNIST and Fashion-MNIST (uncompressed bytes in, arrays out).

IDX: a big-endian header, then the data row-major. Images: magic 0x00000803, count N, rows H,
columns W, then N*H*W uint8 pixels. Labels: magic 0x00000801, count N, then N uint8 labels.
Every defect raises `DataError` naming the file and what is wrong, because a silently
misparsed file would change every downstream number.

Shape legend: N examples, H, W image height, width.
"""
from __future__ import annotations

import numpy as np

from memjax.errors import DataError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def _header(data: bytes, n_ints: int, magic: int, what: str, path: str) -> np.ndarray:
    # The magic number first: a file of the wrong kind is a clearer error than "too short".
    if len(data) >= 4 and int(np.frombuffer(data, dtype=">u4", count=1)[0]) != magic:
        got = int(np.frombuffer(data, dtype=">u4", count=1)[0])
        raise DataError(f"{path}: IDX magic number 0x{got:08x}, expected 0x{magic:08x} for "
                        f"{what}; the file is corrupt or not an IDX {what} file")
    if len(data) < 4 * n_ints:
        raise DataError(f"{path}: {len(data)} bytes, too short for an IDX {what} header "
                        f"({4 * n_ints} bytes); the file is truncated or not IDX")
    return np.frombuffer(data, dtype=">u4", count=n_ints)


def parse_images(data: bytes, path: str, shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """Parses an IDX image file.

    Args:
      data: the uncompressed bytes of the file.
      path: the file's path, for error messages.
      shape: the expected (H, W).

    Returns:
      uint8 [N, H, W], a read-only view of `data`.

    Raises:
      DataError: wrong magic number or dimensions, or a length that does not match the count.
    """
    header = _header(data, 4, IMAGES_MAGIC, "images", path)
    n, h, w = (int(v) for v in header[1:])
    if (h, w) != tuple(shape):
        raise DataError(f"{path}: IDX images are {h}x{w}, expected {shape[0]}x{shape[1]}")
    expected = 16 + n * h * w
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(f"{path}: header says {n} images of {h}x{w} ({expected} bytes) but the "
                        f"file has {len(data)} bytes: it {state}")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, h, w)


def parse_labels(data: bytes, path: str, num_classes: int = 10) -> np.ndarray:
    """Parses an IDX label file.

    Args:
      data: the uncompressed bytes of the file.
      path: the file's path, for error messages.
      num_classes: labels must lie in [0, num_classes).

    Returns:
      uint8 [N].

    Raises:
      DataError: wrong magic number, a length that does not match the count, labels out of range.
    """
    header = _header(data, 2, LABELS_MAGIC, "labels", path)
    n = int(header[1])
    if len(data) != 8 + n:
        state = "truncated" if len(data) < 8 + n else "has trailing bytes"
        raise DataError(f"{path}: header says {n} labels ({8 + n} bytes) but the file has "
                        f"{len(data)} bytes: it {state}")
    labels = np.frombuffer(data, dtype=np.uint8, offset=8)
    if n and int(labels.max()) >= num_classes:
        bad = int(np.flatnonzero(labels >= num_classes)[0])
        raise DataError(f"{path}: label {int(labels[bad])} at position {bad} is outside "
                        f"[0, {num_classes})")
    return labels


def encode_images(images: np.ndarray) -> bytes:
    """IDX bytes of uint8 [N, H, W] images (used to write the embedded subset and test files)."""
    n, h, w = images.shape
    return np.array([IMAGES_MAGIC, n, h, w], dtype=">u4").tobytes() + np.ascontiguousarray(
        images, dtype=np.uint8).tobytes()


def encode_labels(labels: np.ndarray) -> bytes:
    """IDX bytes of uint8 [N] labels."""
    return np.array([LABELS_MAGIC, len(labels)], dtype=">u4").tobytes() + np.ascontiguousarray(
        labels, dtype=np.uint8).tobytes()
