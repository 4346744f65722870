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

import fcntl
import itertools
import json
import re
import sys
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

STUDIES = "studies"
SPEC = "sweep.json"
COMBINED_MODELS = "combined_models.csv"
COMBINED_SUMMARY = "combined_summary.csv"
COMBINED_CONTRASTS = "combined_contrasts.csv"
# Scores whose UF-minus-twin effect is contrasted between studies (`stats.contrast_studies`).
CONTRAST_SCORES = ("M_score", "PD_M", "M2")


@dataclass(frozen=True)
class SweepStudy:
    """One study of a sweep: its name (a folder name), overrides and resolved config."""

    name: str
    sets: tuple[str, ...]
    values: tuple[tuple[str, Any], ...]
    config: StudyConfig


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")[:120] or "study"


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
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"sweep spec {path}: cannot read ({e})") from e
    if not isinstance(spec, dict):
        raise ConfigError(f"sweep spec {path}: expected a JSON object")
    unknown = set(spec) - {"name", "base", "set", "grid", "studies", "description"}
    if unknown:
        raise ConfigError(f"sweep spec {path}: unknown keys {sorted(unknown)}")
    return spec


def expand(spec: dict) -> list[SweepStudy]:
    """The studies of a spec, in a fixed order (grid product first, then listed studies).

    Raises:
      ConfigError: bad base preset, overrides or duplicate study names.
    """
    base = get_preset(spec.get("base", "default"))
    if not isinstance(base, StudyConfig):
        raise ConfigError(f"sweep base {spec.get('base')!r} is not a study preset")
    common = list(spec.get("set", []))
    studies: list[SweepStudy] = []
    grid = spec.get("grid", {}) or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ConfigError("sweep grid: expected {\"section.field\": [values, ...], ...}")
    keys = list(grid)
    if keys:
        for combo in itertools.product(*(grid[k] for k in keys)):
            sets = tuple(f"{k}={json.dumps(v)}" for k, v in zip(keys, combo))
            name = _slug(",".join(f"{k.split('.')[-1]}={v}" for k, v in zip(keys, combo)))
            studies.append(_study(base, name, common, sets, tuple(zip(keys, combo))))
    for item in spec.get("studies", []) or []:
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError("sweep studies: each needs a name and a list of overrides")
        studies.append(_study(base, _slug(str(item["name"])), common,
                              tuple(item.get("set", [])), ()))
    names = [s.name for s in studies]
    if len(set(names)) != len(names):
        raise ConfigError(f"sweep: duplicate study names {sorted(n for n in names if names.count(n) > 1)}")
    if not studies:
        raise ConfigError("sweep: no studies (give a grid and/or a list of studies)")
    return studies


def _study(base: StudyConfig, name: str, common: list[str], sets: tuple[str, ...],
           values: tuple) -> SweepStudy:
    cfg = override(base, common + list(sets))
    import dataclasses

    cfg = validate(dataclasses.replace(cfg, name=f"{base.name}/{name}"))
    return SweepStudy(name=name, sets=tuple(common) + sets, values=values, config=cfg)


def study_dir(sweep_dir: Path, study: SweepStudy) -> Path:
    return safe_join(sweep_dir, f"{STUDIES}/{study.name}", what=f"sweep study {study.name!r}")


def is_complete(run_dir: Path, cfg: StudyConfig) -> bool:
    """Whether a study's run directory is finished for this config."""
    from memjax.study import read_config

    if not (run_dir / R.MANIFEST).is_file():
        return False
    try:
        return to_dict(read_config(run_dir)) == to_dict(cfg)
    except (R.ResultsError, ConfigError):
        return False


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
    """
    from memjax.study import run_study

    sweep_dir = Path(sweep_dir)
    studies = expand(spec)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    record = {"spec": spec, "studies": [{"name": s.name, "set": list(s.sets)} for s in studies]}
    if not (sweep_dir / SPEC).is_file():
        R.write_json(sweep_dir / SPEC, record)
    elif json.loads((sweep_dir / SPEC).read_text()) != json.loads(json.dumps(record)):
        raise ConfigError(f"{sweep_dir / SPEC}: this sweep directory holds another sweep; "
                          "use a new directory")
    i, n = shard
    mine = [s for k, s in enumerate(studies) if k % n == i]
    for k, study in enumerate(mine):
        run_dir = study_dir(sweep_dir, study)
        if is_complete(run_dir, study.config):
            if progress:
                print(f"[{k + 1}/{len(mine)}] {study.name}: complete, skipped", file=sys.stderr)
            continue
        if progress:
            print(f"[{k + 1}/{len(mine)}] {study.name}", file=sys.stderr)
        run_study(study.config, run_dir, progress=progress)
    return combine(sweep_dir, studies)


def combine(sweep_dir: str | Path, studies: list[SweepStudy] | None = None) -> pd.DataFrame:
    """Rewrites combined_models.csv / combined_summary.csv from the complete studies on disk."""
    sweep_dir = Path(sweep_dir)
    if studies is None:
        studies = expand(json.loads((sweep_dir / SPEC).read_text())["spec"])
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
        if not is_complete(run_dir, study.config):
            continue
        res = R.load(run_dir)
        for df, out in ((res.models, models), (res.summary, summaries)):
            df = df.copy()
            df.insert(0, "study", study.name)
            for key, value in study.values:
                df.insert(1, key, value)
            out.append(df)
    combined = pd.concat(models, ignore_index=True) if models else pd.DataFrame()
    R.write_table(sweep_dir / COMBINED_MODELS, combined)
    R.write_table(sweep_dir / COMBINED_SUMMARY,
                  pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame())
    scores = [s for s in CONTRAST_SCORES if s in combined.columns]
    reference = studies[0].name  # the spec's first study, e.g. "plain"
    if len(models) >= 2 and scores and reference in set(combined["study"]):
        R.write_table(sweep_dir / COMBINED_CONTRASTS,
                      contrast_studies(combined, scores, reference=reference))
    else:
        (sweep_dir / COMBINED_CONTRASTS).unlink(missing_ok=True)  # never a stale table
    return combined
