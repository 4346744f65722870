"""Bad or empty tables given to the figures (`memjax.plotting`, `memjax.sweep_plots`): a
missing column, an unknown score or a text column where numbers belong is a ValueError naming
it, raised before anything is drawn; an empty sweep table (what `sweep.combine` returns when no
study is complete) or an all-invalid one draws a figure that says so (docs/reliability.md).

Every table here is built by hand: nothing is trained."""
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from memjax import plotting as PL
from memjax import sweep_plots as SP
from memjax.results import ResultsError, RunResults

STUDIES = ("plain", "dropout")
SCORES = ("M_score", "PD_M")
E = pd.DataFrame()  # sweep.combine's table when no study is complete


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


# ---------------------------------------------------------------- sweep tables, by hand


def _models(n_seeds: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for study in STUDIES:
        for cond in ("uf", "baseline"):
            for s in range(n_seeds):
                rows.append({"study": study, "condition": cond, "model": len(rows),
                             "init_seed": s, "order_seed": s // 2, "placement": s % 2,
                             "canary_index": 7, "lr_mult": 1.0, "valid": True,
                             "M_score": rng.normal(0.1 if cond == "uf" else 0, 0.05),
                             "PD_M": rng.normal(0, 0.01), "dp_epsilon": 8.0})
    return pd.DataFrame(rows)


def _summary() -> pd.DataFrame:
    return pd.DataFrame([{"study": st, "score": sc, "frac_above": 0.5, "frac_above_lo": 0.2,
                          "frac_above_hi": 0.8, "pair_diff": 0.1, "pair_diff_lo": 0.05,
                          "pair_diff_hi": 0.15, "pair_frac_pos": 0.75, "wilcoxon_p": 0.03}
                         for st in STUDIES for sc in SCORES])


def _contrasts() -> pd.DataFrame:
    return pd.DataFrame([{"study": "dropout", "reference": "plain", "score": sc,
                          "contrast": -0.1, "contrast_lo": -0.2, "contrast_hi": -0.01,
                          "p": 0.02, "p_holm": 0.04} for sc in SCORES])


def _audit() -> pd.DataFrame:
    return pd.DataFrame([{"study": st, "score": sc, "auc": 0.6, "eps_lb": 0.1}
                         for st in STUDIES for sc in SCORES])


def test_the_hand_built_sweep_tables_draw():
    models, summary = _models(), _summary()
    fig = SP.plot_scores_by_study(models)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == list(STUDIES)
    assert len(SP.plot_memorised_fraction(summary).axes[0].patches) == len(STUDIES)
    assert len(SP.plot_paired_by_study(summary).axes) == 2
    assert SP.plot_contrasts(_contrasts()) is not None
    assert list(SP.variance_table(models)["study"]) == list(STUDIES)
    assert len(SP.plot_dp_tradeoff(models, _audit(), summary=summary).axes) == 3
    assert not any("no " in t for t in _texts(fig))


# ---------------------------------------------------------------- empty and all-invalid


@pytest.mark.parametrize("draw", [
    lambda p: SP.plot_scores_by_study(E, path=p),
    lambda p: SP.plot_memorised_fraction(E, path=p),
    lambda p: SP.plot_variance_components(E, path=p),
    lambda p: SP.plot_dp_tradeoff(E, E, path=p),
], ids=["scores_by_study", "memorised_fraction", "variance_components", "dp_tradeoff"])
def test_an_empty_sweep_table_draws_a_figure_that_says_no_complete_study(draw, tmp_path):
    fig = draw(tmp_path / "f.png")
    assert isinstance(fig, Figure) and _texts(fig) == [SP.NO_COMPLETE_STUDY]
    assert (tmp_path / "f.png").stat().st_size > 0


@pytest.mark.parametrize("draw", [
    lambda: SP.plot_paired_by_study(E),
    lambda: SP.plot_contrasts(E),
], ids=["paired_by_study", "contrasts"])
def test_an_empty_table_gives_none_where_none_means_nothing_to_draw(draw):
    assert draw() is None


def test_variance_table_of_an_empty_table_is_empty_with_its_columns():
    table = SP.variance_table(E)
    assert table.empty
    assert list(table.columns) == ["study", "n", "init_seed", "order_seed", "placement",
                                   "residual"]


@pytest.mark.parametrize("draw, spoil", [
    (SP.plot_scores_by_study, {"valid": False}),
    (SP.plot_scores_by_study, {"M_score": np.nan}),
    (SP.plot_variance_components, {"valid": False}),
    (SP.plot_variance_components, {"condition": "baseline"}),  # no UF model
], ids=["scores_by_study-invalid", "scores_by_study-nan", "variance_components-invalid",
        "variance_components-no-uf"])
def test_a_table_without_a_valid_model_draws_a_figure_that_says_so(draw, spoil):
    assert _texts(draw(_models().assign(**spoil))) == [PL.NO_VALID_MODEL]


# ---------------------------------------------------------------- unknown scores


@pytest.mark.parametrize("draw", [
    lambda: SP.plot_scores_by_study(_models(), "nope"),
    lambda: SP.plot_memorised_fraction(_summary(), "nope"),
    lambda: SP.plot_paired_by_study(_summary(), ("M_score", "nope")),
    lambda: SP.plot_contrasts(_contrasts(), "nope"),
    lambda: SP.variance_table(_models(), "nope"),
    lambda: SP.plot_variance_components(_models(), "nope"),
    lambda: SP.plot_dp_tradeoff(_models(), _audit(), "nope"),
], ids=["scores_by_study", "memorised_fraction", "paired_by_study", "contrasts",
        "variance_table", "variance_components", "dp_tradeoff"])
def test_an_unknown_score_is_refused_by_name(draw):
    with pytest.raises(ValueError, match="score 'nope'"):
        draw()


# ---------------------------------------------------------------- missing and text columns


@pytest.mark.parametrize("draw, table, column", [
    (lambda t: SP.plot_scores_by_study(t), _models, "study"),
    (lambda t: SP.plot_scores_by_study(t), _models, "condition"),
    (lambda t: SP.variance_table(t), _models, "study"),
    (lambda t: SP.variance_table(t), _models, "placement"),
    (lambda t: SP.plot_memorised_fraction(t), _summary, "frac_above_hi"),
    (lambda t: SP.plot_paired_by_study(t), _summary, "wilcoxon_p"),
    (lambda t: SP.plot_contrasts(t), _contrasts, "p_holm"),
    (lambda t: SP.plot_dp_tradeoff(_models(), t), _audit, "eps_lb"),
    (lambda t: SP.plot_dp_tradeoff(_models(), _audit(), summary=t), _summary, "pair_diff_hi"),
    (lambda t: SP.plot_dp_tradeoff(t, _audit()), _models, "study"),
], ids=["scores_by_study-study", "scores_by_study-condition", "variance_table-study",
        "variance_table-placement", "memorised_fraction", "paired_by_study", "contrasts",
        "dp_tradeoff-audit", "dp_tradeoff-summary", "dp_tradeoff-models"])
def test_a_missing_column_is_refused_by_name(draw, table, column):
    with pytest.raises(ValueError, match=f"no column '{column}'"):
        draw(table().drop(columns=column))


@pytest.mark.parametrize("draw, table, column", [
    (lambda t: SP.plot_paired_by_study(t), _summary, "pair_diff"),
    (lambda t: SP.plot_paired_by_study(t), _summary, "pair_diff_lo"),
    (lambda t: SP.plot_contrasts(t), _contrasts, "contrast"),
    (lambda t: SP.plot_memorised_fraction(t), _summary, "frac_above"),
    (lambda t: SP.plot_scores_by_study(t), _models, "M_score"),
    (lambda t: SP.plot_dp_tradeoff(_models(), t), _audit, "auc"),
], ids=["paired_by_study-pair_diff", "paired_by_study-pair_diff_lo", "contrasts",
        "memorised_fraction", "scores_by_study", "dp_tradeoff"])
def test_a_text_column_where_numbers_belong_is_refused_by_name(draw, table, column):
    with pytest.raises(ValueError, match=f"column '{column}' .* not numeric"):
        draw(table().assign(**{column: "x"}))


# ---------------------------------------------------------------- the scores argument


def test_paired_by_study_takes_one_score_as_a_string():
    fig = SP.plot_paired_by_study(_summary(), "M_score")
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "M_score: UF - twin"


@pytest.mark.parametrize("scores", [3, (), ["M_score", 3], None],
                         ids=["int", "empty", "not-a-name", "none"])
def test_paired_by_study_refuses_scores_that_are_not_names(scores):
    with pytest.raises(ValueError, match="scores="):
        SP.plot_paired_by_study(_summary(), scores)


# ---------------------------------------------------------------- one run's figures


def _run(tmp_path: Path) -> RunResults:
    rng = np.random.default_rng(1)
    models = pd.DataFrame({"model": range(8), "condition": ["uf"] * 4 + ["baseline"] * 4,
                           "init_seed": [0, 1, 2, 3] * 2, "order_seed": [0, 1, 2, 3] * 2,
                           "placement": 0, "canary_index": 7, "lr_mult": 1.0, "valid": True,
                           **{s: rng.normal(size=8) for s in ("M2", "M_score", "PD_M", "M6",
                                                             "M12")}})
    epochs = pd.DataFrame({"model": np.repeat(range(8), 2), "epoch": [0, 1] * 8,
                           "val_acc": rng.uniform(0.8, 0.9, 16)})
    arrays = {"example/canary_clean": rng.uniform(size=(6, 6, 1)).astype(np.float32),
              "example/canary_uf": rng.uniform(size=(6, 6, 1)).astype(np.float32),
              **{f"example/probe_{k}": rng.uniform(size=(3, 6, 6, 1)).astype(np.float32)
                 for k in ("clean", "uf", "ctrl")}}
    return RunResults(path=tmp_path, config={"config": {"name": "hand"}}, models=models,
                      summary=pd.DataFrame(), epochs=epochs, arrays=arrays)


def test_the_hand_built_run_draws_every_figure(tmp_path):
    made = PL.figures(_run(tmp_path), tmp_path / "figures")
    assert {p.name for p in made} == {"scores.png", "pairs.png", "roc.png", "examples.png",
                                      "training.png"}


@pytest.mark.parametrize("draw", [PL.plot_distributions, PL.plot_roc, PL.plot_pairs],
                         ids=["distributions", "roc", "pairs"])
@pytest.mark.parametrize("scores", [("nope",), ("M2", "nope")], ids=["only", "among"])
def test_an_unknown_score_of_a_run_is_refused_by_name(draw, scores, tmp_path):
    with pytest.raises(ValueError, match="score 'nope' is not a column"):
        draw(_run(tmp_path), scores=scores)


def test_distributions_take_one_score_as_a_string(tmp_path):
    fig = PL.plot_distributions(_run(tmp_path), scores="M2")
    assert [ax.get_title() for ax in fig.axes] == ["M2"]


@pytest.mark.parametrize("column", ["val_acc", "epoch", "model"])
def test_training_refuses_an_epochs_table_without_a_column_by_name(column, tmp_path):
    res = _run(tmp_path)
    res = dataclasses.replace(res, epochs=res.epochs.drop(columns=column))
    with pytest.raises(ValueError, match=f"epochs table has no column '{column}'"):
        PL.plot_training(res)


def test_training_without_epochs_says_so(tmp_path):
    fig = PL.plot_training(dataclasses.replace(_run(tmp_path), epochs=pd.DataFrame()))
    assert _texts(fig) == ["no epoch recorded"]


def _spoil(arrays: dict, key: str, value) -> dict:
    out = dict(arrays)
    if value is None:
        out.pop(key)
    else:
        out[key] = value
    return out


@pytest.mark.parametrize("key, value, message", [
    ("example/probe_clean", None, "no array 'example/probe_clean'"),
    ("example/canary_clean", None, "no array 'example/canary_clean'"),
    ("example/probe_clean", np.zeros((0, 6, 6, 1)), "'example/probe_clean' .* holds no image"),
    ("example/probe_ctrl", np.zeros(5), r"'example/probe_ctrl' has shape \(5,\)"),
    ("example/canary_uf", np.zeros(5), r"'example/canary_uf' has shape \(5,\)"),
    ("example/probe_uf", np.zeros((3, 6, 6, 2)), r"'example/probe_uf' has shape"),
    ("example/probe_uf", np.zeros((2, 6, 6, 1)), "different numbers of images"),
    ("example/canary_uf", np.full((6, 6, 1), "x"), "'example/canary_uf' has dtype"),
], ids=["no-probe_clean", "no-canary_clean", "zero-probes", "1d-probes", "1d-canary",
        "two-channels", "probe-count", "text"])
def test_examples_refuse_a_missing_or_malformed_array_by_name(key, value, message, tmp_path):
    res = _run(tmp_path)
    res = dataclasses.replace(res, arrays=_spoil(res.arrays, key, value))
    with pytest.raises(ValueError, match=message):
        PL.plot_examples(res)


def test_figures_refuse_a_file_as_the_output_folder(tmp_path):
    res = _run(tmp_path)
    a_file = tmp_path / "models.csv"
    a_file.write_text("not a folder")
    with pytest.raises(ResultsError, match="models.csv: exists and is not a folder"):
        PL.figures(res, a_file)
    with pytest.raises(ResultsError, match="cannot create the figures folder"):
        PL.figures(res, a_file / "figures")
    assert a_file.read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.csv"]
