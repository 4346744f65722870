"""Threat: no network. TFDS, offline, would retry each download for minutes; memjax answers
within seconds with a DataError naming the offline sources, and "auto" never reaches TFDS when
a local folder or the embedded subset holds the data."""
import socket
import sys
import time

import numpy as np
import pytest

from memjax.data import load_dataset, sources
from memjax.errors import DataError

pytest.importorskip("tensorflow_datasets")


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(sources.ENV_DATA_DIR, raising=False)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)


@pytest.fixture
def sockets_blocked(monkeypatch):
    """Every connection and name lookup fails at once, as on a machine without network."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:1])
        raise OSError("network is unreachable (blocked by the test)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture
def sockets_hang(monkeypatch):
    """Name lookups and connections hang (a black-holed network), longer than any test."""
    def hang(*args, **kwargs):
        time.sleep(30)
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    monkeypatch.setattr(socket, "getaddrinfo", hang)
    monkeypatch.setattr(sources, "TFDS_PROBE_TIMEOUT_S", 0.5)


def _assert_names_offline_sources(msg: str, name: str):
    assert "--data-dir" in msg and sources.ENV_DATA_DIR in msg
    assert "embedded" in msg and "mnist (test, train)" in msg and "cifar10 (train)" in msg
    assert "no network" in msg
    if name == "fashion_mnist":
        assert "holds no fashion_mnist" in msg


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_explicit_tfds_offline_fails_fast_naming_offline_sources(sockets_blocked, tmp_path, name):
    t0 = time.perf_counter()
    with pytest.raises(DataError) as e:
        load_dataset(name, "train", source="tfds", data_dir=tmp_path / "tfds")
    elapsed = time.perf_counter() - t0
    assert elapsed < 5.0, f"took {elapsed:.1f} s"
    _assert_names_offline_sources(str(e.value), name)
    assert sockets_blocked, "the probe must have tried the network"


def test_probe_is_bounded_when_the_network_black_holes(sockets_hang, tmp_path):
    t0 = time.perf_counter()
    assert sources.network_available() is False
    assert time.perf_counter() - t0 < 1.5
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="no network"):
        load_dataset("mnist", "test", source="tfds", data_dir=tmp_path)
    assert time.perf_counter() - t0 < 5.0


def test_auto_offline_without_the_data_anywhere_fails_fast(sockets_blocked, monkeypatch, tmp_path):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="sources tried") as e:
        load_dataset("fashion_mnist", "test", source="auto")
    assert time.perf_counter() - t0 < 5.0
    msg = str(e.value)
    assert "local:" in msg and "embedded:" in msg and "tfds:" in msg
    _assert_names_offline_sources(msg, "fashion_mnist")


def test_auto_with_embedded_never_touches_tfds(sockets_blocked, monkeypatch):
    """auto -> embedded: TFDS is neither imported nor called, and no socket is opened."""
    called = []
    monkeypatch.setattr(sources, "load_tfds", lambda *a, **k: called.append(a))
    monkeypatch.setattr(sources, "network_available", lambda *a, **k: called.append("probe"))
    monkeypatch.delitem(sys.modules, "tensorflow_datasets", raising=False)
    ds = load_dataset("mnist", "test", source="auto")
    assert ds.source == "embedded" and len(ds) == 2000
    assert not called and not sockets_blocked
    assert "tensorflow_datasets" not in sys.modules


def test_auto_with_local_files_never_touches_tfds(sockets_blocked, monkeypatch, tmp_path):
    import gzip

    from memjax.data import idx

    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    x = np.zeros((3, 28, 28), np.uint8)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx.encode_images(x)))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx.encode_labels(np.arange(3))))
    monkeypatch.setattr(sources, "load_tfds", lambda *a, **k: pytest.fail("TFDS reached"))
    ds = load_dataset("fashion_mnist", "test", source="auto", data_dir=tmp_path)
    assert ds.source == "local" and len(ds) == 3 and not sockets_blocked


def test_prepared_tfds_data_need_no_network(monkeypatch):
    """Data TFDS already prepared are read with download=False; the probe never runs."""
    import tensorflow_datasets as tfds

    calls = []

    def data_source(name, split, data_dir=None, download=True):
        calls.append(download)
        return [{"image": np.full((28, 28, 1), 7, np.uint8), "label": 3}] * 5

    monkeypatch.setattr(tfds, "data_source", data_source)
    monkeypatch.setattr(sources, "network_available",
                        lambda *a, **k: pytest.fail("probed the network for prepared data"))
    ds = load_dataset("mnist", "test", source="tfds")
    assert calls == [False] and len(ds) == 5 and ds.labels.tolist() == [3] * 5


def test_online_path_downloads_only_after_the_probe(monkeypatch):
    import tensorflow_datasets as tfds

    calls = []

    def data_source(name, split, data_dir=None, download=True):
        calls.append(download)
        if not download:
            raise FileNotFoundError("not prepared")
        return [{"image": np.zeros((28, 28, 1), np.uint8), "label": 1, "id": b"test_00003"}]

    monkeypatch.setattr(tfds, "data_source", data_source)
    monkeypatch.setattr(sources, "network_available", lambda *a, **k: calls.append("probe") or True)
    ds = load_dataset("mnist", "test", source="tfds", data_dir="/nonexistent/tfds")
    assert calls == [False, "probe", True] and ds.example_index.tolist() == [3]


@pytest.mark.parametrize("bad, match", [
    ([], "the split is empty"),
    ([{"image": np.zeros((32, 32, 3), np.uint8), "label": 1}], "images of shape"),
    ([{"image": np.full((28, 28, 1), 300, np.int32), "label": 1}], "integers 0-255"),
    ([{"image": np.zeros((28, 28, 1), np.uint8), "label": 11}], "labels outside"),
    ([{"label": 1}], "unexpected examples"),
])
def test_malformed_tfds_output_is_a_data_error(monkeypatch, bad, match):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(tfds, "data_source", lambda *a, **k: bad)
    with pytest.raises(DataError, match=match):
        load_dataset("mnist", "test", source="tfds")
