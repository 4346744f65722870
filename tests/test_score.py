"""Tests of memjax.score: hand-computed values, an independent float64 reference, streaming,
vmap over models, missing scores. Shapes are kept few: compile time dominates."""
from __future__ import annotations

import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from memjax import score

try:  # tests/ as a package or as a plain folder on sys.path (pytest's default "prepend" mode)
    from tests import reference_scores as ref
except ImportError:
    import reference_scores as ref

L = np.log
EPS = score.KERAS_EPSILON
C10, P200 = 10, 200


def _logits(probs):
    """Logits whose softmax is `probs` (softmax(log p) = p)."""
    return np.log(np.asarray(probs, np.float64)).astype(np.float32)


def _kl(a, b):
    return sum(x * L(x / y) for x, y in zip(a, b))


def _js(a, b):
    m = [(x + y) / 2 for x, y in zip(a, b)]
    return math.sqrt(0.5 * _kl(a, m) + 0.5 * _kl(b, m))


def _h(a):
    return -sum(x * L(x) for x in a)


# --------------------------------------------------------------------------------------------
# Hand-computed: C = 2, three probes, y* = 0
#
#   probe  label  f(x)       f(x^U)     f(x^R)
#   0      0      [.5, .5]   [.8, .2]   [.9, .1]
#   1      1      [.9, .1]   [.8, .2]   [.5, .5]
#   2      0      [.8, .2]   [.2, .8]   [.1, .9]
#
# Label guesses b_i:  M6 argmax f(x^U) = [0, 0, 1];  M12 argmax f(x^U)-f(x) = [0, 1, 1]
# ([.3,-.3], [-.1,.1], [-.6,.6]);  M13 argmax f(x^U)-f(x^R) = [1, 0, 0] ([-.1,.1], [.3,-.3],
# [.1,-.1]).  M14: sum_i f(x^U)-f(x) = [-.4, .4] -> class 1; M15: sum_i f(x^U)-f(x^R) = [.3, -.3]
# -> class 0.  For a one-hot b: KL(b||f(x^U)) - KL(b||f(x^R)) = log f(x^R)_b - log f(x^U)_b.

P_CLEAN = [[0.5, 0.5], [0.9, 0.1], [0.8, 0.2]]
P_UF = [[0.8, 0.2], [0.8, 0.2], [0.2, 0.8]]
P_CTRL = [[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]]
LABELS = [0, 1, 0]
Y_STAR = 0

HAND = {
    # mean_i KL(f(x_i)||f(x_i^U)) - mean_i KL(f(x_i)||f(x_i^R))
    "M2": np.mean([_kl(p, u) - _kl(p, r) for p, u, r in zip(P_CLEAN, P_UF, P_CTRL)]),
    # S_{y*} = probes 0 and 2: (log .9 - log .8 + log .1 - log .2) / 2
    "M3": (L(0.9) - L(0.8) + L(0.1) - L(0.2)) / 2,
    "M3_n": 2,
    # d_i = KL(q||R) - KL(q||U) = log U_0 - log R_0 = [log(.8/.9), log 2]; with n = 2 the paired
    # t = mean / (sd / sqrt 2) = (d0 + d2) / |d0 - d2| = log(16/9) / log(2.25), 1 df (Cauchy):
    # P(T > t) = 1/2 - atan(t) / pi
    "M3_t": L(16 / 9) / L(2.25),
    "M3_t_p": 0.5 - math.atan(L(16 / 9) / L(2.25)) / math.pi,
    # control KLs [-log .9, -log .1] vs UF KLs [-log .8, -log .2]: -log .1 beats both -> U = 2;
    # exact null of U for 2 vs 2 (0, 1, 2, 2, 3, 4): P(U >= 2) = 4/6
    "M3_U": 2.0,
    "M3_U_p": 4 / 6,
    "M6": ((L(0.9) - L(0.8)) + (L(0.5) - L(0.8)) + (L(0.9) - L(0.8))) / 3,
    "M12": ((L(0.9) - L(0.8)) + (L(0.5) - L(0.2)) + (L(0.9) - L(0.8))) / 3,
    "M13": ((L(0.1) - L(0.2)) + (L(0.5) - L(0.8)) + (L(0.1) - L(0.2))) / 3,
    "M14_label": 1,
    "M14": ((L(0.1) - L(0.2)) + (L(0.5) - L(0.2)) + (L(0.9) - L(0.8))) / 3,
    "M15_label": 0,
    "M15": ((L(0.9) - L(0.8)) + (L(0.5) - L(0.8)) + (L(0.1) - L(0.2))) / 3,
    "M7": np.mean([_kl(u, r) for u, r in zip(P_UF, P_CTRL)]),
    # M9: one-hot(argmax f(x^U)) = [0, 0, 1] against f(x^R): -log .9, -log .5, -log .9
    "M9": -(L(0.9) + L(0.5) + L(0.9)) / 3,
    "M10": np.mean([_js(u, r) for u, r in zip(P_UF, P_CTRL)]),
    "M11_clean": (_h([0.5, 0.5]) + _h([0.9, 0.1]) + _h([0.8, 0.2])) / 3,
    "M11_uf": (2 * _h([0.8, 0.2]) + _h([0.2, 0.8])) / 3,
    "M11_ctrl": (2 * _h([0.9, 0.1]) + _h([0.5, 0.5])) / 3,
    # d_i = f(x^U)_{l_i} - f(x)_{l_i} = [.3, .2 - .1, .2 - .8]; M_0 = (.3 - .6)/2, M_1 = .1;
    # class 0: t = mean / (sd / sqrt 2) = -.15 / .45 = -1/3, 1 df; class 1 has one probe: no test
    "PD_M": -0.15,
    "PD_M_t": -1 / 3,
    "PD_M_p": 0.5 + math.atan(1 / 3) / math.pi,
    "PD_max": 0.1,
    "PD_max_label": 1,
    "PD_max_p": np.nan,
}
HAND["M_score"] = -HAND["M3"]


@pytest.mark.parametrize("clip", [False, True])
def test_hand_computed_values(clip):
    res = score.score_arrays(_logits(P_CLEAN), _logits(P_UF), _logits(P_CTRL), Y_STAR, LABELS, clip=clip)
    # No probability is below 1e-7 here, so clipping only adds 1e-7 * log(...) terms to the
    # one-hot KLs: both modes agree with the log-space hand values to float32 precision.
    for key, want in HAND.items():
        np.testing.assert_allclose(res[key], want, rtol=2e-5, atol=2e-6, err_msg=key)
    np.testing.assert_allclose(res["PD_Mk"], [-0.15, 0.1], atol=1e-6)
    np.testing.assert_array_equal(res["PD_nk"], [2, 1])
    assert res["n"] == 3


# Large logits, C = 2, two probes of label y* = 0, clean f(x) = softmax([0, -10]):
#   UF logits [0, -a], control logits [-a, 0], a = 30 (probe 0) and 20 (probe 1).
# Keras clipping turns f(x^U) into [1, 1e-7] and f(x^R) into [1e-7, 1] for both probes (e^-20 and
# e^-30 are below 1e-7); in log space the scores see the full logit gap.
A = np.array([30.0, 20.0])
LOG_CLEAN = np.array([[0.0, -10.0]] * 2, np.float32)
LOG_UF = np.stack([np.zeros(2), -A], 1).astype(np.float32)
LOG_CTRL = np.stack([-A, np.zeros(2)], 1).astype(np.float32)


def _large_logit_expected(clip: bool) -> dict:
    p = np.array([1.0, np.exp(-10.0)]) / (1 + np.exp(-10.0))
    if clip:
        u, r = np.array([1.0, EPS]), np.array([EPS, 1.0])
        kl_pu, kl_pr = _kl(p, u), _kl(p, r)
        # KL(clip(e_0)||u) = 1 log 1 + eps log(eps/eps) = 0; KL(clip(e_0)||r) = -(1 - eps) log eps
        k = -(1 - EPS) * L(EPS)
        return {"M2": kl_pu - kl_pr, "M3": -k, "M6": -k, "M7": k, "M9": k}
    # log f(x^U) = [0, -a] - log(1 + e^-a); log f(x^R) = [-a, 0] - log(1 + e^-a)
    lse = np.log1p(np.exp(-A))
    lu = np.stack([-lse, -A - lse], 1)
    lr = np.stack([-A - lse, -lse], 1)
    kl_pu = np.sum(p * (L(p) - lu), 1)
    kl_pr = np.sum(p * (L(p) - lr), 1)
    kl_ur = np.sum(np.exp(lu) * (lu - lr), 1)
    return {
        "M2": np.mean(kl_pu - kl_pr),
        "M3": np.mean(lr[:, 0] - lu[:, 0]),  # = -mean(a) = -25
        "M6": np.mean(lr[:, 0] - lu[:, 0]),
        "M7": np.mean(kl_ur),
        "M9": np.mean(-lr[:, 0]),
    }


@pytest.mark.parametrize("clip", [False, True])
def test_hand_computed_large_logits_both_modes(clip):
    res = score.score_arrays(LOG_CLEAN, LOG_UF, LOG_CTRL, 0, [0, 0], clip=clip)
    want = _large_logit_expected(clip)
    for key, value in want.items():
        np.testing.assert_allclose(res[key], value, rtol=1e-5, err_msg=key)
    assert res["M_score"] == -res["M3"]
    # the two modes really differ: clipping caps -log f at log(1e7) = 16.1
    assert abs(_large_logit_expected(True)["M3"] - _large_logit_expected(False)["M3"]) > 8


def test_kl_onehot_matches_kl_of_clipped_target():
    z = jax.random.normal(jax.random.key(0), (4, 5)) * 12
    for clip in (False, True):
        lq = score.log_probs(z, clip)
        if clip:
            # Keras clips the one-hot target: 1 stays 1, 0 becomes 1e-7
            targets = jnp.log(jnp.clip(jnp.eye(5), EPS, 1.0))
        else:
            targets = jnp.log(jnp.eye(5))  # -inf off the diagonal: 0 log 0 = 0
        full = jax.vmap(lambda t: score.kl(t[None, :], lq))(targets).T  # [4, 5]
        np.testing.assert_allclose(score.kl_onehot(lq, clip), full, rtol=1e-6, atol=1e-6)


def test_js_distance_precise_for_close_distributions():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, C10)) * 2
    for scale in (1e-1, 1e-2, 1e-3):
        p = np.asarray(jax.nn.softmax(jnp.asarray(z, jnp.float32)))
        q = np.asarray(jax.nn.softmax(jnp.asarray(z + scale * rng.normal(size=z.shape), jnp.float32)))
        want = jensenshannon(p.astype(np.float64), q.astype(np.float64), axis=1)
        np.testing.assert_allclose(score.js_distance(p, q), want, rtol=2e-4, err_msg=str(scale))
    # identical and disjoint distributions
    e = np.eye(3, dtype=np.float32)
    np.testing.assert_allclose(score.js_distance(e, e), 0.0, atol=1e-7)
    np.testing.assert_allclose(score.js_distance(e, np.roll(e, 1, axis=1)), np.sqrt(np.log(2)), rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Random logits against the independent float64 reference


def _random_case(seed: int, kind: str):
    """Logits [P, C] for clean, UF and control probes, labels [P], y*."""
    rng = np.random.default_rng(seed)
    y_star = int(rng.integers(C10))
    labels = rng.integers(0, C10, P200)
    if kind == "moderate":
        z = 2.0 * rng.normal(size=(P200, C10))
        push = 0.8 * np.eye(C10)[y_star]  # the UF raises the canary class a little
        uf, ctrl = z + rng.normal(size=z.shape) + push, z + rng.normal(size=z.shape)
    else:
        # "large": per probe three active classes; the other seven sit 25 below, so their
        # probabilities (~1e-11) are clipped to 1e-7 in Keras mode, while the argmax
        # decisions stay among the active classes, well resolved in float32.
        base = rng.normal(size=(P200, C10))
        tail = np.argsort(rng.random((P200, C10)), axis=1)[:, :7]
        np.put_along_axis(base, tail, np.take_along_axis(base, tail, 1) - 25.0, 1)
        z = base
        uf, ctrl = base + 0.5 * rng.normal(size=base.shape), base + 0.5 * rng.normal(size=base.shape)
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    return f32(z), f32(uf), f32(ctrl), labels, y_star


SCALAR_KEYS = [
    "M2", "M3", "M_score", "M3_t", "M3_t_p", "M3_U", "M3_U_p", "M6", "M12", "M13", "M14", "M15",
    "M7", "M9", "M10", "M11_clean", "M11_uf", "M11_ctrl", "PD_M", "PD_M_t", "PD_M_p", "PD_max",
    "PD_max_p",
]
LABEL_KEYS = ["M3_n", "M14_label", "M15_label", "PD_max_label"]


def _assert_matches_reference(res, want, rtol=2e-5, atol=2e-6):
    for key in SCALAR_KEYS:
        np.testing.assert_allclose(res[key], want[key], rtol=rtol, atol=atol, err_msg=key)
    for key in LABEL_KEYS:
        assert res[key] == want[key], key
    for key in ("PD_Mk", "PD_tk", "PD_pk"):
        np.testing.assert_allclose(res[key], want[key], rtol=rtol, atol=atol, err_msg=key)


@pytest.mark.parametrize("kind", ["moderate", "large"])
@pytest.mark.parametrize("clip", [False, True])
def test_random_logits_match_reference(kind, clip):
    for seed in range(3):
        z, uf, ctrl, labels, y_star = _random_case(seed, kind)
        assert ref.decision_margins(z, uf, ctrl) > 1e-6  # no near-tie a float32 could flip
        res = score.score_arrays(z, uf, ctrl, y_star, labels, clip=clip)
        want = ref.reference_scores(z, uf, ctrl, y_star, labels, clip=clip)
        _assert_matches_reference(res, want)
    if kind == "large":
        # clipping must matter in this case (M3's KLs cap at log 1e7)
        other = score.score_arrays(z, uf, ctrl, y_star, labels, clip=not clip)
        assert abs(other["M3"] - res["M3"]) > 0.03


def test_m10_reference_matches_scipy_axis0_and_streams():
    z, uf, ctrl, labels, _ = _random_case(5, "moderate")
    pu, pc = (np.asarray(jax.nn.softmax(jnp.asarray(a), axis=-1)) for a in (uf, ctrl))
    want = ref.reference_scores(z, uf, ctrl, 0, labels, clip=False)["M10_reference"]
    np.testing.assert_allclose(float(score.m10_reference(pu, pc)), want, rtol=1e-5)
    # Streaming: column sums in pass 1 (batch_terms' p_uf_sum, p_ctrl_sum), terms in pass 2.
    col_u, col_c = pu.sum(0), pc.sum(0)
    js = sum(
        np.asarray(score.m10_reference_terms(uf[i:i + 64], ctrl[i:i + 64], col_u, col_c,
                                             np.ones(len(uf[i:i + 64]), bool)), np.float64)
        for i in range(0, P200, 64)
    )
    np.testing.assert_allclose(score.m10_reference_from_sums(js[None])[0], want, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# Streaming over batches with padding, and vmap over models


B = 64


def _stream_population(logits_clean, logits_uf, logits_ctrl, y_star, labels, *, clip):
    """What the driver does: pad P to whole batches (NaN logits on padding rows, to prove they
    add nothing), vmap batch_terms over models, add sums in float64, concatenate per-probe
    values, finalize. logits_*: [M, P, C]; y_star: [M]; labels: [P]."""
    m, p, c = logits_clean.shape
    n_batches = -(-p // B)
    pad = n_batches * B - p
    pad3 = lambda a: np.concatenate([a, np.full((m, pad, c), np.nan, np.float32)], 1)  # noqa: E731
    lc, lu, lr = (pad3(a) for a in (logits_clean, logits_uf, logits_ctrl))
    lab = np.concatenate([labels, np.zeros(pad, labels.dtype)])
    valid = np.arange(n_batches * B) < p
    step = jax.jit(jax.vmap(
        functools.partial(score.batch_terms, clip=clip, num_classes=c),
        in_axes=(0, 0, 0, 0, None, None),
    ))
    sums, per_probe = {}, {}
    for b in range(n_batches):
        sl = slice(b * B, (b + 1) * B)
        s, pp = step(lc[:, sl], lu[:, sl], lr[:, sl], jnp.asarray(y_star, jnp.int32),
                     jnp.asarray(lab[sl], jnp.int32), jnp.asarray(valid[sl]))
        for k, v in s.items():
            sums[k] = sums.get(k, 0.0) + np.asarray(v, np.float64)
        for k, v in pp.items():
            per_probe.setdefault(k, []).append(np.asarray(v))
    per_probe = {k: np.concatenate(v, axis=1) for k, v in per_probe.items()}  # padding kept
    return score.finalize(sums, per_probe, np.asarray(y_star), labels, c)


def test_streaming_vmapped_population_equals_single_model():
    cases = [_random_case(seed, "moderate") for seed in (0, 1, 2, 3)]
    z, uf, ctrl = (np.stack([case[i] for case in cases]) for i in range(3))
    labels = cases[0][3]
    # models 0 and 2 share y* (one vectorised test over both); model 3's label has no probe at
    # all: its label-aware scores must come out NaN
    labels = np.where(labels == 9, 8, labels)
    y_star = np.array([8, 4, 8, 9])
    res = _stream_population(z, uf, ctrl, y_star, labels, clip=False)
    for m in range(4):
        single = score.score_arrays(z[m], uf[m], ctrl[m], int(y_star[m]), labels)
        for key, value in single.items():
            np.testing.assert_allclose(res[key][m], value, rtol=1e-5, atol=1e-6, err_msg=f"{key} model {m}")
    assert res["n"].tolist() == [P200] * 4
    assert res["M3_n"][3] == 0 and np.isnan(res["M3"][3]) and np.isnan(res["PD_M"][3])
    assert np.isfinite(res["M3_U_p"][:3]).all()


def test_missing_label_gives_nan_not_exception():
    z, uf, ctrl, labels, _ = _random_case(0, "moderate")
    labels = np.where(labels == 3, 4, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no SciPy/NumPy warning may escape either
        res = score.score_arrays(z, uf, ctrl, 3, labels)
    for key in ("M3", "M_score", "M3_t", "M3_t_p", "M3_U", "M3_U_p", "PD_M", "PD_M_t", "PD_M_p"):
        assert np.isnan(res[key]), key
    assert res["M3_n"] == 0 and res["PD_nk"][3] == 0
    assert np.isfinite(res["M2"]) and np.isfinite(res["PD_max"]) and res["PD_max_label"] != 3
    # a single probe of label y*: the t-test is undefined, Mann-Whitney still runs
    labels[0] = 3
    res = score.score_arrays(z, uf, ctrl, 3, labels)
    assert res["M3_n"] == 1 and np.isnan(res["M3_t"]) and np.isfinite(res["M3_U_p"])


def test_finalize_rejects_short_per_probe():
    # shapes of the hand-computed case (already compiled): 3 probes, 2 classes
    sums, pp = score.batch_terms(_logits(P_CLEAN), _logits(P_UF), _logits(P_CTRL), jnp.int32(0),
                                 jnp.asarray(LABELS, jnp.int32), jnp.ones(3, bool), num_classes=2)
    with pytest.raises(ValueError, match="per_probe"):
        score.finalize({k: np.asarray(v)[None] for k, v in sums.items()},
                       {k: np.asarray(v)[None] for k, v in pp.items()}, np.array([0]), np.zeros(4, int), 2)
