"""Black-box audits of third-party models: any callable from images to class outputs.

The auditor of method.md knows the unique feature (UF) and the data domain, and may only query
the model. `audit_predict_fn` does exactly that for a plain Python callable (a PyTorch or Keras
model behind a NumPy wrapper, a remote API, a jitted Flax model): it builds the three probe
variants (clean x, with the UF x^U, with the probe's random control patch x^R) with
`memjax.features`, streams them through the callable in batches on the host, and turns the
outputs into every score of method.md with `memjax.score.batch_terms` and `finalize` (the same
code that scores memjax's own populations, so the numbers are the same for the same model).

Outputs may be probabilities or logits: log(p) is a logit vector of p (log_softmax(log p) =
log p when p sums to 1, and renormalises it otherwise), so probabilities are turned into logits
by a safe log (zeros floored at the smallest normal float32).

Shapes: P probes, B batch, H, W, K image height, width, channels, C classes.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from memjax import score as score_lib
from memjax.argtypes import is_int
from memjax.config import SEED_MAX, FeatureConfig
from memjax.features import control_bitmaps, feature_bitmap, insert, render, render_feature

OUTPUTS = ("probs", "logits")
PER_PROBE_KEYS = ("kl_q_uf", "kl_q_ctrl", "d_own")
_TINY = float(np.finfo(np.float32).tiny)


class PredictFn(Protocol):
    """A model as the auditor sees it: images [B, H, W, K] -> probabilities or logits [B, C]."""

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


def to_logits(out: Any, output: str) -> np.ndarray:
    """A callable's outputs [B, C] as float32 logits.

    Raises:
      ValueError: `output` not in OUTPUTS; outputs that are not a numeric array, not 2-D, with
        fewer than 2 classes, non-finite (logits also beyond float32's range), or negative /
        all-zero probability rows.
    """
    if output not in OUTPUTS:
        raise ValueError(f"to_logits: output={output!r}; use one of {OUTPUTS}")
    try:
        z = np.asarray(out, np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"predict_fn returned {type(out).__name__}, not an array of numbers "
                         f"[batch, classes] ({e})") from None
    if z.ndim != 2:
        raise ValueError(f"predict_fn returned shape {z.shape}; expected [batch, classes]")
    if z.shape[1] < 2:
        raise ValueError(f"predict_fn returned {z.shape[1]} class(es) per image; the scores "
                         "compare classes, so at least 2 are needed")
    if output == "logits":
        with np.errstate(over="ignore"):
            z32 = z.astype(np.float32)  # checked after the cast: 1e39 would become inf
        if not np.all(np.isfinite(z32)):
            raise ValueError("predict_fn returned non-finite logits (or logits beyond float32's "
                             f"range, |z| > {np.finfo(np.float32).max:.3g})")
        return z32
    if not np.all(np.isfinite(z)) or np.any(z < 0) or np.any(z.sum(axis=1) <= 0):
        raise ValueError("predict_fn returned invalid probabilities (negative, non-finite or an "
                         "all-zero row); pass output='logits' if these are logits")
    return np.log(np.maximum(z, _TINY)).astype(np.float32)


def _variants(x01: np.ndarray, overlay, ctrl: np.ndarray, feature: FeatureConfig
              ) -> tuple[np.ndarray, np.ndarray]:
    """x^U and x^R of a batch x01 [B, H, W, K] with control bitmaps ctrl [B, h, w]."""
    c_mask, c_value = render(ctrl, x01.shape[1:], tuple(feature.offset), feature.scale,
                             feature.transparent)
    return insert(x01, overlay.mask, overlay.value), insert(x01, c_mask, c_value)


def _check_outputs(logits: list[np.ndarray], n: int, num_classes: int, y_star: int | None,
                   max_label: int) -> int:
    """Checks the three [n, C] outputs of one batch against the batch and each other, and y_star
    and the largest probe label against C; returns C."""
    if any(z.shape[0] != n for z in logits):
        raise ValueError(f"predict_fn returned {[z.shape[0] for z in logits]} rows for {n} images")
    if any(z.shape[1] != num_classes for z in logits):
        raise ValueError(f"predict_fn returned {[z.shape[1] for z in logits]} classes; "
                         f"expected {num_classes}")
    if y_star is not None and not 0 <= y_star < num_classes:
        raise ValueError(f"audit_predict_fn: y_star={y_star} is not a class of a "
                         f"{num_classes}-class model")
    if max_label >= num_classes:
        raise ValueError(f"audit_predict_fn: probe_labels holds {max_label}, not a class of a "
                         f"{num_classes}-class model (labels are 0..{num_classes - 1}, or -1 "
                         "for an unlabelled probe)")
    return num_classes


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    """value as an int; ValueError naming `name` unless it is an integer in [lo, hi)."""
    if not is_int(value, lo, np.inf if hi is None else hi - 1):
        where = f">= {lo}" if hi is None else f"in [{lo}, {hi})"
        raise ValueError(f"audit_predict_fn: {name}={value!r} must be an integer {where}")
    return int(value)


def _check_probes(probes_x01: Any, probe_labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """(x [P, H, W, K] float32, labels [P] int32) of the probes, or ValueError naming the
    argument: images must be finite numbers in [0, 1], labels integers >= 0 or -1 (unlabelled)."""
    try:
        x = np.asarray(probes_x01)
        y = np.asarray(probe_labels)
    except (TypeError, ValueError) as e:  # e.g. ragged nested lists
        raise ValueError(f"audit_predict_fn: probes_x01 / probe_labels are not arrays ({e})"
                         ) from None
    if x.dtype.kind not in "buif":
        raise ValueError(f"audit_predict_fn: probes_x01 has dtype {x.dtype}; expected float "
                         "pixels in [0, 1]")
    if y.dtype.kind not in "uif":
        raise ValueError(f"audit_predict_fn: probe_labels has dtype {y.dtype}; expected integer "
                         "class labels")
    y = y.reshape(-1)
    if x.ndim != 4 or 0 in x.shape or x.shape[0] != y.shape[0]:
        raise ValueError(f"audit_predict_fn: probes {x.shape} and labels {y.shape}: expected "
                         "[P, H, W, K] and [P] with P, H, W, K >= 1")
    if not np.all(np.isfinite(x)):
        raise ValueError("audit_predict_fn: probes_x01 holds non-finite values (NaN or inf)")
    lo, hi = x.min(), x.max()
    if lo < 0 or hi > 1:
        raise ValueError(f"audit_predict_fn: probes_x01 holds values in [{lo:g}, {hi:g}]; "
                         "expected pixels in [0, 1] (divide uint8 images by 255)")
    ok = np.isfinite(y) & (y >= -1) & (y < 2**31)
    ok[ok] = y[ok] == np.round(y[ok])
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise ValueError(f"audit_predict_fn: probe_labels[{i}]={y[i].item()!r}; labels must be "
                         "integer classes >= 0, or -1 for an unlabelled probe")
    return x.astype(np.float32), y.astype(np.int32)


def _standardiser(standardise: Any, image_shape: tuple[int, ...]
                  ) -> Callable[[np.ndarray], np.ndarray]:
    """x -> (x - mean) / std for standardise = (mean, std) broadcastable to the images
    [H, W, K] (e.g. [K] per channel); the identity for None."""
    if standardise is None:
        return lambda x: x
    try:
        mean, std = (np.asarray(v, np.float32) for v in standardise)
        if np.broadcast_shapes(mean.shape, std.shape, image_shape) != image_shape:
            raise ValueError("shapes do not broadcast")
    except (TypeError, ValueError) as e:
        raise ValueError(f"audit_predict_fn: standardise must be (mean, std), each a number or "
                         f"[K] = [{image_shape[-1]}] per channel ({e})") from None
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise ValueError("audit_predict_fn: standardise=(mean, std) needs a finite mean and a "
                         f"finite std > 0 (std ranges over [{std.min():g}, {std.max():g}])")
    return lambda x: (x - mean) / std


def _pad(z: np.ndarray, rows: int) -> np.ndarray:
    """z [b, C] padded with zero rows to [rows, C] (batch_terms is compiled once per shape)."""
    return np.concatenate([z, np.zeros((rows - z.shape[0], z.shape[1]), z.dtype)]) if rows > z.shape[0] else z


def audit_predict_fn(
    predict_fn: PredictFn | Callable[[np.ndarray], Any],
    probes_x01: np.ndarray,
    probe_labels: np.ndarray,
    feature_cfg: FeatureConfig,
    *,
    y_star: int | None = None,
    output: str = "probs",
    standardise: tuple[Any, Any] | None = None,
    batch_size: int = 1000,
    clip: bool = False,
    control_seed: int = 0,
    m10_reference: bool = False,
) -> dict[str, Any]:
    """Every score of method.md for one model seen only through `predict_fn`.

    Args:
      predict_fn: images [B, H, W, K] float32 -> [B, C] probabilities or logits (NumPy-
        convertible). It is called three times per batch (clean, UF, control), with B <=
        batch_size real probes (never padding).
      probes_x01: [P, H, W, K] probe images in [0, 1] pixel space (finite numbers).
      probe_labels: int [P], the probes' labels (for M3 / the M score and the PD scores), in
        [0, C), or -1 for an unlabelled probe.
      feature_cfg: the UF to look for and where it goes (also places the control patches).
      y_star: the canary's label (an int in [0, C)) if known; None leaves the label-aware scores
        (M3, M_score, their tests, PD_M) NaN. The label-free scores (M2, M6, M12-M15, PD_max)
        need no label.
      output: "probs" or "logits", what predict_fn returns.
      standardise: None (the callable gets [0, 1] images and does its own preprocessing) or
        (mean [K], std [K]) (or anything that broadcasts to [H, W, K]; std > 0): it gets
        (x - mean) / std.
      batch_size: probes per call (an int >= 1).
      clip: Keras' clipped KL (the reference's numbers) instead of log space.
      control_seed: seed of the control bitmaps in [0, 2**32) (`ProbeConfig.control_seed`; use
        the same one to compare with a memjax population).
      m10_reference: also return M10_reference (method.md's SciPy-axis-0 variant, as
        `score.m10_reference` does for a population): it keeps the UF and control outputs
        [P, C] and makes a second pass over them once the column sums over all probes are
        known (predict_fn is not called again).
    Returns:
      `memjax.score.finalize`'s scores of this model as Python floats / ints, the per-class
      PD_* entries as [C] arrays.
    Raises:
      ValueError: bad arguments, named in the message (probe images outside [0, 1] or not
        finite, labels that are not integer classes, y_star, batch_size, control_seed,
        standardise), or bad outputs of predict_fn (not a numeric [batch, classes] array, wrong
        shape, fewer than 2 or inconsistent classes, invalid probabilities, non-finite logits).
        FeatureError: the feature does not fit the probes.
    """
    if output not in OUTPUTS:
        raise ValueError(f"audit_predict_fn: output={output!r}; use one of {OUTPUTS}")
    if y_star is not None:
        _check_int("y_star", y_star, 0)
    batch_size = _check_int("batch_size", batch_size, 1)
    control_seed = _check_int("control_seed", control_seed, 0, SEED_MAX)
    x_all, labels = _check_probes(probes_x01, probe_labels)
    num_probes, image_shape = x_all.shape[0], tuple(x_all.shape[1:])
    prep = _standardiser(standardise, image_shape)
    overlay = render_feature(feature_cfg, image_shape)
    ctrl = control_bitmaps(num_probes, feature_bitmap(feature_cfg).shape, control_seed)
    b = min(batch_size, num_probes)
    # Without y*, use a negative label that no probe has (unlabelled probes may carry -1): it
    # selects no probe and no class, so the label-aware scores come out NaN.
    y_used = int(min(labels.min(), 0)) - 1 if y_star is None else int(y_star)
    num_classes = None
    sums: dict[str, np.ndarray] = {}
    per_probe: dict[str, list[np.ndarray]] = {k: [] for k in PER_PROBE_KEYS}
    kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # UF, control logits for M10_ref
    for start in range(0, num_probes, b):
        x = x_all[start:start + b]
        n = x.shape[0]
        x_uf, x_ctrl = _variants(x, overlay, ctrl[start:start + n], feature_cfg)
        logits = [to_logits(predict_fn(prep(v)), output) for v in (x, x_uf, x_ctrl)]
        num_classes = _check_outputs(logits, n, num_classes or logits[0].shape[1], y_star,
                                     int(labels.max()))
        valid = np.arange(b) < n
        s, pp = score_lib.batch_terms(
            *(jnp.asarray(_pad(z, b)) for z in logits), jnp.int32(y_used),
            jnp.asarray(np.pad(labels[start:start + n], (0, b - n))), jnp.asarray(valid),
            clip=clip, num_classes=num_classes)
        for k, v in jax.device_get(s).items():
            sums[k] = sums.get(k, 0.0) + np.asarray(v, np.float64)  # float64 sums on the host
        pp = jax.device_get(pp)
        for k in PER_PROBE_KEYS:
            per_probe[k].append(np.asarray(pp[k])[:n])
        if m10_reference:
            kept.append((_pad(logits[1], b), _pad(logits[2], b), valid))
    res = score_lib.finalize(
        {k: v[None] for k, v in sums.items()},
        {k: np.concatenate(v)[None] for k, v in per_probe.items()},
        np.array([y_used]), labels, num_classes)
    if m10_reference:  # second pass over the kept outputs, with the column sums of all probes
        col_uf, col_ctrl = (jnp.asarray(sums[k].astype(np.float32)) for k in ("p_uf_sum",
                                                                              "p_ctrl_sum"))
        js = sum(np.asarray(score_lib.m10_reference_terms(jnp.asarray(zu), jnp.asarray(zc),
                                                          col_uf, col_ctrl, jnp.asarray(v)),
                            np.float64) for zu, zc, v in kept)
        res["M10_reference"] = score_lib.m10_reference_from_sums(js[None])
    return {k: (v[0].item() if v.ndim == 1 else v[0]) for k, v in res.items()}


def flax_predict_fn(model: Any, variables: dict) -> Callable[[np.ndarray], np.ndarray]:
    """A memjax / Flax model with fixed weights as a NumPy callable returning logits (eval mode).

    Args:
      model: a Flax module with `__call__(x, *, train)` (e.g. `memjax.models.build_model`).
      variables: ONE model's variables (no models axis).
    """
    apply = jax.jit(lambda x: model.apply(variables, x, train=False))
    return lambda x: np.asarray(apply(jnp.asarray(x, jnp.float32)))

