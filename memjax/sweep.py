"""Sweeps: a grid of studies, each with its own population, in one resumable sweep directory.

A sweep SPEC is a JSON file (data only):

    {
      "name": "regularisation",
      "base": "paper-mnist-mlp",                      # a preset
      "set": ["train.epochs=10"],                     # overrides for every study
      "grid": {"model.name": ["mlp", "mlp_dropout"],  # the product of these values ...
               "train.weight_decay": [0, 1e-4]},
      "studies": [{"name": "bn", "set": ["model.name=\"mlp_bn\""]}]   # ... and/or these
    }

Layout of a sweep directory:

    sweep.json                the spec as given, plus the resolved list of studies
    studies/<name>/           one run directory per study (see memjax.results)
    combined_models.csv       every study's models.csv with a `study` column (+ the grid values)
    combined_summary.csv      every study's summary.csv with a `study` column
    combined_contrasts.csv    each study's UF-minus-twin effect against the spec's first
                              study's (`stats.contrast_studies`, matched seeds), once that
                              one and another are complete

Resumable: a study whose run directory is complete (MANIFEST.json written, same config) is
skipped; an interrupted one resumes from its trained population or its finished training
chunks. `shard=(i, n)` runs only the studies with index = i mod n, so the workers of a
scheduler's array job share one sweep directory without collisions (each study directory has
one writer; combined tables are rewritten atomically from what is complete on disk).
"""
from __future__ import annotations

import dataclasses
import fcntl
import itertools
import json
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from memjax import results as R
from memjax.config import StudyConfig, override, to_dict, validate
from memjax.errors import ConfigError
from memjax.paths import safe_join
from memjax.presets import get_preset
from memjax.stats import contrast_studies

# The sweep directory's layout (names kept here for callers; defined in `memjax.results`).
STUDIES = R.STUDIES
SPEC = R.SWEEP_SPEC
COMBINED_MODELS = R.COMBINED_MODELS
COMBINED_SUMMARY = R.COMBINED_SUMMARY
COMBINED_CONTRASTS = R.COMBINED_CONTRASTS
# Scores whose UF-minus-twin effect is contrasted between studies (`stats.contrast_studies`).
CONTRAST_SCORES = ("M_score", "PD_M", "M2")


@dataclass(frozen=True)
class SweepStudy:
    """One study of a sweep: its name (a folder name), overrides and resolved config."""

    name: str
    sets: tuple[str, ...]
    values: tuple[tuple[str, Any], ...]
    config: StudyConfig


# The files of a study that `combine` reads (`results.load`).
COMBINE_READS = (R.CONFIG, R.MODELS_CSV, R.SUMMARY, R.EPOCHS, R.ARRAYS)
# Folder names a study may not take: `memjax check` and the run layout use them.
RESERVED = {"chunks", "figures", STUDIES}
# Most studies one spec may expand to (a grid's product grows fast).
MAX_STUDIES = 10_000


def _slug(text: str) -> str:
    """A folder name: letters (any script), digits and `_.=-`; anything else becomes `_`; at
    most 120 bytes of UTF-8 (file systems limit names to 255 bytes, not characters)."""
    name = re.sub(r"[^\w.=-]+", "_", text).strip("_")
    return name.encode()[:120].decode(errors="ignore").strip("_") or "study"


def _folder_name(name: str, given: Any) -> str:
    """A study's folder name; ConfigError for names that are not a plain folder of their own."""
    if name.startswith(".") or name in RESERVED:
        raise ConfigError(f"sweep study name {given!r} -> folder {name!r}: names may not start "
                          f"with '.' or be one of {sorted(RESERVED)}")
    return name


def _string_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of \"section.field=value\" strings, got "
                          f"{value!r}")
    return value


SHIPPED = Path(__file__).parent / "sweeps"


def shipped_specs() -> list[str]:
    """Names of the sweep specs shipped with memjax (the paper's studies)."""
    return sorted(p.stem for p in SHIPPED.glob("*.json"))


def load_spec(path: str | Path) -> dict:
    """Reads a sweep spec (JSON) as data: a file, or the name of a shipped spec
    (`shipped_specs()`: dp, regularisation, regularisation-cifar,
    regularisation-memorised, seed-variance, trajectories).

    Raises:
      ConfigError: unreadable, not an object, or with unknown keys.
    """
    path = Path(path)
    if not path.is_file() and (SHIPPED / f"{path}.json").is_file():
        path = SHIPPED / f"{path}.json"
    try:
        spec = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ConfigError(f"sweep spec {path}: cannot read ({type(e).__name__}: {e})") from e
    if not isinstance(spec, dict):
        raise ConfigError(f"sweep spec {path}: expected a JSON object")
    unknown = set(spec) - {"name", "base", "set", "grid", "studies", "description"}
    if unknown:
        raise ConfigError(f"sweep spec {path}: unknown keys {sorted(unknown)}")
    return spec


def expand(spec: dict) -> list[SweepStudy]:
    """The studies of a spec, in a fixed order (grid product first, then listed studies).

    Warns when two studies resolve to the same config (a grid [1, 1.0], say).

    Raises:
      ConfigError: bad base preset, overrides or duplicate study names.
    """
    if not isinstance(spec.get("base", "default"), str):
        raise ConfigError(f"sweep base {spec.get('base')!r}: expected the name of a preset")
    base = get_preset(spec.get("base", "default"))
    if not isinstance(base, StudyConfig):
        raise ConfigError(f"sweep base {spec.get('base')!r} is not a study preset")
    common = list(_string_list(spec.get("set", []), "sweep set"))
    studies: list[SweepStudy] = []
    grid = spec.get("grid", {}) or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError("sweep grid: expected {\"section.field\": [values, ...], ...}")
    keys = list(grid)
    listed = spec.get("studies", []) or []
    if not isinstance(listed, list):
        raise ConfigError(f"sweep studies: expected a list of {{\"name\": ..., \"set\": [...]}}, "
                          f"got {listed!r}")
    n_grid = 1
    for k in keys:
        n_grid *= len(grid[k])
    if (n_grid if keys else 0) + len(listed) > MAX_STUDIES:
        raise ConfigError(f"sweep: {n_grid if keys else 0} grid studies + {len(listed)} listed "
                          f"exceed {MAX_STUDIES:,}; split the sweep")
    if keys:
        for combo in itertools.product(*(grid[k] for k in keys)):
            sets = tuple(f"{k}={json.dumps(v)}" for k, v in zip(keys, combo))
            given = ",".join(f"{k.split('.')[-1]}={v}" for k, v in zip(keys, combo))
            studies.append(_study(base, _folder_name(_slug(given), given), common, sets,
                                  tuple(zip(keys, combo))))
    for item in listed:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) \
                or not item["name"].strip():
            raise ConfigError(f"sweep studies: each needs a \"name\" (a non-empty string) and "
                              f"optionally \"set\" (a list of overrides); got {item!r}")
        unknown = set(item) - {"name", "set", "description"}
        if unknown:
            raise ConfigError(f"sweep study {item['name']!r}: unknown keys {sorted(unknown)} "
                              "(a study has \"name\", \"set\" and \"description\")")
        sets = _string_list(item.get("set", []), f"sweep study {item['name']!r}: set")
        studies.append(_study(base, _folder_name(_slug(item["name"]), item["name"]), common,
                              tuple(sets), ()))
    seen: dict[str, str] = {}
    for st in studies:  # e.g. a grid [1, 1.0]: two names, one config, the same results twice
        key = json.dumps(to_dict(dataclasses.replace(st.config, name="")), sort_keys=True)
        if key in seen:
            warnings.warn(f"sweep: studies {seen[key]!r} and {st.name!r} resolve to the same "
                          "config (training is deterministic: the same results twice)",
                          stacklevel=2)
        seen[key] = st.name
    names = [s.name for s in studies]
    if len(set(names)) != len(names):
        raise ConfigError(f"sweep: duplicate study names {sorted(n for n in names if names.count(n) > 1)}")
    if not studies:
        raise ConfigError("sweep: no studies (give a grid and/or a list of studies)")
    return studies


def _study(base: StudyConfig, name: str, common: list[str], sets: tuple[str, ...],
           values: tuple) -> SweepStudy:
    cfg = override(base, common + list(sets))
    cfg = validate(dataclasses.replace(cfg, name=f"{base.name}/{name}"))
    return SweepStudy(name=name, sets=tuple(common) + sets, values=values, config=cfg)


def study_dir(sweep_dir: Path, study: SweepStudy) -> Path:
    return safe_join(sweep_dir, f"{STUDIES}/{study.name}", what=f"sweep study {study.name!r}")


def is_complete(run_dir: Path, cfg: StudyConfig) -> bool:
    """Whether a study's run directory is finished for this config, with every file intact.

    The files the combined tables are built from are hashed against MANIFEST.json,
    population.npz is checked by size (`memjax check` verifies every file).

    Raises:
      ResultsError: it is finished for this config but a file fails its MANIFEST.json entry
        (changed, truncated or missing since): never skipped as done, never combined.
    """
    from memjax.study import read_config

    if not (run_dir / R.MANIFEST).is_file():
        return False
    try:
        if to_dict(read_config(run_dir)) != to_dict(cfg):
            return False
    except (R.ResultsError, ConfigError):
        return False
    # What `combine` reads is hashed; the weights (hundreds of MB a study, read by no combine)
    # only have their size compared: `memjax check` hashes everything.
    problems, _ = R.verify_manifest(run_dir, COMBINE_READS + (R.POPULATION,),
                                    size_only=(R.POPULATION,))
    if problems:
        raise R.ResultsError(f"sweep study {run_dir}: damaged since it finished: "
                             + "; ".join(problems) + f" (see `memjax check {run_dir}`; delete "
                             "the folder to run the study again)")
    return True


def read_record(sweep_dir: str | Path) -> dict:
    """The sweep directory's sweep.json (data only).

    Raises:
      ResultsError: missing, unreadable, or not a sweep record.
    """
    path = Path(sweep_dir) / SPEC
    if not path.is_file():
        raise R.ResultsError(f"{path}: missing; {sweep_dir} is not a sweep directory (run "
                             "`memjax sweep SPEC --out DIR` first)")
    try:
        record = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise R.ResultsError(f"{path}: unreadable ({type(e).__name__}: {e}); see "
                             f"`memjax check {sweep_dir}`") from e
    if not isinstance(record, dict) or not isinstance(record.get("spec"), dict) \
            or not isinstance(record.get("studies"), list):
        raise R.ResultsError(f"{path}: not a sweep record (expected 'spec' and 'studies')")
    return record


def _study_list(studies: list[SweepStudy]) -> list[dict]:
    """sweep.json's "studies": each study's name and overrides, as JSON reads them back."""
    return json.loads(json.dumps([{"name": s.name, "set": list(s.sets)} for s in studies]))


def _record(spec: dict, studies: list[SweepStudy]) -> dict:
    return {"spec": json.loads(json.dumps(spec)), "studies": _study_list(studies)}


def parse_shard(text: str | None) -> tuple[int, int]:
    """"i/n" -> (i, n), 0 <= i < n."""
    if not text:
        return 0, 1
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise ConfigError(f"--shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return int(m.group(1)), int(m.group(2))


def run_sweep(spec: dict, sweep_dir: str | Path, *, shard: tuple[int, int] = (0, 1),
              progress: bool = True) -> pd.DataFrame:
    """Runs (or resumes) this worker's studies of a sweep, then rewrites the combined tables.

    Returns:
      The combined per-model table of every study complete on disk.
    Raises:
      ConfigError: a bad spec, or a directory that holds another sweep or is not a folder.
      ResultsError: an unreadable sweep.json.
    Warns (and goes on with the next study) when one of this worker's finished studies was
    damaged since (`is_complete`).
    """
    from memjax.study import check_workdir, run_study

    sweep_dir = check_workdir(sweep_dir, "sweep")
    studies = expand(spec)
    for study in studies:  # every folder name is checked before anything is written
        study_dir(sweep_dir, study)
    record = _record(spec, studies)
    if (sweep_dir / SPEC).exists():
        if read_record(sweep_dir) != record:
            raise ConfigError(f"{sweep_dir / SPEC}: this sweep directory holds another sweep; "
                              "use a new directory")
    else:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        R.write_json(sweep_dir / SPEC, record)
    i, n = shard
    mine = [s for k, s in enumerate(studies) if k % n == i]
    for k, study in enumerate(mine):
        run_dir = study_dir(sweep_dir, study)
        try:
            done = is_complete(run_dir, study.config)
        except R.ResultsError as e:  # never redone over, never counted: the others go on
            warnings.warn(f"{e}; skipped, and left out of the combined tables", stacklevel=2)
            continue
        if done:
            if progress:
                print(f"[{k + 1}/{len(mine)}] {study.name}: complete, skipped", file=sys.stderr)
            continue
        if progress:
            print(f"[{k + 1}/{len(mine)}] {study.name}", file=sys.stderr)
        run_study(study.config, run_dir, progress=progress)
    return combine(sweep_dir, studies)


def combine(sweep_dir: str | Path, studies: list[SweepStudy] | None = None) -> pd.DataFrame:
    """Rewrites combined_models.csv / combined_summary.csv from the complete studies on disk.

    Args:
      sweep_dir: a sweep directory (it must hold sweep.json).
      studies: the expanded spec; they must be the studies sweep.json records (None reads
        them from there).
    Raises:
      ResultsError: no or an unreadable sweep.json, or a study table that cannot be combined.
      ConfigError: `studies` are not the ones this directory records.
    """
    sweep_dir = Path(sweep_dir)
    record = read_record(sweep_dir)
    if studies is None:
        studies = expand(record["spec"])
    elif record["studies"] != _study_list(studies):
        raise ConfigError(f"{sweep_dir / SPEC}: this sweep directory holds another sweep than "
                          "the spec given; combine it with its own spec")
    # Workers of a sharded sweep combine one after another: the last to enter sees every study
    # finished before it, so the table on disk ends complete.
    with open(sweep_dir / ".combine.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _combine(sweep_dir, studies)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _combine(sweep_dir: Path, studies: list[SweepStudy]) -> pd.DataFrame:
    models, summaries = [], []
    for study in studies:
        run_dir = study_dir(sweep_dir, study)
        try:
            if not is_complete(run_dir, study.config):
                continue
        except R.ResultsError as e:  # damaged: left out of the tables, said plainly
            warnings.warn(f"{e}; left out of the combined tables", stacklevel=3)
            continue
        res = R.load(run_dir)
        added = ["study", *(key for key, _ in study.values)]
        for df, out in ((res.models, models), (res.summary, summaries)):
            clash = [c for c in added if c in df.columns]
            if clash:
                raise R.ResultsError(f"{run_dir}: its tables already have the column(s) {clash} "
                                     "that the combined tables add; not a memjax study table")
            df = df.copy()
            df.insert(0, "study", study.name)
            for key, value in study.values:
                df.insert(1, key, value)
            out.append(df)
    if not models:  # nothing complete yet: no table at all rather than an empty, stale one
        for name in (COMBINED_MODELS, COMBINED_SUMMARY, COMBINED_CONTRASTS):
            (sweep_dir / name).unlink(missing_ok=True)
        return pd.DataFrame()
    combined = pd.concat(models, ignore_index=True)
    R.write_table(sweep_dir / COMBINED_MODELS, combined)
    R.write_table(sweep_dir / COMBINED_SUMMARY, pd.concat(summaries, ignore_index=True))
    scores = [s for s in CONTRAST_SCORES if s in combined.columns]
    reference = studies[0].name  # the spec's first study, e.g. "plain"
    if len(models) >= 2 and scores and reference in set(combined["study"]):
        R.write_table(sweep_dir / COMBINED_CONTRASTS,
                      contrast_studies(combined, scores, reference=reference))
    else:
        (sweep_dir / COMBINED_CONTRASTS).unlink(missing_ok=True)  # never a stale table
    return combined
