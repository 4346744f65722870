"""TracIn self-influence: the checkpoint rule, per-example gradients, known SI properties, UF
placement by influence. One small config (512 embedded MNIST images) shared by every run, so
the training program compiles once."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

from memjax import influence as I
from memjax.config import DataConfig, PopulationConfig, StudyConfig, TrainConfig
from memjax.influence_plots import plot_influence_ranks
from memjax.models import build_model
from memjax.population import take
from memjax.results import read_npz
from memjax.study import prepare
from memjax.trainer import train_population

CFG = StudyConfig(
    name="influence-test",
    data=DataConfig(dataset="mnist", source="embedded", n_train=512, n_val=256),
    train=TrainConfig(epochs=5, early_stopping=False, batch_size=64),
    population=PopulationConfig(n_seeds=1),
)


@pytest.fixture(scope="module")
def prep():
    return prepare(CFG)


@pytest.fixture(scope="module")
def clean(prep):
    return I.run_influence(CFG, prep=prep)


# -- the checkpoint rule ----------------------------------------------------------------------


def test_checkpoint_rule_late_f_uses_linspace():
    # loss_0 = 3, loss_min = 1 (epoch 30); threshold 1 + 0.05 * 2 = 1.1; first below: epoch 20.
    after = np.concatenate([np.linspace(2.9, 1.11, 19), [1.09], np.linspace(1.08, 1.0, 10)])
    losses = np.concatenate([[3.0], after])
    assert np.argmax(losses[1:] < 1.1) + 1 == 20
    assert I.checkpoint_epochs(losses) == [1, 3, 5, 7, 9, 11, 13, 15, 17, 20]


def test_checkpoint_rule_early_f_uses_epochs_1_to_10():
    losses = [2.0, 0.10, 0.05, 0.04] + [0.04 + 0.001 * i for i in range(12)]  # f = 1
    assert I.checkpoint_epochs(losses) == list(range(1, 11))
    # f = 9 < 10 still gives 1..10
    losses = np.concatenate([[10.0], np.linspace(9.0, 1.0, 8), [0.4], np.full(6, 0.1)])
    assert np.argmax(losses[1:] < 0.1 + 0.05 * 9.9) + 1 == 9
    assert I.checkpoint_epochs(losses) == list(range(1, 11))


def test_checkpoint_rule_edge_cases():
    # "falls below" is strict: a loss exactly at the threshold does not count.
    thr = 1.0 + 0.05 * (21.0 - 1.0)  # 2.0
    losses = [21.0] + [20.0 - i for i in range(10)] + [thr, thr, 1.5] + [1.0] * 10
    # epochs 1..10: 20..11, 11-12 at the threshold, 13 below -> f = 13
    assert I.checkpoint_epochs(losses) == [int(e) for e in np.linspace(1, 13, 10, dtype=int)]
    # the minimum may come before a rise
    losses = [5.0, 3.0, 1.0, 0.2, 2.0, 3.0]
    assert I.checkpoint_epochs(losses) == [1, 2, 3, 4, 5]  # E < 10: every epoch
    # no progress: f = epoch of the minimum
    assert I.checkpoint_epochs([1.0, 1.0, 1.2, 1.1]) == [1, 2, 3]
    with pytest.raises(ValueError):
        I.checkpoint_epochs([1.0])
    with pytest.raises(ValueError):
        I.checkpoint_epochs([1.0, np.nan, 0.5])


# -- per-example gradients ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mlp", "mlp_bn"])
def test_per_example_grad_norms_equal_single_example_grads(small_mnist, name):
    train, _ = small_mnist
    model = build_model(name)
    x = (train.images[:8].astype(np.float32) / 255.0 - 0.1307) / 0.3081
    y = train.labels[:8]
    variables = model.init(jax.random.PRNGKey(0), jnp.asarray(x[:1]), train=False)
    if "batch_stats" in variables:  # non-trivial running statistics
        variables = {**variables, "batch_stats": jax.tree.map(
            lambda a: a + 0.3, variables["batch_stats"])}
    rest = {k: v for k, v in variables.items() if k != "params"}

    @jax.jit
    def one(params, x1, y1):
        def loss(p):
            logits = model.apply({"params": p, **rest}, x1[None], train=False)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y1[None])[0]

        g = jax.grad(loss)(params)
        return sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(g))

    loop = np.array([float(one(variables["params"], x[i], y[i])) for i in range(8)])
    got = I.grad_sq_norms(model, variables, x, y)
    np.testing.assert_allclose(got, loop, rtol=1e-5)
    # SI over two checkpoints = the sum, whatever the batch size (padding dropped)
    si = I.self_influence(model, [variables, variables], x, y, batch_size=3)
    np.testing.assert_allclose(si, 2 * loop, rtol=1e-5)


# -- a real run ---------------------------------------------------------------------------------


def test_clean_run_checkpoints_are_copies_and_match_the_population_model(prep, clean):
    run = clean.run
    assert run.n_epochs == 5 and run.losses.shape == (6,) and run.canary is None
    assert run.losses[0] > 2.0 and run.losses[-1] < run.losses[0] / 3
    assert clean.epochs == [1, 2, 3, 4, 5]  # f < 10 and E = 5: every epoch
    # each kept checkpoint is the weights after its epoch (not a view of a donated buffer)
    inputs = I.one_model_inputs(CFG, prep.train.shape)
    loss = I._loss_program(build_model("mlp"))
    for e in (1, 3, 5):
        assert float(loss(run.variables[e - 1], I._first(inputs), prep.data)) == pytest.approx(
            run.losses[e], rel=1e-6)
    # the clean run is the study's baseline model of seed 0 (same program, same keys)
    row = prep.table.index[(prep.table["condition"] == "baseline") & (prep.table["init_seed"] == 0)]
    pop = train_population("mlp", CFG.train, take(prep.inputs, np.asarray(row)), prep.data,
                           strategy="sequential", progress=False)
    for a, b in zip(jax.tree.leaves(pop.variables["params"]),
                    jax.tree.leaves(run.variables[-1]["params"])):
        np.testing.assert_array_equal(np.asarray(a)[0], b)


def test_mislabelled_examples_have_high_self_influence(prep):
    # Measured (seeds 0-3, 10 flipped labels of 512, 5 epochs): every flipped example ranked in
    # the top 20; the smallest flipped SI is 9-14x the median SI.
    flip = np.arange(0, 512, 51)[:10]
    y = np.asarray(prep.data.y_train).copy()
    y[flip] = (y[flip] + 1) % 10
    noisy = dataclasses.replace(prep, data=prep.data.replace(y_train=jnp.asarray(y)))
    res = I.run_influence(CFG, prep=noisy)
    assert np.all(res.si[flip] > np.median(res.si))
    assert np.median([I.rank_of(i, res.si) for i in flip]) < 512 // 10


def test_rank_and_top_bottom_k():
    si = np.array([3.0, 9.0, 1.0, 9.0, 5.0])
    assert [I.rank_of(i, si) for i in range(5)] == [3, 0, 4, 0, 2]
    assert I.top_k(si, 3).tolist() == [1, 3, 4]
    assert I.bottom_k(si, 2).tolist() == [2, 0]


def test_with_influence_canaries_chooses_top_and_bottom_k(prep, clean, tmp_path):
    path = tmp_path / "si.npz"
    cfg = I.with_influence_canaries(CFG, 3, "top", path=path, prep=prep)
    saved = read_npz(path)
    idx = cfg.population.canary.indices
    assert cfg.population.canary.method == "indices" and len(idx) == 3
    assert all(0 <= i < 512 for i in idx)
    # the run is deterministic: the same SI as the clean fixture, and the top of its argsort
    np.testing.assert_array_equal(saved["si"], clean.si)
    assert list(idx) == np.argsort(-saved["si"])[:3].tolist() == saved["canaries"].tolist()
    assert saved["epochs"].tolist() == clean.epochs and saved["example_index"].shape == (512,)
    assert I.canaries_from_si(clean.si, 2, "bottom").tolist() == np.argsort(clean.si)[:2].tolist()
    prepare(cfg)  # a valid study config
    for k, which in ((2, "middle"), (0, "top"), (513, "bottom")):
        with pytest.raises(ValueError):  # ConfigError, before any training
            I.influence_canaries(CFG, k, which, prep=prep)


def test_uf_rank_after_training(prep, clean, tmp_path):
    res = I.uf_rank_after_training(CFG, prep=prep)
    canary = int(prep.table["canary_index"].iloc[0])
    assert res.canary == canary and res.n_train == 512
    assert 0 <= res.rank < 512 and res.rank == int(np.sum(res.si > res.si[canary]))
    assert 0.0 <= res.percentile <= 100.0
    # trained and scored with the feature: not the clean run's numbers
    assert not np.array_equal(res.si, clean.si)
    uf = I.training_images(prep.data, I._first(I.one_model_inputs(CFG, (28, 28, 1), canary=canary,
                                                                  insert=True)))
    plain = I.training_images(prep.data, I._first(I.one_model_inputs(CFG, (28, 28, 1))))
    differs = np.any(np.asarray(uf) != np.asarray(plain), axis=(1, 2, 3))
    assert np.flatnonzero(differs).tolist() == [canary]
    fig = plot_influence_ranks([res.rank, 10, 500], 512, path=tmp_path / "ranks.png")
    assert (tmp_path / "ranks.png").stat().st_size > 0 and fig.axes
    with pytest.raises(ValueError):
        plot_influence_ranks([512], 512)


def test_influence_study_writes_si_ranks_and_record(prep, clean, tmp_path):
    from memjax.influence_plots import plot_self_influence
    from memjax.influence_study import load_influence_study, run_influence_study

    res = run_influence_study(CFG, tmp_path, k=2, which="top", rank_seeds=2, rank_at="study",
                              prep=prep)
    np.testing.assert_array_equal(res.clean_si, clean.si)  # the same deterministic clean run
    assert res.canaries.tolist() == np.argsort(-clean.si)[:2].tolist()
    canary = int(prep.table["canary_index"].iloc[0])
    assert res.ranks["canary"].tolist() == [canary, canary]
    assert res.ranks["seed"].tolist() == [0, 1]
    # clean ranks come from the clean run of the same seed
    assert res.ranks["clean_rank"].iloc[0] == I.rank_of(canary, clean.si)
    clean_1 = I.run_influence(CFG, seed=1, prep=prep).si
    assert res.ranks["clean_rank"].iloc[1] == I.rank_of(canary, clean_1)
    first = I.uf_rank_after_training(CFG, canary=canary, seed=0, prep=prep)
    assert res.ranks["rank"].iloc[0] == first.rank  # the same run as the library call
    for name in ("self_influence.npz", "uf_ranks.csv", "uf_ranks_summary.csv", "ranks.npz",
                 "uf_ranks.png", "influence.json"):
        assert (tmp_path / name).is_file(), name
    arrays = read_npz(tmp_path / "ranks.npz")
    assert arrays["clean_si"].shape == (2, 512) and arrays["uf_si"].shape == (2, 512)
    np.testing.assert_array_equal(arrays["clean_si"][1], clean_1)
    np.testing.assert_array_equal(arrays["uf_si"][0], first.si)
    summary = pd.read_csv(tmp_path / "uf_ranks_summary.csv")
    assert summary["canary"].tolist() == [canary] and summary["runs"].tolist() == [2]
    change = res.ranks["percentile"] - res.ranks["clean_percentile"]
    assert summary["frac_up"].iloc[0] == pytest.approx(np.mean(change > 0))
    back = load_influence_study(tmp_path)
    assert back.ranks["rank"].tolist() == res.ranks["rank"].tolist()
    fig = plot_self_influence(back.clean_si, {"top": list(back.canaries)})
    assert fig.axes
    with pytest.raises(ValueError):
        run_influence_study(CFG, tmp_path / "bad", rank_at="elsewhere", prep=prep)
