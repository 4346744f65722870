"""The population scoring driver equals the scores computed on whole logit arrays per model."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax import score as score_lib
from memjax.config import FeatureConfig, PopulationConfig, StudyConfig, TrainConfig
from memjax.data import make_probes
from memjax.features import control_bitmaps, feature_bitmap, insert, render, render_feature
from memjax.population import build_table, model_inputs
from memjax.scoring import score_population
from memjax.train import make_program
from memjax.trainer import make_train_data

MEAN, STD = np.array([0.1307], np.float32), np.array([0.3081], np.float32)


@pytest.mark.parametrize("distinct_features", [False, True])
def test_streamed_population_scores_equal_whole_array_scores(small_mnist, distinct_features):
    """One feature for all models (the shared-input step) and a different feature value for
    model 1 (the per-model step in its chunk) both equal the whole-array scores."""
    train, val = small_mnist
    cfg = StudyConfig(population=PopulationConfig(n_seeds=3, conditions=("uf",)))
    table = build_table(cfg, train.labels, train.example_index)
    inputs = model_inputs(cfg, table, train.shape)
    overlay = render_feature(FeatureConfig(), train.shape)
    np.testing.assert_array_equal(np.asarray(inputs.feature_mask[0]), overlay.mask)
    np.testing.assert_array_equal(np.asarray(inputs.feature_value[0]), overlay.value)
    if distinct_features:
        inputs = inputs.replace(feature_value=inputs.feature_value.at[1].multiply(0.5))
    data = make_train_data(train.images, train.labels, val.images, val.labels, MEAN, STD)
    program = make_program("mlp", TrainConfig(epochs=1, early_stopping=False))
    variables = jax.device_get(program.final(program.init(inputs, data)))
    probes = make_probes("mnist", n=150, source="embedded")
    y_star = np.array([3, 3, 7])
    out = score_population(program, variables, inputs, y_star, probes.images, probes.labels,
                           FeatureConfig(), mean=MEAN, std=STD, batch_size=64, chunk_size=2,
                           progress=False, m10_reference=True)
    # chunks of 2: models (0, 1) and (2, padded); model 1's own feature makes its chunk per-model.
    assert out.info == {"chunks": 2, "shared_feature_chunks": 1 if distinct_features else 2}
    # The same scores from whole arrays, one model at a time.
    ctrl = control_bitmaps(150, feature_bitmap(FeatureConfig()).shape, 0)
    c_mask, c_value = render(ctrl, train.shape, (1, 1))
    for m in range(3):
        xs = [probes.images,
              insert(probes.images, np.asarray(inputs.feature_mask[m]),
                     np.asarray(inputs.feature_value[m])),
              insert(probes.images, c_mask, c_value)]
        v = jax.tree.map(lambda x: x[m], variables)
        logits = [np.asarray(program.model.apply(v, jnp.asarray((x - MEAN) / STD), train=False))
                  for x in xs]
        ref = score_lib.score_arrays(*logits, int(y_star[m]), probes.labels, num_classes=10)
        for key in ("M2", "M3", "M_score", "M3_t_p", "M3_U_p", "M6", "M12", "M13", "M14", "M15",
                    "M7", "M9", "M10", "PD_M", "PD_M_p", "PD_max"):
            np.testing.assert_allclose(out.scores[key][m], ref[key], rtol=2e-4, atol=1e-6,
                                       err_msg=key)
        p_uf = jax.nn.softmax(logits[1], -1)
        p_ctrl = jax.nn.softmax(logits[2], -1)
        np.testing.assert_allclose(out.scores["M10_reference"][m],
                                   float(score_lib.m10_reference(p_uf, p_ctrl)), rtol=1e-4)
    assert out.per_probe["kl_q_uf"].shape == (3, 150)
