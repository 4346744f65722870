"""The influence study end to end (method.md, "Influence"), written to one directory.

1. A clean run (no feature anywhere) and the TracIn self-influence (SI) of every training image
   (`memjax.influence.run_influence`).
2. The k most ("top") or least ("bottom") influential images: the canaries to place the unique
   feature on (`memjax run ... --set population.canary.indices=[...]` then measures how much is
   memorised there).
3. With `rank_seeds` = S > 0: for each seed s < S, a clean run of that seed, and for each
   ranked canary a model of the same seed trained with the UF at that canary; the UF image's
   rank by SI in the UF run beside the same image's rank in the clean run of the same seed
   (same init and data order: the pair differs only by the feature's pixels).
   `rank_at="study"` ranks the study's own canaries (the paper's question: does carrying a
   unique feature make an image influential?), `"chosen"` the canaries of step 2.
   `summarise_ranks` tests, per canary, whether the UF moves the image up (one-sided
   Wilcoxon signed-rank on the percentile change over seeds).

Files (data only, atomic writes):
  self_influence.npz  the clean run: si [N], example_index [N], labels [N], epochs [T],
                      losses [E + 1], canaries [k], seed
  uf_ranks.csv        one row per (canary, seed): rank (0 = most influential), percentile,
                      clean_rank, clean_percentile (same seed, no feature), n_train, epochs
  uf_ranks_summary.csv  `summarise_ranks` of it
  ranks.npz           seeds [S], clean_si [S, N] per seed, uf_si [R, N] per row of uf_ranks.csv
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
from memjax.argtypes import is_int
from memjax.config import StudyConfig, to_dict
from memjax.errors import ConfigError

SI_FILE, RANKS_CSV, RANKS_PNG, RECORD = ("self_influence.npz", "uf_ranks.csv", "uf_ranks.png",
                                         "influence.json")
SUMMARY_CSV, RANKS_NPZ = "uf_ranks_summary.csv", "ranks.npz"
RANK_AT = ("chosen", "study")


@dataclass(frozen=True)
class InfluenceStudy:
    """What `run_influence_study` wrote: the chosen canaries (int [k]), the clean run's SI
    (float64 [N]) and the rank table (empty without `rank_seeds`)."""

    path: Path
    canaries: np.ndarray
    clean_si: np.ndarray
    ranks: pd.DataFrame


def run_influence_study(cfg: StudyConfig, out: str | Path, *, k: int = 1, which: str = "top",
                        rank_seeds: int = 0, rank_at: str = "chosen", batch_size: int = 32,
                        progress: bool = False, prep=None) -> InfluenceStudy:
    """Runs the influence study of `cfg` into `out` (see the module docstring).

    Raises:
      ConfigError: bad k / which / rank_at / rank_seeds / batch_size, or an `out` that is
        not a folder, before anything is trained or written.
    """
    from memjax.influence_plots import plot_influence_ranks
    from memjax.study import check_workdir, environment, prepare

    if rank_at not in RANK_AT:
        raise ConfigError(f"rank_at={rank_at!r}: choose one of {RANK_AT}")
    if rank_seeds < 0:
        raise ConfigError(f"rank_seeds={rank_seeds}: must be >= 0")
    if not is_int(batch_size, 1):
        raise ConfigError(f"batch_size={batch_size!r}: must be an integer >= 1")
    t0 = time.perf_counter()
    out = check_workdir(out)
    prep = prep or prepare(cfg)
    n = len(prep.train)
    I.canaries_from_si(np.zeros(n), k, which)  # check k and which before training
    out.mkdir(parents=True, exist_ok=True)
    clean = I.run_influence(cfg, seed=0, prep=prep, batch_size=batch_size, progress=progress)
    chosen = I.canaries_from_si(clean.si, k, which)
    I.save_clean_si(out / SI_FILE, clean, prep, chosen, seed=0)
    clean_si = clean.si
    if rank_at == "study":
        targets = list(dict.fromkeys(int(c) for c in prep.table["canary_index"]))
    else:
        targets = [int(c) for c in chosen]
    rows, clean_by_seed, uf_si = [], [], []
    for seed in range(rank_seeds):
        clean = clean_si if seed == 0 else I.run_influence(
            cfg, seed=seed, prep=prep, batch_size=batch_size, progress=progress).si
        clean_by_seed.append(clean)
        for canary in targets:
            r = I.uf_rank_after_training(cfg, canary=canary, seed=seed, prep=prep,
                                         batch_size=batch_size, progress=progress)
            uf_si.append(r.si)
            rows.append(dict(canary=canary, canary_label=int(prep.train.labels[canary]),
                             seed=seed, rank=r.rank, percentile=r.percentile,
                             clean_rank=I.rank_of(canary, clean),
                             clean_percentile=I.percentile_of(canary, clean), n_train=n,
                             epochs=" ".join(map(str, r.epochs))))
    ranks = pd.DataFrame(rows, columns=["canary", "canary_label", "seed", "rank", "percentile",
                                        "clean_rank", "clean_percentile", "n_train", "epochs"])
    ranks = ranks.sort_values(["canary", "seed"], kind="stable").reset_index(drop=True)
    R.write_table(out / RANKS_CSV, ranks)
    R.write_table(out / SUMMARY_CSV, summarise_ranks(ranks))
    R.write_npz(out / RANKS_NPZ, {
        "seeds": np.arange(rank_seeds),
        "clean_si": np.stack(clean_by_seed) if clean_by_seed else np.zeros((0, n)),
        "uf_si": np.stack(uf_si) if uf_si else np.zeros((0, n))})
    if len(ranks):
        plot_influence_ranks(ranks["rank"].to_numpy(), n, path=out / RANKS_PNG,
                             title=f"UF image's SI rank, {len(ranks)} runs ({rank_at} canaries)")
    R.write_json(out / RECORD, {
        "config": to_dict(cfg), "k": k, "which": which, "rank_seeds": rank_seeds,
        "rank_at": rank_at, "canaries": [int(c) for c in chosen], "ranked": targets,
        "n_train": n, "seconds": round(time.perf_counter() - t0, 1), **environment()})
    return InfluenceStudy(path=out, canaries=np.asarray(chosen), clean_si=clean_si, ranks=ranks)


def summarise_ranks(ranks: pd.DataFrame) -> pd.DataFrame:
    """Per canary: how far the unique feature moves its image up the SI ranking.

    Returns one row per canary: runs, median rank with and without the feature (same seeds),
    the median percentile change (positive: more influential with the feature), the share of
    seeds where it rose, and the one-sided Wilcoxon signed-rank p of "the UF raises the
    percentile" (NaN with no change at all).
    """
    from memjax.stats import paired_compare

    rows = []
    for canary, g in ranks.groupby("canary", sort=False):
        up = paired_compare(g["percentile"].to_numpy(), g["clean_percentile"].to_numpy(),
                            n_boot=1)
        change = (g["percentile"] - g["clean_percentile"]).to_numpy(np.float64)
        rows.append(dict(canary=int(canary), canary_label=int(g["canary_label"].iloc[0]),
                         runs=len(g), median_rank=float(g["rank"].median()),
                         median_clean_rank=float(g["clean_rank"].median()),
                         median_percentile_change=float(np.median(change)),
                         frac_up=up["pair_frac_pos"], wilcoxon_p=up["wilcoxon_p"]))
    return pd.DataFrame(rows, columns=["canary", "canary_label", "runs", "median_rank",
                                       "median_clean_rank", "median_percentile_change",
                                       "frac_up", "wilcoxon_p"])


def load_influence_study(path: str | Path) -> InfluenceStudy:
    """Reads a directory written by `run_influence_study` (data only)."""
    path = Path(path)
    si = R.read_npz(path / SI_FILE)
    return InfluenceStudy(path=path, canaries=np.asarray(si["canaries"]),
                          clean_si=np.asarray(si["si"]), ranks=pd.read_csv(path / RANKS_CSV))
