"""The models axis over devices (fake CPU devices) and over two local processes."""
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pandas as pd
import pytest

from memjax.config import PopulationConfig, StudyConfig, TrainConfig
from memjax.population import build_table, model_inputs
from memjax.sharding import ModelsSharding
from memjax.trainer import make_train_data, train_population


def _max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def five_models(small_mnist):
    train, val = small_mnist
    cfg = StudyConfig(population=PopulationConfig(n_seeds=5, conditions=("uf",)))
    table = build_table(cfg, train.labels, train.example_index)
    inputs = model_inputs(cfg, table, train.shape)
    data = make_train_data(train.images, train.labels, val.images, val.labels, [0.1307], [0.3081])
    return inputs, data


@pytest.mark.parametrize("n_devices", [2, 4])
def test_sharded_population_equals_single_device(five_models, n_devices):
    if len(jax.devices()) < n_devices:
        pytest.skip(f"needs {n_devices} devices (conftest sets 4 fake CPU devices)")
    inputs, data = five_models
    cfg = TrainConfig(epochs=2, early_stopping=False, batch_size=128)
    single = train_population("mlp", cfg, inputs, data, strategy="vmap", progress=False)
    sharding = ModelsSharding.over(jax.devices()[:n_devices])
    sharded = train_population("mlp", cfg, inputs, data, strategy="vmap", progress=False,
                               sharding=sharding)
    assert sharded.chunk_size % n_devices == 0  # 5 models padded to a multiple
    assert sharded.n_models == 5
    assert _max_diff(sharded.variables, single.variables) < 1e-5
    np.testing.assert_allclose(sharded.metrics["val_loss"], single.metrics["val_loss"], atol=1e-5)


def test_sharded_scores_equal_single_device(five_models):
    from memjax.data import make_probes
    from memjax.config import FeatureConfig
    from memjax.scoring import score_population
    from memjax.train import make_program

    inputs, data = five_models
    cfg = TrainConfig(epochs=1, early_stopping=False)
    trained = train_population("mlp", cfg, inputs, data, strategy="vmap", progress=False)
    probes = make_probes("mnist", n=300, source="embedded")
    kw = dict(mean=np.array([0.1307]), std=np.array([0.3081]), batch_size=128, chunk_size=3,
              progress=False)
    y = np.full(5, 3)
    a = score_population(make_program("mlp", cfg), trained.variables, inputs, y, probes.images,
                         probes.labels, FeatureConfig(), **kw)
    b = score_population(make_program("mlp", cfg), trained.variables, inputs, y, probes.images,
                         probes.labels, FeatureConfig(), sharding=ModelsSharding.over(), **kw)
    for key in ("M2", "M_score", "PD_M", "M6"):
        np.testing.assert_allclose(a.scores[key], b.scores[key], rtol=1e-4, atol=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_run_one_study_like_one_process(tmp_path):
    port = _free_port()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
           "JAX_PLATFORMS": "cpu"}
    common = [sys.executable, "-m", "memjax.cli", "run", "tiny", "--no-progress",
              "--set", "population.n_seeds=3", "--set", "train.epochs=1", "--set", "probes.n=100"]
    procs = [subprocess.Popen(common + ["--workdir", str(tmp_path / "multi"), "--distributed",
                                        "--coordinator", f"127.0.0.1:{port}",
                                        "--num-processes", "2", "--process-id", str(i)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    single = subprocess.run(common + ["--workdir", str(tmp_path / "single")], env=env,
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    a = pd.read_csv(tmp_path / "multi" / "models.csv")
    b = pd.read_csv(tmp_path / "single" / "models.csv")
    assert len(a) == len(b) == 6
    pd.testing.assert_series_equal(a["canary_index"], b["canary_index"])
    for col in ("val_acc", "M2", "M_score", "PD_M", "M6"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-3, atol=1e-5, err_msg=col)
    assert not (tmp_path / "multi" / "chunks").exists()
