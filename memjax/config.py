"""Typed, frozen configuration of a memjax study.

One `StudyConfig` holds everything a study needs: data, unique feature, model, training,
population (the models axis), probes and scores. Configs are immutable; overrides go through
`dataclasses.replace` (or `override` below for dotted ``section.field=value`` strings from the
command line). Derived values are properties, never written back. Every field is validated by
`validate()` before anything is compiled.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from memjax.errors import ConfigError

DATASETS = ("mnist", "fashion_mnist", "cifar10")
SOURCES = ("auto", "local", "embedded", "tfds")


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, from where, and how much of it.

    Attributes:
      dataset: one of `DATASETS`.
      source: "auto" (local folder, then the embedded subset, then TFDS), "local", "embedded"
        or "tfds".
      data_dir: folder of standard files (``<data_dir>/<dataset>/...`` or the files directly);
        None means the ``MEMJAX_DATA_DIR`` environment variable, if set.
      n_train: use the first n training images (None: all).
      n_val: use the first n test images as the validation set (None: all).
    """

    dataset: str = "mnist"
    source: str = "auto"
    data_dir: str | None = None
    n_train: int | None = None
    n_val: int | None = None


@dataclass(frozen=True)
class FeatureConfig:
    """The unique feature (UF) and where it goes.

    Attributes:
      kind: "text" (5x5 capital letters, e.g. "A" or a name), "square" (solid square of side
        `size` and pixel value `value`) or "bitmap" (the user's `bitmap`, values in [0, 1]).
      text: the letters for kind "text" (A-Z).
      size: side of the square for kind "square".
      value: pixel value of the square, in [0, 1].
      bitmap: rows of pixel values for kind "bitmap".
      offset: (row, column) of the feature's top-left pixel in the image.
      scale: nearest-neighbour upscale factor (1: none).
      spacing: blank columns between letters of a text.
      transparent: write only the feature's ink (non-zero) pixels instead of overwriting all.
    """

    kind: str = "text"
    text: str = "A"
    size: int = 5
    value: float = 1.0
    bitmap: tuple[tuple[float, ...], ...] | None = None
    offset: tuple[int, int] = (1, 1)
    scale: int = 1
    spacing: int = 1
    transparent: bool = False


@dataclass(frozen=True)
class ModelConfig:
    """Architecture by registry name (see `memjax.models.MODELS`)."""

    name: str = "mlp"


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and training loop.

    Attributes:
      optimizer: "adam", "adamw" or "sgd" (optax).
      learning_rate: step size (Adam 3e-4 as the reference).
      b1, b2, eps: Adam's parameters (eps 1e-7 as Keras).
      momentum: SGD momentum (0: plain SGD).
      weight_decay: decoupled weight decay (adamw) or L2 added to SGD updates.
      batch_size: examples per step; the last partial batch of an epoch is kept and masked,
        as Keras does, unless `drop_remainder`.
      epochs: the epoch limit.
      early_stopping: stop each model when its validation loss has not improved for `patience`
        epochs, and restore its best weights.
      data_order: "shuffled" (a new permutation per epoch from the model's data-order seed) or
        "fixed" (the reference's unshuffled order, the same for every model).
      dp_clip_norm: DP-SGD: clip each example's gradient to this L2 norm (None: no DP).
      dp_noise_multiplier: DP-SGD: Gaussian noise of std dp_noise_multiplier * dp_clip_norm
        added to the sum of clipped gradients, before dividing by the batch size.
      dp_delta: the delta of the (epsilon, delta) reported by the accountant (None: 1/N).
    """

    optimizer: str = "adam"
    learning_rate: float = 3e-4
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-7
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 100
    early_stopping: bool = True
    patience: int = 10
    data_order: str = "shuffled"
    drop_remainder: bool = False
    dp_clip_norm: float | None = None
    dp_noise_multiplier: float = 0.0
    dp_delta: float | None = None

    @property
    def dp(self) -> bool:
        """Whether training is DP-SGD."""
        return self.dp_clip_norm is not None


@dataclass(frozen=True)
class CanaryConfig:
    """Which training images carry the UF (one per UF model).

    Attributes:
      method: "reference" (NumPy legacy ``np.random.seed(seed); randint(0, n_train, k)``),
        "label" (k images of class `label`, from a Generator seeded with `seed`) or "indices".
      k: number of canary placements.
      seed: seed of the choice (123 as the reference).
      label: class for method "label".
      indices: explicit training indices for method "indices".
    """

    method: str = "reference"
    k: int = 1
    seed: int = 123
    label: int | None = None
    indices: tuple[int, ...] = ()


@dataclass(frozen=True)
class PopulationConfig:
    """The models axis: seeds x canary placements x conditions.

    Attributes:
      n_seeds: number of seeds. With seed_mode "same", seed s is both the init seed and the
        data-order seed of a model; "init" varies the init seed only (order seed 0); "order"
        varies the order seed only (init seed 0); "crossed" trains every pair of
        `n_seeds` init seeds x `n_order_seeds` order seeds.
      n_order_seeds: order seeds for seed_mode "crossed".
      conditions: "uf" (the canary carries the UF) and/or "baseline" (no UF anywhere; scored
        with the label of the same canary placement).
      root_seed: the root of the PRNG key tree (see docs/design.md).
      strategy: execution over the models axis: "auto", "vmap" (all models at once),
        "chunks" (chunks of `chunk_size`) or "sequential" (one at a time).
      chunk_size: models per chunk for strategy "chunks" (and the cap for "auto").
      lr_multipliers: optional per-model learning-rate multipliers (length = population size).
      shard: spread each chunk's models over all devices (of all processes) along a 1-D mesh.
    """

    n_seeds: int = 16
    seed_mode: str = "same"
    n_order_seeds: int = 1
    canary: CanaryConfig = field(default_factory=CanaryConfig)
    conditions: tuple[str, ...] = ("uf", "baseline")
    root_seed: int = 0
    strategy: str = "auto"
    chunk_size: int | None = None
    lr_multipliers: tuple[float, ...] = ()
    shard: bool = False


@dataclass(frozen=True)
class ProbeConfig:
    """Out-of-distribution probe images.

    Attributes:
      n: number of probes (None: all that the source has; the reference used 50,000).
      source: data source for the probe dataset (as `DataConfig.source`).
      control_seed: seed of the random control patches (one Bernoulli(1/2) bitmap per probe).
      standardise: standardise probes like training data (False reproduces the reference's
        quirk for 1-channel probes).
      batch_size: probes per scoring batch.
    """

    n: int | None = None
    source: str = "auto"
    control_seed: int = 0
    standardise: bool = True
    batch_size: int = 1000


@dataclass(frozen=True)
class ScoreConfig:
    """Scoring options.

    Attributes:
      clip: compute KL as Keras does (probabilities clipped to [1e-7, 1]) instead of in log
        space from logits.
      keep_per_probe: save per-model, per-probe values (M3 KL vectors, probability
        differences) in arrays.npz.
      m10_reference: also compute M10_reference (a second pass over the probes).
      n_boot: bootstrap resamples for the population statistics.
      trajectory_probes: score M2, M_score and PD_M on the first n probes after every epoch,
        inside the training program (0: off).
    """

    clip: bool = False
    keep_per_probe: bool = False
    m10_reference: bool = False
    n_boot: int = 2000
    trajectory_probes: int = 0


@dataclass(frozen=True)
class StudyConfig:
    """A whole study. `name` is the preset it came from."""

    name: str = "custom"
    data: DataConfig = field(default_factory=DataConfig)
    feature: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    population: PopulationConfig = field(default_factory=PopulationConfig)
    probes: ProbeConfig = field(default_factory=ProbeConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)


# --------------------------------------------------------------------------------------------
# Serialisation and overrides


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type, d: dict[str, Any]) -> Any:
    """Rebuilds a config dataclass of type `cls` from `to_dict`'s output (data only).

    Raises:
      ConfigError: on an unknown field.
    """
    if not isinstance(d, dict):
        raise ConfigError(f"{cls.__name__}: expected a mapping, got {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in d.items():
        if key not in fields:
            raise ConfigError(f"{cls.__name__} has no field {key!r}; fields: {sorted(fields)}")
        kwargs[key] = _coerce(cls, fields[key], value)
    return cls(**kwargs)


def _field_type(cls: type, f: dataclasses.Field) -> Any:
    import typing

    return typing.get_type_hints(cls)[f.name]


def _coerce(cls: type, f: dataclasses.Field, value: Any) -> Any:
    """Converts JSON values to the field's declared type (tuples, nested dataclasses)."""
    tp = _field_type(cls, f)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value)
    return _coerce_type(tp, value, f"{cls.__name__}.{f.name}")


def _coerce_type(tp: Any, value: Any, where: str) -> Any:
    import types
    import typing

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce_type(a, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: cannot use {value!r}: " + "; ".join(errors))
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce_type(args[0], v, where) for v in value)
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce_type(a, v, where) for a, v in zip(args, value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()
        ):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def override(cfg: StudyConfig, assignments: list[str] | tuple[str, ...]) -> StudyConfig:
    """Applies ``section.field=value`` overrides (value parsed as JSON, else as a string).

    Example: ``override(cfg, ["train.epochs=5", "population.conditions=[\"uf\"]"])``.

    Raises:
      ConfigError: on a malformed assignment, unknown field or a value of the wrong type.
    """
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected section.field=value")
        path, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        cfg = _set_path(cfg, path.strip().split("."), value, path)
    return cfg


def _set_path(obj: Any, parts: list[str], value: Any, full: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    head = parts[0]
    if head not in fields:
        raise ConfigError(
            f"override {full!r}: {type(obj).__name__} has no field {head!r}; fields: {sorted(fields)}"
        )
    if len(parts) == 1:
        new = _coerce(type(obj), fields[head], value)
    else:
        child = getattr(obj, head)
        if not dataclasses.is_dataclass(child):
            raise ConfigError(f"override {full!r}: {head!r} is not a section")
        new = _set_path(child, parts[1:], value, full)
    return dataclasses.replace(obj, **{head: new})


# --------------------------------------------------------------------------------------------
# Validation (before any compilation)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _f32_positive(x: float) -> bool:
    """Positive and finite once cast to float32 (what reaches XLA)."""
    import numpy as np

    with np.errstate(over="ignore", under="ignore"):
        v = np.float32(x)
    return bool(np.isfinite(v) and v > 0)


SEED_MAX = 2**32  # NumPy's legacy seeding and uint32 fold_in both take seeds in [0, 2^32)
MAX_MODELS = 1_000_000  # a population beyond this is a typo, not a study
MAX_EPOCHS = 100_000
MAX_BOOT = 10_000_000
MAX_SPACING = 1_000


def _seed(x: int) -> bool:
    return isinstance(x, int) and 0 <= x < SEED_MAX


def n_models(cfg: "StudyConfig") -> int:
    """The population size of a config (before the data are loaded)."""
    p = cfg.population
    n_pairs = p.n_seeds * (p.n_order_seeds if p.seed_mode == "crossed" else 1)
    k = len(p.canary.indices) if p.canary.method == "indices" else p.canary.k
    return n_pairs * k * len(p.conditions)


def validate(cfg: StudyConfig) -> StudyConfig:
    """Checks every field of a study config; returns it unchanged.

    Checks that need the data (canary indices in range, the feature fitting the image) are done
    by `memjax.population.build_population`, still before compilation.

    Raises:
      ConfigError: naming the field, the bad value and what is allowed.
    """
    from memjax.models import MODELS

    d, f, m, t, p, pr, s = (
        cfg.data, cfg.feature, cfg.model, cfg.train, cfg.population, cfg.probes, cfg.score,
    )
    _check(d.dataset in DATASETS, f"data.dataset={d.dataset!r}: unknown; choose one of {DATASETS}")
    _check(d.source in SOURCES, f"data.source={d.source!r}: unknown; choose one of {SOURCES}")
    for name in ("n_train", "n_val"):
        v = getattr(d, name)
        _check(v is None or v >= 1, f"data.{name}={v!r}: must be a positive integer or null")
    _check(f.kind in ("text", "square", "bitmap"), f"feature.kind={f.kind!r}: use text, square or bitmap")
    if f.kind == "text":
        _check(
            len(f.text) > 0 and all("A" <= ch <= "Z" for ch in f.text.upper()),
            f"feature.text={f.text!r}: use letters A-Z",
        )
    if f.kind == "square":
        _check(f.size >= 1, f"feature.size={f.size}: must be >= 1")
    if f.kind == "bitmap":
        _check(f.bitmap is not None and len(f.bitmap) > 0, "feature.bitmap: required for kind bitmap")
    _check(_finite(f.value) and 0.0 <= f.value <= 1.0, f"feature.value={f.value}: must be in [0, 1]")
    _check(f.scale >= 1, f"feature.scale={f.scale}: must be >= 1")
    _check(0 <= f.spacing <= MAX_SPACING, f"feature.spacing={f.spacing}: must be in [0, {MAX_SPACING}]")
    _check(min(f.offset) >= 0, f"feature.offset={f.offset}: must be non-negative")
    _check(m.name in MODELS, f"model.name={m.name!r}: unknown; choose one of {sorted(MODELS)}")
    _check(t.optimizer in ("adam", "adamw", "sgd"), f"train.optimizer={t.optimizer!r}: use adam, adamw or sgd")
    _check(_finite(t.learning_rate) and _f32_positive(t.learning_rate),
           f"train.learning_rate={t.learning_rate}: must be > 0 and finite in float32")
    _check(_finite(t.b1) and 0 <= t.b1 < 1, f"train.b1={t.b1}: must be in [0, 1)")
    _check(_finite(t.b2) and 0 <= t.b2 < 1, f"train.b2={t.b2}: must be in [0, 1)")
    _check(_finite(t.eps) and t.eps > 0, f"train.eps={t.eps}: must be > 0")
    _check(_finite(t.momentum) and 0 <= t.momentum < 1, f"train.momentum={t.momentum}: must be in [0, 1)")
    _check(_finite(t.weight_decay) and t.weight_decay >= 0, f"train.weight_decay={t.weight_decay}: must be >= 0")
    _check(t.batch_size >= 1, f"train.batch_size={t.batch_size}: must be >= 1")
    _check(1 <= t.epochs <= MAX_EPOCHS, f"train.epochs={t.epochs}: must be in [1, {MAX_EPOCHS}]")
    _check(t.patience >= 1, f"train.patience={t.patience}: must be >= 1")
    _check(t.data_order in ("shuffled", "fixed"), f"train.data_order={t.data_order!r}: use shuffled or fixed")
    _check(t.dp_clip_norm is None or (_finite(t.dp_clip_norm) and t.dp_clip_norm > 0),
           f"train.dp_clip_norm={t.dp_clip_norm}: must be > 0 or null")
    from memjax.accounting import MAX_NOISE, MIN_NOISE  # the accountant's usable range

    _check(_finite(t.dp_noise_multiplier) and (
        t.dp_noise_multiplier == 0 or MIN_NOISE <= t.dp_noise_multiplier <= MAX_NOISE),
        f"train.dp_noise_multiplier={t.dp_noise_multiplier}: must be 0 or in "
        f"[{MIN_NOISE:g}, {MAX_NOISE:g}] (the accountant's range)")
    _check(t.dp_delta is None or (_finite(t.dp_delta) and 0 < t.dp_delta < 1),
           f"train.dp_delta={t.dp_delta}: must be in (0, 1) or null")
    if t.dp:
        from memjax.models import uses_batch_stats

        _check(not uses_batch_stats(m.name),
               f"model.name={m.name!r} uses batch norm, whose statistics mix examples: DP-SGD "
               "cannot bound one example's influence; choose a model without batch norm")
    _check(1 <= p.n_seeds <= MAX_MODELS, f"population.n_seeds={p.n_seeds}: must be in [1, {MAX_MODELS}]")
    _check(_seed(p.root_seed), f"population.root_seed={p.root_seed}: must be in [0, 2**32)")
    _check(_seed(p.canary.seed), f"population.canary.seed={p.canary.seed}: must be in [0, 2**32)")
    _check(_seed(pr.control_seed), f"probes.control_seed={pr.control_seed}: must be in [0, 2**32)")
    _check(p.seed_mode in ("same", "init", "order", "crossed"),
           f"population.seed_mode={p.seed_mode!r}: use same, init, order or crossed")
    _check(1 <= p.n_order_seeds <= MAX_MODELS,
           f"population.n_order_seeds={p.n_order_seeds}: must be in [1, {MAX_MODELS}]")
    _check(len(p.conditions) >= 1 and set(p.conditions) <= {"uf", "baseline"} and
           len(set(p.conditions)) == len(p.conditions),
           f"population.conditions={p.conditions}: a non-empty subset of ('uf', 'baseline')")
    c = p.canary
    _check(c.method in ("reference", "label", "indices"),
           f"population.canary.method={c.method!r}: use reference, label or indices")
    if c.method == "indices":
        _check(len(c.indices) >= 1, "population.canary.indices: required for method indices")
    else:
        _check(1 <= c.k <= MAX_MODELS, f"population.canary.k={c.k}: must be in [1, {MAX_MODELS}]")
    if c.method == "label":
        _check(c.label is not None and 0 <= c.label, f"population.canary.label={c.label}: required, >= 0")
    _check(p.strategy in ("auto", "vmap", "chunks", "sequential"),
           f"population.strategy={p.strategy!r}: use auto, vmap, chunks or sequential")
    _check(p.chunk_size is None or p.chunk_size >= 1, f"population.chunk_size={p.chunk_size}: must be >= 1")
    if p.strategy == "chunks":
        _check(p.chunk_size is not None, "population.chunk_size: required for strategy chunks")
    _check(all(_finite(x) and _f32_positive(x) and _f32_positive(x * t.learning_rate)
               for x in p.lr_multipliers),
           f"population.lr_multipliers={p.lr_multipliers}: must be positive numbers whose "
           "product with train.learning_rate is positive and finite in float32")
    _check(pr.n is None or pr.n >= 1, f"probes.n={pr.n}: must be >= 1 or null")
    total = n_models(cfg)
    _check(total <= MAX_MODELS, f"population.n_seeds={p.n_seeds}: the population would have "
           f"{total} models (more than {MAX_MODELS}); split it into a sweep")
    _check(pr.source in SOURCES, f"probes.source={pr.source!r}: choose one of {SOURCES}")
    _check(pr.batch_size >= 1, f"probes.batch_size={pr.batch_size}: must be >= 1")
    _check(100 <= s.n_boot <= MAX_BOOT, f"score.n_boot={s.n_boot}: must be in [100, {MAX_BOOT}]")
    _check(s.trajectory_probes >= 0, f"score.trajectory_probes={s.trajectory_probes}: must be >= 0")
    return cfg
