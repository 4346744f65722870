"""Data sources: local folder, embedded subset, TFDS, and the "auto" order (memjax.data.sources)."""
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from memjax.data import Dataset, image_shape, load_dataset, sources
from memjax.errors import ConfigError, DataError

SHARED = Path(os.environ.get("MEMJAX_SHARED_DATA",
                             Path(__file__).resolve().parents[1].parent / "shared" / "data"))
needs_shared = pytest.mark.skipif(
    not (SHARED / "mnist" / "train-images-idx3-ubyte.gz").is_file()
    or not (SHARED / "cifar10" / "data_batch_1.bin.gz").is_file(),
    reason=f"shared datasets not found at {SHARED} (set MEMJAX_SHARED_DATA)",
)


@pytest.fixture(autouse=True)
def no_env_data_dir(monkeypatch):
    monkeypatch.delenv(sources.ENV_DATA_DIR, raising=False)


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def no_tfds(monkeypatch):
    """TFDS as offline: fails at once (the real one retries downloads for minutes)."""
    def fail(name, split, data_dir=None):
        raise DataError("TFDS could not provide it (simulated offline)")
    monkeypatch.setattr(sources, "load_tfds", fail)


def _must_not_touch_files(monkeypatch):
    def boom(path):
        raise AssertionError(f"touched {path}")
    monkeypatch.setattr(sources, "read_file", boom)


# ---------------------------------------------------------------------------- config errors


@pytest.mark.parametrize("args, match", [
    (("svhn", "train"), "dataset 'svhn'"),
    (("mnist", "validation"), "split 'validation'"),
    (("mnist", "train", "s3"), "data source 's3'"),
])
def test_unknown_names_are_config_errors_before_any_file(monkeypatch, args, match):
    _must_not_touch_files(monkeypatch)
    with pytest.raises(ConfigError, match=match):
        load_dataset(*args)


def test_image_shape_without_loading(monkeypatch):
    _must_not_touch_files(monkeypatch)
    assert image_shape("mnist") == image_shape("fashion_mnist") == (28, 28, 1)
    assert image_shape("cifar10") == (32, 32, 3)
    with pytest.raises(ConfigError):
        image_shape("imagenet")


# ---------------------------------------------------------------------------- embedded


def test_embedded_offline_contents(offline):
    train = load_dataset("mnist", "train", source="embedded")
    test = load_dataset("mnist", "test", source="embedded")
    probes = load_dataset("cifar10", "train", source="embedded")
    assert (len(train), len(test), len(probes)) == (10_000, 2_000, 1_600)
    assert train.source == test.source == probes.source == "embedded"
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    np.testing.assert_array_equal(train.example_index, np.arange(10_000))
    assert np.bincount(probes.labels).tolist() == [160] * 10
    assert np.all(np.diff(probes.example_index) > 0)  # file order
    assert probes.shape == (32, 32, 3) and probes.checksums.keys() == {"data_batch_1.bin"}
    with pytest.raises(DataError, match="holds no cifar10/test"):
        load_dataset("cifar10", "test", source="embedded")
    with pytest.raises(DataError, match="holds no fashion_mnist"):
        load_dataset("fashion_mnist", "train", source="embedded")


@needs_shared
def test_embedded_equals_full_files_at_its_indices():
    for name, split in (("mnist", "train"), ("mnist", "test"), ("cifar10", "train")):
        emb = load_dataset(name, split, source="embedded")
        full = load_dataset(name, split, source="local", data_dir=SHARED)
        np.testing.assert_array_equal(emb.labels, full.labels[emb.example_index])
        np.testing.assert_array_equal(emb.images, full.images[emb.example_index])
    # The first 160 of each class: no earlier image of that class was skipped.
    lab = full.labels
    for c in range(10):
        chosen = emb.example_index[emb.labels == c]
        assert np.array_equal(chosen, np.flatnonzero(lab == c)[:160])


def test_embedded_checksums_are_verified(tmp_path, monkeypatch):
    copy = tmp_path / "embedded"
    shutil.copytree(sources.EMBEDDED_DIR, copy)
    sums = (copy / "SHA256SUMS").read_text().splitlines()
    sums = [("0" * 64 + line[64:]) if line.endswith("mnist/t10k-labels-idx1-ubyte") else line
            for line in sums]
    (copy / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    monkeypatch.setattr(sources, "EMBEDDED_DIR", copy)
    load_dataset("mnist", "train", source="embedded")  # untouched entries still pass
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: SHA-256 mismatch.*expected 0000"):
        load_dataset("mnist", "test", source="embedded")


# ---------------------------------------------------------------------------- auto order


def test_auto_without_folder_uses_embedded_and_never_tfds(offline, monkeypatch):
    def tfds_called(*a, **k):
        raise AssertionError("auto reached TFDS although the embedded subset holds the data")
    monkeypatch.setattr(sources, "load_tfds", tfds_called)
    assert load_dataset("mnist", "test").source == "embedded"


@needs_shared
def test_auto_prefers_local_folder_and_env_var(monkeypatch):
    assert load_dataset("mnist", "test", data_dir=SHARED).source == "local"
    monkeypatch.setenv(sources.ENV_DATA_DIR, str(SHARED))
    ds = load_dataset("mnist", "test")
    assert ds.source == "local" and len(ds) == 10_000


def test_auto_nothing_usable_lists_sources(tmp_path, no_tfds):
    (tmp_path / "fashion_mnist").mkdir()
    (tmp_path / "fashion_mnist" / "README").write_text("not data")
    with pytest.raises(DataError) as e:
        load_dataset("fashion_mnist", "train", data_dir=tmp_path)
    msg = str(e.value)
    for part in ("local: no train-images-idx3-ubyte", "embedded: the embedded subset holds no",
                 "tfds: TFDS could not provide", "--data-dir", "MEMJAX_DATA_DIR", "online"):
        assert part in msg, (part, msg)


def test_auto_stops_at_a_corrupt_local_file(tmp_path, no_tfds):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01")
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_dataset("mnist", "train", data_dir=tmp_path)  # not silently the embedded subset


def test_local_without_folder(no_tfds):
    with pytest.raises(DataError, match="no data folder given"):
        load_dataset("mnist", "train", source="local")


def test_missing_folder_is_an_error_not_a_fallback(tmp_path, monkeypatch, no_tfds):
    monkeypatch.setenv(sources.ENV_DATA_DIR, str(tmp_path / "typo"))
    with pytest.raises(DataError, match="typo does not exist.*MEMJAX_DATA_DIR"):
        load_dataset("mnist", "test")


# ---------------------------------------------------------------------------- Dataset


def test_take_keeps_example_index_and_checks_n():
    ds = load_dataset("cifar10", "train", source="embedded")
    sub = ds.take(5)
    assert len(sub) == 5 and ds.take(None) is ds
    np.testing.assert_array_equal(sub.example_index, ds.example_index[:5])
    np.testing.assert_array_equal(sub.labels, ds.labels[:5])
    with pytest.raises(ConfigError, match="asked for 1601.*has 1600.*MEMJAX_DATA_DIR"):
        ds.take(1601)
    with pytest.raises(ConfigError):
        ds.take(0)
    assert not ds.images.flags.writeable


def test_dataset_rejects_wrong_dtypes():
    with pytest.raises(ValueError, match="uint8"):
        Dataset("mnist", "train", np.zeros((2, 28, 28, 1), np.float32), np.zeros(2, np.int32),
                np.arange(2), "local", {})
    with pytest.raises(ValueError, match="labels"):
        Dataset("mnist", "train", np.zeros((2, 28, 28, 1), np.uint8), np.zeros(3, np.int32),
                np.arange(2), "local", {})


# ---------------------------------------------------------------------------- TFDS


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_tfds_with_mock_data(name):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=12):
        ds = load_dataset(name, "test", source="tfds")
    assert (len(ds), ds.shape, ds.images.dtype) == (12, image_shape(name), np.uint8)
    assert ds.labels.dtype == np.int32 and ds.labels.min() >= 0 and ds.labels.max() < 10
    assert ds.example_index.dtype == np.int64 and len(set(ds.example_index.tolist())) == 12
    assert ds.source == "tfds" and ds.checksums == {}


def test_tfds_errors_are_data_errors(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def unreachable(*a, **k):
        raise ConnectionError("no route to host")
    monkeypatch.setattr(tfds, "data_source", unreachable)
    with pytest.raises(DataError, match="TFDS could not provide mnist/train.*no route to host"):
        load_dataset("mnist", "train", source="tfds")


def test_tfds_ids_give_official_positions():
    examples = [{"id": b"train_00042"}, {"id": "train_00007"}]
    assert sources._tfds_index(examples, "train").tolist() == [42, 7]
    assert sources._tfds_index([{"image": 0}, {"image": 1}], "train").tolist() == [0, 1]
