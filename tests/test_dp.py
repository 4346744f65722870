"""DP-SGD in the population trainer: clipping, noise, equivalence to SGD at the limits."""
import jax
import numpy as np
import pytest

from memjax.config import PopulationConfig, StudyConfig, TrainConfig, override, validate
from memjax.errors import ConfigError
from memjax.population import build_table, model_inputs
from memjax.trainer import make_train_data, train_population


def _setup(small_mnist, n=256):
    train, val = small_mnist
    cfg = StudyConfig(population=PopulationConfig(n_seeds=1))
    table = build_table(cfg, train.labels[:n], train.example_index[:n])
    inputs = model_inputs(cfg, table, train.shape)
    data = make_train_data(train.images[:n], train.labels[:n], val.images[:128], val.labels[:128],
                           [0.1307], [0.3081])
    return inputs, data


def _diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_dp_without_clipping_or_noise_equals_plain_sgd(small_mnist):
    inputs, data = _setup(small_mnist)
    plain = TrainConfig(optimizer="sgd", learning_rate=0.05, epochs=1, batch_size=64,
                        early_stopping=False)
    dp = TrainConfig(optimizer="sgd", learning_rate=0.05, epochs=1, batch_size=64,
                     early_stopping=False, dp_clip_norm=1e6, dp_noise_multiplier=0.0)
    a = train_population("mlp", plain, inputs, data, strategy="vmap", progress=False)
    b = train_population("mlp", dp, inputs, data, strategy="vmap", progress=False)
    assert _diff(a.variables, b.variables) < 1e-5


def test_dp_clipping_bounds_each_step_and_noise_changes_the_result(small_mnist):
    inputs, data = _setup(small_mnist, n=64)  # one step of batch 64
    lr, clip = 0.1, 0.01
    base = dict(optimizer="sgd", learning_rate=lr, epochs=1, batch_size=64, early_stopping=False)
    from memjax.train import make_program

    init = make_program("mlp", TrainConfig(**base)).init(inputs, data)
    clipped = train_population("mlp", TrainConfig(**base, dp_clip_norm=clip), inputs, data,
                               strategy="vmap", progress=False)
    step = np.sqrt(sum(float(np.sum((np.asarray(a) - np.asarray(b)) ** 2)) for a, b in
                       zip(jax.tree.leaves(clipped.variables["params"]), jax.tree.leaves(init.params))))
    assert 0 < step <= lr * clip * (1 + 1e-4)  # mean of clipped gradients: norm <= clip
    noisy = train_population("mlp", TrainConfig(**base, dp_clip_norm=clip, dp_noise_multiplier=1.0),
                             inputs, data, strategy="vmap", progress=False)
    assert _diff(noisy.variables, clipped.variables) > 1e-5  # noise std lr*sigma*clip/B = 1.6e-5


def test_dp_refuses_batch_norm_with_a_clear_message():
    from memjax.presets import get_preset

    cfg = override(get_preset("tiny"), ['model.name="mlp_bn"', "train.dp_clip_norm=1.0"])
    with pytest.raises(ConfigError, match="batch norm"):
        validate(cfg)
