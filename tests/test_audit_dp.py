"""Audits of DP-trained populations: the empirical bound stays below the accounted epsilon,
and is 0 when UF and baseline models are trained identically (no feature inserted)."""
import numpy as np
import pytest

from memjax.audit import audit_table
from memjax.config import override
from memjax.presets import get_preset
from memjax.study import run_study

DP = ["train.dp_clip_norm=1.0", "train.dp_noise_multiplier=1.0", "train.epochs=1",
      "population.n_seeds=4", "probes.n=100", "data.n_train=512"]


@pytest.fixture(scope="module")
def dp_run(tmp_path_factory):
    return run_study(override(get_preset("tiny"), DP), tmp_path_factory.mktemp("dp"),
                     progress=False)


def test_dp_run_records_the_accounted_epsilon(dp_run):
    eps = dp_run.models["dp_epsilon"].to_numpy()
    assert np.all(np.isfinite(eps)) and np.all(eps > 0)
    assert np.allclose(eps, eps[0])  # every model trained the same number of epochs


def test_empirical_bound_never_exceeds_the_accounted_epsilon(dp_run):
    table = audit_table(dp_run.models, delta=1.0 / 512)
    eps = float(dp_run.models["dp_epsilon"].iloc[0])
    assert (table["eps_lb"] <= eps).all()
    assert (table["eps_lb"] >= 0).all()


def test_bound_is_zero_when_no_feature_is_inserted(tmp_path):
    # A transparent all-zero bitmap writes no pixel: UF models train exactly as baselines.
    cfg = override(get_preset("tiny"), DP + ['feature.kind="bitmap"',
                                            "feature.bitmap=[[0, 0], [0, 0]]",
                                            "feature.transparent=true"])
    res = run_study(cfg, tmp_path, progress=False)
    uf = res.models[res.models.condition == "uf"].reset_index(drop=True)
    base = res.models[res.models.condition == "baseline"].reset_index(drop=True)
    np.testing.assert_array_equal(uf["val_acc"], base["val_acc"])
    table = audit_table(res.models, delta=1.0 / 512)
    assert (table["eps_lb"] == 0).all()
