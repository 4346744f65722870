"""Parser of the CIFAR-10 binary format (uncompressed bytes in, arrays out).

A file is a sequence of 3,073-byte records: one label byte, then 3,072 pixel bytes stored
channel-major (the 1,024 red values row by row, then green, then blue), i.e. [3, 32, 32].
memjax keeps images channel-last, so records are transposed to [32, 32, 3].

Shape legend: N examples, H, W, K image height, width, channels.
"""
from __future__ import annotations

import numpy as np

from memjax.errors import DataError

RECORD_BYTES = 1 + 3 * 32 * 32
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
BATCH_SIZE = 10_000  # records per official batch file; batch i starts at (i - 1) * 10,000


def parse(data: bytes, path: str, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Parses a CIFAR-10 binary batch.

    Args:
      data: the uncompressed bytes of the file.
      path: the file's path, for error messages.
      num_classes: labels must lie in [0, num_classes).

    Returns:
      images uint8 [N, 32, 32, 3] (HWC) and labels uint8 [N].

    Raises:
      DataError: a length that is not a positive multiple of 3,073, or labels out of range.
    """
    if len(data) == 0 or len(data) % RECORD_BYTES:
        raise DataError(f"{path}: {len(data)} bytes is not a positive multiple of the "
                        f"{RECORD_BYTES}-byte CIFAR-10 record; the file is truncated or not "
                        "CIFAR-10 binary")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0]
    if int(labels.max()) >= num_classes:
        bad = int(np.flatnonzero(labels >= num_classes)[0])
        raise DataError(f"{path}: label {int(labels[bad])} of record {bad} is outside "
                        f"[0, {num_classes}); the file is corrupt or not CIFAR-10 binary")
    # [N, K, H, W] -> [N, H, W, K]; the copy makes the array contiguous for fast batching.
    images = np.ascontiguousarray(records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels.copy()


def encode(images: np.ndarray, labels: np.ndarray) -> bytes:
    """CIFAR-10 binary bytes of uint8 [N, 32, 32, 3] images and [N] labels (inverse of `parse`)."""
    chw = np.asarray(images, dtype=np.uint8).transpose(0, 3, 1, 2).reshape(len(images), -1)
    records = np.concatenate([np.asarray(labels, np.uint8)[:, None], chw], axis=1)
    return records.tobytes()
