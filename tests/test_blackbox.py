"""Tests of memjax.blackbox: a black-box audit gives memjax's own scores for the same model."""
from __future__ import annotations

import jax
import numpy as np
import pytest

from memjax import score
from memjax.blackbox import audit_predict_fn, flax_predict_fn, to_logits
from memjax.config import FeatureConfig, TrainConfig
from memjax.features import control_bitmaps, render_feature, text_bitmap
from memjax.models import build_model
from memjax.scoring import score_population
from memjax.train import ModelInputs, make_program

P, C, SHAPE = 50, 10, (28, 28, 1)
MEAN, STD = np.array([0.1307], np.float32), np.array([0.3081], np.float32)
FEATURE = FeatureConfig()  # the letter "A" at (1, 1)


@pytest.fixture(scope="module")
def probes():
    rng = np.random.default_rng(0)
    return rng.random((P, *SHAPE), dtype=np.float32), rng.integers(0, C, P).astype(np.int32)


def _compare(a: dict, b: dict, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(np.asarray(a[k], np.float64), np.asarray(b[k], np.float64),
                                   rtol=rtol, atol=atol, err_msg=k)


class SoftmaxRegression:
    """A "third-party" model in pure NumPy: softmax(flatten(x) W + b), returning probabilities;
    records the batches it is called with."""

    def __init__(self, w: np.ndarray, b: np.ndarray):
        self.w, self.b, self.calls = w, b, []

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], -1).astype(np.float64) @ self.w + self.b

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls.append((x.shape, float(x.min()), float(x.max())))
        z = self.logits(x)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def _regression(memorise: float = 0.0, seed: int = 1) -> SoftmaxRegression:
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.05, (np.prod(SHAPE), C))
    if memorise:  # a matched filter for the "A": its ink pushes class 3, its blank pixels pull
        canvas = np.zeros(SHAPE[:2])
        canvas[1:6, 1:6] = 2 * text_bitmap("A") - 1.0
        w[:, 3] += memorise * canvas.reshape(-1)
    return SoftmaxRegression(w, rng.normal(0, 0.1, C))


def test_flax_mlp_equals_score_population(probes):
    x, labels = probes
    model = build_model("mlp")
    variables = model.init(jax.random.PRNGKey(0), np.zeros((1, *SHAPE), np.float32), train=False)
    overlay = render_feature(FEATURE, SHAPE)
    one = lambda a: np.asarray(a)[None]  # noqa: E731  (a models axis of 1)
    key = jax.random.PRNGKey(0)
    inputs = ModelInputs(init_key=one(key), order_key=one(key), noise_key=one(key), canary=one(0),
                         insert=one(True), lr_mult=one(1.0), feature_mask=one(overlay.mask),
                         feature_value=one(overlay.value))
    ref = score_population(make_program("mlp", TrainConfig(epochs=1)), jax.tree.map(one, variables), inputs,
                           np.array([3]), x, labels, FEATURE, mean=MEAN, std=STD, batch_size=16,
                           progress=False)
    expected = {k: v[0].item() if v.ndim == 1 else v[0] for k, v in ref.scores.items()}
    fn = flax_predict_fn(model, variables)
    got = audit_predict_fn(fn, x, labels, FEATURE, y_star=3, output="logits", standardise=(MEAN, STD),
                           batch_size=16)
    _compare(got, expected)
    # the same model behind an API that returns probabilities
    probs = lambda xb: np.asarray(jax.nn.softmax(fn(xb), axis=-1))  # noqa: E731
    _compare(audit_predict_fn(probs, x, labels, FEATURE, y_star=3, standardise=(MEAN, STD), batch_size=16),
             expected)


def test_m10_reference_equals_the_population_and_scipy(probes):
    from scipy.spatial.distance import jensenshannon

    x, labels = probes
    model = build_model("mlp")
    variables = model.init(jax.random.PRNGKey(1), np.zeros((1, *SHAPE), np.float32), train=False)
    overlay = render_feature(FEATURE, SHAPE)
    one = lambda a: np.asarray(a)[None]  # noqa: E731
    key = jax.random.PRNGKey(0)
    inputs = ModelInputs(init_key=one(key), order_key=one(key), noise_key=one(key), canary=one(0),
                         insert=one(True), lr_mult=one(1.0), feature_mask=one(overlay.mask),
                         feature_value=one(overlay.value))
    ref = score_population(make_program("mlp", TrainConfig(epochs=1)), jax.tree.map(one, variables),
                           inputs, np.array([3]), x, labels, FEATURE, mean=MEAN, std=STD,
                           batch_size=16, progress=False, m10_reference=True)
    fn = flax_predict_fn(model, variables)
    got = audit_predict_fn(fn, x, labels, FEATURE, y_star=3, output="logits",
                           standardise=(MEAN, STD), batch_size=16, m10_reference=True)
    assert got["M10_reference"] == pytest.approx(float(ref.scores["M10_reference"][0]), abs=1e-6)
    assert "M10_reference" not in audit_predict_fn(fn, x, labels, FEATURE, output="logits",
                                                   standardise=(MEAN, STD))
    # ... and SciPy's jensenshannon on the [P, C] arrays with its default axis 0, as the reference.
    ctrl = control_bitmaps(P, (5, 5), 0)
    from memjax.blackbox import _variants

    x_uf, x_ctrl = _variants(x, overlay, ctrl, FEATURE)
    p_uf, p_ctrl = (np.asarray(jax.nn.softmax(fn((v - MEAN) / STD), axis=-1), np.float64)
                    for v in (x_uf, x_ctrl))
    assert got["M10_reference"] == pytest.approx(np.mean(jensenshannon(p_uf, p_ctrl)), abs=1e-5)


def test_numpy_model_equals_scores_of_hand_built_probes(probes):
    x, labels = probes
    model = _regression()
    got = audit_predict_fn(model, x, labels, FEATURE, y_star=3, batch_size=7)
    # the probes built by hand: the "A" and the control patches written at rows/columns 1..5
    x_uf, x_ctrl = x.copy(), x.copy()
    x_uf[:, 1:6, 1:6, :] = text_bitmap("A")[None, :, :, None]
    x_ctrl[:, 1:6, 1:6, :] = control_bitmaps(P, (5, 5), 0)[..., None]
    expected = score.score_arrays(*(model.logits(v) for v in (x, x_uf, x_ctrl)), 3, labels)
    _compare(got, expected)
    # streamed in batches of at most 7 real probes, in [0, 1], three variants per batch
    sizes = [shape[0] for shape, _, _ in model.calls]
    assert sizes == [7] * 21 + [1] * 3 and all(0 <= lo and hi <= 1 for _, lo, hi in model.calls)
    # batching and the output type do not change the scores
    _compare(audit_predict_fn(model, x, labels, FEATURE, y_star=3, batch_size=1000), got, atol=1e-6)
    _compare(audit_predict_fn(model.logits, x, labels, FEATURE, y_star=3, output="logits"), got)


def test_memorising_model_scores_high_and_labels_are_optional(probes):
    x, labels = probes
    plain = audit_predict_fn(_regression(), x, labels, FEATURE, y_star=3)
    memo = audit_predict_fn(_regression(memorise=0.5), x, labels, FEATURE, y_star=3)
    assert memo["M_score"] > 1.0 > abs(plain["M_score"]) * 10
    assert memo["M2"] > 10 * abs(plain["M2"])
    assert memo["PD_max_label"] == 3 and memo["M15_label"] == 3
    blind = audit_predict_fn(_regression(memorise=0.5), x, labels, FEATURE)  # y* unknown
    assert np.isnan(blind["M_score"]) and np.isnan(blind["PD_M"]) and np.isnan(blind["M3_t_p"])
    for k in ("M2", "M6", "M12", "M13", "M14", "M15", "PD_max"):
        assert blind[k] == pytest.approx(memo[k], rel=1e-6, abs=1e-9), k
    # unlabelled probes (-1) do not turn into label-aware scores either
    unlabelled = audit_predict_fn(_regression(memorise=0.5), x, np.full(P, -1), FEATURE)
    assert np.isnan(unlabelled["M_score"]) and unlabelled["M3_n"] == 0 and np.isnan(unlabelled["PD_max"])
    assert unlabelled["M2"] == pytest.approx(memo["M2"], rel=1e-6)


def test_bad_outputs_and_arguments(probes):
    x, labels = probes
    with pytest.raises(ValueError, match="invalid probabilities"):
        audit_predict_fn(lambda b: -np.ones((len(b), C)), x, labels, FEATURE)
    with pytest.raises(ValueError, match="rows"):
        audit_predict_fn(lambda b: np.ones((1, C)) / C, x, labels, FEATURE)
    with pytest.raises(ValueError, match="y_star"):
        audit_predict_fn(lambda b: np.ones((len(b), C)) / C, x, labels, FEATURE, y_star=C)
    with pytest.raises(ValueError, match="output"):
        audit_predict_fn(lambda b: b, x, labels, FEATURE, output="softmax")
    # a zero probability is floored, not -inf
    assert np.isfinite(to_logits(np.array([[1.0, 0.0]]), "probs")).all()


def _uniform(b: np.ndarray) -> np.ndarray:
    return np.ones((len(b), C)) / C


@pytest.mark.parametrize("change, match", [
    (lambda x, y: (x * 255, y), r"probes_x01 .*\[0, 1\].*divide uint8 images by 255"),
    (lambda x, y: (np.where(x > 0.9, np.nan, x), y), "probes_x01 holds non-finite"),
    (lambda x, y: (x.astype(str), y), "probes_x01 has dtype"),
    (lambda x, y: (x, y + 0.7), r"probe_labels\[0\]"),
    (lambda x, y: (x, np.r_[np.nan, y[1:]]), r"probe_labels\[0\]=nan"),
    (lambda x, y: (x, np.r_[y[:3], -3, y[4:]]), r"probe_labels\[3\]=-3"),
    (lambda x, y: (x, y.astype(str)), "probe_labels has dtype"),
    (lambda x, y: (x, np.r_[y[:-1], C]), f"probe_labels holds {C}, not a class of a {C}-class"),
])
def test_bad_probes_are_refused_naming_the_argument(probes, change, match):
    x, labels = change(*probes)
    with pytest.raises(ValueError, match=match):
        audit_predict_fn(_uniform, x, labels, FEATURE, y_star=3)


@pytest.mark.parametrize("kwargs, match", [
    ({"y_star": 2.7}, r"y_star=2\.7 must be an integer"),
    ({"y_star": "3"}, r"y_star='3' must be an integer"),
    ({"y_star": True}, "y_star=True must be an integer"),
    ({"batch_size": 2.5}, r"batch_size=2\.5 must be an integer"),
    ({"batch_size": 0}, "batch_size=0 must be an integer >= 1"),
    ({"control_seed": -1}, r"control_seed=-1 must be an integer in \[0, "),
    ({"control_seed": 2**32}, "control_seed=4294967296 must be an integer"),
    ({"control_seed": 1.5}, r"control_seed=1\.5 must be an integer"),
    ({"standardise": ([0.1, 0.2], [0.3, 0.3, 0.3])}, r"standardise must be \(mean, std\)"),
    ({"standardise": (MEAN, STD, STD)}, r"standardise must be \(mean, std\)"),
    ({"standardise": (MEAN, [0.0])}, "standardise=.*std > 0"),
    ({"standardise": (MEAN, [np.nan])}, "standardise=.*std > 0"),
    ({"standardise": ([np.inf], STD)}, "standardise=.*finite mean"),
])
def test_bad_arguments_are_refused_naming_the_argument(probes, kwargs, match):
    x, labels = probes
    with pytest.raises(ValueError, match=match):
        audit_predict_fn(_uniform, x, labels, FEATURE, **kwargs)


@pytest.mark.parametrize("fn, output, match", [
    (lambda b: {"a": 1}, "probs", "predict_fn returned dict, not an array"),
    (lambda b: [[0.5, 0.5]] + [[1.0]] * (len(b) - 1), "probs",
     "predict_fn returned list, not an array"),
    (lambda b: np.zeros((len(b), 0)), "logits", "0 class.*at least 2"),
    (lambda b: np.zeros((len(b), 1)), "logits", "1 class.*at least 2"),
    (lambda b: np.full((len(b), C), 1e39), "logits", "non-finite logits.*float32"),
])
def test_bad_outputs_are_refused_naming_predict_fn(probes, fn, output, match):
    x, labels = probes
    with pytest.raises(ValueError, match=match):
        audit_predict_fn(fn, x, labels, FEATURE, output=output)


def test_integral_labels_of_any_dtype_and_numpy_ints_are_accepted(probes):
    x, labels = probes
    model = _regression(memorise=0.5)
    ref = audit_predict_fn(model, x, labels, FEATURE, y_star=3)
    # float labels that are whole numbers, NumPy integer arguments, and a scalar standardise
    # whose std is 1 give the same scores; -1 still marks an unlabelled probe
    got = audit_predict_fn(model, x, labels.astype(np.float64), FEATURE, y_star=np.int64(3),
                           batch_size=np.int64(1000), control_seed=np.uint32(0),
                           standardise=(0.0, 1.0))
    _compare(got, ref)
    part = audit_predict_fn(model, x, np.r_[-1, labels[1:]], FEATURE, y_star=3)
    assert part["M3_n"] == ref["M3_n"] - (labels[0] == 3)
    with pytest.raises(ValueError, match=r"probe_labels\[0\]=3\.5"):
        audit_predict_fn(model, x, np.r_[3.5, labels[1:]], FEATURE, y_star=3)
    with pytest.raises(ValueError, match="output='softmax'"):
        to_logits(np.ones((2, C)), "softmax")
