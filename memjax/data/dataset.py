"""The in-memory dataset every other module consumes, and the static facts about each dataset.

Shape legend: N examples, H, W, K image height, width, channels.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from memjax.config import DATASETS, SOURCES  # noqa: F401  (one list of names, re-exported)
from memjax.errors import ConfigError, DataError

SPLITS = ("train", "test")

# (H, W, K) per dataset: known without loading anything, so models can be built first.
_SHAPES: dict[str, tuple[int, int, int]] = {
    "mnist": (28, 28, 1),
    "fashion_mnist": (28, 28, 1),
    "cifar10": (32, 32, 3),
}
# Size of each official split, for messages that say how much of it a source holds.
OFFICIAL_SIZES: dict[tuple[str, str], int] = {
    ("mnist", "train"): 60_000,
    ("mnist", "test"): 10_000,
    ("fashion_mnist", "train"): 60_000,
    ("fashion_mnist", "test"): 10_000,
    ("cifar10", "train"): 50_000,
    ("cifar10", "test"): 10_000,
}
NUM_CLASSES = 10


def check_name(name: str) -> str:
    """Returns `name` if it is a known dataset.

    Raises:
      ConfigError: for an unknown name.
    """
    if name not in _SHAPES:
        raise ConfigError(f"dataset {name!r}: unknown; choose one of {DATASETS}")
    return name


def check_split(split: str) -> str:
    """Returns `split` if it is "train" or "test".

    Raises:
      ConfigError: otherwise.
    """
    if split not in SPLITS:
        raise ConfigError(f"split {split!r}: unknown; choose one of {SPLITS}")
    return split


def image_shape(name: str) -> tuple[int, int, int]:
    """(H, W, K) of a dataset's images, without loading anything.

    Raises:
      ConfigError: for an unknown dataset.
    """
    return _SHAPES[check_name(name)]


@dataclass(frozen=True, eq=False)
class Dataset:
    """One split of one dataset, as loaded from one source.

    Attributes:
      name: "mnist", "fashion_mnist" or "cifar10".
      split: "train" or "test".
      images: uint8 [N, H, W, K], pixels 0-255; read-only as loaded (copy before editing).
      labels: int32 [N], in [0, num_classes).
      example_index: int64 [N], the position of each example in the full official split
        (kept through `take`, so results can name the images they used).
      source: "local", "embedded", "tfds" or "user" (`Dataset.from_arrays`).
      checksums: file name -> SHA-256 of the uncompressed bytes parsed (empty for TFDS).
      num_classes: number of classes.
    """

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    example_index: np.ndarray
    source: str
    checksums: dict[str, str]
    num_classes: int = NUM_CLASSES

    def __post_init__(self) -> None:
        # Checked once here so every consumer can rely on dtypes and shapes without re-checking.
        n = self.images.shape[0] if self.images.ndim == 4 else -1
        if self.images.dtype != np.uint8 or self.images.shape[1:] != image_shape(self.name):
            raise ValueError(
                f"Dataset {self.name}/{self.split}: images must be uint8 [N, *{image_shape(self.name)}], "
                f"got {self.images.dtype} {self.images.shape}"
            )
        if self.labels.dtype != np.int32 or self.labels.shape != (n,):
            raise ValueError(f"Dataset {self.name}: labels must be int32 [{n}], got "
                             f"{self.labels.dtype} {self.labels.shape}")
        if self.example_index.dtype != np.int64 or self.example_index.shape != (n,):
            raise ValueError(f"Dataset {self.name}: example_index must be int64 [{n}], got "
                             f"{self.example_index.dtype} {self.example_index.shape}")

    @classmethod
    def from_arrays(cls, name: str, split: str, images, labels, example_index=None, *,
                    source: str = "user", num_classes: int = NUM_CLASSES) -> Dataset:
        """A Dataset from the user's own arrays, validated like a file from disk.

        Args:
          name: the dataset the arrays stand for (fixes the image shape), e.g. "mnist".
          split: "train" or "test".
          images: [N, H, W, K] (or [N, H, W] for one channel): unsigned/signed integers with
            values 0-255, or floats in [0, 1] (scaled by 255 and rounded). Bool, complex,
            object and string arrays are refused.
          labels: [N] integers in [0, num_classes) (integer-valued floats are accepted).
          example_index: [N] non-negative integers (default 0..N-1).
          source: recorded in `Dataset.source`.

        Returns:
          A Dataset with read-only uint8 images and int32 labels (copies of the inputs).

        Raises:
          ConfigError: unknown dataset or split.
          DataError: naming the input (``images``, ``labels``, ``example_index``) and the defect:
            wrong dtype, wrong shape, an empty split, NaN or infinite pixels, values out of
            range, lengths that differ, labels out of range, duplicate example indices.
        """
        check_name(name)
        check_split(split)
        where = f"{name}/{split} arrays"
        shape = image_shape(name)
        x = np.asarray(images)
        if x.dtype == object or x.dtype.kind not in "uif":
            raise DataError(f"{where}: images have dtype {x.dtype}; expected integers 0-255 or "
                            "floats in [0, 1]")
        if x.ndim == 3 and shape[2] == 1:
            x = x[..., None]
        if x.ndim != 4 or x.shape[1:] != shape:
            raise DataError(f"{where}: images have shape {x.shape}; expected [N, {shape[0]}, "
                            f"{shape[1]}, {shape[2]}] for {name}")
        if x.shape[0] == 0:
            raise DataError(f"{where}: images hold no examples (an empty split)")
        if x.dtype.kind == "f":
            bad = ~np.isfinite(x)
            if bad.any():
                first = tuple(int(i) for i in np.argwhere(bad)[0])
                raise DataError(f"{where}: images hold {int(bad.sum())} NaN or infinite pixel(s), "
                                f"the first at index {first}; replace them before loading")
            if x.min() < 0.0 or x.max() > 1.0:
                raise DataError(f"{where}: float images must lie in [0, 1], got "
                                f"[{float(x.min()):g}, {float(x.max()):g}]; divide 0-255 pixels "
                                "by 255 or pass them as uint8")
            x = np.rint(x.astype(np.float64) * 255.0).astype(np.uint8)
        else:
            if int(x.min()) < 0 or int(x.max()) > 255:
                raise DataError(f"{where}: integer images must lie in 0-255, got "
                                f"[{int(x.min())}, {int(x.max())}]")
            x = x.astype(np.uint8)
        n = x.shape[0]
        y = np.asarray(labels)
        if y.dtype == object or y.dtype.kind not in "uif":
            raise DataError(f"{where}: labels have dtype {y.dtype}; expected integers")
        if y.shape != (n,):
            raise DataError(f"{where}: labels have shape {y.shape}; expected [{n}] (one per image)")
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
                raise DataError(f"{where}: labels hold NaN, infinite or non-integer values")
        if y.min() < 0 or y.max() >= num_classes:
            bad = int(np.flatnonzero((y < 0) | (y >= num_classes))[0])
            raise DataError(f"{where}: label {y[bad].item()!r} at position {bad} is outside "
                            f"[0, {num_classes})")
        if example_index is None:
            idx = np.arange(n, dtype=np.int64)
        else:
            idx = np.asarray(example_index)
            if idx.dtype.kind not in "ui" or idx.shape != (n,):
                raise DataError(f"{where}: example_index must be integers of shape [{n}], got "
                                f"{idx.dtype} {idx.shape}")
            if idx.min() < 0 or len(np.unique(idx)) != n:
                raise DataError(f"{where}: example_index must be distinct non-negative integers")
            idx = idx.astype(np.int64)
        x.flags.writeable = False
        return cls(name=name, split=split, images=x, labels=y.astype(np.int32), example_index=idx,
                   source=source, checksums={}, num_classes=num_classes)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, K) of one image."""
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    def take(self, n: int | None) -> Dataset:
        """The first `n` examples (None: all), as views of this dataset's arrays.

        Raises:
          ConfigError: if n < 1 or n exceeds the examples this source holds.
        """
        if n is None:
            return self
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"{self.name}/{self.split}: n={n!r} must be a positive integer or None")
        if n > len(self):
            full = OFFICIAL_SIZES[(self.name, self.split)]
            hint = ""
            if self.source == "embedded":
                hint = (f"; the embedded subset holds only {len(self)} of the {full} images: "
                        "point memjax at the full files with --data-dir or MEMJAX_DATA_DIR")
            raise ConfigError(
                f"{self.name}/{self.split}: asked for {n} examples but source "
                f"{self.source!r} has {len(self)}{hint}"
            )
        return dataclasses.replace(
            self,
            images=self.images[:n],
            labels=self.labels[:n],
            example_index=self.example_index[:n],
        )
