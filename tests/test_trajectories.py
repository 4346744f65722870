"""Trajectories: scores computed inside the training program after every epoch."""
import numpy as np
import pytest

from memjax.config import override
from memjax.presets import get_preset
from memjax.study import run_study


def test_last_epoch_trajectory_equals_the_final_scores(tmp_path):
    cfg = override(get_preset("tiny"), ["score.trajectory_probes=100", "probes.n=100",
                                        "probes.batch_size=100"])
    res = run_study(cfg, tmp_path, progress=False)
    last = res.epochs[res.epochs.epoch == cfg.train.epochs - 1].set_index("model")
    models = res.models.set_index("model")
    for traj, final in (("traj_M2", "M2"), ("traj_M_score", "M_score"), ("traj_PD_M", "PD_M")):
        np.testing.assert_allclose(last[traj], models[final], rtol=1e-3, atol=1e-5, err_msg=traj)
    assert res.epochs["traj_M2"].notna().all()
    assert (res.path / "figures" / "trajectories.png").is_file()


def test_trajectories_follow_the_keras_clipping_switch(tmp_path):
    """score.clip=true: the per-epoch scores use Keras' clipped KL like the final ones. At this
    learning rate the two KLs differ by about 2.4 in M_score, so the last epoch must match the
    clipped final scores, not the log-space ones."""
    cfg = override(get_preset("tiny"), ["score.trajectory_probes=100", "probes.n=100",
                                        "probes.batch_size=100", "train.learning_rate=0.01",
                                        "train.epochs=3", "score.clip=true"])
    res = run_study(cfg, tmp_path, progress=False)
    last = res.epochs[res.epochs.epoch == cfg.train.epochs - 1].set_index("model")
    models = res.models.set_index("model")
    for traj, final in (("traj_M2", "M2"), ("traj_M_score", "M_score"), ("traj_PD_M", "PD_M")):
        np.testing.assert_allclose(last[traj], models[final], rtol=1e-3, atol=1e-5, err_msg=traj)


def test_paired_by_epoch_matches_paired_compare_at_every_epoch():
    import pandas as pd

    from memjax.stats import paired_by_epoch, paired_compare

    rng = np.random.default_rng(0)
    models, epochs = [], []
    for m, (cond, seed) in enumerate([(c, s) for c in ("uf", "baseline") for s in range(6)]):
        models.append(dict(model=m, condition=cond, init_seed=seed, order_seed=seed,
                           placement=0, canary_index=3, lr_mult=1.0, valid=True))
        for e in range(3):
            epochs.append(dict(model=m, epoch=e, traj_M_score=rng.normal()
                               + (0.5 * e if cond == "uf" else 0.0)))
    models, epochs = pd.DataFrame(models), pd.DataFrame(epochs)
    table = paired_by_epoch(models, epochs, "traj_M_score", n_boot=200)
    assert table["epoch"].tolist() == [0, 1, 2] and (table["n_pairs"] == 6).all()
    for e in range(3):
        v = epochs[epochs.epoch == e].set_index("model")["traj_M_score"]
        ref = paired_compare(v.loc[range(6)].to_numpy(), v.loc[range(6, 12)].to_numpy(),
                             n_boot=200)
        assert table.loc[e, "pair_diff"] == pytest.approx(ref["pair_diff"])
        assert table.loc[e, "wilcoxon_p"] == pytest.approx(ref["wilcoxon_p"])
    assert paired_by_epoch(models, epochs, "traj_nothing").empty
