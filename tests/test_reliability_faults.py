"""Threat: faults. A process killed (SIGKILL) while training, scoring or writing results never
leaves a partial file under a final name; on rerun nothing corrupt or temporary is read, and
the results are complete and identical to those of an uninterrupted run. `memjax check`
verifies a run or sweep directory and says what is missing or corrupt.

The end-to-end SIGKILL tests run the real CLI in subprocesses (several compiles each). The
staged one (a kill while training, while scoring and while writing results, then a rerun) is in
the default run (~50 s); the eight kills at random times are marked slow:
``pytest -m slow tests/test_reliability_faults.py``.
"""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from memjax import cli, results as R, study
from memjax.check import check_dir
from memjax.config import override, to_dict
from memjax.presets import tiny

ROOT = Path(__file__).resolve().parents[1]


def _run_dir(root: Path, name: str = "run", m: int = 4) -> Path:
    """A small complete run directory written by memjax's own writers (no training)."""
    run = root / name
    R.write_json(run / R.CONFIG, {"config": to_dict(tiny()), "n_models": m})
    R.save_population(run / R.POPULATION, {"params": {"Dense_0": {"kernel": np.ones((m, 3, 2))}}},
                      {"diverged": np.zeros(m, bool)})
    R.write_table(run / R.EPOCHS, pd.DataFrame({"model": range(m), "epoch": 0, "train_loss": 1.0}))
    R.write_table(run / R.MODELS_CSV, pd.DataFrame({"model": range(m), "M2": 0.1, "valid": True}),
                  parquet=True)
    R.write_table(run / R.SUMMARY, pd.DataFrame({"score": ["M2"], "diff": [0.0]}))
    R.write_npz(run / R.ARRAYS, {"PD_Mk": np.zeros((m, 10))})
    R.write_bytes(run / R.REPORT, b"# report\n")
    R.write_bytes(run / R.FIGURES / "scores.png", b"\x89PNG fake")
    R.write_manifest(run)
    return run


# ------------------------------------------------------------------ atomic writes under SIGKILL

_KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from memjax import results as R

    target, point = Path(sys.argv[1]), sys.argv[2]
    payload = b"N" * (1 << 20)
    with R.atomic_path(target) as tmp:
        if point == "before-write":
            os.kill(os.getpid(), signal.SIGKILL)
        with open(tmp, "wb") as f:
            f.write(payload[: len(payload) // 2])
            f.flush()
            if point == "mid-write":
                os.kill(os.getpid(), signal.SIGKILL)
            f.write(payload[len(payload) // 2:])
        if point == "before-rename":
            os.kill(os.getpid(), signal.SIGKILL)
    sys.exit(3)  # never reached
""")


@pytest.mark.parametrize("point", ["before-write", "mid-write", "before-rename"])
def test_sigkill_inside_an_atomic_write_keeps_the_old_file(tmp_path, point):
    run = _run_dir(tmp_path)
    target = run / R.MODELS_CSV
    old = target.read_bytes()
    proc = subprocess.run([sys.executable, "-c", _KILLER, str(target), point], cwd=ROOT,
                          capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert target.read_bytes() == old, "the final name must keep the complete old content"
    leftovers = list(run.glob(f".{R.MODELS_CSV}.*.tmp"))
    assert len(leftovers) == 1
    report = check_dir(run)
    assert report.ok, report.text()
    assert any("leftover temporary" in n and leftovers[0].name in n for n in report.notes)


def test_atomic_write_exception_leaves_nothing(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(RuntimeError):
        with R.atomic_path(target) as tmp:
            Path(tmp).write_text("partial")
            raise RuntimeError("disk full")
    assert not target.exists() and not list(tmp_path.iterdir())


DIRECT_WRITES = [
    r"(?<![\w])(?<!R)(?<!results)\.write_(text|bytes)\(",  # Path.write_*, not R.write_bytes
    r"open\([^)]*[\"'][wax]b?\+?[\"']",                 # open(..., "w"/"wb"/"a"/"x")
    r"\.to_(csv|parquet|json)\((?!index|tmp)[^)]",        # pandas writing to a path
    r"np\.save(z|z_compressed|txt)?\((?!buf)",           # NumPy writing to a path
    r"savefig\((?!tmp)",                                  # figures outside atomic_path
]


def test_every_result_write_is_atomic():
    """Writes go through memjax.results' atomic helpers (temporary file, fsync, rename).

    Scratch files in a temporary directory are exempt when their line says ``# scratch``."""
    import re

    import memjax

    hits = []
    for path in sorted(Path(memjax.__file__).parent.rglob("*.py")):
        if path.name == "results.py":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            # An empty lock file (flock), or a line marked "# scratch" (a file in a temporary
            # directory, e.g. data handed to a benchmark subprocess): never a result.
            if ".lock" in code or "# scratch" in line:
                continue
            for pattern in DIRECT_WRITES:
                if re.search(pattern, code):
                    hits.append(f"{path.name}:{i}: {line.strip()}")
    assert not hits, "non-atomic writes:\n" + "\n".join(hits)


# ------------------------------------------------------------------ memjax check


def test_check_complete_run(tmp_path, capsys):
    run = _run_dir(tmp_path)
    report = check_dir(run)
    assert report.ok and report.kind == "scored" and report.files_verified == 9
    assert cli.main(["check", str(run)]) == 0
    assert "ok: scored" in capsys.readouterr().out


def test_check_trained_not_scored(tmp_path):
    run = _run_dir(tmp_path)
    for name in (R.MODELS_CSV, R.MODELS_PARQUET, R.SUMMARY, R.ARRAYS, R.REPORT, R.MANIFEST):
        (run / name).unlink()
    report = check_dir(run)
    assert report.ok and report.kind == "trained"
    assert "trained, not scored" in report.text()


def _damage(run: Path, how: str) -> None:
    if how == "flip a byte":
        data = bytearray((run / R.SUMMARY).read_bytes())
        data[5] ^= 1
        (run / R.SUMMARY).write_bytes(bytes(data))
    elif how == "truncate npz":
        data = (run / R.ARRAYS).read_bytes()
        (run / R.ARRAYS).write_bytes(data[: len(data) // 2])
    elif how == "delete listed file":
        (run / R.FIGURES / "scores.png").unlink()
    elif how == "delete required file":
        (run / R.REPORT).unlink()
    elif how == "wrong row count":
        R.write_table(run / R.MODELS_CSV, pd.DataFrame({"model": range(3), "valid": True}))
        R.write_manifest(run)
    elif how == "population size mismatch":
        R.save_population(run / R.POPULATION, {"params": {"k": np.ones((5, 2))}}, {})
        R.write_manifest(run)
    elif how == "corrupt manifest":
        (run / R.MANIFEST).write_text("{not json")
    elif how == "config not a study":
        R.write_json(run / R.CONFIG, {"config": {"train": {"epochs": "x"}}, "n_models": 4})
        R.write_manifest(run)


DAMAGE = {
    "flip a byte": f"{R.SUMMARY}: SHA-256 differs",
    "truncate npz": f"{R.ARRAYS}: .* bytes, {R.MANIFEST} says",
    "delete listed file": "figures/scores.png: listed in MANIFEST.json but missing",
    "delete required file": f"{R.REPORT}: listed in {R.MANIFEST} but missing",
    "wrong row count": f"{R.MODELS_CSV} has 3 rows but {R.CONFIG} says n_models=4",
    "population size mismatch": "leading sizes \\[5\\].*n_models=4",
    "corrupt manifest": f"{R.MANIFEST}: unreadable",
    "config not a study": "not a valid study config.*epochs",
}


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_check_names_what_is_corrupt(tmp_path, how, capsys):
    import re

    run = _run_dir(tmp_path)
    _damage(run, how)
    report = check_dir(run)
    assert not report.ok
    assert any(re.search(DAMAGE[how], p) for p in report.problems), report.problems
    assert cli.main(["check", str(run)]) == 1
    assert "problem:" in capsys.readouterr().out


@pytest.mark.parametrize("keep, match", [
    ({R.CONFIG}, "training did not finish: missing epochs.csv, population.npz"),
    ({R.CONFIG, R.EPOCHS, R.POPULATION, R.ARRAYS}, "scoring did not finish: missing models.csv"),
    ({R.CONFIG, R.EPOCHS, R.POPULATION, R.ARRAYS, R.MODELS_CSV, R.SUMMARY, R.REPORT},
     "scoring did not finish: missing MANIFEST.json"),
])
def test_check_interrupted_stages(tmp_path, keep, match):
    run = _run_dir(tmp_path)
    for p in list(run.iterdir()):
        if p.is_file() and p.name not in keep:
            p.unlink()
    report = check_dir(run)
    assert not report.ok and report.kind == "incomplete"
    assert any(match in p for p in report.problems), report.problems


def test_check_sweep_directory(tmp_path):
    """The layout of memjax.sweep: sweep.json, studies/<name>/, combined tables."""
    sweep = tmp_path / "sweep"
    R.write_json(sweep / "sweep.json", {"spec": {}, "studies": [
        {"name": n, "set": []} for n in ("lr_0.1", "lr_1.0", "lr_10")]})
    _run_dir(sweep / "studies", "lr_0.1")
    bad = _run_dir(sweep / "studies", "lr_1.0")
    (bad / R.ARRAYS).write_bytes(b"garbage")
    (sweep / "combined_models.csv").write_text("study,model\nlr_0.1,0\n")
    report = check_dir(sweep)
    assert report.kind == "sweep" and len(report.runs) == 2 and not report.ok
    assert any(p.startswith("studies/lr_1.0: ") and R.ARRAYS in p for p in report.problems)
    assert any("1 of 3 studies of sweep.json not started: lr_10" in p for p in report.problems)
    assert "studies/lr_0.1: ok: scored" in report.text()
    flat = tmp_path / "flat"  # a plain folder of run directories
    _run_dir(flat, "a")
    _run_dir(flat, "b")
    assert check_dir(flat).ok and len(check_dir(flat).runs) == 2


def test_check_missing_and_empty(tmp_path):
    assert not check_dir(tmp_path / "nope").ok
    assert "neither a run directory" in check_dir(tmp_path).text()


# ------------------------------------------------------------------ resume after a kill


def test_interrupted_retrain_with_a_new_config_does_not_reuse_the_old_population(tmp_path,
                                                                                 monkeypatch):
    work = tmp_path / "run"
    cfg_b = override(tiny(), ["train.epochs=3"])
    # A finished run of config A (the tiny preset) ...
    R.write_json(work / R.CONFIG, {"config": to_dict(tiny()), "n_models": 4})
    R.save_population(work / R.POPULATION, {"params": {"k": np.ones((4, 2))}}, {})
    # ... then `memjax run` with config B is killed during training.

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed during training")

    monkeypatch.setattr(study, "train_population", killed)
    prep_b = study.prepare(cfg_b)
    with pytest.raises(KeyboardInterrupt):
        study.train_stage(cfg_b, work, progress=False, prep=prep_b)
    # Rerun with config B: it must train, not score A's population.
    calls = []
    monkeypatch.setattr(study, "train_stage", lambda *a, **k: calls.append("train"))
    monkeypatch.setattr(study, "score_stage", lambda *a, **k: calls.append("score"))
    study.run_study(cfg_b, work, progress=False)
    assert calls == ["train", "score"]


# ------------------------------------------------------------------ SIGKILL of the real CLI

ARGS = ["run", "tiny", "--no-progress", "--set", "data.n_train=512", "--set", "data.n_val=256",
        "--set", "probes.n=100", "--set", 'population.strategy="chunks"',
        "--set", "population.chunk_size=2"]

# A wrapper that records any open() of a temporary file left by a killed process.
_AUDITED = textwrap.dedent("""
    import os, sys
    leftovers = {os.path.abspath(p) for p in os.environ["MEMJAX_TEST_LEFTOVERS"].split(os.pathsep) if p}
    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            if os.path.abspath(os.fsdecode(args[0])) in leftovers:
                os.write(2, b"READ-LEFTOVER " + os.fsencode(args[0]) + b"\\n")
    sys.addaudithook(hook)
    from memjax.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _start(workdir: Path, log: Path) -> subprocess.Popen:
    leftovers = [str(p) for p in workdir.rglob(".*.tmp")] if workdir.exists() else []
    env = {**os.environ, "MEMJAX_TEST_LEFTOVERS": os.pathsep.join(leftovers)}
    return subprocess.Popen([sys.executable, "-c", _AUDITED, *ARGS, "--workdir", str(workdir)],
                            cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _wait_and_kill(proc: subprocess.Popen, trigger, timeout: float = 400) -> bool:
    """Kills proc with SIGKILL once trigger() is true; False if it finished first."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            return False
        if trigger():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    proc.kill()
    raise AssertionError("trigger never fired")


def _assert_no_partial_final_file(workdir: Path) -> None:
    """Every file under a final name parses completely; check reports nothing corrupt."""
    if not workdir.exists():  # killed before the run wrote anything (e.g. during imports)
        return
    for p in workdir.rglob("*"):
        if not p.is_file() or p.name.startswith("."):
            continue
        if p.suffix == ".npz":
            R.read_npz(p)
        elif p.suffix == ".csv":
            pd.read_csv(p)
        elif p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".png":
            data = p.read_bytes()
            assert data.startswith(b"\x89PNG") and data[-8:-4] == b"IEND", p
    report = check_dir(workdir)
    for problem in report.problems:
        assert "did not finish" in problem, report.text()


def _same_results(a: Path, b: Path) -> None:
    for name in (R.MODELS_CSV, R.SUMMARY, R.EPOCHS):
        pd.testing.assert_frame_equal(pd.read_csv(a / name), pd.read_csv(b / name), check_exact=True)
    arrays_a, arrays_b = R.read_npz(a / R.ARRAYS), R.read_npz(b / R.ARRAYS)
    assert arrays_a.keys() == arrays_b.keys()
    for k in arrays_a:
        np.testing.assert_array_equal(arrays_a[k], arrays_b[k], err_msg=k)
    pop_a, pop_b = R.read_npz(a / R.POPULATION), R.read_npz(b / R.POPULATION)
    for k in pop_a:
        if k.startswith("variables/"):
            np.testing.assert_array_equal(pop_a[k], pop_b[k], err_msg=k)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    t0 = time.monotonic()
    proc = _start(root / "run", root / "log.txt")
    assert proc.wait(timeout=600) == 0, (root / "log.txt").read_text()[-3000:]
    return root / "run", time.monotonic() - t0


STAGES = [
    ("training: compiling the first chunk",
     lambda w: (w / R.CONFIG).exists(), 1.0),
    ("training: between chunks (one chunk saved)",
     lambda w: any((w / "chunks").glob("chunk-*.npz")), 0.0),
    ("scoring: population.npz written",
     lambda w: (w / R.POPULATION).exists(), 0.5),
    ("writing results: models.csv written, manifest not yet",
     lambda w: (w / R.MODELS_CSV).exists(), 0.0),
    ("writing results: figures being written",
     lambda w: (w / R.FIGURES).is_dir() and any((w / R.FIGURES).glob("*.png")), 0.0),
]


def test_sigkill_at_every_stage_then_rerun_gives_identical_results(reference_run, tmp_path):
    """One workdir killed at each stage in turn (each start resumes from what the previous
    one left), then run to completion: results identical to the uninterrupted run."""
    ref, _ = reference_run
    work, log = tmp_path / "run", tmp_path / "log.txt"
    killed = []
    for stage, trigger, delay in STAGES:
        proc = _start(work, log)
        fired = _wait_and_kill(proc, lambda: trigger(work) and (time.sleep(delay) or True))
        killed.append((stage, fired))
        _assert_no_partial_final_file(work)
    proc = _start(work, log)
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "READ-LEFTOVER" not in text, "a temporary file of a killed process was read"
    assert "Traceback" not in text
    _same_results(ref, work)
    report = check_dir(work)
    assert report.ok and report.kind == "scored", report.text()
    assert sum(fired for _, fired in killed) >= 4, killed
    print("kills:", killed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(8))
def test_sigkill_at_a_random_time_then_rerun(reference_run, tmp_path, seed):
    ref, duration = reference_run
    work, log = tmp_path / "run", tmp_path / "log.txt"
    at = random.Random(seed).uniform(0.05, 0.9) * duration
    proc = _start(work, log)
    t0 = time.monotonic()
    fired = _wait_and_kill(proc, lambda: time.monotonic() - t0 >= at)
    _assert_no_partial_final_file(work)
    proc = _start(work, log)
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert "READ-LEFTOVER" not in log.read_text()
    _same_results(ref, work)
    assert check_dir(work).ok
    print(f"killed at {at:.1f} s of {duration:.1f} s: {fired}")


@pytest.mark.parametrize("damage", ["truncate", "wrong-models", "wrong-epochs", "other-weights"])
def test_unusable_chunk_checkpoint_is_set_aside_and_retrained(small_mnist, tmp_path, damage):
    """A damaged chunk checkpoint never stops a resume and is never merged: it is renamed
    `.corrupt` with a warning and its chunk is trained again, to the same result."""
    import jax

    from memjax.config import PopulationConfig, StudyConfig, TrainConfig
    from memjax.population import build_table, model_inputs
    from memjax.trainer import make_train_data, train_population

    train, val = small_mnist
    cfg = StudyConfig(population=PopulationConfig(n_seeds=2, conditions=("uf", "baseline")))
    inputs = model_inputs(cfg, build_table(cfg, train.labels, train.example_index), train.shape)
    data = make_train_data(train.images, train.labels, val.images, val.labels, [0.1307], [0.3081])
    tcfg = TrainConfig(epochs=1, early_stopping=False, batch_size=128)
    ckpt = tmp_path / "chunks"

    def run():
        return train_population("mlp", tcfg, inputs, data, strategy="chunks", chunk_size=2,
                                progress=False, checkpoint_dir=ckpt)

    first = run()
    files = sorted(ckpt.glob("chunk-*.npz"))
    assert len(files) == 2
    good = R.read_tree(files[0])
    if damage == "truncate":
        files[1].write_bytes(files[1].read_bytes()[:1000])
    elif damage == "wrong-models":  # a readable file holding the wrong number of models
        R.write_tree(files[1], {"out": jax.tree.map(lambda x: x[:1], good["out"]),
                                "metrics": good["metrics"]})
    elif damage == "wrong-epochs":  # metrics of a run with another epoch count
        R.write_tree(files[1], {"out": good["out"], "metrics": jax.tree.map(
            lambda x: np.concatenate([x, x], axis=1), good["metrics"])})
    else:  # weights of another architecture (a file from another program version)
        out = dict(good["out"])
        out["variables"] = jax.tree.map(lambda x: x[..., :3], good["out"]["variables"])
        R.write_tree(files[1], {"out": out, "metrics": good["metrics"]})
    with pytest.warns(UserWarning, match="unusable.*training that chunk again"):
        second = run()
    assert (ckpt / (files[1].name + ".corrupt")).exists()
    assert files[1].exists()  # rewritten by the retrain
    for a, b in zip(jax.tree.leaves(first.variables), jax.tree.leaves(second.variables)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.metrics["val_loss"], second.metrics["val_loss"])
