"""The influence study end to end (method.md, "Influence"), written to one directory.

1. A clean run (no feature anywhere) and the TracIn self-influence (SI) of every training image
   (`memjax.influence.run_influence`).
2. The k most ("top") or least ("bottom") influential images: the canaries to place the unique
   feature on (`memjax run ... --set population.canary.indices=[...]` then measures how much is
   memorised there).
3. With `rank_seeds` = S > 0: for each ranked canary and each seed s < S, a model trained with
   the UF at that canary, and the UF image's rank by SI in that run, beside the same image's
   rank in the clean run. `rank_at="study"` ranks the study's own canaries (the paper's
   question: does carrying a unique feature make an image influential?), `"chosen"` the
   canaries of step 2.

Files (data only, atomic writes):
  self_influence.npz  the clean run: si [N], example_index [N], labels [N], epochs [T],
                      losses [E + 1], canaries [k], seed
  uf_ranks.csv        one row per (canary, seed): rank (0 = most influential), percentile,
                      clean_rank, clean_percentile, n_train, checkpoint epochs
  uf_ranks.png        histogram of the UF ranks (with S > 0)
  influence.json      the config, k, which, rank_at, canaries, seconds, versions, PRNG settings
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from memjax import influence as I
from memjax import results as R
from memjax.config import StudyConfig, to_dict
from memjax.errors import ConfigError

SI_FILE, RANKS_CSV, RANKS_PNG, RECORD = ("self_influence.npz", "uf_ranks.csv", "uf_ranks.png",
                                         "influence.json")
RANK_AT = ("chosen", "study")


@dataclass(frozen=True)
class InfluenceStudy:
    """What `run_influence_study` wrote: the chosen canaries (int [k]), the clean run's SI
    (float64 [N]) and the rank table (empty without `rank_seeds`)."""

    path: Path
    canaries: np.ndarray
    clean_si: np.ndarray
    ranks: pd.DataFrame


def _percentile(si: np.ndarray, i: int) -> float:
    return float(100.0 * np.mean(si < si[i]))


def run_influence_study(cfg: StudyConfig, out: str | Path, *, k: int = 1, which: str = "top",
                        rank_seeds: int = 0, rank_at: str = "chosen", batch_size: int = 32,
                        progress: bool = False, prep=None) -> InfluenceStudy:
    """Runs the influence study of `cfg` into `out` (see the module docstring).

    Raises:
      ConfigError: bad k / which / rank_at / rank_seeds, before any training.
    """
    from memjax.influence_plots import plot_influence_ranks
    from memjax.study import environment, prepare

    if rank_at not in RANK_AT:
        raise ConfigError(f"rank_at={rank_at!r}: choose one of {RANK_AT}")
    if rank_seeds < 0:
        raise ConfigError(f"rank_seeds={rank_seeds}: must be >= 0")
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    prep = prep or prepare(cfg)
    n = len(prep.train)
    chosen = I.influence_canaries(cfg, k, which, path=out / SI_FILE, prep=prep,
                                  batch_size=batch_size, progress=progress)
    clean_si = R.read_npz(out / SI_FILE)["si"]
    if rank_at == "study":
        targets = list(dict.fromkeys(int(c) for c in prep.table["canary_index"]))
    else:
        targets = [int(c) for c in chosen]
    rows = []
    for canary in targets if rank_seeds else []:
        for seed in range(rank_seeds):
            r = I.uf_rank_after_training(cfg, canary=canary, seed=seed, prep=prep,
                                         batch_size=batch_size, progress=progress)
            rows.append(dict(canary=canary, canary_label=int(prep.train.labels[canary]),
                             seed=seed, rank=r.rank, percentile=r.percentile,
                             clean_rank=I.rank_of(canary, clean_si),
                             clean_percentile=_percentile(clean_si, canary), n_train=n,
                             epochs=" ".join(map(str, r.epochs))))
    ranks = pd.DataFrame(rows, columns=["canary", "canary_label", "seed", "rank", "percentile",
                                        "clean_rank", "clean_percentile", "n_train", "epochs"])
    R.write_table(out / RANKS_CSV, ranks)
    if len(ranks):
        plot_influence_ranks(ranks["rank"].to_numpy(), n, path=out / RANKS_PNG,
                             title=f"UF image's SI rank, {len(ranks)} runs ({rank_at} canaries)")
    R.write_json(out / RECORD, {
        "config": to_dict(cfg), "k": k, "which": which, "rank_seeds": rank_seeds,
        "rank_at": rank_at, "canaries": [int(c) for c in chosen], "ranked": targets,
        "n_train": n, "seconds": round(time.perf_counter() - t0, 1), **environment()})
    return InfluenceStudy(path=out, canaries=np.asarray(chosen), clean_si=clean_si, ranks=ranks)


def load_influence_study(path: str | Path) -> InfluenceStudy:
    """Reads a directory written by `run_influence_study` (data only)."""
    path = Path(path)
    si = R.read_npz(path / SI_FILE)
    return InfluenceStudy(path=path, canaries=np.asarray(si["canaries"]),
                          clean_si=np.asarray(si["si"]), ranks=pd.read_csv(path / RANKS_CSV))
