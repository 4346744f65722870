"""Threat: corrupted data. Every defect is a DataError naming the input; the IDX and CIFAR-10
parsers (and the whole local-folder loader) never fail with anything else, whatever the bytes.

Counts for docs/reliability.md: the deterministic cases are the parametrised tests below; the
hypothesis tests run `FUZZ_EXAMPLES` examples each (the folder loader half as many; see
`--hypothesis-show-statistics`).
"""
import gzip
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memjax.data import Dataset, cifar, idx, sources
from memjax.data.sources import load_dataset, read_file
from memjax.errors import ConfigError, DataError

# MEMJAX_FUZZ_EXAMPLES=20000 for a long run (docs/reliability.md gives both figures).
FUZZ_EXAMPLES = int(os.environ.get("MEMJAX_FUZZ_EXAMPLES", "400"))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
FUZZ_FOLDER = settings(max_examples=max(FUZZ_EXAMPLES // 2, 1), deadline=None,
                       suppress_health_check=[HealthCheck.too_slow])

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (4, 28, 28), dtype=np.uint8)
LABELS = np.array([3, 1, 4, 1], np.uint8)
IDX_IMAGES = idx.encode_images(IMAGES)
IDX_LABELS = idx.encode_labels(LABELS)
CIFAR_BYTES = cifar.encode(RNG.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8),
                           np.array([0, 9, 5], np.uint8))
MNIST_TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def _no_env_and_no_tfds(monkeypatch):
    monkeypatch.delenv(sources.ENV_DATA_DIR, raising=False)

    def tfds_called(*a, **k):
        raise AssertionError("TFDS must not be reached in these tests")

    monkeypatch.setattr(sources, "load_tfds", tfds_called)


def _folder(root: Path, files: dict[str, bytes], gz: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for base, data in files.items():
        path = root / (base + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return root


def _load_fashion(folder: Path):
    # fashion_mnist: no official checksum applies, so the parser's own checks are what fire.
    return load_dataset("fashion_mnist", "train", source="local", data_dir=folder)


# ------------------------------------------------------------------ deterministic defects


def _truncate_gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)[: len(gzip.compress(data, mtime=0)) // 2]


def _flip_gz(data: bytes) -> bytes:
    z = bytearray(gzip.compress(data, mtime=0))
    for i in range(20, 40):
        z[i] ^= 0xFF
    return bytes(z)


GZ_DEFECTS = {
    "truncated gz": (_truncate_gz, "corrupt or truncated gzip"),
    "corrupted gz stream": (_flip_gz, "corrupt or truncated gzip"),
    "not gzip at all": (lambda d: b"this is not gzip" + d[:100], "corrupt or truncated gzip"),
    "empty gz file": (lambda d: b"", None),
}


@pytest.mark.parametrize("defect", sorted(GZ_DEFECTS))
def test_gzip_defects_name_the_file(tmp_path, defect):
    make, match = GZ_DEFECTS[defect]
    _folder(tmp_path, {MNIST_TRAIN[1]: IDX_LABELS})
    (tmp_path / (MNIST_TRAIN[0] + ".gz")).write_bytes(make(IDX_IMAGES))
    with pytest.raises(DataError, match=match) as e:
        _load_fashion(tmp_path)
    assert MNIST_TRAIN[0] + ".gz" in str(e.value)


IDX_DEFECTS = {
    # name: (images bytes, labels bytes, message fragment)
    "wrong magic (labels file as images)": (IDX_LABELS, IDX_LABELS, "magic number"),
    "wrong magic (random)": (b"\x12\x34\x56\x78" + IDX_IMAGES[4:], IDX_LABELS, "magic number"),
    "wrong dimensions 32x32": (idx.encode_images(np.zeros((4, 32, 32), np.uint8)), IDX_LABELS,
                               "32x32, expected 28x28"),
    "wrong dimensions 28x27": (idx.encode_images(np.zeros((4, 28, 27), np.uint8)), IDX_LABELS,
                               "28x27"),
    "truncated images": (IDX_IMAGES[:-5], IDX_LABELS, "truncated"),
    "truncated header": (IDX_IMAGES[:10], IDX_LABELS, "too short"),
    "trailing bytes": (IDX_IMAGES + b"\0\0", IDX_LABELS, "trailing bytes"),
    "truncated labels": (IDX_IMAGES, IDX_LABELS[:-1], "truncated"),
    "labels out of range": (IDX_IMAGES, idx.encode_labels(np.array([3, 1, 10, 1])),
                            r"label 10 at position 2 is outside \[0, 10\)"),
    "label 255": (IDX_IMAGES, idx.encode_labels(np.array([255, 1, 1, 1])), "label 255"),
    "count mismatch": (IDX_IMAGES, idx.encode_labels(np.array([1, 2, 3])), "holds 4 images but"),
    "empty split": (idx.encode_images(np.zeros((0, 28, 28), np.uint8)),
                    idx.encode_labels(np.zeros(0, np.uint8)), "no examples"),
    "zero-byte files": (b"", b"", "too short"),
}


@pytest.mark.parametrize("defect", sorted(IDX_DEFECTS))
@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_idx_defects_are_data_errors_naming_the_file(tmp_path, defect, gz):
    images, labels, match = IDX_DEFECTS[defect]
    _folder(tmp_path, {MNIST_TRAIN[0]: images, MNIST_TRAIN[1]: labels}, gz=gz)
    with pytest.raises(DataError, match=match) as e:
        _load_fashion(tmp_path)
    assert str(tmp_path) in str(e.value)


CIFAR_DEFECTS = {
    "truncated record": (CIFAR_BYTES[:-1], "not a positive multiple"),
    "extra byte": (CIFAR_BYTES + b"\0", "not a positive multiple"),
    "empty file (empty split)": (b"", "not a positive multiple"),
    "label out of range": (bytes([200]) + CIFAR_BYTES[1:], r"label 200 of record 0"),
    "label 10": (CIFAR_BYTES[: cifar.RECORD_BYTES] + bytes([10]) + CIFAR_BYTES[cifar.RECORD_BYTES + 1:],
                 "label 10 of record 1"),
    "an IDX file instead": (IDX_IMAGES, "not a positive multiple"),
}


@pytest.mark.parametrize("defect", sorted(CIFAR_DEFECTS))
def test_cifar_defects_are_data_errors_naming_the_file(tmp_path, defect):
    data, match = CIFAR_DEFECTS[defect]
    _folder(tmp_path, {cifar.TEST_FILE: data})
    with pytest.raises(DataError, match=match) as e:
        load_dataset("cifar10", "test", source="local", data_dir=tmp_path)
    assert cifar.TEST_FILE in str(e.value)


def test_mnist_checksum_mismatch_names_expected_and_got(tmp_path):
    # Structurally valid MNIST files that are not the official bytes.
    _folder(tmp_path / "mnist", {MNIST_TRAIN[0]: IDX_IMAGES, MNIST_TRAIN[1]: IDX_LABELS})
    with pytest.raises(DataError, match="SHA-256 mismatch.*expected .* got") as e:
        load_dataset("mnist", "train", source="local", data_dir=tmp_path)
    assert "train-images-idx3-ubyte" in str(e.value)


def test_auto_stops_at_corrupt_local_file_instead_of_falling_back(tmp_path):
    _folder(tmp_path / "mnist", {MNIST_TRAIN[0]: IDX_IMAGES[:-3], MNIST_TRAIN[1]: IDX_LABELS})
    with pytest.raises(DataError, match="truncated"):
        load_dataset("mnist", "train", source="auto", data_dir=tmp_path)


def test_missing_data_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="typo.*does not exist"):
        load_dataset("mnist", "train", source="local", data_dir=tmp_path / "typo")


def test_a_directory_where_a_file_should_be(tmp_path):
    (tmp_path / (MNIST_TRAIN[0] + ".gz")).mkdir()
    _folder(tmp_path, {MNIST_TRAIN[1]: IDX_LABELS})
    with pytest.raises(DataError, match="cannot read"):
        read_file(tmp_path / (MNIST_TRAIN[0] + ".gz"))


def test_corrupt_embedded_file_is_detected(tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "embedded"
    shutil.copytree(sources.EMBEDDED_DIR, copy)
    path = copy / "mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # still a valid label: only the checksum can tell
    path.write_bytes(gzip.compress(bytes(raw), mtime=0))
    monkeypatch.setattr(sources, "EMBEDDED_DIR", copy)
    with pytest.raises(DataError, match="SHA-256 mismatch.*embedded") as e:
        load_dataset("mnist", "test", source="embedded")
    assert "t10k-labels-idx1-ubyte.gz" in str(e.value)


# ------------------------------------------------------------------ user arrays


def _x(dtype=np.uint8, n=3, value=0):
    return np.full((n, 28, 28, 1), value, dtype=dtype)


ARRAY_DEFECTS = {
    # name: (images, labels, message fragment)
    "NaN pixel": (np.where(np.arange(28)[None, :, None, None] == 5, np.nan, _x(np.float32)),
                  [0, 1, 2], r"NaN or infinite pixel.*first at index \(0, 5"),
    "inf pixel": (np.full((3, 28, 28), np.inf, np.float64), [0, 1, 2], "NaN or infinite"),
    "float above 1": (_x(np.float32, value=3.0), [0, 1, 2], r"in \[0, 1\]"),
    "negative float": (_x(np.float32, value=-0.5), [0, 1, 2], r"in \[0, 1\]"),
    "int above 255": (_x(np.int32, value=256), [0, 1, 2], "0-255"),
    "negative int": (_x(np.int16, value=-1), [0, 1, 2], "0-255"),
    "bool dtype": (_x(np.bool_), [0, 1, 2], "dtype bool"),
    "complex dtype": (_x(np.complex64), [0, 1, 2], "dtype complex64"),
    "object dtype": (_x(object), [0, 1, 2], "dtype object"),
    "string dtype": (np.full((3, 28, 28, 1), "a"), [0, 1, 2], "dtype <U1"),
    "wrong image shape": (np.zeros((3, 32, 32, 3), np.uint8), [0, 1, 2], r"shape \(3, 32, 32, 3\)"),
    "missing batch axis": (np.zeros((28, 28), np.uint8), [0], "expected \\[N, 28, 28, 1\\]"),
    "empty split": (np.zeros((0, 28, 28, 1), np.uint8), [], "no examples"),
    "labels out of range": (_x(), [0, 1, 10], r"label 10 at position 2"),
    "negative label": (_x(), [0, -1, 2], r"label -1 at position 1"),
    "non-integer labels": (_x(), [0.0, 1.5, 2.0], "non-integer"),
    "NaN label": (_x(), [0.0, np.nan, 2.0], "NaN"),
    "string labels": (_x(), ["a", "b", "c"], "labels have dtype"),
    "too few labels": (_x(), [0, 1], r"labels have shape \(2,\)"),
}


@pytest.mark.parametrize("defect", sorted(ARRAY_DEFECTS))
def test_user_array_defects_are_data_errors_naming_the_input(defect):
    images, labels, match = ARRAY_DEFECTS[defect]
    with pytest.raises(DataError, match=match) as e:
        Dataset.from_arrays("mnist", "train", images, np.asarray(labels))
    assert "mnist/train arrays" in str(e.value)


def test_user_arrays_valid_float_and_int_inputs():
    x = np.linspace(0, 1, 3 * 28 * 28, dtype=np.float32).reshape(3, 28, 28)
    ds = Dataset.from_arrays("mnist", "test", x, np.array([0, 9, 3]))
    assert ds.images.dtype == np.uint8 and ds.images.shape == (3, 28, 28, 1)
    assert ds.images.max() == 255 and ds.images.min() == 0 and not ds.images.flags.writeable
    assert ds.labels.dtype == np.int32 and ds.example_index.tolist() == [0, 1, 2]
    ds2 = Dataset.from_arrays("cifar10", "train", np.zeros((2, 32, 32, 3), np.int64), [1, 2],
                              example_index=[7, 3])
    assert ds2.source == "user" and ds2.example_index.tolist() == [7, 3]
    with pytest.raises(DataError, match="distinct"):
        Dataset.from_arrays("mnist", "train", _x(n=2), [1, 2], example_index=[4, 4])
    with pytest.raises(ConfigError):
        Dataset.from_arrays("svhn", "train", _x(), [0, 1, 2])


# ------------------------------------------------------------------ property-based fuzzing


def _only_data_error(fn, *args):
    """Runs fn; returns its value, or None if it raised DataError. Anything else fails."""
    try:
        return fn(*args)
    except DataError as e:
        assert str(e), "a DataError must say what is wrong"
        return None


@FUZZ
@given(st.binary(max_size=2048))
def test_fuzz_idx_random_bytes(data):
    images = _only_data_error(idx.parse_images, data, "fuzz")
    if images is not None:
        assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
        assert len(data) == 16 + images.size
    labels = _only_data_error(idx.parse_labels, data, "fuzz")
    if labels is not None:
        assert len(data) == 8 + labels.size and (labels.size == 0 or labels.max() < 10)


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
       st.integers(0, 3000), st.sampled_from([idx.IMAGES_MAGIC, idx.LABELS_MAGIC, 0x0803, 0]))
def test_fuzz_idx_headers(n, h, w, payload, magic):
    # Valid magic with absurd counts: must not allocate or overflow, only explain.
    data = np.array([magic, n, h, w], ">u4").tobytes() + bytes(payload)
    for parse in (idx.parse_images, idx.parse_labels):
        _only_data_error(parse, data, "fuzz")


def _mutate(base: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    """Applies (kind, position, value) edits: 0 flip a byte, 1 delete, 2 insert, 3 truncate."""
    b = bytearray(base)
    for kind, pos, val in ops:
        if not b and kind != 2:
            continue
        pos = pos % (len(b) + (1 if kind == 2 else 0))
        if kind == 0:
            b[pos] ^= (val % 255) + 1
        elif kind == 1:
            del b[pos]
        elif kind == 2:
            b.insert(pos, val % 256)
        else:
            del b[pos:]
    return bytes(b)


MUTATIONS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**20), st.integers(0, 255)),
                     min_size=1, max_size=6)


@FUZZ
@given(MUTATIONS)
def test_fuzz_idx_mutations_of_valid_files(ops):
    for parse, base in ((idx.parse_images, IDX_IMAGES), (idx.parse_labels, IDX_LABELS)):
        _only_data_error(parse, _mutate(base, ops), "fuzz")


@FUZZ
@given(st.binary(max_size=4 * cifar.RECORD_BYTES))
def test_fuzz_cifar_random_bytes(data):
    out = _only_data_error(cifar.parse, data, "fuzz")
    if out is not None:
        x, y = out
        assert x.shape[1:] == (32, 32, 3) and len(x) == len(y) == len(data) // cifar.RECORD_BYTES
        assert y.max() < 10


@FUZZ
@given(MUTATIONS)
def test_fuzz_cifar_mutations_of_a_valid_file(ops):
    _only_data_error(cifar.parse, _mutate(CIFAR_BYTES, ops), "fuzz")


@FUZZ
@given(MUTATIONS, st.sampled_from(["images", "labels", "cifar"]))
def test_fuzz_gzip_mutations_through_read_file(ops, which):
    base = {"images": IDX_IMAGES, "labels": IDX_LABELS, "cifar": CIFAR_BYTES}[which]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.gz"
        path.write_bytes(_mutate(gzip.compress(base, mtime=0), ops))
        got = _only_data_error(read_file, path)
    if got is not None:
        parse = {"images": idx.parse_images, "labels": idx.parse_labels, "cifar": cifar.parse}[which]
        _only_data_error(parse, got[0], str(path))


@FUZZ_FOLDER
@given(st.sampled_from(["mnist", "fashion_mnist"]), MUTATIONS, MUTATIONS, st.booleans())
def test_fuzz_whole_folder_loader(name, ops_images, ops_labels, gz):
    """End to end through load_dataset("local"): mutated files -> a Dataset or a DataError."""
    with tempfile.TemporaryDirectory() as d:
        _folder(Path(d) / name, {MNIST_TRAIN[0]: _mutate(IDX_IMAGES, ops_images),
                                          MNIST_TRAIN[1]: _mutate(IDX_LABELS, ops_labels)}, gz)
        ds = _only_data_error(load_dataset, name, "train", "local", Path(d))
    if ds is not None:
        assert name == "fashion_mnist"  # mutated files never pass MNIST's official checksums
        assert len(ds) > 0 and ds.labels.max() < 10 and ds.images.shape[1:] == (28, 28, 1)
