"""Per-model memorisation scores of docs/method.md ("Scores (per model)").

Notation as in method.md: f(x) is a model's softmax output over C classes; each probe x_i is
scored clean (x_i), with the unique feature (x_i^U) and with its random control patch (x_i^R).
Shape legend: M models, P probes, B probes in a batch, C classes.

Scores are computed in two stages so that any number of probes streams through the device:

1. `batch_terms` (jitted, for ONE model; the driver vmaps it over models) turns one batch of
   logits into sums over the batch's valid probes of every per-probe quantity the scores need,
   plus the per-probe values the hypothesis tests need.
2. The driver adds the sums over batches on the host in float64, concatenates the per-probe
   values, and `finalize` (NumPy/SciPy) turns them into scores for all M models at once.

Every score is a mean over probes, so it is exact from sums. The scores whose label is chosen
from all probes (M14, M15) keep one sum per candidate class ([C] vectors) and pick the label at
the end. KL divergences follow the `clip` switch: log space from logits (default) or the Keras
way, both arguments clipped to [1e-7, 1] (the reference's numbers). Argmax decisions, the
probability differences (PD), the entropies (M11) and the Jensen-Shannon distances (M10) use the
plain softmax probabilities in both modes: the reference clipped only inside its KL.
"""
from __future__ import annotations

import functools
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlog1py
from scipy import stats as sps

from memjax.types import Array, NDArray

KERAS_EPSILON = 1e-7

# --------------------------------------------------------------------------------------------
# Distributions and divergences (jnp, over the last axis = classes unless stated)


@functools.partial(jax.jit, static_argnames="clip")
def log_probs(logits: Array, clip: bool = False) -> Array:
    """log f(x) from logits [..., C] -> [..., C].

    clip=False: log_softmax(logits), exact in log space. clip=True: log(clip(softmax(logits),
    1e-7, 1)), the probabilities Keras' KLDivergence sees.
    """
    if clip:
        return jnp.log(jnp.clip(jax.nn.softmax(logits, axis=-1), KERAS_EPSILON, 1.0))
    return jax.nn.log_softmax(logits, axis=-1)


@jax.jit
def kl(log_p: Array, log_q: Array) -> Array:
    """KL(P||Q) = sum_c P_c (log P_c - log Q_c), from log-probabilities [..., C] -> [...].

    0 log 0 = 0. Pass `log_probs(..., clip=True)` for both arguments to get Keras' clipped KL
    (the clipping lives in `log_probs`, so this function has no `clip` switch).
    """
    p = jnp.exp(log_p)
    # where, not p * (...): a zero P_c with log P_c = -inf would give 0 * inf = nan.
    return jnp.sum(jnp.where(p > 0, p * (log_p - log_q), 0.0), axis=-1)


@functools.partial(jax.jit, static_argnames="clip")
def kl_onehot(log_q: Array, clip: bool = False) -> Array:
    """KL(e_c || Q) for every class c at once: [..., C] -> [..., C] (entry c: target one-hot(c)).

    log_q must come from `log_probs` with the same `clip`. Log space: -log Q_c. Keras clipping
    turns the target e_c into 1 at c and 1e-7 elsewhere, so
    KL = -log Q_c + 1e-7 * sum_{c' != c} (log 1e-7 - log Q_c').
    """
    if not clip:
        return -log_q
    num_classes = log_q.shape[-1]
    log_eps = jnp.log(jnp.asarray(KERAS_EPSILON, log_q.dtype))
    others = jnp.sum(log_q, axis=-1, keepdims=True) - log_q
    return -log_q + KERAS_EPSILON * ((num_classes - 1) * log_eps - others)


@jax.jit
def entropy(log_p: Array) -> Array:
    """Shannon entropy in nats, -sum_c P_c log P_c, from log-probabilities [..., C] -> [...]."""
    p = jnp.exp(log_p)
    return -jnp.sum(jnp.where(p > 0, p * log_p, 0.0), axis=-1)


def _normalise(p: Array, axis: int) -> Array:
    """p / sum(p) along `axis`, as SciPy's `jensenshannon` does before comparing."""
    return p / jnp.sum(p, axis=axis, keepdims=True)


def _js_terms(p: Array, q: Array) -> Array:
    """Elementwise terms of the Jensen-Shannon divergence of normalised P and Q; summed over
    the distributions' axis they give JS(P, Q) = 1/2 KL(P||M) + 1/2 KL(Q||M), M = (P + Q) / 2,
    natural log.

    With m = (p + q) / 2 and r = (p - q) / (p + q): p log(p/m) + q log(q/m) = m g(r), with
    g(r) = (1+r) log(1+r) + (1-r) log(1-r). Near r = 0 the two logs cancel; there
    g(r) = 2 r atanh(r) + log1p(-r^2) keeps float32's relative precision (UF and control
    outputs of a trained model are close, which is exactly where M10 is read).
    """
    m = 0.5 * (p + q)
    r = jnp.where(m > 0, (p - q) / jnp.where(m > 0, 2.0 * m, 1.0), 0.0)
    small = jnp.abs(r) < 0.5
    rs = jnp.where(small, r, 0.0)
    g_small = 2.0 * rs * jnp.arctanh(rs) + jnp.log1p(-rs * rs)
    rb = jnp.where(small, 0.5, r)  # xlog1py gives 0 log 0 = 0 at r = +-1
    g_big = xlog1py(1.0 + rb, rb) + xlog1py(1.0 - rb, -rb)
    return 0.5 * m * jnp.where(small, g_small, g_big)


@jax.jit
def js_distance(p: Array, q: Array) -> Array:
    """Jensen-Shannon distance sqrt(JS(P, Q)), natural log, over classes: [..., C] -> [...]."""
    return jnp.sqrt(jnp.maximum(jnp.sum(_js_terms(_normalise(p, -1), _normalise(q, -1)), axis=-1), 0.0))


@jax.jit
def m10_reference(probs_uf: Array, probs_ctrl: Array) -> Array:
    """The reference's M10: SciPy `jensenshannon(probs_uf, probs_ctrl)` with its default axis 0.

    Per class c, the columns f(x^U)_{:, c} and f(x^R)_{:, c} over probes are normalised to sum
    1 and compared; the C distances are averaged. Not a per-probe quantity (see method.md).

    Args:
      probs_uf, probs_ctrl: [P, C] softmax outputs on UF and control probes (one model).
    Returns:
      a float32 scalar array (vmap it over models; `float()` it on the host).
    """
    js = jnp.sum(_js_terms(_normalise(probs_uf, 0), _normalise(probs_ctrl, 0)), axis=0)  # [C]
    return jnp.mean(jnp.sqrt(jnp.maximum(js, 0.0)))


@jax.jit
def m10_reference_terms(
    logits_uf: Array, logits_ctrl: Array, col_sum_uf: Array, col_sum_ctrl: Array, valid: Array
) -> Array:
    """Second streaming pass of `m10_reference` for ONE model and one batch.

    Args:
      logits_uf, logits_ctrl: [B, C]. valid: bool [B].
      col_sum_uf, col_sum_ctrl: [C] column sums over ALL probes, sum_i f(x_i^U) and
        sum_i f(x_i^R) (the `p_uf_sum`, `p_ctrl_sum` of `batch_terms`' sums, summed over batches).
    Returns:
      [C] float32: this batch's share of the per-class JS divergences; add over batches and
      give the [M, C] total to `m10_reference_from_sums`.
    """
    p = jax.nn.softmax(logits_uf, axis=-1) / col_sum_uf
    q = jax.nn.softmax(logits_ctrl, axis=-1) / col_sum_ctrl
    terms = _js_terms(p, q)  # columns normalised by the global sums, as m10_reference does
    return jnp.sum(jnp.where(valid[:, None], terms, 0.0), axis=0)


def m10_reference_from_sums(js_sums: NDArray) -> NDArray:
    """M10_reference from the [M, C] sums of `m10_reference_terms` -> [M] float64."""
    js = np.asarray(js_sums, np.float64)
    return np.mean(np.sqrt(np.maximum(js, 0.0)), axis=-1)


# --------------------------------------------------------------------------------------------
# Streaming stage: one model, one batch


def _at(values: Array, index: Array) -> Array:
    """values[i, index_i] for values [B, C], index int [B] -> [B] (NaN if out of range)."""
    return jnp.take_along_axis(values, index[:, None], axis=-1)[:, 0]


@functools.partial(jax.jit, static_argnames=("clip", "num_classes"))
def batch_terms(
    logits_clean: Array,
    logits_uf: Array,
    logits_ctrl: Array,
    y_star: Array,
    probe_labels: Array,
    valid: Array,
    *,
    clip: bool = False,
    num_classes: int,
) -> tuple[dict[str, Array], dict[str, Array]]:
    """Sums over one batch of probes of every per-probe quantity the scores need (ONE model).

    Args:
      logits_clean, logits_uf, logits_ctrl: float32 [B, C], the model on x_i, x_i^U, x_i^R.
      y_star: int32 scalar, the canary's label y* (for M3 and PD_M).
      probe_labels: int32 [B], the probes' own labels l_i (labels outside [0, C) join no class).
      valid: bool [B]; False on the padding rows of a last, partial batch: they add nothing.
      clip: Keras' clipped KL instead of log space.
      num_classes: C.
    Returns:
      (sums, per_probe). sums: name -> float32 scalar or [C], sums over the valid probes:
        n                      number of valid probes
        m2_sum                 KL(f(x_i)||f(x_i^U)) - KL(f(x_i)||f(x_i^R))
        m3_n, m3_sum           over probes with l_i = y*: count, KL(q||f(x_i^U)) - KL(q||f(x_i^R))
        m6_sum, m12_sum, m13_sum  KL(b_i||f(x_i^U)) - KL(b_i||f(x_i^R)) with M6/M12/M13's b_i
        du_clean_sum [C]       f(x_i^U) - f(x_i)     (M14 picks argmax_c at the end)
        du_ctrl_sum [C]        f(x_i^U) - f(x_i^R)   (M15 likewise)
        kl_onehot_diff_sum [C] KL(e_c||f(x_i^U)) - KL(e_c||f(x_i^R)) for every class c
        m7_sum, m9_sum, m10_sum  KL(f(x_i^U)||f(x_i^R)), KL(one-hot(argmax f(x_i^U))||f(x_i^R)),
                               JS distance(f(x_i^U), f(x_i^R))
        h_clean_sum, h_uf_sum, h_ctrl_sum  entropies (nats)
        p_uf_sum, p_ctrl_sum [C]  f(x_i^U), f(x_i^R) (column sums for M10_reference)
        pd_sum, pd_n [C]       per class k: sum and count of d_i over probes with l_i = k
      Differences are summed per probe (not as two sums) to keep float32 precision.
      per_probe: name -> float32 [B], NaN on padding rows:
        kl_q_uf, kl_q_ctrl     KL(q||f(x_i^U)), KL(q||f(x_i^R)), q = one-hot(y*), every probe
        d_own                  d_i = f(x_i^U)_{l_i} - f(x_i)_{l_i}
    """
    chex.assert_rank([logits_clean, probe_labels, valid], [2, 1, 1])
    chex.assert_equal_shape([logits_clean, logits_uf, logits_ctrl])
    chex.assert_shape([probe_labels, valid], (logits_clean.shape[0],))
    if logits_clean.shape[-1] != num_classes:
        raise ValueError(f"batch_terms: logits have {logits_clean.shape[-1]} classes, num_classes={num_classes}")

    def vsum(x: Array) -> Array:  # sum over the valid probes; where, so NaN padding stays out
        mask = valid if x.ndim == 1 else valid[:, None]
        return jnp.sum(jnp.where(mask, x, 0.0), axis=0)

    p_clean, p_uf, p_ctrl = (jax.nn.softmax(z, axis=-1) for z in (logits_clean, logits_uf, logits_ctrl))
    l_clean, l_uf, l_ctrl = (log_probs(z, clip) for z in (logits_clean, logits_uf, logits_ctrl))
    klo_uf = kl_onehot(l_uf, clip)  # [B, C]: KL(e_c||f(x_i^U))
    klo_ctrl = kl_onehot(l_ctrl, clip)
    klo_diff = klo_uf - klo_ctrl

    # Label-free guesses b_i of M6, M12, M13 (M9 uses M6's b_i against the control).
    b6 = jnp.argmax(p_uf, axis=-1)
    b12 = jnp.argmax(p_uf - p_clean, axis=-1)
    b13 = jnp.argmax(p_uf - p_ctrl, axis=-1)

    # M3: q = one-hot(y*), on the probes whose own label is y*.
    y_idx = jnp.broadcast_to(jnp.asarray(y_star, jnp.int32), probe_labels.shape)
    kl_q_uf, kl_q_ctrl = _at(klo_uf, y_idx), _at(klo_ctrl, y_idx)
    in_s = valid & (probe_labels == y_star)

    # Probability difference at the probe's own label.
    d_own = _at(p_uf - p_clean, probe_labels)
    onehot_l = jax.nn.one_hot(probe_labels, num_classes, dtype=p_uf.dtype)  # zero row if out of range
    d_in = jnp.where(valid & (probe_labels >= 0) & (probe_labels < num_classes), d_own, 0.0)

    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    sums = {
        "n": f32(jnp.sum(valid)),
        "m2_sum": vsum(kl(l_clean, l_uf) - kl(l_clean, l_ctrl)),
        "m3_n": f32(jnp.sum(in_s)),
        "m3_sum": jnp.sum(jnp.where(in_s, kl_q_uf - kl_q_ctrl, 0.0)),
        "m6_sum": vsum(_at(klo_diff, b6)),
        "m12_sum": vsum(_at(klo_diff, b12)),
        "m13_sum": vsum(_at(klo_diff, b13)),
        "du_clean_sum": vsum(p_uf - p_clean),
        "du_ctrl_sum": vsum(p_uf - p_ctrl),
        "kl_onehot_diff_sum": vsum(klo_diff),
        "m7_sum": vsum(kl(l_uf, l_ctrl)),
        "m9_sum": vsum(_at(klo_ctrl, b6)),
        "m10_sum": vsum(js_distance(p_uf, p_ctrl)),
        # Entropy is not a KL: computed exactly in log space whatever `clip` says.
        "h_clean_sum": vsum(entropy(jax.nn.log_softmax(logits_clean, axis=-1))),
        "h_uf_sum": vsum(entropy(jax.nn.log_softmax(logits_uf, axis=-1))),
        "h_ctrl_sum": vsum(entropy(jax.nn.log_softmax(logits_ctrl, axis=-1))),
        "p_uf_sum": vsum(p_uf),
        "p_ctrl_sum": vsum(p_ctrl),
        "pd_sum": jnp.sum(onehot_l * d_in[:, None], axis=0),
        "pd_n": jnp.sum(jnp.where(valid[:, None], onehot_l, 0.0), axis=0),
    }
    nan = jnp.asarray(jnp.nan, jnp.float32)
    per_probe = {
        "kl_q_uf": jnp.where(valid, kl_q_uf, nan),
        "kl_q_ctrl": jnp.where(valid, kl_q_ctrl, nan),
        "d_own": jnp.where(valid, d_own, nan),
    }
    return {k: f32(v) for k, v in sums.items()}, {k: f32(v) for k, v in per_probe.items()}


# --------------------------------------------------------------------------------------------
# Host stage: all models


def _mean(total: NDArray, count: NDArray) -> NDArray:
    """total / count, NaN where count is 0 (a score with no probes is missing, not an error)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1.0), np.nan)


def _pick(values: NDArray, labels: NDArray) -> NDArray:
    """values[m, labels_m] for [M, C] and int [M] -> [M]; NaN where the label is out of range."""
    ok = (labels >= 0) & (labels < values.shape[-1])
    picked = np.take_along_axis(values, np.where(ok, labels, 0)[:, None], axis=-1)[:, 0]
    return np.where(ok, picked, np.nan)


def _argmax(values: NDArray, *, skip_nan: bool) -> NDArray:
    """Row-wise argmax of [M, C] -> int [M]; -1 where undefined.

    skip_nan=False: a row with any NaN (a diverged model) has no label.
    skip_nan=True: NaN entries (classes without probes) are ignored; all-NaN rows get -1.
    """
    known = ~np.isnan(values)
    ok = known.any(axis=-1) if skip_nan else known.all(axis=-1)
    filled = np.where(known, values, -np.inf)
    return np.where(ok, np.argmax(filled, axis=-1), -1)


def _m3_tests(kl_uf: NDArray, kl_ctrl: NDArray, y_star: NDArray, labels: NDArray) -> dict[str, NDArray]:
    """M3's tests on the probes with label y*: paired one-sided t-test and one-sided
    Mann-Whitney U, KL(q||f(x^R)) greater than KL(q||f(x^U)). Models are grouped by y*, so each
    group's probe subset is the same and SciPy runs vectorised over the group's models."""
    num_models = len(y_star)
    out = {k: np.full(num_models, np.nan) for k in ("M3_t", "M3_t_p", "M3_U", "M3_U_p")}
    for y in np.unique(y_star):
        rows = np.flatnonzero(y_star == y)
        cols = labels == y
        a, b = kl_ctrl[np.ix_(rows, cols)], kl_uf[np.ix_(rows, cols)]
        n = a.shape[1]
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if n >= 2:
                t = sps.ttest_rel(a, b, axis=1, alternative="greater")
                out["M3_t"][rows], out["M3_t_p"][rows] = t.statistic, t.pvalue
            if n > 8:
                u = sps.mannwhitneyu(a, b, axis=1, alternative="greater")
                out["M3_U"][rows], out["M3_U_p"][rows] = u.statistic, u.pvalue
            elif n >= 1:
                # SciPy picks exact vs asymptotic from ties anywhere in a vectorised call; one
                # call per model keeps each model's p-value what a single-model call gives.
                for j, row in enumerate(rows):
                    u = sps.mannwhitneyu(a[j], b[j], alternative="greater")
                    out["M3_U"][row], out["M3_U_p"][row] = u.statistic, u.pvalue
    return out


def _pd_tests(d_own: NDArray, labels: NDArray, num_classes: int) -> tuple[NDArray, NDArray]:
    """Per class k, the paired one-sided t-test f(x^U)_k greater than f(x)_k over S_k (a
    one-sample t-test of d_i > 0), vectorised over models -> (t [M, C], p [M, C])."""
    num_models = d_own.shape[0]
    t_k = np.full((num_models, num_classes), np.nan)
    p_k = np.full((num_models, num_classes), np.nan)
    for k in range(num_classes):
        cols = labels == k
        if cols.sum() < 2:
            continue
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            res = sps.ttest_1samp(d_own[:, cols], 0.0, axis=1, alternative="greater")
        t_k[:, k], p_k[:, k] = res.statistic, res.pvalue
    return t_k, p_k


def finalize(
    sums: dict[str, NDArray],
    per_probe: dict[str, NDArray],
    y_star: NDArray,
    probe_labels: NDArray,
    num_classes: int,
) -> dict[str, NDArray]:
    """Scores of M models from the batch sums and per-probe values (host, NumPy/SciPy).

    Args:
      sums: name -> [M] or [M, C], `batch_terms`' sums added over all batches (float64).
      per_probe: name -> [M, P], `batch_terms`' per-probe values concatenated over batches in
        probe order; columns past P (padding of the last batch) are ignored.
      y_star: int [M], each model's canary label. probe_labels: int [P]. num_classes: C.
    Returns:
      name -> [M] (float64; int64 for `*_label` and `*_n`, -1 for an undefined label), and
      PD_Mk, PD_tk, PD_pk, PD_nk -> [M, C]. A score that cannot be computed is NaN:
        n            valid probes
        M2           mean KL(f(x)||f(x^U)) - mean KL(f(x)||f(x^R))
        M3, M_score  mean KL(q||f(x^U)) - mean KL(q||f(x^R)) over S_{y*}; M_score = -M3
        M3_t, M3_t_p paired one-sided t-test, KL(q||f(x^R)) > KL(q||f(x^U)): statistic, p
        M3_U, M3_U_p one-sided Mann-Whitney U, same direction: U of the control KLs, p
        M3_n         |S_{y*}|, probes with label y*
        M6, M12, M13 per-probe label guesses; M14, M15 (+ _label) one label for all probes
        M7, M9, M10  diagnostics; M11_clean, M11_uf, M11_ctrl mean entropies (nats)
        PD_Mk, PD_tk, PD_pk, PD_nk  M_k, its t statistic and p-value, |S_k|, for every class k
        PD_M, PD_M_t, PD_M_p        the same at k = y*
        PD_max, PD_max_label, PD_max_p  max_k M_k over classes with probes, its k, its p
    Raises:
      ValueError: if a per-probe array has fewer than P columns.
    """
    s = {k: np.asarray(v, np.float64) for k, v in sums.items()}
    y_star = np.asarray(y_star).astype(np.int64).reshape(-1)
    labels = np.asarray(probe_labels).astype(np.int64).reshape(-1)
    num_probes = labels.shape[0]
    pp = {}
    for k, v in per_probe.items():
        v = np.asarray(v, np.float64)
        if v.ndim != 2 or v.shape[1] < num_probes:
            raise ValueError(f"finalize: per_probe[{k!r}] has shape {v.shape}; expected [M, {num_probes}]")
        pp[k] = v[:, :num_probes]

    n = s["n"]
    out: dict[str, NDArray] = {"n": n.astype(np.int64)}
    out["M2"] = _mean(s["m2_sum"], n)
    out["M3"] = _mean(s["m3_sum"], s["m3_n"])
    out["M_score"] = -out["M3"]
    out.update(_m3_tests(pp["kl_q_uf"], pp["kl_q_ctrl"], y_star, labels))
    out["M3_n"] = s["m3_n"].astype(np.int64)
    for name in ("M6", "M12", "M13", "M7", "M9", "M10"):
        out[name] = _mean(s[name.lower() + "_sum"], n)
    # M14 / M15: the label maximises the mean difference over ALL probes, then the score is
    # the per-class KL difference at that label.
    for name, direction in (("M14", "du_clean_sum"), ("M15", "du_ctrl_sum")):
        label = np.where(n > 0, _argmax(s[direction], skip_nan=False), -1)
        out[name] = _mean(_pick(s["kl_onehot_diff_sum"], label), n)
        out[name + "_label"] = label
    for which in ("clean", "uf", "ctrl"):
        out[f"M11_{which}"] = _mean(s[f"h_{which}_sum"], n)

    # Probability-difference score (Scientific Reports 2023).
    m_k = _mean(s["pd_sum"], s["pd_n"])
    t_k, p_k = _pd_tests(pp["d_own"], labels, num_classes)
    out["PD_Mk"], out["PD_tk"], out["PD_pk"], out["PD_nk"] = m_k, t_k, p_k, s["pd_n"].astype(np.int64)
    out["PD_M"], out["PD_M_t"], out["PD_M_p"] = (_pick(a, y_star) for a in (m_k, t_k, p_k))
    best = _argmax(m_k, skip_nan=True)
    out["PD_max"], out["PD_max_label"], out["PD_max_p"] = _pick(m_k, best), best, _pick(p_k, best)
    return out


def score_arrays(
    logits_clean: Array | NDArray,
    logits_uf: Array | NDArray,
    logits_ctrl: Array | NDArray,
    y_star: int,
    probe_labels: Array | NDArray,
    *,
    clip: bool = False,
    num_classes: int | None = None,
) -> dict[str, float | int | NDArray]:
    """All scores of ONE model with all P probes in memory (tests, black-box use).

    Args:
      logits_clean, logits_uf, logits_ctrl: [P, C]. y_star: the canary label. probe_labels: [P].
    Returns:
      `finalize`'s keys as Python floats/ints; the per-class PD_* entries as [C] arrays.
    """
    logits = [jnp.asarray(z, jnp.float32) for z in (logits_clean, logits_uf, logits_ctrl)]
    num_classes = int(logits[0].shape[-1]) if num_classes is None else num_classes
    labels = jnp.asarray(probe_labels, jnp.int32)
    valid = jnp.ones(labels.shape, bool)
    sums, per_probe = batch_terms(
        *logits, jnp.int32(y_star), labels, valid, clip=clip, num_classes=num_classes
    )
    res = finalize(
        {k: np.asarray(v, np.float64)[None] for k, v in sums.items()},
        {k: np.asarray(v)[None] for k, v in per_probe.items()},
        np.array([y_star]),
        np.asarray(labels),
        num_classes,
    )
    return {k: (v[0].item() if v.ndim == 1 else v[0]) for k, v in res.items()}
