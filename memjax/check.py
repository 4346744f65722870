"""`memjax check DIR`: is a run (or sweep) directory complete and intact?

A run directory (layout in `memjax.results`) is in one of these states:

    scored              every file present; MANIFEST.json (written last) lists SHA-256 and size
                        of each, and each must match
    trained, not scored config.json + epochs.csv + population.npz only (`memjax train`); fine,
                        `memjax score DIR` finishes it
    incomplete          a stage was interrupted: a file is missing (the message says which and
                        the command that completes it; finished training chunks in chunks/
                        are counted, they are reused on rerun)
    corrupt             a file fails its checksum or size, cannot be parsed, or disagrees with
                        config.json

Everything is read as data: JSON with `json`, tables with pandas' CSV reader, arrays with
``np.load(allow_pickle=False)``; a pickled array is reported, never loaded. Leftover
``.NAME.*.tmp`` files from killed writes are listed as harmless (they are never read). A sweep
directory (`memjax.sweep`: ``sweep.json``, ``studies/<name>/``, combined tables) has each run
checked, its combined tables parsed, and the studies it lists that never started named.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from memjax import results as R
from memjax.errors import MemjaxError

SCORED_FILES = (R.CONFIG, R.POPULATION, R.EPOCHS, R.MODELS_CSV, R.SUMMARY, R.ARRAYS, R.REPORT,
                R.MANIFEST)
TRAINED_FILES = (R.CONFIG, R.EPOCHS, R.POPULATION)
_SCORE_OUTPUTS = (R.MODELS_CSV, R.SUMMARY, R.ARRAYS, R.REPORT, R.MANIFEST)
CHUNKS = getattr(R, "CHUNKS", "chunks")  # finished training chunks of an interrupted run
SWEEP_SPEC, SWEEP_STUDIES = R.SWEEP_SPEC, R.STUDIES
# memjax.sweep's combined tables: the models and summary tables hold every complete study;
# the contrasts table some of them.
COMBINED_TABLES = (R.COMBINED_MODELS, R.COMBINED_SUMMARY)
COMBINED_CONTRASTS = R.COMBINED_CONTRASTS
# A table header wider than this is not a memjax table (pandas' handling of duplicate column
# names is quadratic: a hostile 8 MB header would take hours).
MAX_COLUMNS = 10_000
MAX_HEADER_BYTES = 1 << 20


@dataclass
class CheckReport:
    """The verdict on one directory.

    Attributes:
      path: the directory checked.
      kind: "scored", "trained", "incomplete", "sweep", "empty" or "missing".
      problems: what is missing or corrupt, one sentence each (for a sweep: prefixed by the
        sub-run's name). Empty means the directory is usable.
      notes: harmless findings (leftover temporary files, files not in the manifest).
      files_verified: files whose checksum and size were verified against the manifest.
      runs: per-run reports of a sweep.
    """

    path: Path
    kind: str = "empty"
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files_verified: int = 0
    runs: list["CheckReport"] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def status(self) -> str:
        if self.kind == "sweep":
            bad = sum(not r.ok for r in self.runs)
            own = len(self.problems) - sum(len(r.problems) for r in self.runs)
            text = f"sweep of {len(self.runs)} runs, {len(self.runs) - bad} ok, {bad} with problems"
            return text + (f"; {own} problem(s) with the sweep itself" if own else "")
        if self.problems:
            return {"incomplete": "INCOMPLETE", "missing": "MISSING", "empty": "EMPTY"
                    }.get(self.kind, "CORRUPT")
        return {"scored": f"ok: scored, {self.files_verified} files match MANIFEST.json",
                "trained": "ok: trained, not scored (run `memjax score DIR` to score it)"
                }.get(self.kind, self.kind)

    def text(self) -> str:
        """A human-readable report (what `memjax check` prints)."""
        lines = [f"{self.path}: {self.status()}"]
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  note: {n}" for n in self.notes]
        if self.kind == "sweep":
            for r in self.runs:
                lines.append(f"  {r.path.relative_to(self.path).as_posix()}: {r.status()}")
        return "\n".join(lines)


def check_dir(path: str | os.PathLike) -> CheckReport:
    """Verifies a run directory or a sweep directory (a folder of run directories).

    A sweep directory is recognised by its ``sweep.json`` (see `memjax.sweep`) or by run
    directories below it (``studies/<name>/`` or directly ``<name>/``). Studies that
    ``sweep.json`` lists but that have no run directory yet are reported as not started; the
    combined tables must parse.

    Never raises for bad content: every defect becomes a line of `CheckReport.problems`.
    """
    path = Path(path)
    if not path.is_dir():
        return CheckReport(path, "missing", [f"{path}: " + ("not a directory" if path.exists()
                                                            else "no such directory")])
    if _looks_like_run(path):
        return _check_run(path)
    subs = _find_runs(path)
    spec = path / SWEEP_SPEC
    if not subs and not spec.is_file():
        return CheckReport(path, "empty", [f"{path}: neither a run directory (no {R.CONFIG}) nor "
                                           f"a sweep directory (no {SWEEP_SPEC}, no sub-folder "
                                           "holds a run)"])
    report = CheckReport(path, "sweep")
    report.notes += _tmp_notes(path)
    for sub in subs:
        r = _check_run(sub)
        report.runs.append(r)
        name = sub.relative_to(path).as_posix()
        report.problems += [f"{name}: {p}" for p in r.problems]
        report.files_verified += r.files_verified
    names = None
    if spec.is_file():
        names = _check_sweep_spec(path, {s.relative_to(path).as_posix() for s in subs}, report)
    tables = {table.name: _read_csv(table, report) for table in sorted(path.glob("*.csv"))}
    if names is not None:
        scored = {r.path.name: r.ok for r in report.runs
                  if r.kind == "scored" and r.path.parent == path / SWEEP_STUDIES}
        _check_combined(path, tables, {n: scored[n] for n in names if n in scored},
                        finished=all(n in scored for n in names), report=report)
    return report


def _check_combined(sweep: Path, tables: dict, scored: dict[str, bool], *, finished: bool,
                    report: CheckReport) -> None:
    """The combined tables hold what `memjax sweep` combines: the scored studies, each intact
    one (a kill between the tables' writes, or a study removed since, leaves them
    disagreeing). A damaged study is judged by its own report, whichever table holds it; the
    tables are only expected to be complete once every study of the sweep is scored (a sweep
    still running combines at the end of each worker).

    Args:
      scored: {study name: intact} of the studies of sweep.json that are scored.
      finished: every study of sweep.json is scored.
    """
    fix = f"rerun the sweep, or `memjax sweep SPEC --out {sweep} --combine-only`"
    intact = {n for n, ok in scored.items() if ok}
    if finished and intact and not (sweep / COMBINED_TABLES[0]).is_file():
        report.problems.append(f"{COMBINED_TABLES[0]} missing though {len(intact)} studies "
                               f"are complete; {fix}")
    for name in (*COMBINED_TABLES, COMBINED_CONTRASTS):
        if tables.get(name) is None:  # absent, or unreadable (already a problem)
            continue
        if "study" not in tables[name].columns:
            report.problems.append(f"{name}: no 'study' column; not a combined table")
            continue
        held = set(R.read_study_names(sweep / name))
        extra = sorted(held - set(scored))
        if extra:
            report.problems.append(f"{name}: holds studies that are not complete on disk: "
                                   f"{', '.join(extra)}; {fix}")
        left_out = sorted(intact - held)
        if finished and name in COMBINED_TABLES and left_out:
            report.problems.append(f"{name}: leaves out complete studies "
                                   f"{', '.join(left_out)}; {fix}")


def _looks_like_run(p: Path) -> bool:
    return any((p / name).exists() for name in (R.CONFIG, R.MANIFEST, R.POPULATION)) or any(
        p.glob(f".{R.CONFIG}.*.tmp"))


def _find_runs(root: Path, depth: int = 3) -> list[Path]:
    """Run directories below `root` (not descending into runs), at most `depth` levels down."""
    found: list[Path] = []
    if depth == 0:
        return found
    for p in sorted(root.iterdir()):
        if not p.is_dir() or p.is_symlink() or p.name.startswith(".") or p.name in (
                R.FIGURES, CHUNKS):
            continue
        if _looks_like_run(p):
            found.append(p)
        else:
            found += _find_runs(p, depth - 1)
    return found


def _check_sweep_spec(sweep: Path, present: set[str], report: CheckReport) -> list[str] | None:
    """Names the studies of sweep.json that have no run directory; returns the study names
    (None when sweep.json is unreadable)."""
    try:
        record = json.loads((sweep / SWEEP_SPEC).read_bytes().decode("utf-8"))
        names = [s["name"] for s in record["studies"]]
        if not all(isinstance(n, str) for n in names):
            raise TypeError("a study name is not a string")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError,
            RecursionError) as e:
        report.problems.append(f"{SWEEP_SPEC}: unreadable ({type(e).__name__}: {e})")
        return None
    missing = []
    for n in names:
        if f"{SWEEP_STUDIES}/{n}" in present or n in present:
            continue
        folder = sweep / SWEEP_STUDIES / n
        if folder.is_symlink():
            report.problems.append(f"{SWEEP_STUDIES}/{n}: a symbolic link, not the study's "
                                   "folder; memjax never follows it (remove it and rerun)")
        elif folder.exists() and not folder.is_dir():
            report.problems.append(f"{SWEEP_STUDIES}/{n}: not a directory (remove it and "
                                   "rerun the sweep)")
        else:
            missing.append(n)
    if missing:
        report.problems.append(f"{len(missing)} of {len(names)} studies of {SWEEP_SPEC} not "
                               f"started: {', '.join(missing)}; rerun the sweep")
    return names


def _tmp_notes(folder: Path) -> list[str]:
    tmps = sorted(q for q in folder.rglob(".*.tmp") if q.is_file())
    if not tmps:
        return []
    names = ", ".join(q.relative_to(folder).as_posix() for q in tmps)
    return [f"{len(tmps)} leftover temporary file(s) from an interrupted write, never read "
            f"(safe to delete): {names}"]


def _check_run(run: Path) -> CheckReport:
    report = CheckReport(run)
    report.notes += _tmp_notes(run)
    present = {name for name in SCORED_FILES if (run / name).is_file()}
    n_models = _check_config(run, report) if R.CONFIG in present else None
    if R.CONFIG not in present:
        report.problems.append(f"{R.CONFIG} missing: not a complete run (rerun `memjax run` or "
                               "`memjax train`)")
    if R.MANIFEST in present:
        report.kind = "scored"
        _check_manifest(run, report)
        missing = [n for n in SCORED_FILES if n not in present]
        if missing:
            report.problems.append(f"missing {', '.join(missing)} (listed as required for a "
                                   "scored run)")
    elif any(n in present for n in _SCORE_OUTPUTS):
        report.kind = "incomplete"
        missing = [n for n in SCORED_FILES if n not in present]
        report.problems.append(f"scoring did not finish: missing {', '.join(missing)}; run "
                               f"`memjax score {run}`" if R.POPULATION in present else
                               f"missing {', '.join(missing)}; rerun `memjax run`")
    elif R.POPULATION in present and R.EPOCHS in present:
        report.kind = "trained"
    else:
        report.kind = "incomplete"
        missing = [n for n in TRAINED_FILES if n not in present]
        saved = sorted((run / CHUNKS).glob("chunk-*.npz")) if (run / CHUNKS).is_dir() else []
        resume = (f" ({len(saved)} finished training chunk(s) in {CHUNKS}/ will be reused)"
                  if saved else "")
        report.problems.append(f"training did not finish: missing {', '.join(missing)}; rerun "
                               f"`memjax run` or `memjax train` with the same --workdir{resume}")
    if (run / CHUNKS).is_dir():
        for chunk in sorted((run / CHUNKS).glob("chunk-*.npz")):
            _check_npz(chunk, report)
    # Content checks: every file that is there must parse, whatever the state.
    if R.POPULATION in present:
        _check_population(run, n_models, report)
    if R.ARRAYS in present:
        _check_npz(run / R.ARRAYS, report)
    if R.EPOCHS in present:
        _read_csv(run / R.EPOCHS, report)
    if R.SUMMARY in present:
        _read_csv(run / R.SUMMARY, report)
    if R.MODELS_CSV in present:
        table = _read_csv(run / R.MODELS_CSV, report)
        if table is not None and n_models is not None and len(table) != n_models:
            report.problems.append(f"{R.MODELS_CSV} has {len(table)} rows but {R.CONFIG} says "
                                   f"n_models={n_models}")
        if table is not None and "valid" not in table.columns:
            report.problems.append(f"{R.MODELS_CSV}: no 'valid' column")
    return report


def _check_config(run: Path, report: CheckReport) -> int | None:
    """Parses config.json as data into a StudyConfig; returns its n_models."""
    from memjax.config import StudyConfig, from_dict

    path = run / R.CONFIG
    try:
        record = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        report.problems.append(f"{R.CONFIG}: unreadable ({type(e).__name__}: {e})")
        return None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        report.problems.append(f"{R.CONFIG}: not valid JSON ({type(e).__name__}: {e})")
        return None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        report.problems.append(f"{R.CONFIG}: expected an object with a 'config' object")
        return None
    try:
        from_dict(StudyConfig, record["config"])
    except (MemjaxError, TypeError, ValueError) as e:
        report.problems.append(f"{R.CONFIG}: 'config' is not a valid study config: {e}")
    n = record.get("n_models")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        report.problems.append(f"{R.CONFIG}: n_models={n!r}, expected a positive integer")
        return None
    return n


def _check_manifest(run: Path, report: CheckReport) -> None:
    problems, verified = R.verify_manifest(run)
    report.problems += problems
    report.files_verified += verified
    try:
        listed = set(R.manifest_files(run))
    except R.ResultsError:  # already one of the problems
        return
    extra = sorted(p.relative_to(run).as_posix() for p in run.rglob("*")
                   if p.is_file() and p.name != R.MANIFEST and not p.name.startswith(".")
                   and p.relative_to(run).as_posix() not in listed)
    if extra:
        report.notes.append(f"not in {R.MANIFEST} (added after the run?): {', '.join(extra)}")


def _check_npz(path: Path, report: CheckReport) -> dict[str, np.ndarray] | None:
    try:
        return R.read_npz(path)  # allow_pickle=False: an object array is an error, not code
    except R.ResultsError as e:
        msg = str(e)
        if "allow_pickle" in msg or "Object arrays" in msg:
            msg = f"{path}: holds a pickled (object) array; memjax never loads pickle ({e})"
        report.problems.append(msg)
        return None


def _check_population(run: Path, n_models: int | None, report: CheckReport) -> None:
    arrays = _check_npz(run / R.POPULATION, report)
    if arrays is None:
        return
    variables = [k for k in arrays if k.startswith("variables/")]
    if not variables:
        report.problems.append(f"{R.POPULATION}: holds no variables")
        return
    leading = {arrays[k].shape[0] if arrays[k].ndim else None for k in variables}
    if n_models is not None and leading != {n_models}:
        sizes = sorted(leading, key=str)
        report.problems.append(f"{R.POPULATION}: variables have leading sizes {sizes} but "
                               f"{R.CONFIG} says n_models={n_models}")


def _read_csv(path: Path, report: CheckReport) -> pd.DataFrame | None:
    try:
        with open(path, "rb") as f:
            header = f.readline(MAX_HEADER_BYTES + 1)
        if len(header) > MAX_HEADER_BYTES or header.count(b",") >= MAX_COLUMNS:
            report.problems.append(f"{path.name}: a header of over {MAX_COLUMNS:,} columns or "
                                   f"{MAX_HEADER_BYTES:,} bytes; not a memjax table")
            return None
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError,
            UnicodeDecodeError) as e:
        report.problems.append(f"{path.name}: unreadable table ({type(e).__name__}: {e})")
        return None
