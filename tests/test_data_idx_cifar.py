"""Parsers of IDX and CIFAR-10 binary files, and their validation (memjax.data.idx, .cifar)."""
import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from memjax.data import cifar, idx, load_dataset
from memjax.errors import DataError

SHARED = Path(os.environ.get("MEMJAX_SHARED_DATA",
                             Path(__file__).resolve().parents[1].parent / "shared" / "data"))
needs_shared = pytest.mark.skipif(
    not (SHARED / "mnist" / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"shared datasets not found at {SHARED} (set MEMJAX_SHARED_DATA)",
)


def _write(folder: Path, name: str, data: bytes, gz: bool = True) -> Path:
    path = folder / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def _idx_folder(folder: Path, n: int = 5, labels=None, images=None, gz: bool = True) -> Path:
    """A tiny valid IDX train split in `folder` (fashion_mnist: no official checksum applies)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) if images is None else images
    labels = np.arange(n) % 10 if labels is None else labels
    _write(folder, "train-images-idx3-ubyte", idx.encode_images(images), gz)
    _write(folder, "train-labels-idx1-ubyte", idx.encode_labels(np.asarray(labels)), gz)
    return folder


# ---------------------------------------------------------------------------- real files


@needs_shared
def test_mnist_train_reproduces_official_numbers():
    ds = load_dataset("mnist", "train", source="local", data_dir=SHARED)
    assert len(ds) == 60_000 and ds.shape == (28, 28, 1) and ds.images.dtype == np.uint8
    assert round(float(ds.images.mean(dtype=np.float64)), 3) == 33.318
    assert ds.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert ds.labels.dtype == np.int32 and ds.example_index.dtype == np.int64
    assert np.array_equal(ds.example_index, np.arange(60_000))
    assert ds.source == "local" and set(ds.checksums) == {
        "train-images-idx3-ubyte", "train-labels-idx1-ubyte"}
    assert len(load_dataset("mnist", "test", source="local", data_dir=SHARED)) == 10_000


@needs_shared
def test_fashion_and_cifar_shapes():
    fashion = load_dataset("fashion_mnist", "test", source="local", data_dir=SHARED)
    assert (len(fashion), fashion.shape) == (10_000, (28, 28, 1))
    c = load_dataset("cifar10", "test", source="local", data_dir=SHARED / "cifar10")  # files directly
    assert (len(c), c.shape, c.images.dtype) == (10_000, (32, 32, 3), np.uint8)
    assert set(np.unique(c.labels)) == set(range(10))
    train = load_dataset("cifar10", "train", source="local", data_dir=SHARED)
    assert len(train) == 10_000 and list(train.checksums) == ["data_batch_1.bin"]


# ---------------------------------------------------------------------------- CIFAR layout


def test_cifar_record_is_channel_major(tmp_path):
    # Record: label byte, then R plane, G plane, B plane, each 32x32 row-major.
    planes = np.arange(3 * 32 * 32, dtype=np.int64).reshape(3, 32, 32) % 251
    record = bytes([7]) + planes.astype(np.uint8).tobytes()
    second = bytes([2]) + bytes(3072)
    _write(tmp_path, "test_batch.bin", record + second, gz=False)
    ds = load_dataset("cifar10", "test", source="local", data_dir=tmp_path)
    assert ds.labels.tolist() == [7, 2] and ds.shape == (32, 32, 3)
    for k in range(3):  # pixel (h, w) of channel k is plane k at (h, w)
        np.testing.assert_array_equal(ds.images[0, :, :, k], planes[k])
    assert ds.images[0, 1, 2, 1] == planes[1, 1, 2]
    assert not ds.images[1].any()
    images, labels = cifar.parse(cifar.encode(ds.images, ds.labels), "x")
    np.testing.assert_array_equal(images, ds.images)


def test_cifar_train_concatenates_batches_with_official_positions(tmp_path):
    one = bytes([1]) + bytes(3072)
    _write(tmp_path, "data_batch_1.bin", one * 2)
    _write(tmp_path, "data_batch_3.bin", one * 3)
    ds = load_dataset("cifar10", "train", source="local", data_dir=tmp_path)
    assert ds.example_index.tolist() == [0, 1, 20_000, 20_001, 20_002]


def test_cifar_bad_length_and_label(tmp_path):
    path = _write(tmp_path, "test_batch.bin", bytes([1]) + bytes(3000))
    with pytest.raises(DataError, match=str(path)) as e:
        load_dataset("cifar10", "test", source="local", data_dir=tmp_path)
    assert "3073" in str(e.value)
    path = _write(tmp_path, "test_batch.bin", bytes([10]) + bytes(3072))
    with pytest.raises(DataError, match=f"{path}.*label 10"):
        load_dataset("cifar10", "test", source="local", data_dir=tmp_path)


# ---------------------------------------------------------------------------- IDX validation


@pytest.mark.parametrize("gz", [True, False])
def test_idx_roundtrip_gzipped_or_plain(tmp_path, gz):
    images = np.random.default_rng(1).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    _idx_folder(tmp_path, n=6, images=images, gz=gz)
    ds = load_dataset("fashion_mnist", "train", source="local", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.images[..., 0], images)
    assert ds.labels.tolist() == [0, 1, 2, 3, 4, 5]


def test_truncated_gz(tmp_path):
    _idx_folder(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError, match=f"{path}.*gzip"):
        load_dataset("fashion_mnist", "train", source="local", data_dir=tmp_path)


def test_corrupt_gz_byte(tmp_path):
    _idx_folder(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=str(path)):
        load_dataset("fashion_mnist", "train", source="local", data_dir=tmp_path)


def test_corrupt_magic_byte(tmp_path):
    _idx_folder(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[2] = 0x01  # 0x00000803 -> 0x00000103
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=f"{path}.*magic number 0x00000103"):
        load_dataset("mnist", "train", source="local", data_dir=tmp_path)


def test_wrong_magic_file(tmp_path):
    # A label file where the image file should be.
    _idx_folder(tmp_path)
    _write(tmp_path, "train-images-idx3-ubyte", idx.encode_labels(np.zeros(5, np.uint8)))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*0x00000801.*expected 0x00000803"):
        load_dataset("fashion_mnist", "train", source="local", data_dir=tmp_path)


def test_wrong_dimensions(tmp_path):
    _idx_folder(tmp_path)
    _write(tmp_path, "train-images-idx3-ubyte", idx.encode_images(np.zeros((5, 32, 32), np.uint8)))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*32x32, expected 28x28"):
        load_dataset("fashion_mnist", "train", source="local", data_dir=tmp_path)


def test_truncated_idx_payload(tmp_path):
    _idx_folder(tmp_path)
    data = idx.encode_images(np.zeros((5, 28, 28), np.uint8))[:-100]
    path = _write(tmp_path, "train-images-idx3-ubyte", data)
    with pytest.raises(DataError, match=f"{path}.*5 images.*truncated"):
        load_dataset("fashion_mnist", "train", source="local", data_dir=tmp_path)
    with pytest.raises(DataError, match="too short"):
        idx.parse_labels(b"\x00\x00", "short")


def test_labels_out_of_range(tmp_path):
    _idx_folder(tmp_path, labels=[0, 1, 12, 3, 4])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: label 12 at position 2"):
        load_dataset("fashion_mnist", "train", source="local", data_dir=tmp_path)


def test_count_mismatch(tmp_path):
    _idx_folder(tmp_path, n=5)
    _write(tmp_path, "train-labels-idx1-ubyte", idx.encode_labels(np.zeros(4, np.uint8)))
    with pytest.raises(DataError, match="5 images.*4 labels"):
        load_dataset("fashion_mnist", "train", source="local", data_dir=tmp_path)


def test_mnist_checksum_is_verified(tmp_path):
    # Valid IDX files with MNIST's names are not the official bytes: expected vs got.
    _idx_folder(tmp_path)
    with pytest.raises(DataError, match="SHA-256 mismatch for official MNIST: expected ba8910"):
        load_dataset("mnist", "train", source="local", data_dir=tmp_path)


@needs_shared
def test_mnist_files_are_not_fashion(tmp_path):
    with pytest.raises(DataError, match="official MNIST file, not fashion_mnist"):
        load_dataset("fashion_mnist", "test", source="local", data_dir=SHARED / "mnist")
