"""Out-of-distribution probe images (method.md, "Probe images").

MNIST and Fashion-MNIST models are probed with CIFAR-10 training images, resized bilinearly to
28x28 and converted to grayscale; CIFAR-10 models with MNIST training images resized to 32x32
and repeated over 3 channels. Both end divided by 255, in [0, 1], in the model's input shape.
The resize is `tf.image.resize(method="bilinear", antialias=False)` (half-pixel centres, edge
samples clamped), written in NumPy so probes need neither TensorFlow nor a device.

Shape legend: N examples, P probes, H, W, K image height, width, channels.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from memjax.data.dataset import check_name, image_shape
from memjax.data.sources import load_dataset

# ITU-R 601 luma weights, as tf.image.rgb_to_grayscale.
GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], dtype=np.float32)
# model dataset -> probe dataset
PROBE_DATASET = {"mnist": "cifar10", "fashion_mnist": "cifar10", "cifar10": "mnist"}
_CHUNK = 4096  # images converted at a time, to bound the float32 working memory


@dataclass(frozen=True, eq=False)
class Probes:
    """Probe images ready for a model (before standardisation).

    Attributes:
      images: float32 [P, H, W, K] in [0, 1], in the model's input shape.
      labels: int32 [P], the probe dataset's own labels (e.g. the CIFAR-10 class index).
      example_index: int64 [P], each probe's index in the probe dataset's official train split.
      dataset: the probe dataset's name, e.g. "cifar10".
      source: where the probe dataset came from ("local", "embedded" or "tfds").
      checksums: file name -> SHA-256 of the probe dataset's files parsed.
    """

    images: np.ndarray
    labels: np.ndarray
    example_index: np.ndarray
    dataset: str
    source: str
    checksums: dict[str, str]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Interpolation weights [n_out, n_in] of TF's half-pixel-centre bilinear resize.

    Output sample i reads input coordinate c = (i + 0.5) * n_in / n_out - 0.5, mixing pixels
    floor(c) and ceil(c) (each clamped to the image) with weights 1 - frac(c) and frac(c).
    """
    c = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    lo_f = np.floor(c)
    frac = c - lo_f
    lo = np.clip(lo_f, 0, n_in - 1).astype(np.int64)
    hi = np.clip(np.ceil(c), 0, n_in - 1).astype(np.int64)
    m = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    np.add.at(m, (rows, lo), 1.0 - frac)
    np.add.at(m, (rows, hi), frac)
    return m


def resize_bilinear(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize without antialiasing, as `tf.image.resize(images, size)`.

    Args:
      images: [N, H, W, K], any real dtype.
      size: (H', W').

    Returns:
      float32 [N, H', W', K].
    """
    rh = bilinear_matrix(images.shape[1], size[0]).astype(np.float32)
    rw = bilinear_matrix(images.shape[2], size[1]).astype(np.float32)
    x = np.asarray(images, dtype=np.float32).transpose(0, 3, 1, 2)  # [N, K, H, W]
    return (rh @ x @ rw.T).transpose(0, 2, 3, 1)


def rgb_to_grayscale(images: np.ndarray) -> np.ndarray:
    """[..., 3] -> float32 [..., 1] with the ITU-R 601 weights of `tf.image.rgb_to_grayscale`."""
    return (np.asarray(images, dtype=np.float32) @ GRAY_WEIGHTS)[..., None]


def convert_probes(images: np.ndarray, model_dataset: str) -> np.ndarray:
    """Converts uint8 images of the probe dataset to the model's input shape, in [0, 1].

    Args:
      images: uint8 [P, H, W, K] of `PROBE_DATASET[model_dataset]`.
      model_dataset: the dataset the model was trained on.

    Returns:
      float32 [P, H', W', K'] in [0, 1], (H', W', K') = image_shape(model_dataset).
    """
    h, w, k = image_shape(model_dataset)
    out = np.empty((len(images), h, w, k), dtype=np.float32)
    for start in range(0, len(images), _CHUNK):
        x = resize_bilinear(images[start:start + _CHUNK], (h, w))
        if x.shape[-1] == 3 and k == 1:
            x = rgb_to_grayscale(x)
        elif x.shape[-1] == 1 and k == 3:
            x = np.repeat(x, 3, axis=-1)
        out[start:start + _CHUNK] = x / np.float32(255.0)
    return out


def make_probes(model_dataset: str, n: int | None = None, source: str = "auto",
                data_dir: str | os.PathLike | None = None) -> Probes:
    """The probe images for models trained on `model_dataset`.

    Args:
      model_dataset: "mnist", "fashion_mnist" (probes: CIFAR-10 train) or "cifar10" (probes:
        MNIST train).
      n: use the first n probes (None: all the source holds).
      source, data_dir: where to load the probe dataset from, as `load_dataset`.

    Returns:
      `Probes` with float32 images [P, H, W, K] in [0, 1], P = n.

    Raises:
      ConfigError: unknown dataset or source, or n larger than the source holds.
      DataError: the probe dataset cannot be loaded.
    """
    check_name(model_dataset)
    ds = load_dataset(PROBE_DATASET[model_dataset], "train", source, data_dir).take(n)
    return Probes(
        images=convert_probes(ds.images, model_dataset),
        labels=ds.labels,
        example_index=ds.example_index,
        dataset=ds.name,
        source=ds.source,
        checksums=dict(ds.checksums),
    )
