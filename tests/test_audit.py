"""Tests of memjax.audit: closed forms, validity of the epsilon bound over repeated draws for
mechanisms of known epsilon, the ROC summaries and the table."""
from __future__ import annotations

import math

import json

import numpy as np
import pandas as pd
import pytest
from scipy import optimize
from scipy import stats as sps

from memjax import audit, stats

ALPHA = 0.05
N_DRAWS = 200


def _rr(n: int, m: int, eps: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Randomised response with parameter eps: the bit is reported truthfully with probability
    e^eps / (1 + e^eps). Exactly eps-DP (delta = 0), and no test does better: TPR / FPR = e^eps."""
    p = math.exp(eps) / (1 + math.exp(eps))
    return (rng.random(n) < p).astype(float), (rng.random(m) < 1 - p).astype(float)


def _gaussian_eps(mu: float, delta: float) -> float:
    """Exact eps(delta) of the Gaussian shift N(mu, 1) vs N(0, 1) (mu-GDP; Dong et al. 2019):
    delta(eps) = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2)."""
    def excess(e: float) -> float:
        return sps.norm.cdf(-e / mu + mu / 2) - math.exp(e) * sps.norm.cdf(-e / mu - mu / 2) - delta

    return optimize.brentq(excess, 0.0, 50.0)


# --------------------------------------------------------------------------------------------
# Closed forms


def test_perfect_separation_equals_closed_form():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(10, 1, 100), rng.normal(0, 1, 100)
    k = audit.n_tests(100, 100)
    assert k == 16  # ranks 0, 1, 2, 4, ..., 64 for each group
    b = audit.eps_lower_bound(pos, neg, delta=1e-5, alpha=ALPHA)
    # a = alpha / (2K); TPR_lo = a^(1/100), FPR_hi = 1 - a^(1/100)
    a = ALPHA / (2 * k)
    p = a ** (1 / 100)
    assert b.eps_lb == pytest.approx(math.log((p - 1e-5) / (1 - p)), rel=1e-12)
    assert b.eps_lb == pytest.approx(audit.eps_lb_perfect(100, 100, 1e-5, ALPHA, k), rel=1e-12)
    assert b.eps_lb == pytest.approx(b.eps_max, rel=1e-12)
    assert (b.tp, b.fp, b.test) == (100, 0, "score > t (baseline rank 0)")
    assert b.threshold == neg.max()
    # the bounds are Clopper-Pearson's, one-sided at 1 - a
    assert b.tpr_lo == pytest.approx(stats.clopper_pearson(100, 100, 2 * a)[0])
    assert b.fpr_hi == pytest.approx(stats.clopper_pearson(0, 100, 2 * a)[1])


def test_models_needed_is_the_smallest_sufficient_population():
    for eps in (1.0, 2.0, 3.0):
        n = audit.models_needed(eps, 1e-5, ALPHA)
        assert audit.eps_lb_perfect(n, n, 1e-5, ALPHA, audit.n_tests(n, n)) >= eps
        assert audit.eps_lb_perfect(n - 1, n - 1, 1e-5, ALPHA, audit.n_tests(n - 1, n - 1)) < eps
        # and the audit on perfectly separated models of that size reaches it
        assert audit.eps_lower_bound(np.arange(n) + n, np.arange(n)).eps_lb >= eps
    n_split = audit.models_needed(2.0, 1e-5, ALPHA, method="split")
    assert audit.eps_lb_perfect(n_split // 2, n_split // 2, 1e-5, ALPHA, 1) >= 2.0
    # epsilon grows like log(n): certifying eps = 8 takes tens of thousands of models
    assert audit.models_needed(8.0) > 10_000


def test_eps_from_rates_both_inequalities():
    # TPR <= e^eps FPR + delta
    assert audit.eps_from_rates(0.5, 0.05, 0.0) == pytest.approx(math.log(10))
    # 1 - FPR <= e^eps (1 - TPR) + delta: all UF models caught, half the baselines too
    assert audit.eps_from_rates(0.95, 0.5, 0.0) == pytest.approx(math.log(0.5 / 0.05))
    assert audit.eps_from_rates(0.1, 0.2, 0.0) == 0.0


# --------------------------------------------------------------------------------------------
# Validity over repeated draws


def test_identical_distributions_give_no_epsilon():
    rng = np.random.default_rng(1)
    lbs = np.array([audit.eps_lower_bound(rng.normal(size=100), rng.normal(size=100), seed=i).eps_lb
                    for i in range(N_DRAWS)])
    assert np.mean(lbs > 0) <= ALPHA  # true eps is 0
    assert lbs.max() < 0.5


@pytest.mark.parametrize("method", ["ranks", "split"])
def test_randomised_response_bound_is_valid_and_informative(method):
    true_eps = 1.0
    rng = np.random.default_rng(3)
    lbs = np.array([audit.eps_lower_bound(*_rr(1000, 1000, true_eps, rng), delta=0.0, method=method,
                                          seed=i).eps_lb for i in range(N_DRAWS)])
    assert np.mean(lbs > true_eps) <= ALPHA
    # two-valued scores: the ties broken at random keep the bound informative
    assert np.median(lbs) > 0.6


def test_gaussian_mechanism_bound_is_valid_with_delta():
    mu, delta = 1.0, 1e-3
    true_eps = _gaussian_eps(mu, delta)  # 3.14
    rng = np.random.default_rng(4)
    lbs = np.array([audit.eps_lower_bound(rng.normal(mu, 1, 300), rng.normal(0, 1, 300), delta=delta,
                                          seed=i).eps_lb for i in range(N_DRAWS)])
    assert np.mean(lbs > true_eps) <= ALPHA
    assert 0.4 < np.median(lbs) < true_eps


def test_bound_is_deterministic_per_seed_and_ignores_nan():
    rng = np.random.default_rng(5)
    pos, neg = _rr(50, 50, 2.0, rng)
    assert audit.eps_lower_bound(pos, neg, seed=7) == audit.eps_lower_bound(pos, neg, seed=7)
    b = audit.eps_lower_bound(np.r_[pos, np.nan], np.r_[neg, np.inf])
    assert (b.n_pos, b.n_neg) == (50, 50)
    empty = audit.eps_lower_bound([], neg)
    assert empty.eps_lb == 0.0 and math.isnan(empty.threshold)
    with pytest.raises(ValueError):
        audit.eps_lower_bound(pos, neg, method="best")


# --------------------------------------------------------------------------------------------
# ROC summaries and the table


def test_tpr_at_fpr_and_resolution():
    neg = np.arange(100.0)  # 0..99
    pos = np.array([99.5, 98.5, 50.0, 150.0])
    assert audit.tpr_at_fpr(pos, neg, 0.01) == (0.75, True)  # threshold 99: one FP of 100
    # 100 baselines cannot resolve FPR 0.1%: only FPR 0 qualifies
    assert audit.tpr_at_fpr(pos, neg, 0.001) == (0.5, False)
    assert audit.tpr_at_fpr(pos, np.arange(1000.0), 0.001)[1]


def test_audit_table_from_a_models_table():
    rng = np.random.default_rng(6)
    n = 60
    df = pd.DataFrame({
        "condition": ["uf"] * n + ["baseline"] * n,
        "valid": [True] * (2 * n - 1) + [False],
        "M2": np.r_[rng.normal(3, 1, n), rng.normal(0, 1, n - 1), 1e9],  # the invalid one is ignored
        "M_score": rng.normal(size=2 * n),
        "PD_M_p": np.r_[rng.uniform(0, 0.01, n), rng.uniform(size=n)],
    })
    table = audit.audit_table(df, ["M2", "M_score", "PD_M_p"], negate=["PD_M_p"])
    assert list(table["score"]) == ["M2", "M_score", "PD_M_p"]
    for col in ("n_pos", "n_neg", "auc", "tpr_at_fpr_1pct", "tpr_at_fpr_0.1pct", "eps_lb", "threshold",
                "resolved_0.1pct", "eps_lb_eps_max"):
        assert col in table.columns
    row = table.set_index("score").loc["M2"]
    assert (row.n_pos, row.n_neg) == (n, n - 1)
    assert row.auc == pytest.approx(stats.roc_auc(df.M2[:n], df.M2[n:-1]))
    assert row.eps_lb > 0.5 and not row["resolved_0.1pct"]
    assert table.set_index("score").loc["M_score", "eps_lb"] == 0.0
    assert table.set_index("score").loc["PD_M_p", "eps_lb"] > 1.0  # small p-values flag UF models
    with pytest.raises(ValueError):
        audit.audit_table(df, ["nope"])


def test_audit_run_reads_models_csv(tmp_path):
    df = pd.DataFrame({"condition": ["uf"] * 20 + ["baseline"] * 20, "valid": True,
                       "M2": np.r_[np.arange(20) + 100.0, np.arange(20.0)]})
    df.to_csv(tmp_path / "models.csv", index=False)
    from memjax.results import ResultsError

    with pytest.raises(ResultsError, match="config.json"):  # delta from the run: none
        audit.audit_run(tmp_path, ["M2"])
    table = audit.audit_run(tmp_path, ["M2"], delta=1e-5)
    perfect = audit.eps_lb_perfect(20, 20, 1e-5, ALPHA, audit.n_tests(20, 20))
    assert table.loc[0, "eps_lb"] == pytest.approx(perfect)
    with pytest.raises(ResultsError, match="models.csv: missing"):
        audit.audit_run(tmp_path / "missing")
    # By default the run's own delta: 1 / N, or its DP delta when set.
    record = {"config": {"train": {"dp_delta": None}}, "data": {"train": {"n": 1000}}}
    (tmp_path / "config.json").write_text(json.dumps(record))
    assert audit.run_delta(tmp_path) == 1e-3
    assert audit.audit_run(tmp_path, ["M2"]).loc[0, "delta"] == 1e-3
    record["config"]["train"]["dp_delta"] = 1e-6
    (tmp_path / "config.json").write_text(json.dumps(record))
    assert audit.audit_run(tmp_path, ["M2"]).loc[0, "delta"] == 1e-6
    for bad in ({"config": {}}, {"config": {"train": []}, "data": {"train": {"n": "many"}}}):
        (tmp_path / "config.json").write_text(json.dumps(bad))
        with pytest.raises(ResultsError, match="training-set size"):
            audit.run_delta(tmp_path)
    for raw in (b"[]", b"\xff\xfe", b"[" * 100_000, b'{"config": [1]}'):
        (tmp_path / "config.json").write_bytes(raw)
        with pytest.raises(ResultsError, match="config.json"):
            audit.run_delta(tmp_path)


def test_audit_sweep_audits_every_study_at_its_own_delta(tiny_sweep):
    table = audit.audit_sweep(tiny_sweep, ["M_score", "M2"])
    models = pd.read_csv(tiny_sweep / "combined_models.csv")
    assert list(table["study"].drop_duplicates()) == list(models["study"].drop_duplicates())
    assert len(table) == 2 * models["study"].nunique()
    for study, g in table.groupby("study"):
        assert (g["delta"] == audit.run_delta(tiny_sweep / "studies" / study)).all()
    assert (table["delta"] < 1e-2).all()  # 1 / N of the tiny preset's training images
