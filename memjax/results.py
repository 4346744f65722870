"""The run directory: plain, documented files, written atomically; `load(dir)` for notebooks.

Layout of a run directory:

    config.json        the study config, package versions, PRNG settings, data checksums
    population.npz     trained variables [M, ...] ("params/Dense_0/kernel", ...) + training summary
    epochs.csv         one row per model and epoch: train/val loss and accuracy
    models.csv/.parquet one row per model: seeds, canary, condition, accuracy, epochs, every
                       score and p-value, a validity flag
    summary.csv        one row per score: UF vs baseline statistics over the population
    arrays.npz         per-model arrays (PD_Mk, PD_pk [M, C]; per-probe values when asked)
    figures/*.png      score distributions, ROC, example images
    report.md          a short human-readable report
    MANIFEST.json      SHA-256 and size of every file above (written last)
    chunks/            finished training chunks while training runs (resume after a kill);
                       removed once population.npz is written

Every file is written to a temporary name in the same folder, fsynced and renamed, so a killed
process never leaves a partial file under a final name. No pickle anywhere: `.npz` files are
read with `allow_pickle=False`.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from flax import traverse_util

from memjax.errors import MemjaxError

CONFIG = "config.json"
POPULATION = "population.npz"
EPOCHS = "epochs.csv"
MODELS_CSV = "models.csv"
MODELS_PARQUET = "models.parquet"
SUMMARY = "summary.csv"
ARRAYS = "arrays.npz"
REPORT = "report.md"
MANIFEST = "MANIFEST.json"
FIGURES = "figures"
CHUNKS = "chunks"
# A sweep directory (`memjax.sweep`): sweep.json, one run directory per study under studies/,
# and the combined tables.
SWEEP_SPEC = "sweep.json"
STUDIES = "studies"
COMBINED_MODELS = "combined_models.csv"
COMBINED_SUMMARY = "combined_summary.csv"
COMBINED_CONTRASTS = "combined_contrasts.csv"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class ResultsError(MemjaxError):
    """A run directory is missing files or holds corrupt ones."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path`; on success fsyncs it and renames it to `path`.

    Raises:
      ResultsError: `path` is a directory, or a file stands where its folder should be.
    """
    path = Path(path)
    if path.is_dir():
        raise ResultsError(f"{path}: is a directory; name a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        raise ResultsError(f"{path}: cannot create its folder ({e})") from e
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are for sharing
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def blocking_file(folder: str | os.PathLike) -> Path | None:
    """What stops `folder` from being created or used as a folder: the nearest existing one of
    it and the folders above it, when that is not a directory (a file, a broken link); None
    when nothing does."""
    folder = Path(folder)
    for f in (folder, *folder.parents):
        if f.exists() or f.is_symlink():
            return None if f.is_dir() else f
    return None


def check_output_file(path: str | os.PathLike, *, outside: str | os.PathLike | None = None,
                      option: str = "--out") -> Path:
    """`path` as a Path, or ResultsError before any work when a file cannot be written there:
    it is a directory, a file stands where one of its folders should be, or it lies inside
    `outside` (a run directory that an analysis reads and must leave as it is)."""
    path = Path(path)
    if path.is_dir():
        raise ResultsError(f"{option} {path}: is a directory; name a file to write")
    blocking = blocking_file(path.parent)
    if blocking is not None:
        raise ResultsError(f"{option} {path}: {blocking} exists and is not a directory")
    if outside is not None:
        run = Path(outside).resolve()
        if run == path.resolve() or run in path.resolve().parents:
            raise ResultsError(f"{option} {path}: inside the run directory {outside}, which is "
                               "only read; name a file outside it")
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically writes `data` to `path`."""
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n").encode())


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Atomically writes a compressed `.npz` of plain numeric arrays."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    write_bytes(path, buf.getvalue())


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a `.npz` without pickle; a corrupt file raises ResultsError naming it (a file that
    is not a zip archive, e.g. a table or a pickle under an .npz name, never reaches np.load)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        if head not in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip's first entry, or an empty zip
            raise ResultsError(f"{path}: unreadable or corrupt (not an .npz archive: it begins "
                               f"with {head!r})")
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing") from None
    except ResultsError:
        raise
    except Exception as e:  # zipfile.BadZipFile, ValueError, EOFError, OSError ...
        raise ResultsError(f"{path}: unreadable or corrupt ({type(e).__name__}: {e})") from e


def read_study_names(path: str | os.PathLike) -> pd.Series:
    """The `study` column of a sweep's combined table, as written: pandas' default parsing
    would turn a study named "None" into NaN and one named "1e-3" into 0.001."""
    return pd.read_csv(path, usecols=["study"], dtype=str, keep_default_na=False)["study"]


def write_table(path_csv: str | os.PathLike, table: pd.DataFrame, parquet: bool = False) -> None:
    """Atomically writes a DataFrame as CSV (and Parquet beside it when asked)."""
    write_bytes(path_csv, table.to_csv(index=False).encode())
    if parquet:
        with atomic_path(Path(path_csv).with_suffix(".parquet")) as tmp:
            table.to_parquet(tmp, index=False)


def write_tree(path: str | os.PathLike, tree: dict) -> None:
    """Atomically writes a nested dict of arrays to one `.npz` ("a/b/c" keys)."""
    write_npz(path, traverse_util.flatten_dict(tree, sep="/"))


def read_tree(path: str | os.PathLike) -> dict:
    """Inverse of `write_tree` (no pickle)."""
    return traverse_util.unflatten_dict(read_npz(path), sep="/")


def save_population(path: str | os.PathLike, variables: dict, summary: dict[str, np.ndarray]) -> None:
    """Saves stacked Flax variables [M, ...] and per-model arrays [M] to one `.npz`."""
    write_tree(path, {"variables": variables, "summary": summary})


def load_population(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Inverse of `save_population`: (variables [M, ...], summary)."""
    tree = read_tree(path)
    if not tree.get("variables"):
        raise ResultsError(f"{path}: holds no variables")
    return tree["variables"], tree.get("summary", {})


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(run_dir: str | os.PathLike) -> dict:
    """Records SHA-256 and size of every file in the run directory (written last)."""
    run_dir = Path(run_dir)
    files = {}
    for p in sorted(run_dir.rglob("*")):
        if p.is_file() and p.name != MANIFEST and not p.name.startswith("."):
            rel = p.relative_to(run_dir).as_posix()
            files[rel] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    manifest = {"files": files}
    write_json(run_dir / MANIFEST, manifest)
    return manifest


def verify_manifest(run_dir: str | os.PathLike, names: Iterable[str] | None = None, *,
                    size_only: Iterable[str] = ()) -> tuple[list[str], int]:
    """Checks files of a scored run against its MANIFEST.json (data only, never raises).

    Args:
      run_dir: the run directory.
      names: the files to check (relative paths); None checks every file listed. A name the
        manifest does not list is a problem.
      size_only: files of `names` whose size alone is compared (large arrays that the caller
        does not read: hashing them would cost more than it protects).
    Returns:
      (problems, n_verified): one sentence per defect (manifest unreadable, an entry pointing
      outside the run, a file missing, of another size or SHA-256), and the number of files
      whose size and SHA-256 match. A run without MANIFEST.json gives one problem saying so.
    """
    run_dir = Path(run_dir)
    try:
        files = manifest_files(run_dir)
    except ResultsError as e:
        return [str(e)], 0
    problems: list[str] = []
    verified = 0
    real_run = run_dir.resolve()
    wanted = sorted(files) if names is None else list(names)
    quick = set(size_only)
    for rel in wanted:
        if rel not in files:
            problems.append(f"{rel}: not listed in {MANIFEST}")
            continue
        entry, target = files[rel], run_dir / rel
        if (not isinstance(rel, str) or rel.startswith("/") or ".." in Path(rel).parts
                or real_run not in target.resolve().parents):
            problems.append(f"{MANIFEST}: entry {rel!r} points outside the run directory; "
                            "refusing to read it")
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            problems.append(f"{MANIFEST}: entry {rel!r} has no sha256")
            continue
        if not target.is_file():
            problems.append(f"{rel}: listed in {MANIFEST} but " + (
                "a directory stands there" if target.is_dir() else "missing"))
            continue
        try:
            size = target.stat().st_size
            if entry.get("bytes") is not None and size != entry["bytes"]:
                problems.append(f"{rel}: {size} bytes, {MANIFEST} says {entry['bytes']} "
                                "(truncated or changed after the run)")
                continue
            if rel not in quick and sha256_file(target) != entry["sha256"]:
                problems.append(f"{rel}: SHA-256 differs from {MANIFEST} (corrupt or changed "
                                "after the run)")
                continue
        except OSError as e:  # removed or unreadable while being checked
            problems.append(f"{rel}: unreadable ({type(e).__name__}: {e})")
            continue
        verified += 1
    return problems, verified


def manifest_files(run_dir: str | os.PathLike) -> dict:
    """MANIFEST.json's "files" entries, {relative path: {"sha256": ..., "bytes": ...}}.

    Raises:
      ResultsError: the manifest is missing, or unreadable as such (data only).
    """
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise ResultsError(f"{MANIFEST} missing: the run did not finish")
    try:
        files = json.loads(path.read_bytes().decode("utf-8"))["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not an object")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError,
            RecursionError) as e:
        raise ResultsError(f"{MANIFEST}: unreadable ({type(e).__name__}: {e})") from e
    return files


def require_intact(run_dir: str | os.PathLike, names: Iterable[str] | None, action: str, *,
                   rewrites: Iterable[str] = ()) -> None:
    """ResultsError unless the files `names` still match the run's MANIFEST.json, so that a
    run changed after it finished is never rescored, resummarised, analysed or audited (a
    rescore would write a new manifest over the damage). A run without MANIFEST.json (not
    finished, or unlocked on purpose by deleting it) has nothing to be held to and passes.

    Args:
      names: the files to hold to; None: every file the manifest lists except `rewrites`.
      action: what the caller would do, for the message ("rescore", "audit", ...).
      rewrites: with names None, the files the caller writes anew (a name ending in "/" is a
        folder), whose old contents do not matter.
    """
    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST).is_file():
        return
    if names is None:
        folders = tuple(r for r in rewrites if r.endswith("/"))
        try:
            names = [n for n in manifest_files(run_dir)
                     if n not in rewrites and not n.startswith(folders)]
        except ResultsError:
            pass  # verify_manifest(None) names the unreadable manifest
    problems, _ = verify_manifest(run_dir, names)
    if problems:
        raise ResultsError(f"{run_dir}: will not {action} a damaged run: " + "; ".join(problems)
                           + f" (see `memjax check {run_dir}`; rerun the study into a new "
                           "--workdir, or delete MANIFEST.json to accept the change knowingly)")


@dataclass
class RunResults:
    """What `load` returns: the per-model table, the summary, arrays, config and epochs."""

    path: Path
    config: dict
    models: pd.DataFrame
    summary: pd.DataFrame
    epochs: pd.DataFrame
    arrays: dict[str, np.ndarray]


def read_record(run_dir: str | os.PathLike) -> dict:
    """The parsed config.json of a run directory (data only).

    Raises:
      ResultsError: the file is missing, not UTF-8 JSON, too deeply nested, or not an object
        with a 'config' object.
    """
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise ResultsError(f"{path}: missing; is {Path(run_dir)} a run directory?")
    try:
        record = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ResultsError(f"{path}: unreadable config, not valid JSON "
                           f"({type(e).__name__}: {e})") from e
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ResultsError(f"{path}: unreadable config, expected an object with a 'config' object")
    return record


def load(run_dir: str | os.PathLike) -> RunResults:
    """Loads a finished run directory for analysis (no training, no pickle).

    Raises:
      ResultsError: if a required file is missing or corrupt.
    """
    run_dir = Path(run_dir)
    for name in (CONFIG, MODELS_CSV, SUMMARY, EPOCHS):
        if not (run_dir / name).is_file():
            raise ResultsError(f"{run_dir / name}: missing; is {run_dir} a finished run directory?")
    try:
        config = json.loads((run_dir / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ResultsError(f"{run_dir / CONFIG}: not valid JSON ({e})") from e
    arrays = read_npz(run_dir / ARRAYS) if (run_dir / ARRAYS).exists() else {}
    return RunResults(
        path=run_dir,
        config=config,
        models=read_table(run_dir / MODELS_CSV),
        summary=read_table(run_dir / SUMMARY),
        epochs=read_table(run_dir / EPOCHS),
        arrays=arrays,
    )


def read_table(path: Path) -> pd.DataFrame:
    """A CSV table of a run directory; ResultsError if it is missing or cannot be parsed."""
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing") from None
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        raise ResultsError(f"{path}: unreadable table ({type(e).__name__}: {e})") from e
