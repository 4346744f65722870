"""The toy experiment end to end: per sigma, train the runs in vmapped chunks, test each run
for memorisation, and summarise the fraction of memorising runs."""
from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from memjax.toy.config import ToyConfig
from memjax.toy.data import make_toy_data
from memjax.toy.stats import fraction_ci, memorisation_tests
from memjax.toy.train import TrainFn, make_population_fn, run_keys, train_run
from memjax.types import Array, PRNGKey

RUN_COLUMNS = ("sigma", "run", "score", "t", "p", "memorises", "finite", "train_loss",
               "train_accuracy", "canary_logit1")
SUMMARY_COLUMNS = ("sigma", "n_runs", "n_memorising", "fraction", "lo", "hi", "mean_score",
                   "mean_train_accuracy", "n_nonfinite")


@dataclass(frozen=True)
class ToyResult:
    """What `run_toy` measured.

    Attributes:
      config: the experiment.
      runs: one row per (sigma, run): `RUN_COLUMNS` (score, t, p of the memorisation test,
        memorises = p < alpha, finite = all logits finite, training loss / accuracy after the
        last epoch, class-1 logit of the canary).
      summary: one row per sigma: `SUMMARY_COLUMNS` (fraction = n_memorising / n_runs with its
        Clopper-Pearson 95% interval [lo, hi]).
    """

    config: ToyConfig
    runs: pd.DataFrame
    summary: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: {"config": fields, "runs": column lists, "summary": records}."""
        return {
            "config": dataclasses.asdict(self.config),
            "runs": {c: self.runs[c].tolist() for c in self.runs.columns},
            "summary": [
                {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
                for row in self.summary.to_dict(orient="records")
            ],
        }


def _chunks(keys: PRNGKey, size: int) -> list[tuple[PRNGKey, int]]:
    """Split [M] keys into chunks of `size`, the last padded by repeating its final key so
    every chunk has one shape (one compile). Returns (chunk [size], number of real runs)."""
    out = []
    for start in range(0, keys.shape[0], size):
        chunk = keys[start:start + size]
        n = chunk.shape[0]
        if n < size:
            chunk = jnp.concatenate([chunk, jnp.repeat(chunk[-1:], size - n, axis=0)])
        out.append((chunk, n))
    return out


def _summarise(cfg: ToyConfig, runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for sigma, group in runs.groupby("sigma", sort=False):
        k, n = int(group["memorises"].sum()), len(group)
        fraction, lo, hi = fraction_ci(k, n)
        rows.append({
            "sigma": sigma, "n_runs": n, "n_memorising": k, "fraction": fraction, "lo": lo,
            "hi": hi, "mean_score": float(group["score"].mean()),
            "mean_train_accuracy": float(group["train_accuracy"].mean()),
            "n_nonfinite": int((~group["finite"]).sum()),
        })
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def _run(
    cfg: ToyConfig,
    population: Callable[[PRNGKey, dict[str, Array]], dict[str, Array]],
    progress: bool,
    desc: str = "toy",
) -> ToyResult:
    size = cfg.runs_per_call
    n_chunks = math.ceil(cfg.n_runs / size)
    frames = []
    with tqdm(total=len(cfg.sigmas) * n_chunks, disable=not progress, desc=desc) as bar:
        for sigma_index, sigma in enumerate(cfg.sigmas):
            bar.set_postfix(sigma=sigma)
            data = make_toy_data(cfg, sigma)
            arrays = {k: jnp.asarray(data[k]) for k in ("x", "y", "clean", "unique")}
            parts = []
            for chunk, n in _chunks(run_keys(cfg, sigma_index), size):
                out = jax.device_get(population(chunk, arrays))
                parts.append({k: np.asarray(v)[:n] for k, v in out.items()})
                bar.update(1)
            out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            tests = memorisation_tests(out["logit1_unique"], out["logit1_clean"], cfg.alpha)
            if not tests["finite"].all():
                warnings.warn(
                    f"toy experiment, sigma={sigma}: runs {np.flatnonzero(~tests['finite'])} "
                    "have non-finite logits; they are counted as not memorising.",
                    RuntimeWarning, stacklevel=3,
                )
            frames.append(pd.DataFrame({
                "sigma": np.full(cfg.n_runs, sigma), "run": np.arange(cfg.n_runs),
                **tests,
                **{k: out[k].astype(np.float64)
                   for k in ("train_loss", "train_accuracy", "canary_logit1")},
            }, columns=list(RUN_COLUMNS)))
    runs = pd.concat(frames, ignore_index=True)
    return ToyResult(config=cfg, runs=runs, summary=_summarise(cfg, runs))


def run_toy(cfg: ToyConfig, progress: bool = True, train_fn: TrainFn = train_run) -> ToyResult:
    """Run the toy "rare concept" experiment (method.md).

    For each sigma: draw the data (`make_toy_data`), train cfg.n_runs runs with
    ``jax.jit(jax.vmap(train_fn))`` in chunks of cfg.runs_per_call (the last chunk padded, so the
    whole experiment compiles once), then test each run (`memorisation_tests`) and summarise.

    Args:
      cfg: the experiment (validated here).
      progress: show a progress bar over sigmas x chunks (host side only).
      train_fn: the per-run trainer (`train_run`; another one to study, e.g., regularisation).

    Returns:
      A `ToyResult`.

    Raises:
      ConfigError: if cfg is invalid.
    """
    cfg.validate()
    return _run(cfg, make_population_fn(cfg, train_fn), progress)


def redraw_sensitivity(
    cfg: ToyConfig,
    data_seeds: Sequence[int] = (0, 1, 2, 3, 4),
    progress: bool = True,
    train_fn: TrainFn = train_run,
) -> pd.DataFrame:
    """How much the fraction of memorising runs moves when the moons and z are redrawn.

    Runs the experiment once per data seed (the init keys stay the same, see
    `memjax.toy.train`), compiling once for all seeds.

    Returns:
      A long table, one row per (data_seed, sigma), columns "data_seed" and `SUMMARY_COLUMNS`;
      ``df.pivot(index="data_seed", columns="sigma", values="fraction")`` gives the spread.
    """
    cfg.validate()
    population = make_population_fn(cfg, train_fn)
    frames = []
    for seed in data_seeds:
        seeded = dataclasses.replace(cfg, data_seed=int(seed)).validate()
        summary = _run(seeded, population, progress, desc=f"toy data_seed={seed}").summary
        frames.append(summary.assign(data_seed=int(seed)))
    df = pd.concat(frames, ignore_index=True)
    return df[["data_seed", *SUMMARY_COLUMNS]]
