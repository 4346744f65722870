"""Where datasets come from: local standard files, the embedded subset, TFDS, and "auto".

"auto" tries, in order: the local folder (only if one is given or ``MEMJAX_DATA_DIR`` is set),
the subset embedded in the package (only if it holds that dataset and split), then TFDS. A
source that does not hold the data is skipped; a local or embedded file that is present but
corrupt stops the search with its own error, because falling back to other data would hide it.

Shape legend: N examples, H, W, K image height, width, channels.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import zlib
from pathlib import Path

import numpy as np

from memjax.data import cifar, idx
from memjax.data.dataset import (
    NUM_CLASSES, OFFICIAL_SIZES, SOURCES, Dataset, check_name, check_split, image_shape,
)
from memjax.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ENV_DATA_DIR = "MEMJAX_DATA_DIR"
EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"

# SHA-256 of the official MNIST files after gunzip (as in shared/data/SHA256SUMS.uncompressed).
# Fashion-MNIST and CIFAR-10 files are only recorded: the copies this project holds are not the
# official bytes (see shared/data/README.md), so there is no single right answer to check.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class SourceUnavailable(DataError):
    """A source does not hold the requested data (as opposed to holding it corrupt)."""


# --------------------------------------------------------------------------------------------
# Files


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """`data_dir`, else ``$MEMJAX_DATA_DIR``, else None."""
    if data_dir is None:
        data_dir = os.environ.get(ENV_DATA_DIR) or None
    return None if data_dir is None else Path(data_dir).expanduser()


def _find(folder: Path, base: str) -> Path | None:
    """`folder/base` or `folder/base.gz`, whichever exists (plain first: no gunzip needed)."""
    for candidate in (folder / base, folder / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_file(path: Path) -> tuple[bytes, str]:
    """The uncompressed bytes of `path` (gunzipped if it ends in .gz) and their SHA-256.

    Raises:
      DataError: the file cannot be read or its gzip stream is truncated or corrupt.
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e}") from e
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise DataError(f"{path}: corrupt or truncated gzip data ({type(e).__name__}: {e}); "
                            "replace the file") from e
    return raw, hashlib.sha256(raw).hexdigest()


def _verify(path: Path, sha: str, expected: str | None, what: str, strict: bool = False) -> None:
    """Checks `sha` against `expected`; with `strict`, a missing expectation is an error too."""
    if expected is None and strict:
        raise DataError(f"{path}: no SHA-256 listed for it in {what}'s SHA256SUMS; reinstall memjax")
    if expected is not None and sha != expected:
        raise DataError(f"{path}: SHA-256 mismatch for {what}: expected {expected}, got {sha}; "
                        "the file is corrupt or modified: replace it")


def _load_folder(folder: Path, name: str, split: str, source: str,
                 expected: dict[str, str], index: np.ndarray | None,
                 strict: bool = False) -> Dataset:
    """Parses one split from standard files in `folder`.

    Args:
      expected: file base name -> SHA-256 the uncompressed bytes must have.
      index: example_index to use instead of the files' own positions (for subsets).
      strict: every file must have an entry in `expected` (the embedded subset).

    Raises:
      SourceUnavailable: the files are not there.
      DataError: a file is corrupt, truncated, of the wrong format or fails its checksum.
    """
    checksums: dict[str, str] = {}
    if name == "cifar10":
        bases = cifar.TRAIN_FILES if split == "train" else (cifar.TEST_FILE,)
        found = [(i, b, _find(folder, b)) for i, b in enumerate(bases)]
        found = [(i, b, p) for i, b, p in found if p is not None]
        if not found:
            raise SourceUnavailable(f"no {' / '.join(bases)}[.gz] in {folder}")
        images, labels, positions = [], [], []
        for i, base, path in found:
            data, sha = read_file(path)
            x, y = cifar.parse(data, str(path))
            _verify(path, sha, expected.get(base), source, strict)
            images.append(x)
            labels.append(y)
            # Batch i of the official train split starts at i * 10,000.
            positions.append(i * cifar.BATCH_SIZE + np.arange(len(y), dtype=np.int64))
            checksums[base] = sha
        images_arr, labels_arr = np.concatenate(images), np.concatenate(labels)
        position = np.concatenate(positions)
        if split == "train" and len(found) < len(bases):
            log.info("%s: CIFAR-10 train from %d of 5 batch files (%d images)", folder,
                     len(found), len(labels_arr))
    else:
        paths = {b: _find(folder, b) for b in _IDX_FILES[split]}
        missing = [b for b, p in paths.items() if p is None]
        if missing:
            raise SourceUnavailable(f"no {' / '.join(missing)}[.gz] in {folder}")
        parsed = {b: read_file(p) for b, p in paths.items()}
        img_base, lab_base = _IDX_FILES[split]
        # Structure first: "wrong magic" or "truncated" says more than a checksum mismatch.
        images_arr = idx.parse_images(parsed[img_base][0], str(paths[img_base]))[..., None]
        labels_arr = idx.parse_labels(parsed[lab_base][0], str(paths[lab_base]))
        if len(images_arr) != len(labels_arr):
            raise DataError(f"{paths[img_base]} holds {len(images_arr)} images but "
                            f"{paths[lab_base]} holds {len(labels_arr)} labels")
        for base, (_, sha) in parsed.items():
            if name != "mnist" and sha in MNIST_SHA256.values():
                raise DataError(f"{paths[base]}: this is an official MNIST file, not {name}; "
                                f"point the data folder at {name}'s files")
            _verify(paths[base], sha, expected.get(base),
                    "official MNIST" if source == "local" else source, strict)
            checksums[base] = sha
        position = np.arange(len(labels_arr), dtype=np.int64)
    if len(labels_arr) == 0:
        raise DataError(f"{folder}: the {name}/{split} files hold no examples (an empty split); "
                        "replace them")
    if index is not None:
        if len(index) != len(labels_arr):
            raise DataError(f"{folder}: index.json lists {len(index)} examples for {split} but "
                            f"the files hold {len(labels_arr)}")
        position = index
    # Read-only, so no consumer can alter a dataset another consumer shares (IDX arrays are
    # views of immutable bytes already; this makes CIFAR behave the same).
    images_arr.flags.writeable = False
    return Dataset(name=name, split=split, images=images_arr,
                   labels=labels_arr.astype(np.int32), example_index=position,
                   source=source, checksums=checksums)


# --------------------------------------------------------------------------------------------
# Sources


def load_local(name: str, split: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """One split from standard files in ``<data_dir>/<name>/`` or directly in ``<data_dir>``.

    Raises:
      SourceUnavailable: no folder is set or it lacks the files.
      DataError: the folder does not exist, or a file is corrupt (official MNIST files must
        match their SHA-256).
    """
    root = resolve_data_dir(data_dir)
    if root is None:
        raise SourceUnavailable(f"no data folder given (--data-dir) and {ENV_DATA_DIR} is not set")
    if not root.is_dir():
        # An error, not a skip: a mistyped folder must not silently become the embedded subset.
        raise DataError(f"data folder {root} does not exist; fix --data-dir or {ENV_DATA_DIR}")
    expected = MNIST_SHA256 if name == "mnist" else {}
    reasons = []
    for folder in (root / name, root):
        try:
            return _load_folder(folder, name, split, "local", expected, index=None)
        except SourceUnavailable as e:
            reasons.append(str(e))
    raise SourceUnavailable("; ".join(reasons))


def embedded_contents() -> dict[str, dict[str, np.ndarray]]:
    """dataset -> split -> example_index of what the embedded subset holds."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for path in sorted(EMBEDDED_DIR.glob("*/index.json")):
        data, _ = read_file(path)
        try:
            table = json.loads(data)["example_index"]
            out[path.parent.name] = {s: np.asarray(v, dtype=np.int64) for s, v in table.items()}
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{path}: malformed index ({e}); reinstall memjax") from e
    return out


def _embedded_checksums() -> dict[str, str]:
    path = EMBEDDED_DIR / "SHA256SUMS"
    data, _ = read_file(path)
    sums = {}
    for line in data.decode().splitlines():
        if line.strip():
            sha, rel = line.split(maxsplit=1)
            sums[rel.strip().lstrip("*")] = sha
    return sums


def load_embedded(name: str, split: str) -> Dataset:
    """One split of the small subset shipped inside the package (see docs/data.md).

    Its example_index gives each image's position in the full official split.

    Raises:
      SourceUnavailable: the subset does not hold this dataset and split.
      DataError: a shipped file is corrupt (fails the subset's SHA256SUMS).
    """
    index_path = EMBEDDED_DIR / name / "index.json"
    if not index_path.is_file():
        raise SourceUnavailable(f"the embedded subset holds no {name}")
    contents = embedded_contents()
    if split not in contents.get(name, {}):
        raise SourceUnavailable(f"the embedded subset holds no {name}/{split}")
    sums = _embedded_checksums()
    _, sha = read_file(index_path)
    _verify(index_path, sha, sums.get(f"{name}/index.json"), "the embedded subset", strict=True)
    expected = {rel.split("/", 1)[1]: s for rel, s in sums.items() if rel.startswith(f"{name}/")}
    return _load_folder(EMBEDDED_DIR / name, name, split, "embedded", expected,
                        index=contents[name][split], strict=True)


# The host TFDS downloads from (its GCS bucket and most of its URLs) and how long the offline
# probe may take. Tests monkeypatch these (or `network_available`) to simulate the offline case.
TFDS_PROBE_HOST = ("storage.googleapis.com", 443)
TFDS_PROBE_TIMEOUT_S = 2.5


def network_available(host: tuple[str, int] | None = None, timeout: float | None = None) -> bool:
    """Whether a TCP connection to `host` (default `TFDS_PROBE_HOST`; the HTTPS proxy instead,
    if one is set) opens within `timeout` seconds (default `TFDS_PROBE_TIMEOUT_S`), name
    lookup included.

    Used before any TFDS download: offline, TFDS retries each download with back-off for
    minutes before it fails; this answers in at most `timeout` seconds.
    """
    import socket
    import threading
    import urllib.parse

    host = TFDS_PROBE_HOST if host is None else host
    timeout = TFDS_PROBE_TIMEOUT_S if timeout is None else timeout
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    if proxy:
        parsed = urllib.parse.urlparse(proxy if "://" in proxy else f"http://{proxy}")
        if parsed.hostname:
            host = (parsed.hostname, parsed.port or 8080)
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection(host, timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    # A thread bounds the name lookup too, which socket timeouts do not cover.
    t = threading.Thread(target=probe, daemon=True, name="memjax-network-probe")
    t.start()
    t.join(timeout + 0.5)
    return bool(result and result[0])


def offline_sources_hint(name: str | None = None) -> str:
    """One paragraph naming the sources that work without a network, for error messages."""
    try:
        held = {ds: sorted(splits) for ds, splits in embedded_contents().items()}
    except DataError:
        held = {}
    embedded = "; ".join(f"{ds} ({', '.join(splits)})"
                         for ds, splits in sorted(held.items())) or "nothing"
    lines = [
        "Offline sources: (1) local standard files: put them in a folder and pass --data-dir DIR "
        f"or set {ENV_DATA_DIR}=DIR (layout DIR/<dataset>/<files>[.gz], see docs/data.md), "
        "source 'local' or 'auto';",
        f"(2) the embedded subset shipped with memjax (source 'embedded' or 'auto'), which holds: "
        f"{embedded}.",
    ]
    if name is not None and name not in held:
        lines.append(f"The embedded subset holds no {name}: use local files.")
    return " ".join(lines)


def load_tfds(name: str, split: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """One split through `tfds.data_source`; downloads and prepares it only if needed.

    First TFDS is asked for the split with ``download=False``: data already prepared in
    `data_dir` are read without any network. Only if that fails and the builder is not
    prepared (``tfds.builder(name, data_dir).is_prepared()``) would TFDS download; then a TCP
    probe of TFDS's host (`network_available`, a few seconds at most) runs first, so that
    offline the call fails within seconds, naming the offline sources, instead of retrying
    downloads for minutes.

    example_index: for CIFAR-10 TFDS's ``id`` (``train_01234``) gives the official position;
    for MNIST and Fashion-MNIST, which TFDS stores without ids and in its own order, it is the
    position in TFDS's (deterministic) order.

    Raises:
      DataError: TFDS is not installed; the data are not prepared and there is no network;
        TFDS cannot download or prepare the data; it returns no examples, images of the wrong
        shape or labels out of range.
    """
    try:
        # Imported here: importing TFDS takes seconds and most runs never need it.
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise DataError(f"tensorflow-datasets is not importable ({e}); pip install "
                        "tensorflow-datasets (and importlib_resources), or use offline sources. "
                        + offline_sources_hint(name)) from e
    tfds_dir = None if data_dir is None else os.fspath(data_dir)
    where = tfds_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"

    def fetch(download: bool) -> list:
        source = tfds.data_source(name, split=split, data_dir=tfds_dir, download=download)
        return [source[i] for i in range(len(source))]

    try:
        examples = fetch(download=False)
    except Exception as first:  # TFDS raises many types (missing files, formats, builders).
        short = " ".join(f"{type(first).__name__}: {first}".split())[:240]
        try:
            prepared = tfds.builder(name, data_dir=tfds_dir).is_prepared()
        except Exception:  # noqa: BLE001 - an unbuildable builder is "not prepared" here
            prepared = False
        if prepared:
            raise DataError(f"TFDS could not provide {name}/{split} from the data prepared in "
                            f"{where} ({short}); delete that folder to prepare it again, or use "
                            "offline sources. " + offline_sources_hint(name)) from first
        if not network_available():
            host, port = TFDS_PROBE_HOST
            raise DataError(
                f"TFDS could not provide {name}/{split} without downloading ({short}): it has "
                f"not prepared {name} in {where}, and there is no network to download it "
                f"({host}:{port} unreachable within {TFDS_PROBE_TIMEOUT_S:g} s). "
                + offline_sources_hint(name)) from first
        try:
            examples = fetch(download=True)
        except Exception as e:  # TFDS raises many types (network, missing files, build errors).
            raise DataError(f"TFDS could not provide {name}/{split} ({type(e).__name__}: {e}); "
                            "go online so TFDS can download it, or use offline sources. "
                            + offline_sources_hint(name)) from e
    if not examples:
        raise DataError(f"TFDS {name}/{split}: the split is empty")
    shape = image_shape(name)
    try:
        images = np.stack([np.asarray(ex["image"]) for ex in examples])
        labels = np.asarray([int(ex["label"]) for ex in examples], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"TFDS {name}/{split}: unexpected examples "
                        f"({type(e).__name__}: {e})") from e
    if (images.shape[1:] != shape or not np.issubdtype(images.dtype, np.integer)
            or images.min() < 0 or images.max() > 255):
        raise DataError(f"TFDS {name}/{split}: images of shape {images.shape[1:]} and dtype "
                        f"{images.dtype}, expected integers 0-255 of shape {shape}")
    images = images.astype(np.uint8)
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise DataError(f"TFDS {name}/{split}: labels outside [0, {NUM_CLASSES})")
    images.flags.writeable = False
    return Dataset(name=name, split=split, images=images, labels=labels.astype(np.int32),
                   example_index=_tfds_index(examples, split), source="tfds", checksums={})


def _tfds_index(examples: list[dict], split: str) -> np.ndarray:
    ids = [ex.get("id") for ex in examples]
    pattern = re.compile(rf"^{split}_(\d+)$")
    matches = [pattern.match(i.decode() if isinstance(i, bytes) else str(i)) for i in ids]
    if ids and all(m is not None for m in matches):
        return np.asarray([int(m.group(1)) for m in matches], dtype=np.int64)
    return np.arange(len(examples), dtype=np.int64)


def load_dataset(name: str, split: str, source: str = "auto",
                 data_dir: str | os.PathLike | None = None) -> Dataset:
    """Loads one split of a dataset.

    Args:
      name: "mnist", "fashion_mnist" or "cifar10".
      split: "train" or "test".
      source: "auto" (local folder, then embedded subset, then TFDS), "local", "embedded" or
        "tfds".
      data_dir: folder of standard files (``<data_dir>/<name>/...`` or the files directly);
        None: ``$MEMJAX_DATA_DIR`` if set. With source "tfds" it is TFDS's own data_dir.

    Returns:
      A `Dataset` with uint8 images [N, H, W, K].

    Raises:
      ConfigError: unknown dataset, split or source (before any file is touched).
      DataError: no source could provide the data (the message lists each source tried and
        why it failed), or a file is corrupt.
    """
    check_name(name)
    check_split(split)
    if source not in SOURCES:
        raise ConfigError(f"data source {source!r}: unknown; choose one of {SOURCES}")
    if source == "local":
        return load_local(name, split, data_dir)
    if source == "embedded":
        return load_embedded(name, split)
    if source == "tfds":
        return load_tfds(name, split, data_dir)
    reasons = []
    for label, loader in (("local", lambda: load_local(name, split, data_dir)),
                          ("embedded", lambda: load_embedded(name, split))):
        try:
            ds = loader()
        except SourceUnavailable as e:
            reasons.append(f"{label}: {e}")
            continue
        if label == "embedded":
            log.warning("%s/%s: using the embedded subset (%d of %d images); set --data-dir or "
                        "%s for the full data", name, split, len(ds),
                        OFFICIAL_SIZES[(name, split)], ENV_DATA_DIR)
        return ds
    try:
        return load_tfds(name, split)
    except DataError as e:
        reasons.append(f"tfds: {e}")
    raise DataError(
        f"cannot load {name}/{split}; sources tried:\n  " + "\n  ".join(reasons) +
        f"\nFix: put the standard files in a folder and pass --data-dir or set {ENV_DATA_DIR} "
        "(layout <dir>/<dataset>/<files>[.gz]), or go online so TFDS can download them."
    )
