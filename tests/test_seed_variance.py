"""Seed-variance decomposition of a crossed design: estimates, intervals, planning."""
import numpy as np
import pandas as pd
import pytest

from memjax import seed_variance as sv
from memjax.stats import variance_components


def _crossed(a, b, var_init, var_order, var_res, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, np.sqrt(var_init), (a, 1)) + rng.normal(0, np.sqrt(var_order), (1, b))
            + rng.normal(0, np.sqrt(var_res), (a, b)) + 0.5)


def test_decompose_recovers_known_components_and_covers_them():
    truth = {"init": 1.0, "order": 0.25, "residual": 0.09}
    y = _crossed(40, 40, *truth.values())
    out = sv.decompose(y, n_boot=500, seed=1)
    for name, var in truth.items():
        assert out[f"var_{name}"] == pytest.approx(var, rel=0.5), name
        assert out[f"share_{name}_lo"] <= out[f"share_{name}"] <= out[f"share_{name}_hi"], name
    assert sum(out[f"share_{n}"] for n in sv.COMPONENTS) == pytest.approx(1.0)
    assert out["share_init"] > out["share_order"] > out["share_residual"]
    assert out["p_init"] < 1e-10 and out["p_order"] < 1e-10
    assert out["sd_model"] == pytest.approx(np.sqrt(sum(out[f"var_{n}"] for n in sv.COMPONENTS)))
    assert (out["n_init"], out["n_order"]) == (40, 40)


@pytest.mark.parametrize("a, b", [(8, 8), (5, 12)])
def test_variance_intervals_keep_their_coverage_with_few_seeds(a, b):
    """The MLS / chi-square intervals cover the true components about 95% of the time with
    8 x 8 seeds (the shipped crossed study), by simulation under the model."""
    truth = (1.0, 0.25, 0.09)
    reps = 300
    cover = np.zeros(4)
    naive = 0
    for rep in range(reps):
        y = _crossed(a, b, *truth, seed=100 + rep)
        out = sv.decompose(y, n_boot=2)
        cover += [*(out[f"var_{n}_lo"] <= t <= out[f"var_{n}_hi"] for n, t in zip(sv.COMPONENTS, truth)),
                  out["mean_lo"] <= 0.5 <= out["mean_hi"]]  # the table's true mean
        half = 1.96 * y.std(ddof=1) / np.sqrt(y.size)  # as if the a x b models were independent
        naive += abs(y.mean() - 0.5) <= half
    assert np.all(cover / reps >= 0.90) and np.all(cover / reps <= 0.99), cover / reps
    assert naive / reps < 0.8  # shared seeds: the independent-models interval is far too narrow


def test_decompose_agrees_with_the_sums_of_squares_and_finds_no_effect_in_noise():
    y = _crossed(8, 8, 0.0, 0.0, 1.0, seed=3)
    out = sv.decompose(y, n_boot=200)
    init = np.repeat(np.arange(8), 8)
    order = np.tile(np.arange(8), 8)
    eta = variance_components(y.reshape(-1), {"init": init, "order": order})
    ss_total = ((y - y.mean()) ** 2).sum()
    ms_e = out["var_residual"]
    # MS_init = SS_init / 7 and E[MS_init] = var_res + 8 var_init: both routes give var_init.
    var_init = max((eta["init"] * ss_total / 7 - ms_e) / 8, 0.0)
    assert out["var_init"] == pytest.approx(var_init, abs=1e-12)
    assert eta["residual"] * ss_total / 49 == pytest.approx(ms_e)
    assert out["p_init"] > 0.01 and out["p_order"] > 0.01
    with pytest.raises(ValueError, match="A, B >= 2"):
        sv.decompose(y[:1])  # one init seed


def test_crossed_table_drops_the_seeds_of_missing_cells_and_refuses_ambiguous_cells():
    init = np.repeat(np.arange(4), 3)
    order = np.tile(np.arange(3), 4)
    values = np.arange(12.0)
    values[4] = np.nan  # init seed 1, order seed 1: a diverged model
    table, drop_init, drop_order = sv.crossed_table(values, init, order)
    assert (drop_init, drop_order) == (1, 0) and table.shape == (3, 3)
    np.testing.assert_array_equal(table[1], [6.0, 7.0, 8.0])
    # Cells (1, 1) and (3, 2) missing: 3 x 2 (drop init 1 and order 2) and 2 x 3 (drop init
    # 1 and 3) both keep 6 cells; the one with more init seeds wins.
    table, drop_init, drop_order = sv.crossed_table(values[:-1], init[:-1], order[:-1])
    assert (drop_init, drop_order) == (1, 1) and table.shape == (3, 2)
    assert np.isfinite(table).all()
    # One diverged model per init seed (the diagonal of 4 x 4): dropping whole init seeds
    # would leave nothing; the best complete table is 2 x 2.
    diag = np.arange(16.0)
    diag[[0, 5, 10, 15]] = np.nan
    table, drop_init, drop_order = sv.crossed_table(diag, np.repeat(np.arange(4), 4),
                                                    np.tile(np.arange(4), 4))
    assert (drop_init, drop_order) == (2, 2) and np.isfinite(table).all()
    with pytest.raises(ValueError, match="several models"):
        sv.crossed_table(np.r_[values, 1.0], np.r_[init, 0], np.r_[order, 0])
    with pytest.raises(ValueError, match="2 x 2"):
        sv.crossed_table(values[:3], init[:3], order[:3])


def test_largest_complete_is_exact_where_dropping_greedily_fails():
    mask = np.array([[1, 1, 0, 0, 1], [1, 0, 1, 1, 1], [0, 1, 0, 0, 0]], bool)
    rows, cols = sv.largest_complete(mask)
    assert rows.tolist() == [True, True, False] and cols.tolist() == [True, False, False, False, True]
    rng = np.random.default_rng(0)  # against brute force over rows and columns
    for _ in range(200):
        m = rng.random((rng.integers(2, 6), rng.integers(2, 6))) > 0.25
        rows, cols = sv.largest_complete(m)
        best = max((int(r.sum()) * int(m[r].all(axis=0).sum())
                    for bits in range(1, 1 << m.shape[0])
                    for r in [np.array([(bits >> i) & 1 for i in range(m.shape[0])], bool)]
                    if r.sum() >= 2 and m[r].all(axis=0).sum() >= 2), default=0)
        assert int(rows.sum()) * int(cols.sum()) == best
        assert m[np.ix_(rows, cols)].all()


def test_mls_interval_is_the_exact_chi_square_interval_without_a_subtracted_term():
    from scipy import stats as sps

    for nu in (3, 63, 7):
        lo, hi = sv._mls_interval(2.0, 0.0, nu, 49, 4.0, 0.05)
        assert lo == pytest.approx(nu * 2.0 / sps.chi2.ppf(0.975, nu) / 4.0)
        assert hi == pytest.approx(nu * 2.0 / sps.chi2.ppf(0.025, nu) / 4.0)
    # Subtracting a mean square moves the interval down (nu = 7 above), never below 0.
    lo2, hi2 = sv._mls_interval(2.0, 1.5, 7, 49, 4.0, 0.05)
    assert 0.0 <= lo2 < lo and hi2 < hi


def test_mean_interval_of_a_table_without_variance_has_no_p():
    out = sv.mean_interval(np.full((3, 4), 0.2))
    assert out["se"] == 0.0 and out["lo"] == out["hi"] == pytest.approx(0.2)
    assert sv.mean_interval(np.full((3, 4), 0.2) + np.eye(3, 4) * 1e-3)["p_greater"] < 1e-3
    assert np.isnan(out["p_greater"])


def test_seeds_needed_is_the_first_n_whose_t_interval_is_narrow_enough():
    from scipy import stats as sps

    half = lambda n, sd: sps.t.ppf(0.975, n - 1) * sd / np.sqrt(n)  # noqa: E731
    for sd, w in ((0.7, 0.05), (1.0, 0.2), (0.1, 0.5)):
        n = sv.seeds_needed(sd, w)
        assert half(n, sd) <= w and (n == 2 or half(n - 1, sd) > w)
    assert sv.seeds_needed(1.0, 0.2) > (1.96 / 0.2) ** 2  # t, not z: a few more
    assert sv.seeds_needed(1.0, 1e-6, max_n=1000) == 1001
    with pytest.raises(ValueError):
        sv.seeds_needed(1.0, 0.0)


def test_mean_se_of_crossed_and_independent_designs():
    assert sv.mean_se(1.0, 0.5, 0.5, 8) == pytest.approx(np.sqrt(2.0 / 8))
    assert sv.mean_se(1.0, 0.5, 0.5, 8, 4) == pytest.approx(np.sqrt(1 / 8 + 0.5 / 4 + 0.5 / 32))


def test_crossed_decomposition_of_a_models_table():
    rng = np.random.default_rng(0)
    y = _crossed(6, 5, 1.0, 0.1, 0.05, seed=4)
    rows = []
    for i in range(6):
        for j in range(5):
            for cond, shift in (("uf", 0.3 + 0.2 * rng.normal()), ("baseline", 0.0)):
                rows.append({"study": "crossed", "condition": cond, "init_seed": i,
                             "order_seed": j, "placement": 0, "M_score": y[i, j] + shift,
                             "valid": not (i == 2 and j == 3 and cond == "uf")})
    for s in range(4):  # a study that is not crossed is skipped
        rows.append({"study": "plain", "condition": "uf", "init_seed": s, "order_seed": s,
                     "placement": 0, "M_score": 0.0, "valid": True})
    table = sv.crossed_decomposition(pd.DataFrame(rows), ("M_score",), n_boot=100)
    assert list(table["of"]) == ["uf", "baseline", "uf-baseline"]
    assert set(table["study"]) == {"crossed"}
    by = table.set_index("of")
    assert by.loc["uf", "n_dropped_init"] == 1 and by.loc["uf", "n_init"] == 5
    assert by.loc["uf", "n_dropped_order"] == 0 and by.loc["uf", "n_order"] == 5
    assert by.loc["baseline", "n_dropped_init"] == 0 and by.loc["baseline", "n_init"] == 6
    # The twin shares both seeds: the difference has almost no init or order variance.
    assert by.loc["uf-baseline", "var_init"] < 0.1 * by.loc["baseline", "var_init"]


# --------------------------------------------------------------------------- bad input
# Each case is a ValueError naming the argument, before any work: no zero-width interval from
# a 1 x B table, no silent NaN, no raw TypeError / KeyError / ZeroDivisionError.

NAN = float("nan")
GOOD = _crossed(3, 3, 1.0, 0.5, 0.2, seed=7)


@pytest.mark.parametrize("fn", [sv.mean_interval, lambda t, **kw: sv.decompose(t, n_boot=10, **kw)])
@pytest.mark.parametrize("table, kw, match", [
    (np.array([[1, 2, 3, 4, 5.0]]), {}, "table.*A, B >= 2"),
    (np.array([[1.0], [2.0], [3.0]]), {}, "table.*A, B >= 2"),
    (np.array([[1, NAN], [2, 3.0]]), {}, "table.*non-finite"),
    (np.array([[1, np.inf], [2, 3.0]]), {}, "table.*non-finite"),
    (np.ones(4), {}, "table"),
    (np.ones((2, 2, 2)), {}, "table"),
    (np.array([["a", "b"], ["c", "d"]]), {}, "table"),
    (GOOD, {"alpha": 0}, "alpha"), (GOOD, {"alpha": 2}, "alpha"), (GOOD, {"alpha": NAN}, "alpha"),
    (GOOD, {"alpha": 1.5}, "alpha"),
])
def test_mean_interval_and_decompose_refuse_bad_tables_and_alpha(fn, table, kw, match):
    with pytest.raises(ValueError, match=match):
        fn(table, **kw)


@pytest.mark.parametrize("n_boot", [0, -1, 2.5, True, "100"])
def test_decompose_refuses_a_bad_n_boot(n_boot):
    with pytest.raises(ValueError, match="n_boot"):
        sv.decompose(GOOD, n_boot=n_boot)


@pytest.mark.parametrize("kw, match", [
    (dict(alpha=NAN), "alpha"), (dict(alpha=1.5), "alpha"), (dict(alpha=0.0), "alpha"),
    (dict(max_n=-5), "max_n"), (dict(max_n=1), "max_n"), (dict(max_n=2.5), "max_n"),
    (dict(sd=NAN), "sd"), (dict(sd="1"), "sd"), (dict(half_width=None), "half_width"),
])
def test_seeds_needed_refuses_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        sv.seeds_needed(**(dict(sd=1.0, half_width=0.1) | kw))


@pytest.mark.parametrize("args, match", [
    ((1.0, 1.0, 1.0, 0), "n_init"), ((1.0, 1.0, 1.0, 2.5), "n_init"),
    ((1.0, 1.0, 1.0, 4, 0), "n_order"), ((-5.0, 1.0, 1.0, 2), "var_init"),
    ((1.0, NAN, 1.0, 2), "var_order"), ((1.0, 1.0, np.inf, 2, 2), "var_residual"),
    ((1.0, 1.0, "1", 2), "var_residual"),
])
def test_mean_se_refuses_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        sv.mean_se(*args)


def _models_table() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame([{"condition": c, "init_seed": i, "order_seed": j, "placement": 0,
                          "valid": True, "M_score": rng.normal(), "PD_M": rng.normal()}
                         for i in range(3) for j in range(3) for c in ("uf", "baseline")])


@pytest.mark.parametrize("models, kw, match", [
    (pd.DataFrame(), {}, "column 'condition'"),
    (pd.DataFrame({"valid": [True]}), {}, "column 'condition'"),
    (_models_table(), {"scores": ("nope",)}, "column 'nope'"),
    (_models_table(), {"scores": "M_score"}, "scores"),
    (_models_table().assign(M_score="x"), {}, "'M_score'.*not numbers"),
    (_models_table(), {"n_boot": 0}, "n_boot"),
    (_models_table().to_dict("records"), {}, "models"),
])
def test_crossed_decomposition_names_the_missing_column_or_argument(models, kw, match):
    with pytest.raises(ValueError, match=match):
        sv.crossed_decomposition(models, **kw)


def test_crossed_decomposition_reads_a_numeric_text_column():
    # A CSV round trip may leave numbers as an object column: read as numbers, same result.
    models = _models_table()
    as_object = models.assign(M_score=models["M_score"].astype(object))
    pd.testing.assert_frame_equal(sv.crossed_decomposition(as_object, ("M_score",), n_boot=20),
                                  sv.crossed_decomposition(models, ("M_score",), n_boot=20))
