"""Tests of memjax.stats: statistics over a population of models."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from memjax import stats


def test_bootstrap_mean_ci_contains_mean_and_is_deterministic():
    x = np.random.default_rng(0).normal(3.0, 1.0, 200)
    mean, lo, hi = stats.bootstrap_mean_ci(x, seed=1)
    assert mean == pytest.approx(x.mean())
    assert lo < 3.0 < hi and lo < mean < hi
    assert hi - lo == pytest.approx(2 * 1.96 / np.sqrt(200), rel=0.25)  # ~ the normal-theory width
    assert stats.bootstrap_mean_ci(x, seed=1) == (mean, lo, hi)
    assert stats.bootstrap_mean_ci(x, seed=2) != (mean, lo, hi)


def test_bootstrap_mean_ci_coverage():
    rng = np.random.default_rng(1)
    covered = [
        lo < 0.0 < hi
        for lo, hi in (stats.bootstrap_mean_ci(rng.normal(size=40), n_boot=400, seed=s)[1:] for s in range(100))
    ]
    assert 0.85 <= np.mean(covered) <= 1.0


def test_bootstrap_edge_cases_and_nan():
    assert all(np.isnan(stats.bootstrap_mean_ci(np.array([np.nan]))))
    assert stats.bootstrap_mean_ci(np.array([2.0, np.nan])) == (2.0, 2.0, 2.0)
    rng = np.random.default_rng(2)
    a, b = rng.normal(1.0, 1.0, 150), rng.normal(0.0, 1.0, 100)
    diff, lo, hi = stats.bootstrap_diff_ci(np.r_[a, np.nan], b, seed=3)
    assert diff == pytest.approx(a.mean() - b.mean())
    assert lo < 1.0 < hi and lo > 0
    assert stats.bootstrap_diff_ci(a, b, seed=3) == (diff, lo, hi)
    assert all(np.isnan(stats.bootstrap_diff_ci(a, np.array([]))))


def test_clopper_pearson_known_values():
    assert stats.clopper_pearson(0, 10) == pytest.approx((0.0, 0.30850), abs=1e-5)
    assert stats.clopper_pearson(10, 10) == pytest.approx((0.69150, 1.0), abs=1e-5)
    assert stats.clopper_pearson(5, 10) == pytest.approx((0.18709, 0.81291), abs=1e-5)
    for k, n in [(3, 17), (40, 50), (1, 2)]:
        ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert stats.clopper_pearson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-10)
    assert all(np.isnan(stats.clopper_pearson(0, 0)))
    with pytest.raises(ValueError):
        stats.clopper_pearson(3, 2)


def test_roc_auc_cases():
    assert stats.roc_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert stats.roc_auc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert stats.roc_auc(np.ones(5), np.ones(7)) == 0.5
    # pos [1, 2, 3] vs neg [2, 0]: pairs won 1>0, 2>0, 3>2, 3>0 and the tie 2=2 counts 1/2
    assert stats.roc_auc(np.array([1.0, 2.0, 3.0]), np.array([2.0, 0.0])) == pytest.approx(4.5 / 6)
    rng = np.random.default_rng(4)
    pos, neg = rng.integers(0, 6, 30).astype(float), rng.integers(0, 5, 20).astype(float)  # ties
    u = sps.mannwhitneyu(pos, neg, alternative="greater").statistic
    assert stats.roc_auc(pos, neg) == pytest.approx(u / (30 * 20))
    assert np.isnan(stats.roc_auc(pos, np.array([])))


def test_roc_curve_endpoints_and_area():
    rng = np.random.default_rng(5)
    pos, neg = np.round(rng.normal(1, 1, 40), 1), np.round(rng.normal(0, 1, 30), 1)  # with ties
    fpr, tpr, thr = stats.roc_curve(pos, neg)
    assert (fpr[0], tpr[0], thr[0]) == (0.0, 0.0, np.inf)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0) and thr[-1] == min(pos.min(), neg.min())
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0) and np.all(np.diff(thr) < 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(stats.roc_auc(pos, neg))
    # at each threshold, the rates of "score >= threshold"
    j = len(thr) // 2
    assert tpr[j] == np.mean(pos >= thr[j]) and fpr[j] == np.mean(neg >= thr[j])


def test_compare_separated_groups_and_nan():
    rng = np.random.default_rng(6)
    uf = np.r_[rng.normal(5.0, 1.0, 30), np.nan]
    base = np.r_[rng.normal(0.0, 1.0, 40), np.nan, np.inf]
    res = stats.compare(uf, base, n_boot=500, seed=0)
    assert (res["n_uf"], res["n_base"], res["n_dropped"]) == (30, 40, 3)
    assert res["auc"] == 1.0 and res["frac_above"] == 1.0
    assert res["mw_p"] < 1e-10 and res["mw_U"] == 30 * 40
    assert res["frac_above_lo"] == pytest.approx(stats.clopper_pearson(30, 30)[0])
    assert res["diff_lo"] < res["diff"] < res["diff_hi"] and res["diff_lo"] > 3
    assert res["base_p95"] == pytest.approx(np.percentile(base[:40], 95))
    assert stats.compare(uf, base, n_boot=500, seed=0) == res


def _crossed(init_sd, order_sd, noise_sd, seed=0, n_init=10, n_order=10, reps=2):
    rng = np.random.default_rng(seed)
    init, order = np.meshgrid(np.arange(n_init), np.arange(n_order), indexing="ij")
    init, order = np.repeat(init.ravel(), reps), np.repeat(order.ravel(), reps)
    a, b = rng.normal(0, init_sd, n_init), rng.normal(0, order_sd, n_order)
    values = a[init] + b[order] + rng.normal(0, noise_sd, init.size)
    return values, {"init_seed": init, "order_seed": order, "canary": np.zeros_like(init)}


def test_variance_components_dominant_factor_and_noise():
    values, factors = _crossed(3.0, 0.3, 0.5)
    res = stats.variance_components(values, factors)
    assert res["init_seed"] > 0.8 and res["order_seed"] < 0.1
    assert res["canary"] == 0.0  # one level
    assert sum(res[k] for k in ("init_seed", "order_seed", "canary", "residual")) == pytest.approx(1.0)
    assert (res["n_obs"], res["n_levels_init_seed"], res["n_levels_canary"]) == (200, 10, 1)
    # balanced crossed design: the sequential shares do not depend on the order
    swapped = stats.variance_components(values, {k: factors[k] for k in ("order_seed", "init_seed")})
    assert swapped["init_seed"] == pytest.approx(res["init_seed"])
    # pure noise: each factor takes about (L - 1) / (N - 1) = 9 / 199
    noise = stats.variance_components(*_crossed(0.0, 0.0, 1.0, seed=1))
    assert noise["init_seed"] < 0.15 and noise["order_seed"] < 0.15 and noise["residual"] > 0.7
    ci = stats.variance_components_ci(values, factors, n_boot=50, seed=0)
    assert ci["init_seed"][0] < res["init_seed"] < ci["init_seed"][1] + 0.05
    assert ci["init_seed"][0] > 0.6


def test_variance_components_unbalanced_and_nan():
    values, factors = _crossed(2.0, 0.0, 0.5, seed=2)
    values[::7] = np.nan  # dropped: the design becomes unbalanced
    res = stats.variance_components(values, factors)
    assert res["n_obs"] == 200 - len(values[::7])
    assert sum(res[k] for k in ("init_seed", "order_seed", "canary", "residual")) == pytest.approx(1.0)
    assert res["init_seed"] > 0.7
    with pytest.raises(ValueError):
        stats.variance_components(values, {"init_seed": factors["init_seed"][:10]})


def test_summarise_small_table():
    table = pd.DataFrame({
        "condition": ["uf"] * 4 + ["baseline"] * 4,
        "valid": [True, True, True, False, True, True, True, True],
        "M2": [1.0, 2.0, 3.0, 100.0, 0.0, 0.5, -0.5, 0.1],
        "M3": [np.nan, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0],
    })
    out = stats.summarise(table, ["M2", "M3"], n_boot=200)
    assert list(out["score"]) == ["M2", "M3"]
    m2 = out.set_index("score").loc["M2"]
    assert (m2["n_uf"], m2["n_base"], m2["n_dropped"]) == (3, 4, 0)  # the invalid row is left out
    assert m2["mean_uf"] == pytest.approx(2.0) and m2["auc"] == 1.0
    m3 = out.set_index("score").loc["M3"]
    assert (m3["n_uf"], m3["n_dropped"]) == (2, 1)  # valid UF rows: NaN, 1, 2
    # no baseline rows: comparisons NaN, the UF mean is still there
    only_uf = stats.summarise(table[table.condition == "uf"], ["M2"], n_boot=200).iloc[0]
    assert only_uf["mean_uf"] == pytest.approx(2.0) and only_uf["n_base"] == 0
    assert np.isnan(only_uf["diff"]) and np.isnan(only_uf["auc"]) and np.isnan(only_uf["mw_p"])
    with pytest.raises(ValueError, match="M9"):
        stats.summarise(table, ["M9"])


def test_paired_compare_against_scipy_and_by_hand():
    from memjax.stats import paired_compare

    rng = np.random.default_rng(3)
    shared = rng.normal(0, 1, 40)  # the twins' common seed effect, much larger than the UF effect
    base = shared + rng.normal(0, 0.1, 40)
    uf = shared + 0.08 + rng.normal(0, 0.1, 40)
    uf[5] = np.nan  # a pair with a non-finite score is dropped
    out = paired_compare(uf, base, n_boot=2000, seed=0)
    d = (uf - base)[np.isfinite(uf)]
    assert out["n_pairs"] == 39
    assert out["pair_diff"] == pytest.approx(d.mean())
    assert out["pair_diff_lo"] < d.mean() < out["pair_diff_hi"]
    assert out["pair_frac_pos"] == pytest.approx(np.mean(d > 0))
    assert out["wilcoxon_p"] == pytest.approx(sps.wilcoxon(d, alternative="greater").pvalue)
    assert out["wilcoxon_p"] < 0.01  # the pairing finds the effect ...
    unpaired = stats.compare(uf, base)
    assert unpaired["mw_p"] > 0.2  # ... that the group comparison cannot see
    with pytest.raises(ValueError):
        paired_compare(np.zeros(3), np.zeros(4))
    empty = paired_compare(np.zeros(0), np.zeros(0))
    assert empty["n_pairs"] == 0 and np.isnan(empty["pair_diff"]) and np.isnan(empty["wilcoxon_p"])


def test_twin_pairs_match_on_keys_whatever_the_row_order():
    from memjax.stats import summarise, twin_pairs

    rng = np.random.default_rng(0)
    n = 12
    rows = []
    for seed in range(n):
        common = rng.normal()
        for cond, shift in (("uf", 0.5), ("baseline", 0.0)):
            rows.append({"condition": cond, "init_seed": seed, "order_seed": 100 + seed,
                         "placement": 0, "canary_index": 7, "lr_mult": 1.0,
                         "S": common + shift, "valid": True})
    table = pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)
    pairs = twin_pairs(table)
    assert pairs is not None and len(pairs[0]) == n
    np.testing.assert_array_equal(table.init_seed.to_numpy()[pairs[0]],
                                  table.init_seed.to_numpy()[pairs[1]])
    row = summarise(table, ["S"]).iloc[0]
    assert row["n_pairs"] == n and row["pair_diff"] == pytest.approx(0.5)
    assert row["pair_frac_pos"] == 1.0
    # A key repeated within a condition makes the pairing ambiguous: no paired statistics.
    dup = table.assign(init_seed=0, order_seed=0)
    assert twin_pairs(dup) is None
    assert np.isnan(summarise(dup, ["S"]).iloc[0]["pair_diff"])
    assert twin_pairs(table.drop(columns=["order_seed"])) is None


def test_paired_compare_counts_each_seed_once_when_placements_share_it():
    """Placements of one seed share the baseline network: 8 seeds x 8 placements are 8
    independent units, not 64 (cluster bootstrap, Wilcoxon over the seeds' means)."""
    from memjax.stats import paired_compare

    rng = np.random.default_rng(5)
    seeds, placements = 8, 8
    seed_effect = rng.normal(0.1, 0.3, seeds)  # shared by the placements of a seed
    d = np.repeat(seed_effect, placements) + rng.normal(0, 0.01, seeds * placements)
    base = rng.normal(0, 1, seeds * placements)
    uf = base + d
    clusters = np.repeat(np.arange(seeds), placements)
    naive = paired_compare(uf, base, n_boot=2000, seed=0)
    out = paired_compare(uf, base, clusters=clusters, n_boot=2000, seed=0)
    assert naive["n_clusters"] == 64 and out["n_clusters"] == seeds and out["n_pairs"] == 64
    assert out["pair_diff"] == pytest.approx(d.mean())
    means = d.reshape(seeds, placements).mean(axis=1)
    assert out["wilcoxon_p"] == pytest.approx(sps.wilcoxon(means, alternative="greater").pvalue)
    assert out["wilcoxon_p"] >= 1 / 2**seeds  # the smallest p 8 units allow
    assert naive["wilcoxon_p"] < out["wilcoxon_p"]  # 64 "independent" pairs overstate
    width = lambda r: r["pair_diff_hi"] - r["pair_diff_lo"]  # noqa: E731
    assert width(out) > 1.5 * width(naive)
    # One pair per cluster: the same as no clusters.
    single = paired_compare(uf, base, clusters=np.arange(64), n_boot=2000, seed=0)
    assert single == naive
    with pytest.raises(ValueError, match="cluster"):
        paired_compare(uf, base, clusters=np.arange(3))


def test_summarise_clusters_the_pairs_of_a_seed_across_placements():
    rng = np.random.default_rng(1)
    rows = []
    for seed in range(6):
        base_score = rng.normal()
        for placement in range(4):
            for cond, s in (("uf", base_score + rng.normal(0.2, 0.1)), ("baseline", base_score)):
                rows.append({"condition": cond, "init_seed": seed, "order_seed": seed,
                             "placement": placement, "canary_index": 10 + placement,
                             "lr_mult": 1.0, "S": s, "valid": True})
    row = stats.summarise(pd.DataFrame(rows), ["S"]).iloc[0]
    assert row["n_pairs"] == 24 and row["n_clusters"] == 6
    assert row["paired_method"] == "seed clusters"
    assert row["wilcoxon_p"] >= 1 / 2**6
    one_order = pd.DataFrame(rows).assign(order_seed=0)  # seed_mode "init" with placements
    assert stats.summarise(one_order, ["S"]).iloc[0]["paired_method"] == "seed clusters (one order seed)"


def test_compare_counts_each_seed_once_when_placements_share_the_baseline():
    """Unpaired statistics of a placements design: the 8 baseline rows of one seed are one
    network, so the Mann-Whitney test runs over the seeds' means and the intervals resample
    seeds; without repeated seeds the result is the plain one."""
    from memjax.stats import compare

    rng = np.random.default_rng(7)
    seeds, placements = 8, 8
    base_net = rng.normal(0, 1, seeds)  # one baseline network per seed
    base = np.repeat(base_net, placements) + rng.normal(0, 0.05, seeds * placements)
    uf = np.repeat(base_net + 0.4, placements) + rng.normal(0, 0.3, seeds * placements)
    clusters = np.repeat(np.arange(seeds), placements)
    naive = compare(uf, base, n_boot=2000, seed=0)
    out = compare(uf, base, clusters_uf=clusters, clusters_base=clusters, n_boot=2000, seed=0)
    for key in ("n_uf", "n_base", "mean_uf", "mean_base", "diff", "auc", "base_p95", "frac_above"):
        assert out[key] == naive[key]
    uf_means = uf.reshape(seeds, placements).mean(axis=1)
    base_means = base.reshape(seeds, placements).mean(axis=1)
    assert out["mw_p"] == pytest.approx(
        sps.mannwhitneyu(uf_means, base_means, alternative="greater").pvalue)
    assert naive["mw_p"] < out["mw_p"]  # 64 + 64 "independent" rows overstate
    width = lambda r, k: r[f"{k}_hi"] - r[f"{k}_lo"]  # noqa: E731
    for key in ("diff", "mean_base", "frac_above"):
        assert width(out, key) > 1.5 * width(naive, key), key
    # One row per seed and condition, or non-finite rows: the same as the plain statistics.
    single = compare(uf[:8], base[:8], clusters_uf=np.arange(8), clusters_base=np.arange(8),
                     n_boot=500, seed=3)
    assert single == compare(uf[:8], base[:8], n_boot=500, seed=3)
    holed = uf.copy()
    holed[0] = np.nan
    assert compare(holed, base, clusters_uf=clusters, clusters_base=clusters)["n_dropped"] == 1
    with pytest.raises(ValueError, match="both conditions"):
        compare(uf, base, clusters_uf=clusters)
    with pytest.raises(ValueError, match="cluster labels"):
        compare(uf, base, clusters_uf=clusters[:3], clusters_base=clusters)


def test_summarise_unpaired_columns_cluster_shared_baselines():
    rng = np.random.default_rng(2)
    rows = []
    for seed in range(6):
        net = rng.normal()
        for placement in range(4):
            for cond, s in (("uf", net + rng.normal(0.3, 0.2)), ("baseline", net)):
                rows.append({"condition": cond, "init_seed": seed, "order_seed": seed,
                             "placement": placement, "canary_index": 10 + placement,
                             "lr_mult": 1.0, "S": s, "valid": True})
    table = pd.DataFrame(rows)
    row = stats.summarise(table, ["S"]).iloc[0]
    means = table.groupby(["condition", "init_seed"])["S"].mean()
    assert row["mw_p"] == pytest.approx(sps.mannwhitneyu(
        means["uf"], means["baseline"], alternative="greater").pvalue)
    plain = stats.compare(table.S[table.condition == "uf"], table.S[table.condition == "baseline"])
    assert row["mw_p"] > plain["mw_p"]


def test_summarise_treats_a_crossed_design_with_the_random_effects_interval():
    """8 init x 8 order seeds: pairs sharing an init seed share its effect on the difference,
    so the 64 pairs are not independent; summarise uses the crossed design's t interval."""
    from memjax.seed_variance import crossed_table, mean_interval

    rng = np.random.default_rng(4)
    init_effect = rng.normal(0.2, 0.3, 8)
    rows = []
    for i in range(8):
        for j in range(8):
            base = rng.normal()
            d = init_effect[i] + rng.normal(0, 0.05)
            for cond, s in (("uf", base + d), ("baseline", base)):
                rows.append({"condition": cond, "init_seed": i, "order_seed": 100 + j,
                             "placement": 0, "canary_index": 5, "lr_mult": 1.0, "S": s,
                             "valid": True})
    table = pd.DataFrame(rows)
    row = stats.summarise(table, ["S"]).iloc[0]
    assert row["paired_method"] == "crossed random effects"
    uf = table[table.condition == "uf"]
    base = table[table.condition == "baseline"]
    d = uf["S"].to_numpy() - base["S"].to_numpy()
    m = mean_interval(crossed_table(d, uf["init_seed"], uf["order_seed"])[0])
    assert (row["pair_diff"], row["pair_diff_lo"], row["pair_diff_hi"], row["wilcoxon_p"]) == \
        pytest.approx((m["mean"], m["lo"], m["hi"], m["p_greater"]))
    assert row["n_pairs"] == 64 and row["n_clusters"] == round(m["df"] + 1) < 64
    # The unpaired columns: each condition's random-effects interval, a Welch t for the diff.
    m_uf = mean_interval(crossed_table(uf["S"], uf["init_seed"], uf["order_seed"])[0])
    m_base = mean_interval(crossed_table(base["S"], base["init_seed"], base["order_seed"])[0])
    assert (row["mean_uf_lo"], row["mean_uf_hi"]) == pytest.approx((m_uf["lo"], m_uf["hi"]))
    assert (row["mean_base_lo"], row["mean_base_hi"]) == pytest.approx((m_base["lo"], m_base["hi"]))
    se = np.hypot(m_uf["se"], m_base["se"])
    df = se ** 4 / (m_uf["se"] ** 4 / m_uf["df"] + m_base["se"] ** 4 / m_base["df"])
    assert row["diff"] == pytest.approx(m_uf["mean"] - m_base["mean"])
    assert row["mw_p"] == pytest.approx(sps.t.sf(row["diff"] / se, df))
    assert np.isnan(row["mw_U"])
    plain = stats.compare(uf["S"].to_numpy(), base["S"].to_numpy())
    assert row["diff_hi"] - row["diff_lo"] > plain["diff_hi"] - plain["diff_lo"]
    naive = stats.paired_compare(uf["S"].to_numpy(), base["S"].to_numpy())
    assert row["pair_diff_hi"] - row["pair_diff_lo"] > 2 * (naive["pair_diff_hi"] - naive["pair_diff_lo"])
    assert row["wilcoxon_p"] > naive["wilcoxon_p"]
    # Independent pairs and placements keep their methods.
    diagonal = table[table.init_seed + 100 == table.order_seed]  # seed s: init s, order s
    assert stats.crossed_seeds(diagonal[diagonal.condition == "uf"]) is None
    assert stats.summarise(diagonal, ["S"]).iloc[0]["paired_method"] == "pairs"
    # One shared seed (seed_mode "init" / "order"): independent given it, and labelled so.
    assert (stats.summarise(table[table.order_seed == 100], ["S"]).iloc[0]["paired_method"]
            == "pairs (one order seed)")
    assert (stats.summarise(table[table.init_seed == 0], ["S"]).iloc[0]["paired_method"]
            == "pairs (one init seed)")


def test_summarise_never_treats_an_incomplete_crossed_design_as_independent_pairs():
    rng = np.random.default_rng(9)
    rows = []
    for i in range(4):
        for j in range(4):
            base = rng.normal()
            for cond, sc in (("uf", base + 0.5 + 0.3 * i), ("baseline", base)):
                rows.append({"condition": cond, "init_seed": i, "order_seed": 10 + j,
                             "placement": 0, "canary_index": 5, "lr_mult": 1.0, "S": sc,
                             "valid": not (cond == "uf" and i == j)})  # one diverged per seed
    table = pd.DataFrame(rows)
    row = stats.summarise(table, ["S"]).iloc[0]
    assert row["paired_method"] == "crossed random effects"
    assert row["n_pairs"] < 12  # a complete sub-table of the 12 valid pairs
    # Only a diagonal left: no complete 2 x 2 table, so no interval and no p at all.
    diag = table[(table.init_seed + 10 == table.order_seed) | (table.init_seed + 11 == table.order_seed)]
    row = stats.summarise(diag.assign(valid=True), ["S"]).iloc[0]
    assert row["paired_method"] == "crossed (incomplete)"
    assert np.isnan(row["pair_diff_lo"]) and np.isnan(row["wilcoxon_p"])


def test_compare_gives_no_interval_from_a_single_cluster():
    from memjax.stats import compare

    uf, base = np.arange(8.0) + 1, np.zeros(8) + np.arange(8) * 0.1
    one = np.zeros(8)
    out = compare(uf, base, clusters_uf=one, clusters_base=one, n_boot=200)
    assert np.isnan(out["mean_uf_lo"]) and np.isnan(out["diff_lo"])
    assert out["mean_uf"] == pytest.approx(uf.mean())
    paired = stats.paired_compare(uf, base, clusters=one, n_boot=200)
    assert paired["n_clusters"] == 1 and np.isnan(paired["pair_diff_lo"])


def test_crossed_unpaired_columns_use_common_seeds_and_each_conditions_own_table():
    from memjax.seed_variance import mean_interval

    rng = np.random.default_rng(11)
    init_effect = rng.normal(0, 1.0, 4)
    rows = []
    for i in range(4):
        for j in range(3):
            for cond, shift in (("uf", 0.3), ("baseline", 0.0)):
                rows.append({"condition": cond, "init_seed": i, "order_seed": 10 + j,
                             "placement": 0, "canary_index": 5, "lr_mult": 1.0,
                             "S": init_effect[i] + shift + rng.normal(0, 0.1), "valid": True})
    table = pd.DataFrame(rows)
    # A UF-only crossed study: the UF interval is the random-effects one, not a bootstrap
    # over 12 "independent" models.
    uf_only = table[table.condition == "uf"]
    row = stats.summarise(uf_only, ["S"]).iloc[0]
    m = mean_interval(uf_only.pivot(index="init_seed", columns="order_seed", values="S").to_numpy())
    assert (row["mean_uf_lo"], row["mean_uf_hi"]) == pytest.approx((m["lo"], m["hi"]))
    # Init seed 0 diverged for the UF models only: the difference is over init seeds 1-3,
    # which both conditions keep, so it stays near the true 0.3.
    holed = table.copy()
    holed.loc[(holed.condition == "uf") & (holed.init_seed == 0), "valid"] = False
    row = stats.summarise(holed, ["S"]).iloc[0]
    assert row["diff"] == pytest.approx(0.3, abs=0.15)
    assert row["diff_lo"] < row["diff"] < row["diff_hi"] and np.isnan(row["mw_U"])
    # UF crossed, baselines one order seed (independent models): Welch over the UF's
    # random-effects standard error and the baselines' plain one.
    one_order = table[(table.condition == "uf") | (table.order_seed == 10)]
    row = stats.summarise(one_order, ["S"]).iloc[0]
    b = one_order[one_order.condition == "baseline"]["S"].to_numpy()
    se = np.hypot(m["se"], b.std(ddof=1) / 2)
    df = se ** 4 / (m["se"] ** 4 / m["df"] + (b.std(ddof=1) / 2) ** 4 / 3)
    assert row["diff"] == pytest.approx(m["mean"] - b.mean())
    assert row["mw_p"] == pytest.approx(sps.t.sf(row["diff"] / se, df))
    # UF models crossed but with no complete 2 x 2 table (the diagonal of 3 x 3 diverged).
    small = table[table.init_seed.isin([0, 1, 2])].copy()
    small.loc[(small.condition == "uf") & (small.init_seed + 10 == small.order_seed), "valid"] = False
    row = stats.summarise(small, ["S"]).iloc[0]
    assert np.isnan(row["mean_uf_lo"]) and np.isnan(row["diff_lo"]) and np.isnan(row["mw_p"])


def _two_study_table(shift: float, seeds_b=range(20), placements=1, seed=0):
    """Studies "plain" and "reg" of one sweep: seed s has a seed effect shared by both studies'
    UF - twin differences; "reg" lowers the effect by `shift`."""
    rng = np.random.default_rng(seed)
    seed_effect = rng.normal(0.5, 0.4, 40)
    rows = []
    for study, seeds, delta in (("plain", range(20), 0.0), ("reg", seeds_b, -shift)):
        for s in seeds:
            for pl in range(placements):
                base = rng.normal()
                d = seed_effect[s] + delta + rng.normal(0, 0.1)
                for cond, v in (("uf", base + d), ("baseline", base)):
                    rows.append({"study": study, "condition": cond, "init_seed": s,
                                 "order_seed": s, "placement": pl, "canary_index": 7 + pl,
                                 "lr_mult": 1.0, "S": v, "valid": True})
    return pd.DataFrame(rows)


def test_contrast_studies_pairs_the_studies_by_seed():
    table = _two_study_table(0.3)
    row = stats.contrast_studies(table, ["S"]).iloc[0]
    assert (row["study"], row["reference"], row["method"], row["n_units"]) == (
        "reg", "plain", "matched seeds", 20)
    eff = {}
    for name, g in table.groupby("study"):
        u, b = g[g.condition == "uf"], g[g.condition == "baseline"]
        eff[name] = u["S"].to_numpy() - b["S"].to_numpy()
    d = eff["reg"] - eff["plain"]
    assert row["contrast"] == pytest.approx(d.mean())
    assert (row["effect"], row["effect_ref"]) == pytest.approx((eff["reg"].mean(), eff["plain"].mean()))
    assert row["p"] == pytest.approx(sps.wilcoxon(d).pvalue)
    assert row["contrast_lo"] < -0.3 < row["contrast_hi"] < 0
    # Matching removes the seed effect: far narrower than comparing the studies as groups.
    _, lo, hi = stats.bootstrap_diff_ci(eff["reg"], eff["plain"])
    assert row["contrast_hi"] - row["contrast_lo"] < 0.5 * (hi - lo)
    # No change: the interval covers 0.
    null = stats.contrast_studies(_two_study_table(0.0, seed=3), ["S"]).iloc[0]
    assert null["contrast_lo"] < 0 < null["contrast_hi"] and null["p"] > 0.05


def test_contrast_studies_averages_placements_and_falls_back_to_independent_seeds():
    placed = stats.contrast_studies(_two_study_table(0.3, placements=3), ["S"]).iloc[0]
    assert (placed["method"], placed["n_units"]) == ("matched seeds", 20)  # seeds, not pairs
    apart = stats.contrast_studies(_two_study_table(0.3, seeds_b=range(20, 40)), ["S"]).iloc[0]
    assert (apart["method"], apart["n_units"]) == ("independent seeds", 40)
    t = _two_study_table(0.3, seeds_b=range(20, 40))
    e = {n: g[g.condition == "uf"]["S"].to_numpy() - g[g.condition == "baseline"]["S"].to_numpy()
         for n, g in t.groupby("study")}
    assert apart["p"] == pytest.approx(sps.mannwhitneyu(e["reg"], e["plain"]).pvalue)
    one = stats.contrast_studies(_two_study_table(0.3, seeds_b=[25]), ["S"]).iloc[0]
    assert np.isnan(one["contrast_lo"]) and one["method"].startswith("fewer than 2")


def test_contrast_studies_refuses_crossed_designs_and_unknown_references():
    table = _two_study_table(0.3)
    crossed = table[table.study == "reg"].copy()
    crossed["study"] = "crossed"
    crossed["order_seed"] = 100 + crossed["init_seed"] % 2   # every init with 2 orders ...
    crossed["init_seed"] = crossed["init_seed"] // 2         # ... so pairs share seeds
    rows = stats.contrast_studies(pd.concat([table, crossed]), ["S"])
    assert rows.set_index("study").loc["crossed", "method"].startswith("crossed seeds")
    assert np.isnan(rows.set_index("study").loc["crossed", "contrast"])
    with pytest.raises(ValueError, match="reference"):
        stats.contrast_studies(table, ["S"], reference="nope")
    with pytest.raises(ValueError, match="columns"):
        stats.contrast_studies(table, ["nope"])
    with pytest.raises(ValueError, match="columns"):
        stats.contrast_studies(table.drop(columns="condition"), ["S"])


def test_contrast_studies_edge_cases_give_honest_rows():
    # Partial overlap: matched over the 10 shared seed pairs, and effect - effect_ref adds up.
    part = stats.contrast_studies(_two_study_table(0.3, seeds_b=range(10, 30)), ["S"]).iloc[0]
    assert (part["method"], part["n_units"]) == ("matched seeds", 10)
    assert part["contrast"] == pytest.approx(part["effect"] - part["effect_ref"])
    # Too few shared (< MIN_MATCHED): independent samples, the shared seed left out of the
    # reference so that the two samples are independent.
    few = _two_study_table(0.3, seeds_b=range(17, 37))
    row = stats.contrast_studies(few, ["S"]).iloc[0]
    assert (row["method"], row["n_units"]) == ("independent seeds", 20 + 17)
    # Seeds stored as text in one study still match the other's integers.
    text = _two_study_table(0.3)
    text["init_seed"] = text["init_seed"].astype(object)
    text.loc[text.study == "reg", "init_seed"] = text.loc[text.study == "reg", "init_seed"].astype(str)
    assert stats.contrast_studies(text, ["S"]).iloc[0]["method"] == "matched seeds"
    # A reference with no valid model: NaN rows that say so, no exception (a sweep combine).
    table = _two_study_table(0.3)
    table.loc[table.study == "plain", "valid"] = False
    row = stats.contrast_studies(table, ["S"]).iloc[0]
    assert np.isnan(row["contrast"]) and row["method"] == "reference: no valid models: not contrasted"
    # Several lr multipliers per seed are two settings, not one unit.
    lr = _two_study_table(0.3, placements=2)
    lr["lr_mult"] = np.where(lr["placement"] == 0, 1.0, 2.0)
    lr["canary_index"] = 7
    assert stats.contrast_studies(lr, ["S"]).iloc[0]["method"].startswith("several lr multipliers")
    # Identical studies: contrast 0 with no (zero-width) interval.
    same = _two_study_table(0.3)
    clone = same[same.study == "plain"].assign(study="clone")
    row = stats.contrast_studies(pd.concat([same, clone]), ["S"]).set_index("study").loc["clone"]
    assert row["contrast"] == 0 and np.isnan(row["contrast_lo"]) and np.isnan(row["p"])


def test_contrast_studies_holm_adjusts_within_a_score():
    rng = np.random.default_rng(5)
    parts = [_two_study_table(0.0, seed=1)]
    for k, shift in enumerate((0.3, 0.05, 0.0)):
        t = _two_study_table(shift, seed=1)
        t = t[t.study == "reg"].assign(study=f"reg{k}")
        t["S"] += np.where(t.condition == "uf", rng.normal(0, 0.1, len(t)), 0)
        parts.append(t)
    rows = stats.contrast_studies(pd.concat(parts), ["S", "S"])
    first = rows.iloc[:4]  # "reg" (the same as plain here) and reg0-reg2 on the first "S"
    p = first["p"].to_numpy()
    order = np.argsort(p)
    holm = np.maximum.accumulate(np.minimum(1, (len(p) - np.arange(len(p))) * p[order]))
    np.testing.assert_allclose(first["p_holm"].to_numpy()[order], holm)
    assert (rows["p_holm"] >= rows["p"]).all()
    np.testing.assert_allclose(rows.iloc[4:]["p_holm"], first["p_holm"])  # per score family


def test_valid_mask_reads_booleans_and_refuses_anything_else():
    table = pd.DataFrame({"valid": [True, False, True]})
    np.testing.assert_array_equal(stats.valid_mask(table), [True, False, True])
    for col in ([1, 0, 1], [1.0, 0.0, 1.0], ["True", "False", "TRUE"], ["true", "false", "1"],
                np.array([True, False, True], dtype=object)):
        np.testing.assert_array_equal(stats.valid_mask(pd.DataFrame({"ok": col}), "ok"),
                                      [True, False, True], err_msg=str(col))
    for col in ([True, np.nan, True], ["True", "", "False"], ["True", "yes", "False"],
                [1, 2, 0], [True, None, False], [1.0, 0.5, 0.0]):
        with pytest.raises(ValueError, match=r"column 'valid': 1 of 3 values are not booleans"
                                             r".*: row 1: "):
            stats.valid_mask(pd.DataFrame({"valid": col}))
    with pytest.raises(ValueError, match="no column 'valid'"):
        stats.valid_mask(pd.DataFrame({"x": [1]}))


def test_valid_column_survives_a_csv_round_trip_and_bad_cells_are_refused(tmp_path):
    table = pd.DataFrame({
        "condition": ["uf"] * 4 + ["baseline"] * 4,
        "valid": [True, True, True, False, True, True, True, True],
        "M2": [1.0, 2.0, 3.0, 100.0, 0.0, 0.5, -0.5, 0.1],
    })
    ref = stats.summarise(table, ["M2"], n_boot=50).iloc[0]
    # "False" as text (one non-boolean cell makes read_csv keep the column as strings)
    text = table.assign(valid=table["valid"].astype(str))
    row = stats.summarise(text, ["M2"], n_boot=50).iloc[0]
    assert row[["n_uf", "n_base", "mean_uf"]].tolist() == ref[["n_uf", "n_base", "mean_uf"]].tolist()
    none = stats.summarise(table.assign(valid="False"), ["M2"], n_boot=50).iloc[0]
    assert (none["n_uf"], none["n_base"]) == (0, 0)
    # a blank cell: read back as NaN, which must not count as valid
    path = tmp_path / "models.csv"
    table.assign(valid=[True, np.nan, *table["valid"][2:]]).to_csv(path, index=False)
    with pytest.raises(ValueError, match="column 'valid'.*row 1"):
        stats.summarise(pd.read_csv(path), ["M2"], n_boot=50)
    with pytest.raises(ValueError, match="column 'ok'"):
        stats.summarise(table.assign(ok="maybe"), ["M2"], valid_col="ok")


def test_contrast_studies_and_paired_by_epoch_refuse_a_non_boolean_valid_column():
    table = _two_study_table(0.3).assign(valid="yes")
    with pytest.raises(ValueError, match="column 'valid'"):
        stats.contrast_studies(table, ["S"])
    models = table.assign(model=np.arange(len(table)))
    epochs = pd.DataFrame({"model": models["model"], "epoch": 0, "S": models["S"]})
    with pytest.raises(ValueError, match="column 'valid'"):
        stats.paired_by_epoch(models, epochs, "S")
    # the text "False" leaves the rows out, as the boolean False does
    text = _two_study_table(0.3)
    text["valid"] = np.where(text.study == "plain", "False", "True")
    assert stats.contrast_studies(text, ["S"]).iloc[0]["method"] == \
        "reference: no valid models: not contrasted"


_X = np.arange(10.0)


@pytest.mark.parametrize("call", [
    lambda **kw: stats.bootstrap_mean_ci(_X, **kw),
    lambda **kw: stats.bootstrap_diff_ci(_X, _X + 1, **kw),
    lambda **kw: stats.compare(_X + 1, _X, **kw),
    lambda **kw: stats.paired_compare(_X + 1, _X, **kw),
    lambda **kw: stats.variance_components_ci(_X, {"f": _X % 2}, **kw),
    lambda **kw: stats.contrast_studies(_two_study_table(0.3), ["S"], **kw),
], ids=["bootstrap_mean_ci", "bootstrap_diff_ci", "compare", "paired_compare",
        "variance_components_ci", "contrast_studies"])
def test_bootstrap_parameters_are_checked(call):
    for n_boot in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match=f"n_boot={n_boot!r} must be an integer >= 1"):
            call(n_boot=n_boot)
    for alpha in (0, 1, 1.5, -0.1, np.nan, "0.05"):
        with pytest.raises(ValueError, match=r"alpha=.* must be a number in \(0, 1\)"):
            call(alpha=alpha)
    call(n_boot=np.int64(20), alpha=np.float32(0.1))  # NumPy scalars are fine


def test_summary_functions_check_n_boot_scores_and_alpha():
    table = pd.DataFrame({"condition": ["uf", "baseline"] * 3, "S": np.arange(6.0),
                          "valid": True})
    for n_boot in (0, -5, 2.5):
        with pytest.raises(ValueError, match=f"summarise: n_boot={n_boot!r}"):
            stats.summarise(table, ["S"], n_boot=n_boot)
        with pytest.raises(ValueError, match=f"paired_by_epoch: n_boot={n_boot!r}"):
            stats.paired_by_epoch(table.assign(model=range(6)), pd.DataFrame(), "S",
                                  n_boot=n_boot)
    # a bare string would be read as its characters (here the single column "S")
    with pytest.raises(ValueError, match=r"summarise: scores='S' must be a list"):
        stats.summarise(table, "S")
    with pytest.raises(ValueError, match=r"contrast_studies: scores='S' must be a list"):
        stats.contrast_studies(_two_study_table(0.3), "S")
    with pytest.raises(ValueError, match=r"summarise: scores=\['S', 1\]"):
        stats.summarise(table, ["S", 1])
    assert list(stats.summarise(table, ("S",), n_boot=20)["score"]) == ["S"]
    with pytest.raises(ValueError, match=r"clopper_pearson: alpha=1\.5"):
        stats.clopper_pearson(3, 10, alpha=1.5)
