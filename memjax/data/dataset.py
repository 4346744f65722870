"""The in-memory dataset every other module consumes, and the static facts about each dataset.

Shape legend: N examples, H, W, K image height, width, channels.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from memjax.config import DATASETS, SOURCES  # noqa: F401  (one list of names, re-exported)
from memjax.errors import ConfigError

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
      source: "local", "embedded" or "tfds".
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
