"""The population trainer: model m of a population equals model m trained alone.

"Equal" as in DEVELOPERS.md: bitwise where the arithmetic is the same (init), parameters within
1e-5 after a few steps (any optimiser) and after a whole SGD run; after a whole Adam run with
early stopping, the same stopping epoch and >= 99.9% identical test predictions.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.config import PopulationConfig, StudyConfig, TrainConfig
from memjax.population import build_table, model_inputs, take
from memjax.train import TRACE_COUNTS, make_program
from memjax.trainer import make_train_data, train_population

MEAN, STD = [0.1307], [0.3081]


def _population(train, n_models_cfg: StudyConfig, shape=None):
    table = build_table(n_models_cfg, train.labels, train.example_index)
    return table, model_inputs(n_models_cfg, table, shape or train.shape)


def _four_models(train, model="mlp"):
    """4 models: different init seeds, different order seeds, 2 UF and 2 baseline."""
    cfg = StudyConfig(population=PopulationConfig(n_seeds=2, seed_mode="crossed", n_order_seeds=1,
                                                  conditions=("uf", "baseline")))
    shape = (14, 14, 1) if model.startswith("cnn") else None
    table, inputs = _population(train, cfg, shape)
    # Make seeds differ in both streams: models (0,1) init 0/1 order 0; give the baseline pair
    # other order seeds by rebuilding with seed_mode "same".
    cfg2 = dataclasses.replace(cfg, population=dataclasses.replace(cfg.population, seed_mode="same"))
    table2, inputs2 = _population(train, cfg2, shape)
    rows = np.array([0, 1, 2, 3])
    inputs = jax.tree.map(lambda a, b: jnp.concatenate([a[:2], b[2:4]]), inputs, inputs2)
    assert set(table["condition"]) == {"uf", "baseline"}
    return inputs, rows


def _data(train, val, model="mlp"):
    if model.startswith("cnn"):
        # CNN tests run on 14x14 subsampled images of 256 examples: the same code paths at a
        # twentieth of the cost (the models take any input shape).
        return make_train_data(train.images[:256, ::2, ::2], train.labels[:256],
                               val.images[:128, ::2, ::2], val.labels[:128], MEAN, STD)
    return make_train_data(train.images, train.labels, val.images, val.labels, MEAN, STD)


def _alone(model, cfg, inputs, data, m):
    return train_population(model, cfg, take(inputs, np.array([m])), data, strategy="sequential",
                            progress=False)


def _max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _predictions(model, cfg, variables, data):
    program = make_program(model, cfg)
    x = (data.x_val.astype(np.float32) / 255.0 - MEAN[0]) / STD[0]
    return np.asarray(jnp.argmax(program.predict(variables, jnp.asarray(x)), -1))


@pytest.mark.parametrize("model", ["mlp", "cnn1"])
def test_init_is_bitwise_equal_alone_and_in_population(small_mnist, model):
    train, val = small_mnist
    data = _data(train, val, model)
    inputs, _ = _four_models(train, model)
    program = make_program(model, TrainConfig(epochs=1, early_stopping=False))
    pop = program.init(inputs, data)
    for m in range(4):
        one = program.init(take(inputs, np.array([m])), data)
        for a, b in zip(jax.tree.leaves(pop.params), jax.tree.leaves(one.params)):
            np.testing.assert_array_equal(np.asarray(a)[m], np.asarray(b)[0])


@pytest.mark.parametrize("model,optimizer", [("mlp", "adam"), ("mlp", "sgd"), ("cnn1", "adam")])
def test_population_equals_alone_after_a_few_steps(small_mnist, model, optimizer):
    train, val = small_mnist
    cfg = TrainConfig(optimizer=optimizer, learning_rate=3e-4 if optimizer == "adam" else 0.05,
                      epochs=1, batch_size=64, early_stopping=False)  # 4 steps (8 for mlp)
    data = _data(train, val, model)
    inputs, _ = _four_models(train, model)
    pop = train_population(model, cfg, inputs, data, strategy="vmap", progress=False)
    for m in range(4):
        one = _alone(model, cfg, inputs, data, m)
        got = jax.tree.map(lambda x: x[m : m + 1], pop.variables)
        assert _max_diff(got, one.variables) < 1e-5, f"model {m}"
    # The models really differ from each other (the test would be vacuous otherwise).
    assert _max_diff(jax.tree.map(lambda x: x[0], pop.variables),
                     jax.tree.map(lambda x: x[1], pop.variables)) > 1e-3


def test_whole_sgd_run_equals_alone(small_mnist):
    train, val = small_mnist
    # Plain SGD: with momentum 0.9 at lr 0.05 (effective step 0.5) float reordering grows
    # past 1e-5 within 16 steps (measured 2.7e-4), as Adam's does over long runs.
    cfg = TrainConfig(optimizer="sgd", learning_rate=0.05, epochs=4, early_stopping=False)
    data = _data(train, val)
    inputs, _ = _four_models(train)
    pop = train_population("mlp", cfg, inputs, data, strategy="vmap", progress=False)
    for m in range(4):
        one = _alone("mlp", cfg, inputs, data, m)
        assert _max_diff(jax.tree.map(lambda x: x[m : m + 1], pop.variables), one.variables) < 1e-5


@pytest.mark.parametrize("model,lr", [("mlp", 3e-3), ("cnn1", 1e-3)])
def test_whole_adam_run_with_early_stopping_equals_alone(small_mnist, model, lr):
    train, val = small_mnist
    cfg = TrainConfig(optimizer="adam", learning_rate=lr, epochs=15, patience=2,
                      early_stopping=True, batch_size=64)
    data = _data(train, val, model)
    inputs, _ = _four_models(train, model)
    pop = train_population(model, cfg, inputs, data, strategy="vmap", progress=False)
    assert pop.stopped.any(), "early stopping never triggered; the test needs it"
    preds_pop = _predictions(model, cfg, pop.variables, data)
    for m in range(4):
        one = _alone(model, cfg, inputs, data, m)
        assert one.epochs_trained[0] == pop.epochs_trained[m]
        assert one.best_epoch[0] == pop.best_epoch[m]
        preds_one = _predictions(model, cfg, one.variables, data)[0]
        assert np.mean(preds_one == preds_pop[m]) >= 0.999


def test_chunking_gives_equal_results(small_mnist):
    train, val = small_mnist
    cfg = TrainConfig(optimizer="adam", epochs=2, early_stopping=False)
    data = _data(train, val)
    inputs, _ = _four_models(train)
    results = [train_population("mlp", cfg, inputs, data, strategy=s, chunk_size=k, progress=False)
               for s, k in (("vmap", None), ("chunks", 2), ("chunks", 3), ("sequential", None))]
    assert [r.chunk_size for r in results] == [4, 2, 3, 1]
    for r in results[1:]:
        assert _max_diff(r.variables, results[0].variables) < 1e-5
        np.testing.assert_allclose(r.metrics["val_loss"], results[0].metrics["val_loss"], atol=1e-5)


def test_diverging_model_is_flagged_and_others_unchanged(small_mnist):
    train, val = small_mnist
    base = StudyConfig(population=PopulationConfig(n_seeds=2))
    cfg = TrainConfig(optimizer="sgd", learning_rate=0.05, epochs=3, early_stopping=False)
    data = _data(train, val)
    table = build_table(base, train.labels, train.example_index)
    inputs = model_inputs(base, table, train.shape)
    boom = inputs.replace(lr_mult=jnp.array([1.0, 1e7, 1.0, 1.0], jnp.float32))
    ref = train_population("mlp", cfg, inputs, data, strategy="vmap", progress=False)
    bad = train_population("mlp", cfg, boom, data, strategy="vmap", progress=False)
    assert bad.diverged.tolist() == [False, True, False, False]
    assert bad.diverged_epoch[1] == 0
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(bad.variables))  # frozen, finite
    for m in (0, 2, 3):
        assert _max_diff(jax.tree.map(lambda x: x[m], bad.variables),
                         jax.tree.map(lambda x: x[m], ref.variables)) < 1e-6
    assert np.isnan(bad.metrics["val_loss"][1, 1:]).all()


def test_population_program_is_traced_once_per_shape(small_mnist):
    train, val = small_mnist
    cfg = TrainConfig(optimizer="adam", epochs=2, early_stopping=False, batch_size=64)
    data = _data(train, val)
    inputs, _ = _four_models(train)
    before = dict(TRACE_COUNTS)
    train_population("mlp", cfg, inputs, data, strategy="vmap", progress=False)
    assert TRACE_COUNTS["epoch"] - before["epoch"] == 1  # 2 epochs, one trace
    first = dict(TRACE_COUNTS)
    train_population("mlp", cfg, inputs, data, strategy="vmap", progress=False)
    assert TRACE_COUNTS == first  # the same shapes again: no trace at all
    train_population("mlp", cfg, take(inputs, np.arange(2)), data, strategy="vmap", progress=False)
    assert TRACE_COUNTS["epoch"] - first["epoch"] == 1  # a new population size: one more


def test_feature_reaches_only_the_canary_image(small_mnist):
    from memjax.train import batch_images

    train, val = small_mnist
    data = _data(train, val)
    cfg = StudyConfig(population=PopulationConfig(n_seeds=1))
    table = build_table(cfg, train.labels, train.example_index)
    inputs = model_inputs(cfg, table, train.shape)
    canary = int(table["canary_index"][0])
    idx = jnp.arange(canary - 3, canary + 3, dtype=jnp.int32)
    ok = jnp.ones(6, bool)
    uf = np.asarray(batch_images(data, idx, ok, take(inputs, np.array([0])).replace(
        **{k: getattr(inputs, k)[0] for k in ("canary", "insert", "feature_mask", "feature_value", "lr_mult")})))
    base = np.asarray(batch_images(data, idx, ok, jax.tree.map(lambda x: x[1], inputs)))
    diff = uf != base
    assert diff[:3].sum() == 0 and diff[4:].sum() == 0
    assert diff[3].sum() > 0 and not diff[3, 6:, :].any() and not diff[3, :, 6:].any()


def test_over_models_squeezes_a_single_model_and_vmaps_more():
    from memjax.train import over_models

    seen = []

    def fn(w, x, scale):
        seen.append(w.shape)
        return {"y": w @ x * scale, "n": jnp.sum(w)}

    call = over_models(fn, in_axes=(0, None, None))
    w = jnp.arange(2 * 3 * 4, dtype=jnp.float32).reshape(2, 3, 4)
    x = jnp.ones((4, 5), jnp.float32)
    one = jax.jit(call)(w[:1], x, 2.0)
    assert seen[-1] == (3, 4)  # traced unbatched
    many = jax.jit(call)(w, x, 2.0)
    assert one["y"].shape == (1, 3, 5) and many["y"].shape == (2, 3, 5)
    np.testing.assert_array_equal(one["y"][0], many["y"][0])
    np.testing.assert_array_equal(one["n"], many["n"][:1])
