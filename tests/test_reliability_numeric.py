"""Threat: numeric faults. A model that diverges is flagged, frozen at its last finite weights,
marked invalid and left out of the statistics; the other models of its population are not
affected at all; a study in which every model diverges says so plainly.

One compile serves every run here: the runs differ only in `population.lr_multipliers`, which is
per-model data, not part of the compiled program.
"""
import contextlib
import io

import numpy as np
import pandas as pd
import pytest

from memjax import cli, plotting, results as R, study
from memjax.config import override
from memjax.presets import tiny

BASE = ['train.optimizer="sgd"', "train.learning_rate=0.05", "data.n_train=512",
        "data.n_val=256", "probes.n=100"]
DIVERGING = 2  # the model given a learning rate 10^7 times too large
SCORES = ["val_acc", "M2", "M3", "M_score", "M6", "M7", "M9", "M10", "M12", "M13", "PD_M", "PD_max"]


def _cfg(mults):
    return override(tiny(), BASE + [f"population.lr_multipliers={list(mults)}"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("numeric")
    out = {
        "one": study.run_study(_cfg([1, 1, 1e7, 1]), root / "one", progress=False),
        "none": study.run_study(_cfg([1, 1, 1, 1]), root / "none", progress=False),
    }
    # Every model diverges. plotting.figures is stubbed here because it crashes on a population
    # without valid models (see test_all_diverged_full_run_with_figures below).
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plotting, "figures", lambda *a, **k: None)
        out["all"] = study.run_study(_cfg([1e7] * 4), root / "all", progress=False)
    return out


def test_diverging_model_is_flagged_and_invalid(runs):
    df = runs["one"].models
    row = df.loc[df["model"] == DIVERGING].iloc[0]
    assert bool(row["diverged"]) and int(row["diverged_epoch"]) == 0 and not bool(row["valid"])
    others = df[df["model"] != DIVERGING]
    assert not others["diverged"].any() and others["valid"].all()
    assert (others["diverged_epoch"] == -1).all()


def test_diverged_model_keeps_its_last_finite_weights(runs):
    variables, summary = R.load_population(runs["one"].path / R.POPULATION)
    for leaf in jax_leaves(variables):
        assert np.isfinite(leaf).all()
    assert summary["diverged"].tolist() == [False, False, True, False]


def jax_leaves(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from jax_leaves(v)
    else:
        yield np.asarray(tree)


def test_other_models_are_unaffected(runs):
    a = runs["one"].models.set_index("model")
    b = runs["none"].models.set_index("model")
    keep = [m for m in a.index if m != DIVERGING]
    for col in SCORES:
        np.testing.assert_allclose(a.loc[keep, col].to_numpy(float), b.loc[keep, col].to_numpy(float),
                                   rtol=1e-6, atol=1e-9, err_msg=col)
    ea = runs["one"].epochs.set_index(["model", "epoch"])
    eb = runs["none"].epochs.set_index(["model", "epoch"])
    pd.testing.assert_frame_equal(ea.loc[keep], eb.loc[keep])


def test_statistics_leave_the_diverged_model_out(runs):
    s = runs["one"].summary.set_index("score")
    assert int(s.loc["M2", "n_uf"]) + int(s.loc["M2", "n_base"]) == 3
    assert int(runs["none"].summary.set_index("score").loc["M2", "n_base"]) == 2
    assert "1 diverged" in (runs["one"].path / R.REPORT).read_text()


def test_all_diverged_report_says_so(runs):
    res = runs["all"]
    assert res.models["diverged"].all() and not res.models["valid"].any()
    assert (res.summary["n_uf"] == 0).all() and (res.summary["n_base"] == 0).all()
    text = (res.path / R.REPORT).read_text()
    assert "Every model of this study diverged: no score is valid." in text


def _cli_summary(results) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        cli._print_summary(results)
    return buf.getvalue()


def test_all_diverged_cli_says_so(runs):
    assert "every model diverged" in _cli_summary(runs["all"]).lower()


def test_partly_diverged_cli_names_the_models(runs):
    out = _cli_summary(runs["one"])
    assert "1 of 4 models diverged" in out and "2" in out


def test_all_diverged_full_run_with_figures(tmp_path, runs):
    res = study.run_study(_cfg([1e7] * 4), tmp_path / "all", progress=False)
    assert not res.models["valid"].any()
