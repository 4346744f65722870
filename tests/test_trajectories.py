"""Trajectories: scores computed inside the training program after every epoch."""
import numpy as np

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
