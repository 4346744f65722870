"""memjax.tail: the M score split by the canary class's control probability."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from memjax import tail


def _arrays(rng, m=3, p=400, c=10):
    """Per-probe -log f(.)_{y*} of M models over P probes with log-probabilities spread from
    about 1e-12 to 1, and the labels."""
    log_ctrl = -rng.uniform(0, 28, size=(m, p))
    log_uf = np.minimum(log_ctrl + rng.normal(0.2, 0.5, size=(m, p)), 0.0)
    labels = rng.integers(0, c, size=p)
    return -log_uf, -log_ctrl, labels


def test_parts_add_up_to_the_m_score_and_the_probability_shift():
    rng = np.random.default_rng(0)
    kl_uf, kl_ctrl, labels = _arrays(rng)
    y_star = np.array([0, 3, 3])
    terms = tail.tail_terms(kl_uf, kl_ctrl, y_star, labels)
    assert list(terms["bin"].unique()) == ["[0, 1e-07)", "[1e-07, 0.0001)", "[0.0001, 0.01)",
                                           "[0.01, 1]"]
    for m, y in enumerate(y_star):
        own = labels == y
        lu, lr = -kl_uf[m, own], -kl_ctrl[m, own]
        mine = terms[terms["row"] == m]
        assert mine["M_score_part"].sum() == pytest.approx(np.mean(lu - lr), abs=1e-12)
        assert mine["prob_part"].sum() == pytest.approx(np.mean(np.exp(lu) - np.exp(lr)), abs=1e-15)
        assert mine["n_probes"].sum() == own.sum() and mine["share"].sum() == pytest.approx(1)
        # Each probe sits in the bin of its control probability.
        first = mine.iloc[0]
        assert first["n_probes"] == np.sum(np.exp(lr) < 1e-7)
        assert first["mean_log_ratio"] == pytest.approx(np.mean((lu - lr)[np.exp(lr) < 1e-7]))


def test_a_probability_of_one_is_in_the_last_bin_and_empty_bins_have_no_mean():
    kl = np.zeros((1, 4))  # f(.)_{y*} = 1 for every probe
    terms = tail.tail_terms(kl, kl, np.array([1]), np.array([1, 1, 2, 2]))
    last = terms.iloc[-1]
    assert last["n_probes"] == 2 and last["share"] == 1 and last["M_score_part"] == 0
    assert terms.iloc[:-1]["mean_log_ratio"].isna().all()


def test_bad_inputs_are_refused():
    kl = np.ones((2, 5))
    with pytest.raises(ValueError, match="expected"):
        tail.tail_terms(kl, kl[:, :4], np.array([0, 1]), np.zeros(5, int))
    with pytest.raises(ValueError, match="expected"):
        tail.tail_terms(kl, kl, np.array([0]), np.zeros(5, int))
    with pytest.raises(ValueError, match="edges"):
        tail.tail_terms(kl, kl, np.array([0, 1]), np.zeros(5, int), edges=(0, 0.5, 0.2, 1))
    with pytest.raises(ValueError, match="edges"):
        tail.tail_terms(kl, kl, np.array([0, 1]), np.zeros(5, int), edges=(0.1, 1))
    with pytest.raises(ValueError, match="clip=False"):
        tail.tail_terms(-kl, kl, np.array([0, 1]), np.zeros(5, int))  # negative "KL"


def test_diverged_models_and_models_without_probes_of_their_label_get_nan_parts():
    kl = np.ones((3, 5))
    kl[0, 2] = np.nan  # a diverged model's outputs
    terms = tail.tail_terms(kl, kl, np.array([0, 7, 0]), np.zeros(5, int))  # no probe of label 7
    by_row = terms.groupby("row")[["M_score_part", "prob_part", "share"]]
    assert by_row.apply(lambda g: g.isna().all().all()).tolist() == [True, True, False]
    assert terms[terms["row"] == 2]["share"].sum() == pytest.approx(1)


def test_paired_by_bin_finds_an_effect_planted_in_the_tail_only():
    rng = np.random.default_rng(1)
    n, p = 24, 300
    labels = np.zeros(p, int)
    log_ctrl = -rng.uniform(0, 28, size=(2 * n, p))
    log_uf = log_ctrl + rng.normal(0, 0.3, size=(2 * n, p))
    deep = np.exp(log_ctrl) < 1e-7
    log_uf[:n] += np.where(deep[:n], 1.0, 0.0)  # UF models: +1 nat where p < 1e-7 only
    log_uf = np.minimum(log_uf, 0)
    models = pd.DataFrame({"model": np.arange(2 * n), "condition": ["uf"] * n + ["baseline"] * n,
                           "init_seed": np.tile(np.arange(n), 2),
                           "order_seed": np.tile(np.arange(n), 2), "placement": 0,
                           "canary_index": 7, "lr_mult": 1.0, "valid": True})
    terms = tail.tail_terms(-log_uf, -log_ctrl, np.zeros(2 * n, int), labels)
    paired = tail.paired_by_bin(models, terms, n_boot=500).set_index(["bin", "value"])
    tail_row = paired.loc[("[0, 1e-07)", "M_score_part")]
    assert tail_row["n_pairs"] == n and tail_row["pair_diff_lo"] > 0.2
    assert tail_row["wilcoxon_p"] < 1e-4
    for name in ("[1e-07, 0.0001)", "[0.0001, 0.01)", "[0.01, 1]"):
        row = paired.loc[(name, "M_score_part")]
        assert row["pair_diff_lo"] < 0 < row["pair_diff_hi"] or abs(row["pair_diff"]) < 0.02
    assert set(paired["paired_method"]) == {"pairs clustered by seeds"}
    crossed = models.assign(init_seed=np.tile(np.arange(n) // 6, 2),
                            order_seed=np.tile(np.arange(n) % 6, 2))
    flagged = tail.paired_by_bin(crossed, terms, n_boot=50)
    assert flagged["paired_method"].str.startswith("crossed seeds").all()
    # An invalid (diverged) model takes its pair out.
    models.loc[0, "valid"] = False
    again = tail.paired_by_bin(models, terms, n_boot=200).set_index(["bin", "value"])
    assert again.loc[("[0, 1e-07)", "M_score_part"), "n_pairs"] == n - 1
    assert tail.paired_by_bin(models[models["condition"] == "uf"],
                              terms[terms["row"] < n]).empty
    # The figure: one series per study in each of the two panels.
    from memjax.sweep_plots import plot_tail

    fig = plot_tail({"a": paired.reset_index(), "b": again.reset_index()})
    assert len(fig.axes) == 2
    assert [len(ax.containers) for ax in fig.axes] == [2, 2]
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()][0] == "[0, 1e-07)"
    assert plot_tail({"none": pd.DataFrame()}) is None


def test_tail_study_rescores_a_finished_study_without_touching_it(tiny_sweep, tmp_path):
    study = tiny_sweep / "studies" / "learning_rate=0.0003"
    before = {f.name: f.read_bytes() for f in study.iterdir() if f.is_file()}
    out = tmp_path / "tail.csv"
    res = subprocess.run([sys.executable, "-m", "memjax.cli", "tail", str(study), "--out", str(out),
                          "--no-progress"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "M_score_part" in res.stdout and "prob_part" in res.stdout
    terms = pd.read_csv(out)
    models = pd.read_csv(study / "models.csv")
    parts = terms.groupby("model")["M_score_part"].sum()
    np.testing.assert_allclose(parts.reindex(models["model"]).to_numpy(),
                               models["M_score"].to_numpy(), atol=1e-4)
    assert set(terms["condition"]) == {"uf", "baseline"}
    after = {f.name: f.read_bytes() for f in study.iterdir() if f.is_file()}
    assert after == before  # read only


def test_tail_study_refuses_a_study_changed_after_it_finished(tiny_sweep, tmp_path):
    import shutil

    from memjax.results import ResultsError

    study = tmp_path / "study"
    shutil.copytree(tiny_sweep / "studies" / "learning_rate=0.0003", study)
    models = pd.read_csv(study / "models.csv")
    models.assign(valid=False).to_csv(study / "models.csv", index=False)
    with pytest.raises(ResultsError, match="will not analyse a damaged run: models.csv"):
        tail.tail_study(study, progress=False)


def test_tail_cli_names_a_directory_that_is_not_a_study(tmp_path):
    res = subprocess.run([sys.executable, "-m", "memjax.cli", "tail", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "memjax: error:" in res.stderr
    assert "Traceback" not in res.stderr


# Bad edges and mismatched tables are refused by name (docs/reliability.md).

def _small():
    """tail_terms of 4 models (2 twin pairs) over 6 probes, and their models table."""
    rng = np.random.default_rng(2)
    kl_ctrl = rng.uniform(0, 20, size=(4, 6))
    kl_uf = np.maximum(kl_ctrl - rng.uniform(0, 1, size=(4, 6)), 0)
    models = pd.DataFrame({"model": [10, 11, 12, 13],
                           "condition": ["uf", "uf", "baseline", "baseline"],
                           "init_seed": [0, 1, 0, 1], "order_seed": [0, 1, 0, 1],
                           "placement": 0, "valid": True})
    terms = tail.tail_terms(kl_uf, kl_ctrl, np.ones(4, int), np.array([1, 1, 2, 1, 0, 1]))
    return kl_uf, kl_ctrl, models, terms


@pytest.mark.parametrize("edges", [(0, float("nan"), 1), (0, 0.5, float("inf"), 1), 1, None,
                                   [[0, 1]], [[0.0], [0.5, 1.0]], (False, True), "01",
                                   ("0", "1"), (0,)],
                         ids=["nan", "inf", "scalar", "none", "2d", "ragged", "bools", "text",
                              "texts", "one-edge"])
def test_edges_must_be_a_1d_finite_increasing_sequence_from_0_to_1(edges):
    kl = np.ones((2, 5))
    with pytest.raises(ValueError, match="edges=.* must be a 1-D, finite, strictly increasing"):
        tail.tail_terms(kl, kl, np.array([0, 1]), np.zeros(5, int), edges=edges)


def test_the_default_edges_in_any_form_give_the_same_bins():
    kl_uf, kl_ctrl, _, terms = _small()
    for edges in (tail.EDGES, list(tail.EDGES), np.array(tail.EDGES)):
        again = tail.tail_terms(kl_uf, kl_ctrl, np.ones(4, int), np.array([1, 1, 2, 1, 0, 1]),
                                edges)
        pd.testing.assert_frame_equal(again, terms, check_exact=True)
    assert tail.tail_terms(kl_uf, kl_ctrl, np.ones(4, int), np.array([1, 1, 2, 1, 0, 1]),
                           np.array([0, 1]))["bin"].unique().tolist() == ["[0, 1]"]


def _with_ids(models, terms):
    """terms with the models' id columns, as `tail_study` returns them."""
    return models[["model", "condition"]].iloc[terms["row"]].reset_index(drop=True).join(terms)


@pytest.mark.parametrize("spoil, message", [
    (lambda m, t: (m.drop(columns="condition"), t), "models table has no column 'condition'"),
    (lambda m, t: (m, t.drop(columns="prob_part")), "terms has no column 'prob_part'"),
    (lambda m, t: (m, t.drop(columns="row")), "terms has no column 'row'"),
    (lambda m, t: (m, t.drop(columns=["share", "lo"])), "terms has no column 'lo', 'share'"),
    (lambda m, t: (m, t[t["row"] < 2]), "models table has 4 rows but terms cover 2 row"),
    (lambda m, t: (pd.concat([m, m.assign(model=m["model"] + 4, init_seed=m["init_seed"] + 2,
                                          order_seed=m["order_seed"] + 2)]), t),
     "models table has 8 rows but terms cover 4 row.*none for model rows 4, 5, 6, 7"),
    (lambda m, t: (m.iloc[:2], t), "terms rows 2, 3 are not rows of the models table"),
    (lambda m, t: (m.iloc[:0], t), "models table has 0 rows"),
    (lambda m, t: (m, t.iloc[:0]), "terms cover 0 row"),
    (lambda m, t: (m, pd.concat([t, t])), r"terms repeat a \(row, bin\)"),
    (lambda m, t: (m, t.assign(row=t["row"].astype(float))), "column 'row' has dtype float64"),
    (lambda m, t: (m.iloc[::-1], _with_ids(m, t)),
     "terms row 0 is model 10 but the models table's row 0 is model 13"),
], ids=["no-condition", "no-prob_part", "no-row", "no-share-lo", "terms-of-2-of-4",
        "8-models-4-terms", "2-models-4-terms", "no-models", "no-terms", "terms-twice",
        "float-rows", "models-reordered"])
def test_paired_by_bin_refuses_tables_that_do_not_match(spoil, message):
    _, _, models, terms = _small()
    models, terms = spoil(models, terms)
    with pytest.raises(ValueError, match=message):
        tail.paired_by_bin(models, terms, n_boot=20)


def test_paired_by_bin_takes_terms_with_ids_as_tail_study_makes_them():
    _, _, models, terms = _small()
    plain = tail.paired_by_bin(models, terms, n_boot=50)
    with_ids = tail.paired_by_bin(models, _with_ids(models, terms), n_boot=50)
    pd.testing.assert_frame_equal(plain, with_ids)
    assert set(plain["n_pairs"]) == {2}
    assert tail.paired_by_bin(models.iloc[:0], pd.DataFrame()).empty  # no model at all
