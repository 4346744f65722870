"""Configuration of the toy "rare concept" experiment (Scientific Reports 2023; method.md,
section "Toy 'rare concept' experiment").

Preset `ToyConfig()` is the reference experiment: 4 sigmas x 500 runs x 100 full-batch Adam
epochs on 1,001 points. Run it with::

    python -c "from memjax.toy import ToyConfig, run_toy; print(run_toy(ToyConfig()).summary)"

`TOY_TINY` is the same experiment with 8 runs per sigma, for tests and smoke runs (a few seconds).
Overrides go through `dataclasses.replace`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from memjax.argtypes import is_int, is_real
from memjax.config import SEED_MAX, _f32_positive
from memjax.errors import ConfigError


# Runs per call on a CPU when chunk_size is None: with runs mapped (runs_axis), only the
# progress bar's granularity depends on it.
CPU_CHUNK = 25
RUNS_AXES = ("auto", "vmap", "map")
# Upper bounds: far above any real experiment (the reference: 500 runs, 1,000 points, 100
# epochs, widths 128), low enough that a typo (n_runs=1e12) is refused instead of ending in a
# MemoryError or a run that never finishes.
MAX_RUNS = 1_000_000  # as StudyConfig's population size (memjax.config.MAX_MODELS)
MAX_POINTS = 1_000_000  # 1,000 x the reference; activations [n_points, width] of 0.5 GB per run
MAX_EPOCHS = 100_000  # as StudyConfig's train.epochs (memjax.config.MAX_EPOCHS)
MAX_WIDTH = 4_096  # two such layers: 64 MiB of float32 weights per run (x3 with Adam's moments)
MAX_LAYERS = 64


def _on_cpu() -> bool:
    import jax

    return jax.default_backend() == "cpu"


@dataclass(frozen=True)
class ToyConfig:
    """One toy experiment: data, model, training, population and the memorisation test.

    Attributes:
      sigmas: standard deviations of the third coordinate z of the ordinary training points.
      n_points: two-moons points before the canary is appended (the reference: 1,000).
      noise: standard deviation of the moons' Gaussian noise (as sklearn's ``make_moons``).
      data_seed: seeds the one NumPy stream that draws the moons and z (see `make_toy_data`).
      n_runs: independent runs (init seeds) per sigma.
      epochs: full-batch Adam steps (one step per epoch).
      learning_rate: Adam's learning rate (betas 0.9, 0.999, eps 1e-8, as PyTorch's defaults).
      hidden: widths of the hidden ReLU layers; input width 3, output width 2.
      alpha: a run memorises when the one-sided paired t-test gives p < alpha (reference: 0.1).
      root_seed: root of the runs' JAX key tree (see `memjax.toy.train.run_keys`).
      chunk_size: runs per compiled call; None: CPU_CHUNK on a CPU (the progress bar's step;
        with runs_axis "map" the speed does not depend on it), all `n_runs` of a sigma in one
        call on an accelerator. Results are bitwise equal whatever the chunk (tests/test_toy.py).
      runs_axis: how one call runs its runs: "vmap" (batched: fast on accelerators), "map"
        (`jax.lax.map`, one unbatched run after another inside the one compiled program: on
        XLA:CPU 0.095 s per run against 0.105 vmapped in chunks of 4, 0.139 all 500 vmapped,
        and 0.096 for a Python loop over a jitted run; docs/benchmarks.md) or "auto" (map on a
        CPU, vmap elsewhere). Bitwise equal either way.
    """

    sigmas: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5)
    n_points: int = 1000
    noise: float = 0.1
    data_seed: int = 0
    n_runs: int = 500
    epochs: int = 100
    learning_rate: float = 1e-3
    hidden: tuple[int, ...] = (32, 128, 128)
    alpha: float = 0.1
    root_seed: int = 0
    chunk_size: int | None = None
    runs_axis: str = "auto"

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Widths of every layer, input to output: (3, *hidden, 2)."""
        return (3, *self.hidden, 2)

    @property
    def runs_per_call(self) -> int:
        """Runs in one compiled call: every chunk is padded to this size so it compiles once."""
        if self.chunk_size is not None:
            return min(self.chunk_size, self.n_runs)
        if not _on_cpu():
            return self.n_runs
        # Equal chunks of at most CPU_CHUNK: the last chunk's padding costs as much as real
        # runs when they are mapped (26 runs: 2 x 13, not 2 x 25).
        return math.ceil(self.n_runs / math.ceil(self.n_runs / CPU_CHUNK))

    @property
    def map_runs(self) -> bool:
        """True when a call runs its runs one after another (`runs_axis`)."""
        return self.runs_axis == "map" or (self.runs_axis == "auto" and _on_cpu())

    def validate(self) -> ToyConfig:
        """Check every field; returns self so calls chain.

        Rules: sigmas a non-empty list of finite numbers >= 0; n_points an integer in
        [2, MAX_POINTS]; noise finite and >= 0; n_runs in [1, MAX_RUNS] and epochs in
        [1, MAX_EPOCHS], integers; learning_rate finite and > 0 once cast to float32 (what
        reaches XLA: 1e-60 would be 0 and train nothing); hidden 1 to MAX_LAYERS integer widths
        in [1, MAX_WIDTH]; alpha in (0, 1); chunk_size None or an integer >= 1; runs_axis one
        of RUNS_AXES; data_seed and root_seed integers in [0, 2**32) (NumPy's seeding and the
        JAX key take no more).

        Raises:
          ConfigError: naming the field at fault and the values it accepts.
        """
        def real(x) -> bool:
            return is_real(x) and math.isfinite(x)

        def integer(name: str, lo: int, hi: int) -> None:
            v = getattr(self, name)
            if not is_int(v, lo, hi):
                raise ConfigError(f"ToyConfig.{name} is {v!r}; it must be an integer in "
                                  f"[{lo}, {hi}].")

        if not isinstance(self.sigmas, (tuple, list)) or not self.sigmas:
            raise ConfigError("ToyConfig.sigmas is empty; give at least one sigma, e.g. (0.0,).")
        for s in self.sigmas:
            if not (real(s) and s >= 0):
                raise ConfigError(f"ToyConfig.sigmas holds {s!r}; sigmas are finite and >= 0.")
        # The canary is the class-1 point at position n_points // 4 among the n_points -
        # n_points // 2 class-1 points, which exists for every n_points >= 2.
        integer("n_points", 2, MAX_POINTS)
        if not (real(self.noise) and self.noise >= 0):
            raise ConfigError(f"ToyConfig.noise is {self.noise!r}; it must be finite and >= 0.")
        integer("n_runs", 1, MAX_RUNS)
        integer("epochs", 1, MAX_EPOCHS)
        if not (real(self.learning_rate) and _f32_positive(self.learning_rate)):
            raise ConfigError(f"ToyConfig.learning_rate is {self.learning_rate!r}; it must be > 0 "
                              "and finite in float32 (1e-60 would be 0 there).")
        if (not isinstance(self.hidden, (tuple, list)) or not 1 <= len(self.hidden) <= MAX_LAYERS
                or not all(is_int(h, 1, MAX_WIDTH) for h in self.hidden)):
            raise ConfigError(f"ToyConfig.hidden is {self.hidden!r}; give 1 to {MAX_LAYERS} "
                              f"integer widths in [1, {MAX_WIDTH}].")
        if not (real(self.alpha) and 0 < self.alpha < 1):
            raise ConfigError(f"ToyConfig.alpha is {self.alpha!r}; it must lie in (0, 1).")
        if self.chunk_size is not None and (
                not is_int(self.chunk_size, 1)):
            raise ConfigError(f"ToyConfig.chunk_size is {self.chunk_size!r}; use an integer >= 1 "
                              "or None.")
        if self.runs_axis not in RUNS_AXES:
            raise ConfigError(f"ToyConfig.runs_axis is {self.runs_axis!r}; use one of {RUNS_AXES}.")
        for name in ("data_seed", "root_seed"):
            integer(name, 0, SEED_MAX - 1)
        return self


TOY_REFERENCE = ToyConfig()
"""The reference experiment: 500 runs per sigma (see the module docstring for the command)."""

TOY_TINY = ToyConfig(n_runs=8)
"""Eight runs per sigma: a smoke test of the whole pipeline in a few seconds on a CPU."""
