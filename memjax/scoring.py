"""Scoring a whole population over batched probes: the driver around `memjax.score`.

For each chunk of models and each batch of B probes, one jitted, vmapped call builds the three
probe variants (clean x, with the model's unique feature x^U, with the probe's random control
patch x^R), runs every model of the chunk on them in eval mode, and reduces the logits to the
per-batch sums and per-probe values of `memjax.score.batch_terms`. The host adds the sums in
float64 and calls `memjax.score.finalize`. Probes stream from the host, so 50,000 probes x 3
variants x hundreds of models fit in memory.

Shapes: M models, P probes, B probe batch, C classes, H, W, K image, h, w feature bitmap.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from memjax import score as score_lib
from memjax.config import FeatureConfig
from memjax.features import control_bitmaps, feature_bitmap, insert, render
from memjax.sharding import gather
from memjax.train import ModelInputs, Program

PER_PROBE_KEYS = ("kl_q_uf", "kl_q_ctrl", "d_own")


@dataclass
class ScoreOutput:
    """Scores of every model.

    Attributes:
      scores: name -> [M] (and "PD_Mk", "PD_pk" -> [M, C]), see `memjax.score.finalize`.
      per_probe: name -> float32 [M, P] ("kl_q_uf", "kl_q_ctrl", "d_own").
      control: uint8 [P, h, w], the control bitmaps used.
      seconds: wall time.
      info: "chunks" and "shared_feature_chunks" (chunks whose models all have one feature,
        scored by the shared-input step).
    """

    scores: dict[str, np.ndarray]
    per_probe: dict[str, np.ndarray]
    control: np.ndarray
    seconds: float = 0.0
    info: dict = field(default_factory=dict)


@functools.lru_cache(maxsize=16)
def _batch_fn(program: Program, feature: FeatureConfig, image_shape: tuple, standardise: bool,
              clip: bool, num_classes: int):
    """The jitted scoring step of one (model, feature, options)."""
    offset, scale, transparent = tuple(feature.offset), feature.scale, feature.transparent

    def norm(x, mean, std):
        return (x - mean) / std if standardise else x

    def with_controls(x01, ctrl):
        """The batch with each probe's control patch (x^R) [B, H, W, K]."""
        c_mask, c_value = render(ctrl, image_shape, offset, scale, transparent, xp=jnp)
        return insert(x01, c_mask, c_value, xp=jnp)

    def uf_ctrl_logits(variables, feat_mask, feat_value, x01, x_ctrl01, mean, std):
        """One model's logits on x^U (its own feature) and on x^R."""
        x_uf = insert(x01, feat_mask, feat_value, xp=jnp)
        logits_uf = program.model.apply(variables, norm(x_uf, mean, std), train=False)
        logits_ctrl = program.model.apply(variables, norm(x_ctrl01, mean, std), train=False)
        return logits_uf, logits_ctrl

    def one_model(variables, feat_mask, feat_value, y_star, x01, x_ctrl01, logits_clean, labels,
                  valid, mean, std):
        logits_uf, logits_ctrl = uf_ctrl_logits(variables, feat_mask, feat_value, x01, x_ctrl01,
                                                mean, std)
        return score_lib.batch_terms(logits_clean, logits_uf, logits_ctrl, y_star, labels, valid,
                                     clip=clip, num_classes=num_classes)

    def batch(variables, feat_mask, feat_value, y_star, x01, ctrl, labels, valid, mean, std):
        x_ctrl01 = with_controls(x01, ctrl)
        logits_clean = program.predict(variables, norm(x01, mean, std))  # [k, B, C]
        return jax.vmap(one_model, in_axes=(0, 0, 0, 0, None, None, 0, None, None, None, None))(
            variables, feat_mask, feat_value, y_star, x01, x_ctrl01, logits_clean, labels, valid,
            mean, std)

    def batch_shared(variables, feat_mask, feat_value, y_star, x01, ctrl, labels, valid, mean,
                     std):
        """As `batch` when every model of the chunk has the same feature (feat_mask and
        feat_value [H, W, K], not [k, ...]): all three variants are then shared inputs, and XLA
        runs each first layer as one GEMM over the chunk's concatenated weights."""
        x_ctrl01 = with_controls(x01, ctrl)
        x_uf01 = insert(x01, feat_mask, feat_value, xp=jnp)
        logits = [program.predict(variables, norm(x, mean, std))  # [k, B, C] each
                  for x in (x01, x_uf01, x_ctrl01)]
        return jax.vmap(
            lambda lc, lu, lr, ys: score_lib.batch_terms(lc, lu, lr, ys, labels, valid, clip=clip,
                                                         num_classes=num_classes)
        )(*logits, y_star)

    def m10_one(variables, feat_mask, feat_value, x01, x_ctrl01, valid, mean, std, col_uf,
                col_ctrl):
        logits_uf, logits_ctrl = uf_ctrl_logits(variables, feat_mask, feat_value, x01, x_ctrl01,
                                                mean, std)
        return score_lib.m10_reference_terms(logits_uf, logits_ctrl, col_uf, col_ctrl, valid)

    def m10_batch(variables, feat_mask, feat_value, x01, ctrl, valid, mean, std, col_uf, col_ctrl):
        x_ctrl01 = with_controls(x01, ctrl)
        return jax.vmap(m10_one, in_axes=(0, 0, 0, None, None, None, None, None, 0, 0))(
            variables, feat_mask, feat_value, x01, x_ctrl01, valid, mean, std, col_uf, col_ctrl)

    return jax.jit(batch), jax.jit(batch_shared), jax.jit(m10_batch)


def _batch_rows(i: int, b: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Probe indices [b] of batch i (padding rows point at probe 0) and their validity [b]."""
    rows = np.arange(i * b, (i + 1) * b)
    valid = rows < p
    return np.where(valid, rows, 0), valid


def score_population(
    program: Program,
    variables: dict,
    inputs: ModelInputs,
    y_star: np.ndarray,
    probes_x01: np.ndarray,
    probe_labels: np.ndarray,
    feature: FeatureConfig,
    *,
    mean: np.ndarray,
    std: np.ndarray,
    standardise: bool = True,
    clip: bool = False,
    control_seed: int = 0,
    batch_size: int = 1000,
    chunk_size: int = 64,
    num_classes: int = 10,
    progress: bool = True,
    sharding=None,
    m10_reference: bool = False,
) -> ScoreOutput:
    """Every score of method.md for every model.

    Args:
      program: the population program (`memjax.train.make_program`) whose model is scored.
      variables: Flax variables [M, ...] (host or device arrays).
      inputs: per-model inputs [M]; their feature_mask/feature_value define each model's x^U.
      y_star: int [M], the label of each model's canary (the label-aware scores' y*).
      probes_x01: float32 [P, H, W, K] probe images in [0, 1].
      probe_labels: int [P].
      feature: the feature config (offset, scale, transparency of the control patches).
      mean, std: float32 [K] standardisation of the training data.
      standardise: standardise probes (False reproduces the reference's 1-channel quirk).
      clip: Keras' clipped KL instead of log space.
      control_seed: seed of the control bitmaps (one per probe, shared by all models).
      batch_size: probes per step; chunk_size: models per step.
      sharding: optional `memjax.sharding.ModelsSharding`: each chunk's models are spread
        over the devices (probes replicated).
      m10_reference: also compute M10_reference (method.md's SciPy-axis-0 variant), which
        needs a second pass over the probes (its columns are normalised over all probes).
    Returns:
      ScoreOutput.
    """
    t0 = time.perf_counter()
    p = probes_x01.shape[0]
    if p == 0:
        raise ValueError("score_population: no probe images")
    image_shape = tuple(probes_x01.shape[1:])
    ctrl = control_bitmaps(p, feature_bitmap(feature).shape, control_seed)
    fn, fn_shared, m10_fn = _batch_fn(program, feature, image_shape, standardise, clip,
                                      num_classes)
    m = int(np.asarray(y_star).shape[0])
    k = max(1, min(chunk_size, m))
    if sharding is not None:  # a multiple of the device count; padding is discarded
        k = math.ceil(k / sharding.n_devices) * sharding.n_devices
    put_models = sharding.shard_models if sharding is not None else jax.device_put
    put_shared = sharding.replicate if sharding is not None else jax.device_put
    host = gather if sharding is not None else jax.device_get
    b = max(1, min(batch_size, p))
    n_batches = math.ceil(p / b)
    mean_d, std_d = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    shared_chunks = 0
    sums_all: list[dict] = []
    per_probe_all: list[dict] = []
    bar = tqdm(total=math.ceil(m / k) * n_batches, desc=f"score x{m}", unit="batch",
               disable=not progress, leave=False)
    feature_mask = np.asarray(inputs.feature_mask)  # [M, H, W, K], once (host)
    feature_value = np.asarray(inputs.feature_value)
    for c in range(math.ceil(m / k)):
        rows = np.arange(c * k, min((c + 1) * k, m))
        padded = np.concatenate([rows, np.full(k - len(rows), rows[-1])])
        fm_host = feature_mask[padded]
        fv_host = feature_value[padded]
        v, fm, fv, ys = put_models((
            jax.tree.map(lambda x: np.asarray(x)[padded], variables), fm_host, fv_host,
            np.asarray(y_star)[padded].astype(np.int32)))
        # One feature for the whole chunk (the usual study): the shared-input step.
        shared = bool(np.all(fm_host == fm_host[:1]) and np.all(fv_host == fv_host[:1]))
        step = fn_shared if shared else fn
        shared_chunks += shared
        feat = put_shared((fm_host[0], fv_host[0])) if shared else (fm, fv)
        sums: dict[str, np.ndarray] = {}
        pp: dict[str, list] = {key: [] for key in PER_PROBE_KEYS}

        def collect(out, valid):
            s, per = host(out)
            for key, val in s.items():
                val = np.asarray(val, np.float64)[: len(rows)]
                sums[key] = sums[key] + val if key in sums else val
            n_valid = int(valid.sum())
            for key in PER_PROBE_KEYS:
                pp[key].append(np.asarray(per[key])[: len(rows), :n_valid])
            bar.update(1)

        pending = None  # one batch in flight: the next is dispatched before this one is read
        for i in range(n_batches):
            sl, valid = _batch_rows(i, b, p)
            batch = put_shared((probes_x01[sl], ctrl[sl], probe_labels[sl].astype(np.int32),
                                valid, mean_d, std_d))
            out = step(v, *feat, ys, *batch)
            if pending is not None:
                collect(*pending)
            pending = (out, valid)
        collect(*pending)
        if m10_reference:  # second pass: needs this chunk's column sums over all probes
            in_chunk = np.minimum(np.arange(k), len(rows) - 1)  # padding repeats the last model
            col_uf, col_ctrl = put_models(tuple(sums[key][in_chunk].astype(np.float32)
                                                for key in ("p_uf_sum", "p_ctrl_sum")))
            js = np.zeros((len(rows), num_classes))
            for i in range(n_batches):
                sl, valid = _batch_rows(i, b, p)
                batch = put_shared((probes_x01[sl], ctrl[sl], valid, mean_d, std_d))
                x01_b, ctrl_b, valid_b, mean_b, std_b = batch
                js += np.asarray(host(m10_fn(v, fm, fv, x01_b, ctrl_b, valid_b, mean_b, std_b,
                                             col_uf, col_ctrl)), np.float64)[: len(rows)]
            sums["m10_js"] = js
        sums_all.append(sums)
        per_probe_all.append({key: np.concatenate(v_, axis=1) for key, v_ in pp.items()})
    bar.close()
    sums = {key: np.concatenate([s[key] for s in sums_all], axis=0) for key in sums_all[0]}
    per_probe = {key: np.concatenate([d[key] for d in per_probe_all], axis=0)
                 for key in PER_PROBE_KEYS}
    scores = score_lib.finalize(sums, per_probe, np.asarray(y_star), np.asarray(probe_labels),
                                num_classes)
    if m10_reference:
        scores["M10_reference"] = score_lib.m10_reference_from_sums(sums["m10_js"])
    return ScoreOutput(scores=scores, per_probe=per_probe, control=ctrl,
                       seconds=time.perf_counter() - t0,
                       info={"chunks": math.ceil(m / k), "shared_feature_chunks": shared_chunks})
