"""Damaged results and hostile sweep inputs: a finished run or sweep that was changed, truncated
or mixed up afterwards is refused by name, never rescored, combined or audited as if intact;
sweep specs are checked field by field before anything is written (docs/reliability.md,
"Damaged results and sweep specs")."""
import json
import shutil
import subprocess
import sys
import warnings

import pandas as pd
import pytest

from memjax import results as R
from memjax import sweep
from memjax.check import check_dir
from memjax.errors import ConfigError

PLAIN = "learning_rate=0.0003"  # the tiny sweep's first study
CLI = [sys.executable, "-m", "memjax.cli"]


@pytest.fixture
def sweep_copy(tiny_sweep, tmp_path):
    out = tmp_path / "sweep"
    shutil.copytree(tiny_sweep, out)
    return out


def _cli(*args, timeout=300):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def _edit_models(run, fn):
    path = run / R.MODELS_CSV
    fn(pd.read_csv(path)).to_csv(path, index=False)


# ---- a finished run changed afterwards ----------------------------------------------------

def test_stats_only_refuses_a_models_table_changed_after_the_run(sweep_copy):
    from memjax.study import resummarise

    run = sweep_copy / "studies" / PLAIN
    _edit_models(run, lambda d: d.assign(M_score=d["M_score"] + 5))
    with pytest.raises(R.ResultsError, match="damaged run: models.csv"):
        resummarise(run)
    assert (run / R.MANIFEST).is_file()  # the evidence stays
    assert not check_dir(run).ok


@pytest.mark.parametrize("column", ["M2", "condition", "valid", "diverged", "model"])
def test_stats_only_names_a_missing_column_before_touching_the_run(sweep_copy, column):
    from memjax.study import resummarise

    run = sweep_copy / "studies" / PLAIN
    (run / R.MANIFEST).unlink()  # as after an interrupted earlier call: nothing to verify
    _edit_models(run, lambda d: d.drop(columns=[column]))
    summary = (run / R.SUMMARY).read_bytes()
    with pytest.raises(R.ResultsError, match=f"missing columns \\['{column}'\\]"):
        resummarise(run)
    assert (run / R.SUMMARY).read_bytes() == summary


def test_stats_only_refuses_a_table_of_another_size(sweep_copy):
    from memjax.study import resummarise

    run = sweep_copy / "studies" / PLAIN
    (run / R.MANIFEST).unlink()
    _edit_models(run, lambda d: d.head(1))
    with pytest.raises(R.ResultsError, match="1 rows but config.json says n_models=2"):
        resummarise(run)


def test_stats_only_refuses_a_valid_column_that_is_not_boolean(sweep_copy):
    from memjax.study import resummarise

    run = sweep_copy / "studies" / PLAIN
    (run / R.MANIFEST).unlink()
    _edit_models(run, lambda d: d.assign(valid=["yes"] + [True] * (len(d) - 1)))
    with pytest.raises(R.ResultsError, match="column 'valid': 1 of 2 values are not booleans"):
        resummarise(run)


def test_rescoring_refuses_a_changed_config_and_a_population_of_another_size(sweep_copy):
    from memjax.study import score_stage

    run = sweep_copy / "studies" / PLAIN
    record = json.loads((run / R.CONFIG).read_text())
    record["config"]["population"]["n_seeds"] = 2
    (run / R.CONFIG).write_text(json.dumps(record))
    with pytest.raises(R.ResultsError, match="damaged run: config.json"):
        score_stage(run, progress=False)
    assert (run / R.MANIFEST).is_file()
    (run / R.MANIFEST).unlink()  # even with nothing to verify against, sizes must agree
    with pytest.raises(R.ResultsError, match="population.npz: holds models of leading sizes \\[2\\]"):
        score_stage(run, progress=False)


def test_training_a_scored_run_again_leaves_it_scoreable(sweep_copy):
    from memjax.study import read_config, score_stage, train_stage

    run = sweep_copy / "studies" / PLAIN
    train_stage(read_config(run), run, progress=False)  # `memjax train` on a scored run
    assert not (run / R.MANIFEST).exists()  # the old scores belonged to the old weights
    assert not check_dir(run).problems  # "trained, not scored"
    score_stage(run, progress=False)
    assert check_dir(run).ok and check_dir(run).kind == "scored"


def test_workdir_that_is_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("x")
    for args in (["run", "tiny", "--workdir", str(tmp_path / "afile")],
                 ["train", "tiny", "--workdir", str(tmp_path / "afile" / "sub")]):
        res = _cli(*args, "--no-progress")
        assert res.returncode == 2 and "is not a directory" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr


def test_influence_refuses_a_bad_batch_size_before_training(tmp_path):
    from memjax.influence_study import run_influence_study
    from memjax.presets import get_preset

    for bad in (0, -5, 2.5):
        with pytest.raises(ConfigError, match="batch_size"):
            run_influence_study(get_preset("tiny"), tmp_path / "inf", batch_size=bad)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        run_influence_study(get_preset("tiny"), tmp_path / "afile")
    with pytest.raises(ConfigError, match="k=0"):
        run_influence_study(get_preset("tiny"), tmp_path / "inf", k=0)
    assert not (tmp_path / "inf").exists()  # nothing created for a refused call


# ---- sweeps --------------------------------------------------------------------------------

def test_a_damaged_study_is_never_combined_nor_skipped_as_done(sweep_copy):
    run = sweep_copy / "studies" / PLAIN
    _edit_models(run, lambda d: d.head(1))
    with pytest.warns(UserWarning, match="damaged since it finished.*models.csv"):
        combined = sweep.combine(sweep_copy)
    assert PLAIN not in set(combined["study"]) and len(combined)
    assert not (sweep_copy / sweep.COMBINED_CONTRASTS).exists()  # its reference is gone
    record = sweep.read_record(sweep_copy)
    damaged = (run / R.MODELS_CSV).read_bytes()
    with pytest.warns(UserWarning) as caught:  # skipped by the worker, left out by combine
        combined = sweep.run_sweep(record["spec"], sweep_copy, progress=False)
    said = [str(w.message) for w in caught]
    assert any(f"{PLAIN}: damaged since it finished" in m and "skipped" in m for m in said)
    assert (run / R.MODELS_CSV).read_bytes() == damaged  # not redone over the evidence
    assert PLAIN not in set(combined["study"]) and len(combined)  # the other studies went on


def test_combine_only_checks_the_directory_and_the_spec(sweep_copy, tmp_path):
    before = {p.name: p.read_bytes() for p in sweep_copy.glob("combined_*.csv")}
    other = sweep.expand({"base": "tiny", "studies": [{"name": "plain"},
                                                      {"name": "zzz", "set": ["train.epochs=3"]}]})
    with pytest.raises(ConfigError, match="holds another sweep"):
        sweep.combine(sweep_copy, other)
    assert {p.name: p.read_bytes() for p in sweep_copy.glob("combined_*.csv")} == before
    empty = tmp_path / "empty"
    empty.mkdir()
    for where in (empty, tmp_path / "missing", sweep_copy / "studies" / PLAIN):
        with pytest.raises(R.ResultsError, match="sweep.json: missing"):
            sweep.combine(where, other)
    assert list(empty.iterdir()) == []


def test_a_damaged_sweep_record_is_named(sweep_copy):
    spec = sweep.read_record(sweep_copy)["spec"]
    for content in (b'{"spec": {"base"', b"\xff\xfe", b"[1, 2]"):
        (sweep_copy / sweep.SPEC).write_bytes(content)
        with pytest.raises(R.ResultsError, match="sweep.json"):
            sweep.run_sweep(spec, sweep_copy, progress=False)
        with pytest.raises(R.ResultsError, match="sweep.json"):
            sweep.combine(sweep_copy)


def test_a_study_table_that_already_has_the_study_column_is_refused(sweep_copy):
    run = sweep_copy / "studies" / PLAIN
    (run / R.MANIFEST).unlink()
    _edit_models(run, lambda d: d.assign(study="zzz"))
    R.write_manifest(run)  # "intact" as far as the manifest goes
    with pytest.raises(R.ResultsError, match="already have the column"):
        sweep.combine(sweep_copy)


def test_nothing_complete_writes_no_empty_table(tmp_path):
    spec = {"base": "tiny", "set": ["train.epochs=1"],
            "studies": [{"name": "a"}, {"name": "b", "set": ["train.learning_rate=0.001"]}]}
    out = tmp_path / "sweep"
    out.mkdir()
    R.write_json(out / sweep.SPEC, sweep._record(spec, sweep.expand(spec)))
    (out / sweep.COMBINED_MODELS).write_text("stale\n1\n")
    assert sweep.combine(out).empty
    assert not list(out.glob("combined_*.csv"))
    report = check_dir(out)
    assert "2 of 2 studies of sweep.json not started" in report.text()
    assert "1 problem(s) with the sweep itself" in report.status()


@pytest.mark.parametrize("spec, match", [
    ({"base": "tiny", "set": 5, "studies": [{"name": "a"}]}, "sweep set: expected a list"),
    ({"base": "tiny", "set": [5], "studies": [{"name": "a"}]}, "sweep set: expected a list"),
    ({"base": "tiny", "set": "train.epochs=1", "studies": [{"name": "a"}]}, "expected a list"),
    ({"base": "tiny", "studies": [{"name": "a", "set": None}]}, "'a': set: expected a list"),
    ({"base": "tiny", "studies": 5}, "sweep studies: expected a list"),
    ({"base": ["tiny"], "studies": [{"name": "a"}]}, "expected the name of a preset"),
    ({"base": "tiny", "studies": [{"name": "wd", "sets": ["train.weight_decay=0.1"]}]},
     "unknown keys \\['sets'\\]"),
    ({"base": "tiny", "studies": [{"name": None}]}, "non-empty string"),
    ({"base": "tiny", "studies": [{"name": ["x", "y"]}]}, "non-empty string"),
    ({"base": "tiny", "studies": [{"name": "  "}]}, "non-empty string"),
    ({"base": "tiny", "grid": {f"train.{k}": list(range(1, 41)) for k in
                               ("epochs", "batch_size", "patience", "learning_rate")}},
     "exceed 10,000"),
])
def test_malformed_specs_are_refused_by_field(spec, match):
    with pytest.raises(ConfigError, match=match):
        sweep.expand(spec)


def test_names_in_any_script_are_kept_and_same_config_studies_are_flagged():
    studies = sweep.expand({"base": "tiny", "studies": [
        {"name": "été", "set": ["train.epochs=1"]}, {"name": "学习", "set": ["train.epochs=2"]}]})
    assert [s.name for s in studies] == ["été", "学习"]  # was "t" and "study"
    with pytest.warns(UserWarning, match="'epochs=1' and 'epochs=1.0' resolve to the same config"):
        sweep.expand({"base": "tiny", "grid": {"train.epochs": [1, 1.0]}})


def test_unreadable_spec_files_are_refused(tmp_path):
    for content in (b"\xff\xfe{}", ("{\"base\":" + "[" * 100_000 + "]" * 100_000 + "}").encode()):
        (tmp_path / "s.json").write_bytes(content)
        with pytest.raises(ConfigError, match="cannot read"):
            sweep.load_spec(tmp_path / "s.json")


def test_a_refused_spec_writes_nothing(tmp_path):
    out = tmp_path / "sweep"
    with pytest.raises(ConfigError):
        sweep.run_sweep({"base": "tiny", "studies": [{"name": "b"}, {"name": "."}]}, out)
    assert not out.exists()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        sweep.run_sweep({"base": "tiny", "studies": [{"name": "b"}]}, tmp_path / "afile")


# ---- audits --------------------------------------------------------------------------------

def test_audit_sweep_never_reads_outside_the_sweep(sweep_copy, tmp_path):
    from memjax.audit import audit_sweep

    outside = tmp_path / "outside"
    shutil.copytree(sweep_copy / "studies" / PLAIN, outside)
    (sweep_copy / sweep.COMBINED_MODELS).write_text("study,model\n../../outside,0\n")
    with pytest.raises(ConfigError, match="'..' is not allowed"):
        audit_sweep(sweep_copy)


def test_audit_cli_bad_inputs_exit_2_with_one_line(sweep_copy, tmp_path):
    run = sweep_copy / "studies" / PLAIN
    damaged = tmp_path / "damaged"
    shutil.copytree(run, damaged)
    _edit_models(damaged, lambda d: d.drop(columns=["M2"]))
    garbage = tmp_path / "garbage"
    shutil.copytree(run, garbage)
    (garbage / R.MANIFEST).unlink()
    (garbage / R.MODELS_CSV).write_bytes(b"\xff\xfe\x00")
    cases = [([str(tmp_path / "nowhere")], "models.csv: missing"),
             ([str(run), "--delta", "-1"], "delta=-1.0"),
             ([str(run), "--alpha", "0"], "alpha=0.0"),
             ([str(run), "--alpha", "nan"], "alpha=nan"),
             ([str(run), "--out", str(tmp_path)], "is a directory"),
             ([str(damaged)], "damaged run: models.csv"),
             ([str(garbage)], "models.csv")]
    for args, match in cases:
        res = _cli("audit", *args)
        assert res.returncode == 2, (args, res.stderr)
        assert match in res.stderr and "Traceback" not in res.stderr, (args, res.stderr)


def test_check_names_files_and_empty_folders(tmp_path):
    (tmp_path / "afile").write_text("x")
    assert check_dir(tmp_path / "afile").problems == [f"{tmp_path / 'afile'}: not a directory"]
    (tmp_path / "empty").mkdir()
    assert check_dir(tmp_path / "empty").status() == "EMPTY"


def test_no_warning_for_an_intact_sweep(sweep_copy):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(sweep.combine(sweep_copy)["study"]) == {PLAIN, "learning_rate=0.001",
                                                          "dropout", "crossed"}


# ---- seventh session: a second adversarial probe --------------------------------------------

OTHER = "learning_rate=0.001"  # same model and population size as PLAIN, other weights


@pytest.mark.parametrize("how", ["weights of another study", "arrays of another study",
                                 "epochs edited", "weights deleted"])
def test_stats_only_holds_every_kept_file_to_the_manifest(sweep_copy, how):
    """`score --stats-only` writes a new MANIFEST.json that vouches for every file of the run:
    any file it keeps must still be the one the old manifest recorded (before, only config.json
    and models.csv were checked, so swapped weights were blessed and `check` said ok)."""
    from memjax.study import resummarise

    run, other = sweep_copy / "studies" / PLAIN, sweep_copy / "studies" / OTHER
    name = {"weights of another study": R.POPULATION, "arrays of another study": R.ARRAYS,
            "epochs edited": R.EPOCHS, "weights deleted": R.POPULATION}[how]
    if how.endswith("another study"):
        shutil.copyfile(other / name, run / name)
    elif how == "epochs edited":
        text = (run / R.EPOCHS).read_text()
        (run / R.EPOCHS).write_text(text.replace("0.", "9.", 1))
    else:
        (run / name).unlink()
    manifest = (run / R.MANIFEST).read_bytes()
    with pytest.raises(R.ResultsError, match=f"damaged run: {name}"):
        resummarise(run)
    assert (run / R.MANIFEST).read_bytes() == manifest and not check_dir(run).ok


def test_stats_only_rewrites_what_it_writes_anew(sweep_copy):
    from memjax.study import resummarise

    run = sweep_copy / "studies" / PLAIN
    summary = (run / R.SUMMARY).read_bytes()
    (run / R.SUMMARY).write_text("edited\n1\n")
    (run / R.REPORT).write_text("edited")
    resummarise(run)  # its own outputs: rebuilt, not refused
    assert (run / R.SUMMARY).read_bytes() == summary and check_dir(run).ok


@pytest.mark.parametrize("command", ["tail", "audit"])
def test_out_inside_the_run_or_unwritable_is_refused_before_any_work(sweep_copy, tmp_path,
                                                                     command):
    run = sweep_copy / "studies" / PLAIN
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    (tmp_path / "afile").write_text("x")
    for out, match in ((run / R.MODELS_CSV, "inside the run directory"),
                       (run / R.POPULATION, "inside the run directory"),
                       (run / "new.csv", "inside the run directory"),
                       (tmp_path, "is a directory"),
                       (tmp_path / "afile" / "x.csv", "exists and is not a directory")):
        res = _cli(command, str(run), "--out", str(out), "--no-progress"
                   if command == "tail" else "--alpha=0.05")
        assert res.returncode == 2 and match in res.stderr, (out, res.stderr)
        assert res.stdout == "" and "Traceback" not in res.stderr  # refused before the work
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert check_dir(run).ok


def test_a_run_and_a_sweep_never_share_a_directory(sweep_copy):
    from memjax.study import read_config, train_stage

    run = sweep_copy / "studies" / PLAIN
    with pytest.raises(ConfigError, match="holds a sweep \\(sweep.json\\)"):
        train_stage(read_config(run), sweep_copy, progress=False)
    spec = {"base": "tiny", "studies": [{"name": "a"}]}
    with pytest.raises(ConfigError, match="holds a run \\(config.json\\)"):
        sweep.run_sweep(spec, run, progress=False)
    assert not (sweep_copy / R.CONFIG).exists() and not (run / sweep.SPEC).exists()
    assert check_dir(sweep_copy).ok


@pytest.mark.parametrize("name", [R.MANIFEST, R.MODELS_CSV, R.FIGURES])
def test_scoring_refuses_a_directory_where_it_writes_a_file(sweep_copy, name):
    from memjax.study import score_stage

    run = sweep_copy / "studies" / PLAIN
    (run / R.MANIFEST).unlink()
    if name == R.FIGURES:  # the other way round: a file where the figures folder goes
        shutil.rmtree(run / name)
        (run / name).write_text("x")
        match = "figures is not a directory"
    else:
        (run / name).unlink(missing_ok=True)
        (run / name).mkdir()
        match = f"{name} is a directory where memjax writes a file"
    with pytest.raises(ConfigError, match=match):
        score_stage(run, progress=False)
    res = _cli("score", str(run), "--no-progress")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr


def test_check_compares_the_combined_tables_with_the_studies(sweep_copy):
    assert check_dir(sweep_copy).ok  # the uninterrupted sweep agrees with itself
    # As after a kill between the tables' writes: the summary still of an older combine.
    summary = pd.read_csv(sweep_copy / sweep.COMBINED_SUMMARY)
    summary[summary["study"] != OTHER].to_csv(sweep_copy / sweep.COMBINED_SUMMARY, index=False)
    text = check_dir(sweep_copy).text()
    assert f"combined_summary.csv: leaves out complete studies {OTHER}" in text
    assert "--combine-only" in text
    sweep.combine(sweep_copy)
    assert check_dir(sweep_copy).ok
    # A study removed after the tables were written: they still hold it.
    shutil.move(sweep_copy / "studies" / OTHER, sweep_copy / "away")
    report = check_dir(sweep_copy)
    assert any(f"combined_models.csv: holds studies that are not complete on disk: {OTHER}"
               in p for p in report.problems), report.problems
    shutil.move(sweep_copy / "away", sweep_copy / "studies" / OTHER)
    assert check_dir(sweep_copy).ok
    # A damaged study is named by its own report, whichever table holds it (a combine leaves
    # it out, a sweep skips it: rerunning either would not clear a table problem).
    (sweep_copy / "studies" / OTHER / R.REPORT).write_text("edited")
    problems = check_dir(sweep_copy).problems
    assert problems and not any("combined_" in p for p in problems), problems
    with pytest.warns(UserWarning, match="left out"):
        _edit_models(sweep_copy / "studies" / OTHER, lambda d: d.head(1))
        sweep.combine(sweep_copy)
    problems = check_dir(sweep_copy).problems
    assert problems and not any("combined_" in p for p in problems), problems
    (sweep_copy / sweep.COMBINED_MODELS).unlink()
    assert "combined_models.csv missing though 3 studies are complete" in \
        check_dir(sweep_copy).text()
    # ... but not while the sweep is still running (it combines at the end of each worker)
    shutil.rmtree(sweep_copy / "studies" / "dropout")
    assert "combined_models.csv missing" not in check_dir(sweep_copy).text()


def _rename_studies(sweep_copy, renames):
    record = json.loads((sweep_copy / sweep.SPEC).read_text())
    for study in record["studies"]:
        if study["name"] in renames:
            new = renames[study["name"]]
            (sweep_copy / "studies" / study["name"]).rename(sweep_copy / "studies" / new)
            study["name"] = new
    (sweep_copy / sweep.SPEC).write_text(json.dumps(record))
    for name in (sweep.COMBINED_MODELS, sweep.COMBINED_SUMMARY, sweep.COMBINED_CONTRASTS):
        path = sweep_copy / name
        if path.exists():
            text = path.read_text()
            for old, new in renames.items():
                text = text.replace(old, new)
            path.write_text(text)


# Study names that pandas would parse as NaN ("None") or numbers ("1e-3").
ODD_NAMES = {PLAIN: "None", OTHER: "1e-3"}


def test_check_reads_study_names_as_written(sweep_copy):
    _rename_studies(sweep_copy, ODD_NAMES)
    assert check_dir(sweep_copy).ok, check_dir(sweep_copy).text()


def test_audit_sweep_reads_study_names_as_written(sweep_copy):
    from memjax.audit import audit_sweep

    _rename_studies(sweep_copy, ODD_NAMES)
    assert {"None", "1e-3"} <= set(audit_sweep(sweep_copy)["study"])  # before: folder "nan"


def test_check_on_odd_entries_says_what_they_are(sweep_copy, tmp_path, monkeypatch):
    import pathlib
    import time

    run = sweep_copy / "studies" / PLAIN
    # a hostile combined table: 200,000 duplicate column names (pandas is quadratic on them)
    (sweep_copy / "wide.csv").write_text("a," * 200_000 + "\n" + "1," * 200_000 + "\n")
    t0 = time.monotonic()
    text = check_dir(sweep_copy).text()
    assert time.monotonic() - t0 < 30 and "wide.csv: a header of over 10,000 columns" in text
    (sweep_copy / "wide.csv").unlink()
    # a study folder replaced by a file, another by a link to a copy outside the sweep
    other = sweep_copy / "studies" / OTHER
    shutil.move(other, tmp_path / "outside")
    other.symlink_to(tmp_path / "outside")
    dropout = sweep_copy / "studies" / "dropout"
    shutil.rmtree(dropout)
    dropout.write_text("x")
    text = check_dir(sweep_copy).text()
    assert f"studies/{OTHER}: a symbolic link" in text and "studies/dropout: not a directory" \
        in text and "not started" not in text
    # inside a run: a directory named like a listed file; a table under an .npz name
    (run / R.SUMMARY).unlink()
    (run / R.SUMMARY).mkdir()
    (run / R.ARRAYS).write_text("model,M2\n0,1.0\n")
    problems = check_dir(run).problems
    assert any("summary.csv: listed in MANIFEST.json but a directory stands there" in p
               for p in problems), problems
    assert any("not an .npz archive" in p for p in problems) and not any(
        "pickled" in p for p in problems), problems
    # an unreadable config.json or table (as for a file the user may not read): a problem
    real = pathlib.Path.read_bytes
    denied = {R.CONFIG}

    def read_bytes(self):
        if self.name in denied:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    assert any("config.json: unreadable (PermissionError" in p
               for p in check_dir(run).problems)
    denied = {sweep.SPEC}
    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    assert any("sweep.json: unreadable (PermissionError" in p
               for p in check_dir(sweep_copy).problems)
    import builtins

    real_open = builtins.open

    def denying_open(file, *args, **kwargs):
        if str(file).endswith(R.EPOCHS):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", denying_open)
    assert any("epochs.csv: unreadable table (PermissionError" in p
               for p in check_dir(run).problems)


def test_scores_no_valid_model_has_are_said(sweep_copy, capsys):
    from memjax import cli, report

    res = R.load(sweep_copy / "studies" / PLAIN)
    res.models["M_score"] = float("nan")  # as for outputs saturated at 0 or 1
    res.models["M6"] = float("inf")
    assert report.scores_without_values(res.models, ["M2", "M_score", "M6"]) == ["M_score", "M6"]
    assert "No valid model has a finite value of M_score, M6" in report.render(res)
    cli._print_summary(res)
    assert "no valid model has a finite value of M_score, M6" in capsys.readouterr().out
    res.models["valid"] = False  # every model diverged: said otherwise, not twice
    assert report.scores_without_values(res.models, ["M_score"]) == []


def test_a_reader_leaving_early_is_no_traceback():
    """`memjax presets | head -1`: the pipe closes before memjax writes (BrokenPipeError)."""
    proc = subprocess.Popen([*CLI, "presets"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the child has imported anything, so its write fails
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "Error" not in err, err
