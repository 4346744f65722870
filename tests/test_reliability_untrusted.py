"""Threat: untrusted files. No pickle anywhere; configs and run directories are parsed as data
only; paths taken from configs cannot leave the work directory."""
import json
import os
import pickle  # only to build hostile test files; the package itself never imports it
import re
from pathlib import Path

import numpy as np
import pytest

import memjax
from memjax import results as R, study
from memjax.check import check_dir
from memjax.config import to_dict
from memjax.errors import ConfigError, MemjaxError
from memjax.paths import safe_join
from memjax.presets import tiny

PACKAGE = Path(memjax.__file__).resolve().parent

# What would let a file run code when loaded.
FORBIDDEN = [
    (r"\bimport pickle\b|\bfrom pickle\b|\bpickle\.", "pickle"),
    (r"allow_pickle\s*=\s*True", "allow_pickle=True"),
    (r"\b(cloudpickle|dill|joblib|shelve|marshal)\b", "a pickle-like module"),
    (r"read_pickle|to_pickle", "pandas pickle I/O"),
    (r"torch\.load", "torch.load"),
    (r"yaml\.(unsafe_)?load\(", "yaml.load"),
    (r"(?<![\w.])(eval|exec)\(", "eval/exec"),
    (r"__import__\(|import_module\(", "string imports"),
]


def _package_sources():
    return sorted(p for p in PACKAGE.rglob("*.py") if "embedded" not in p.parts)


@pytest.mark.parametrize("pattern, what", FORBIDDEN, ids=[w for _, w in FORBIDDEN])
def test_package_never_unpickles_or_evaluates(pattern, what):
    hits = []
    for path in _package_sources():
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(pattern, code) and not code.strip().startswith(('"', "'")):
                hits.append(f"{path.relative_to(PACKAGE.parent)}:{i}: {line.strip()}")
    assert not hits, f"{what} in the package:\n" + "\n".join(hits)


def test_every_np_load_disallows_pickle():
    for path in _package_sources():
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if "np.load(" in line or "numpy.load(" in line:
                assert "allow_pickle=False" in line, f"{path}:{i}: {line.strip()}"


# ------------------------------------------------------------------ hostile run directories


class _Exploit:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _run_dir(root: Path) -> Path:
    """A small but complete run directory, written with memjax's own writers."""
    import pandas as pd

    run = root / "run"
    m = 4
    R.write_json(run / R.CONFIG, {"config": to_dict(tiny()), "n_models": m})
    R.save_population(run / R.POPULATION, {"params": {"Dense_0": {"kernel": np.zeros((m, 3, 2))}}},
                      {"diverged": np.zeros(m, bool)})
    R.write_table(run / R.EPOCHS, pd.DataFrame({"model": range(m), "epoch": 0, "train_loss": 1.0}))
    R.write_table(run / R.MODELS_CSV, pd.DataFrame({"model": range(m), "M2": 0.1, "valid": True}))
    R.write_table(run / R.SUMMARY, pd.DataFrame({"score": ["M2"], "diff": [0.0]}))
    R.write_npz(run / R.ARRAYS, {"PD_Mk": np.zeros((m, 10))})
    R.write_bytes(run / R.REPORT, b"# report\n")
    R.write_manifest(run)
    return run


def _pickled_npz(path: Path, marker: Path) -> None:
    arr = np.empty(1, dtype=object)
    arr[0] = _Exploit(marker)
    with open(path, "wb") as f:  # np.savez pickles object arrays
        np.savez(f, PD_Mk=arr)


@pytest.mark.parametrize("target", [R.ARRAYS, R.POPULATION])
def test_pickled_array_is_refused_and_never_run(tmp_path, target):
    run = _run_dir(tmp_path)
    marker = tmp_path / "exploited"
    _pickled_npz(run / target, marker)
    with pytest.raises(R.ResultsError, match=r"allow_pickle|Object arrays"):
        if target == R.ARRAYS:
            R.load(run)
        else:
            R.load_population(run / target)
    report = check_dir(run)
    assert not report.ok
    assert any("pickled" in p and target in p for p in report.problems), report.problems
    assert not marker.exists(), "unpickling ran code"


def test_a_real_pickle_file_named_npz_is_refused(tmp_path):
    run = _run_dir(tmp_path)
    marker = tmp_path / "exploited"
    (run / R.ARRAYS).write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(R.ResultsError, match="unreadable or corrupt"):
        R.load(run)
    assert not check_dir(run).ok and not marker.exists()


CONFIG_JSON_CASES = {
    "unknown field": ({"config": {**to_dict(tiny()), "exploit": "os.system('x')"}}, "exploit"),
    "class injection": ({"config": {**to_dict(tiny()), "__class__": "StudyConfig"}}, "__class__"),
    "wrong type": ({"config": {**to_dict(tiny()), "train": {"epochs": "two"}}}, "epochs"),
    "section not an object": ({"config": {**to_dict(tiny()), "population": [1]}}, "mapping"),
    "config not an object": ({"config": 5}, "'config' object"),
    "no config": ({"n_models": 4}, "config"),
    "a list": ([1, 2], "unreadable config"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_JSON_CASES))
def test_config_json_with_unexpected_content_is_refused(tmp_path, case):
    content, match = CONFIG_JSON_CASES[case]
    run = tmp_path / "run"
    run.mkdir()
    (run / R.CONFIG).write_text(json.dumps(content))
    with pytest.raises((ConfigError, R.ResultsError), match=match):
        study.read_config(run)
    assert not check_dir(run).ok


@pytest.mark.parametrize("raw", [b"[" * 100_000, b"\xff\xfe{}"], ids=["deep nesting", "not utf-8"])
def test_config_json_hostile_bytes_give_a_memjax_error(tmp_path, raw):
    run = tmp_path / "run"
    run.mkdir()
    (run / R.CONFIG).write_bytes(raw)
    with pytest.raises(MemjaxError):
        study.read_config(run)


@pytest.mark.parametrize("raw", [b"[" * 100_000, b"\xff\xfe{}", b"", b"null"])
def test_check_reports_hostile_config_json(tmp_path, raw):
    run = _run_dir(tmp_path)
    (run / R.CONFIG).write_bytes(raw)
    report = check_dir(run)
    assert not report.ok and any(R.CONFIG in p for p in report.problems)


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe\x00"], ids=["empty", "not utf-8"])
def test_results_load_wraps_table_errors(tmp_path, raw):
    run = _run_dir(tmp_path)
    (run / R.MODELS_CSV).write_bytes(raw)
    with pytest.raises(R.ResultsError):
        R.load(run)


def test_manifest_entries_cannot_point_outside_the_run(tmp_path):
    run = _run_dir(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    manifest = json.loads((run / R.MANIFEST).read_text())
    manifest["files"]["../secret.txt"] = {"sha256": "0" * 64, "bytes": 9}
    manifest["files"]["/etc/passwd"] = {"sha256": "0" * 64, "bytes": 1}
    (run / R.MANIFEST).write_text(json.dumps(manifest))
    report = check_dir(run)
    assert sum("points outside the run directory" in p for p in report.problems) == 2


# ------------------------------------------------------------------ paths from configs


@pytest.mark.parametrize("rel, match", [
    ("/etc/passwd", "absolute"),
    ("//server/share", "absolute"),
    ("C:\\Windows", "absolute"),
    ("C:relative", "absolute"),
    ("\\\\server\\share", "absolute"),
    ("../outside", r"'\.\.'"),
    ("runs/../../outside", r"'\.\.'"),
    ("runs\\..\\..\\outside", r"'\.\.'"),
    ("a/../b", r"'\.\.'"),
    ("", "empty"),
    ("   ", "empty"),
    (".", "work directory itself"),
    ("./", "work directory itself"),
    ("bad\0name", "NUL"),
    (5, "expected a relative path"),
    (None, "expected a relative path"),
])
def test_safe_join_refusals(tmp_path, rel, match):
    with pytest.raises(ConfigError, match=match) as e:
        safe_join(tmp_path, rel, what="sweep.out")
    assert "sweep.out" in str(e.value)


def test_safe_join_refuses_symlink_escapes(tmp_path):
    root = tmp_path / "work"
    (root / "inside").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, root / "link")
    os.symlink(root / "inside", root / "ok_link")
    with pytest.raises(ConfigError, match="symbolic link"):
        safe_join(root, "link/run1")
    with pytest.raises(ConfigError, match="symbolic link"):
        safe_join(root, "link")
    assert safe_join(root, "ok_link/run1") == root / "ok_link" / "run1"


def test_safe_join_accepts_paths_inside(tmp_path):
    assert safe_join(tmp_path, "runs/lr_0.001") == tmp_path / "runs" / "lr_0.001"
    assert safe_join(tmp_path, Path("a") / "b.json") == tmp_path / "a" / "b.json"
    assert safe_join(tmp_path / "not_yet", "x") == tmp_path / "not_yet" / "x"
    assert safe_join(tmp_path, "./x/") == tmp_path / "x"
    assert safe_join(tmp_path, "..hidden") == tmp_path / "..hidden"
