"""Statistics over the population of models (host; NumPy/SciPy), docs/method.md "Across models".

memjax treats the population of models as the unit: per score it compares the distribution over
seeds of UF models with that of baseline models (bootstrap confidence intervals, a one-sided
Mann-Whitney test, the ROC AUC of "UF model vs baseline model", the fraction of UF models above the
baseline's 95th percentile) and splits the variance among the seed factors.

Randomness: every bootstrap takes `seed`, anything `np.random.default_rng` accepts (an int, a
`SeedSequence` or a `Generator`); functions that bootstrap several things spawn independent
child streams from one `SeedSequence(seed)`, so results are deterministic per seed.
Missing values: functions drop non-finite values (NaN from a score that could not be computed,
or +-inf) and say how many they dropped where the result has room for it.
"""
from __future__ import annotations

import numbers
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats as sps

from memjax.argtypes import is_int, is_real

if TYPE_CHECKING:
    import pandas as pd

Seed = int | np.random.SeedSequence | np.random.Generator
NAN = float("nan")

# Rows of bootstrap indices drawn at once: keeps memory at ~32 MiB whatever the sample size.
_CHUNK_ELEMENTS = 1 << 22


def _check_boot(fn: str, n_boot: Any, alpha: Any = 0.05) -> None:
    """Raises ValueError naming `n_boot` or `alpha` of `fn` unless n_boot is an integer >= 1 and
    alpha a number in (0, 1)."""
    if not is_int(n_boot, 1):
        raise ValueError(f"{fn}: n_boot={n_boot!r} must be an integer >= 1 (bootstrap resamples)")
    if not (is_real(alpha) and 0 < alpha < 1):
        raise ValueError(f"{fn}: alpha={alpha!r} must be a number in (0, 1), e.g. 0.05 for "
                         "95% intervals")


def _check_scores(fn: str, scores: Any) -> list[str]:
    """`scores` as a list of column names; ValueError naming `scores` unless it is a list or
    tuple of strings (a bare string would be read as its characters)."""
    if not isinstance(scores, (list, tuple)) or not all(isinstance(s, str) for s in scores):
        raise ValueError(f"{fn}: scores={scores!r} must be a list of column names, e.g. "
                         "['M_score']")
    return list(scores)


_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False}


def _as_bool(x: Any) -> bool | None:
    """One cell of a valid column as a bool; None when it is not a boolean (NaN, blank, text)."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, numbers.Real):
        return bool(x == 1) if x in (0, 1) else None
    if isinstance(x, str):
        return _BOOL_TEXT.get(x.strip().lower())
    return None


def valid_mask(table: "pd.DataFrame", col: str = "valid") -> np.ndarray:
    """The `col` column of a models table as a bool mask [N] (True: the model counts).

    Accepts a bool column, 0/1 numbers and the texts "True" / "False" / "1" / "0" (any case, as
    a CSV round trip of a column with a missing or non-boolean cell leaves them). Anything else
    (NaN, a blank, other text or numbers) is refused rather than read as truthy.

    Raises:
      ValueError: `col` is not in the table or holds a value that is not a boolean; the message
        names the column and the first offending rows.
    """
    if col not in table.columns:
        raise ValueError(f"valid_mask: no column {col!r} in the table")
    v = table[col].to_numpy()
    if v.dtype == bool:
        return v.copy()
    if v.dtype.kind in "iuf":
        ok = (v == 0) | (v == 1)
        out = v == 1
    else:
        parsed = [_as_bool(x) for x in v]
        ok = np.array([p is not None for p in parsed], bool)
        out = np.array([bool(p) for p in parsed], bool)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        plain = [v[i].item() if isinstance(v[i], np.generic) else v[i] for i in bad[:3]]
        shown = ", ".join(f"row {i}: {x!r}" for i, x in zip(bad, plain))
        raise ValueError(f"column {col!r}: {bad.size} of {v.size} values are not booleans "
                         f"(True/False or 1/0): {shown}{', ...' if bad.size > 3 else ''}")
    return out


def only_valid(table: "pd.DataFrame", col: str = "valid") -> "pd.DataFrame":
    """The rows of `table` whose `col` is True (`valid_mask`); all of it without that column."""
    return table[valid_mask(table, col)] if col in table.columns else table


def _finite(x: Any) -> tuple[np.ndarray, int]:
    """x as a flat float64 array without non-finite entries, and how many were dropped."""
    x = np.asarray(x, np.float64).reshape(-1)
    keep = np.isfinite(x)
    return x[keep], int(x.size - keep.sum())


def _bootstrap_means(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `n_boot` resamples (with replacement) of x [N] -> [n_boot]."""
    rows = max(1, _CHUNK_ELEMENTS // max(1, x.size))
    out = np.empty(n_boot)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        out[start:stop] = x[rng.integers(0, x.size, (stop - start, x.size))].mean(axis=1)
    return out


def _percentiles(samples: np.ndarray, alpha: float) -> tuple[float, float]:
    lo, hi = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def bootstrap_mean_ci(
    x: np.ndarray, *, n_boot: int = 2000, alpha: float = 0.05, seed: Seed = 0
) -> tuple[float, float, float]:
    """Mean of x and its percentile-bootstrap (1 - alpha) confidence interval.

    Args:
      x: [N] values (non-finite ones are dropped).
    Returns:
      (mean, lo, hi); all NaN when no value is left.
    Raises:
      ValueError: n_boot < 1 or alpha outside (0, 1).
    """
    _check_boot("bootstrap_mean_ci", n_boot, alpha)
    x, _ = _finite(x)
    if x.size == 0:
        return NAN, NAN, NAN
    lo, hi = _percentiles(_bootstrap_means(x, n_boot, np.random.default_rng(seed)), alpha)
    return float(x.mean()), lo, hi


def bootstrap_diff_ci(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000, alpha: float = 0.05, seed: Seed = 0
) -> tuple[float, float, float]:
    """mean(a) - mean(b) with a percentile-bootstrap CI, resampling a and b independently
    (two independent groups of models, e.g. UF and baseline).

    Returns:
      (diff, lo, hi); all NaN when either group is empty after dropping non-finite values.
    Raises:
      ValueError: n_boot < 1 or alpha outside (0, 1).
    """
    _check_boot("bootstrap_diff_ci", n_boot, alpha)
    a, _ = _finite(a)
    b, _ = _finite(b)
    if a.size == 0 or b.size == 0:
        return NAN, NAN, NAN
    rng = np.random.default_rng(seed)
    diffs = _bootstrap_means(a, n_boot, rng) - _bootstrap_means(b, n_boot, rng)
    lo, hi = _percentiles(diffs, alpha)
    return float(a.mean() - b.mean()), lo, hi


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper-Pearson) (1 - alpha) interval for a binomial proportion k / n.

    Beta quantiles: lo = B(alpha/2; k, n-k+1) (0 if k = 0), hi = B(1-alpha/2; k+1, n-k) (1 if
    k = n). Returns (NaN, NaN) for n = 0.

    Raises:
      ValueError: unless 0 <= k <= n and 0 < alpha < 1.
    """
    _check_boot("clopper_pearson", 1, alpha)
    if not 0 <= k <= n:
        raise ValueError(f"clopper_pearson: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return NAN, NAN
    lo = 0.0 if k == 0 else float(sps.beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(sps.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve of scores separating pos [N1] from neg [N0]:
    P(score_pos > score_neg) + 1/2 P(tie) = U / (N1 N0), U the Mann-Whitney statistic of pos.

    NaN when either group is empty (after dropping non-finite values).
    """
    pos, _ = _finite(pos)
    neg, _ = _finite(neg)
    if pos.size == 0 or neg.size == 0:
        return NAN
    ranks = sps.rankdata(np.concatenate([pos, neg]))  # average ranks: ties count 1/2
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (pos.size * neg.size))


def roc_curve(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of "score >= threshold means positive".

    Args:
      pos: [N1] scores of positives (UF models); neg: [N0] scores of negatives (baseline).
    Returns:
      (fpr, tpr, thresholds), each [T + 1] for T distinct scores: thresholds decreasing from
      +inf (nothing positive: fpr = tpr = 0) to the smallest score (all positive: 1, 1). The
      trapezoidal area under (fpr, tpr) equals `roc_auc`.
    """
    pos, _ = _finite(pos)
    neg, _ = _finite(neg)
    scores = np.concatenate([pos, neg])
    is_pos = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    order = np.argsort(-scores, kind="stable")
    scores, is_pos = scores[order], is_pos[order]
    # last index of each run of equal scores: tied scores cross the threshold together
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1] if scores.size else np.array([], int)
    tps = np.cumsum(is_pos)[last]
    fps = (last + 1) - tps
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.r_[0.0, tps] / pos.size
        fpr = np.r_[0.0, fps] / neg.size
    return fpr, tpr, np.r_[np.inf, scores[last]]


def compare(
    uf: np.ndarray, base: np.ndarray, *, clusters_uf: np.ndarray | None = None,
    clusters_base: np.ndarray | None = None, n_boot: int = 2000, alpha: float = 0.05,
    seed: int = 0
) -> dict[str, float]:
    """UF models against baseline models for one score.

    Models that share seeds are not independent: with several canary placements, the baseline
    rows of one seed are one network scored against each placement's canary, and the UF models
    of that seed share its init and data order. `clusters_uf` / `clusters_base` name the group
    (e.g. the seeds, `seed_clusters`) of each row. When some group holds several rows of one
    condition, the intervals resample groups (each condition apart, as the unclustered
    bootstrap resamples models apart), the Mann-Whitney test compares the groups' mean scores
    (each independent unit counts once; mw_U is then over group means, so it no longer equals
    auc x n_uf x n_base) and the interval of frac_above resamples groups (never narrower than
    the Clopper-Pearson interval over rows). AUC and base_p95 stay row-level point estimates;
    with fewer than 2 groups in a condition its intervals are NaN. Without repeated groups the result is exactly
    the unclustered one.

    Args:
      uf: [N1] the score of each UF model; base: [N0] of each baseline model. Non-finite values
        are dropped (n_dropped counts them, both groups together).
      clusters_uf, clusters_base: optional [N1] / [N0] group labels (any hashable values; both
        or neither).
    Returns:
      n_uf, n_base, n_dropped; mean_uf, mean_uf_lo, mean_uf_hi and mean_base, ... (bootstrap
      CIs); diff, diff_lo, diff_hi (mean UF - mean baseline, independent bootstrap); mw_U, mw_p
      (one-sided Mann-Whitney, UF greater); auc (P(UF > baseline) + ties / 2); base_p95 (the
      baseline's 95th percentile, linear interpolation); frac_above, frac_above_lo,
      frac_above_hi (UF models strictly above base_p95, Clopper-Pearson interval). Entries that
      need a group which is empty are NaN.
    Raises:
      ValueError: clusters for one condition only, n_boot < 1 or alpha outside (0, 1).
    """
    _check_boot("compare", n_boot, alpha)
    if (clusters_uf is None) != (clusters_base is None):
        raise ValueError("compare: give clusters for both conditions or for neither")
    if clusters_uf is not None:
        return _compare_clustered(uf, base, clusters_uf, clusters_base, n_boot=n_boot,
                                  alpha=alpha, seed=seed)
    uf, drop_uf = _finite(uf)
    base, drop_base = _finite(base)
    rng_uf, rng_base, rng_diff = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    out: dict[str, float] = {"n_uf": uf.size, "n_base": base.size, "n_dropped": drop_uf + drop_base}
    for name, x, rng in (("uf", uf, rng_uf), ("base", base, rng_base)):
        m, lo, hi = bootstrap_mean_ci(x, n_boot=n_boot, alpha=alpha, seed=rng)
        out.update({f"mean_{name}": m, f"mean_{name}_lo": lo, f"mean_{name}_hi": hi})
    out["diff"], out["diff_lo"], out["diff_hi"] = bootstrap_diff_ci(uf, base, n_boot=n_boot, alpha=alpha, seed=rng_diff)
    if uf.size and base.size:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. all values tied: SciPy still answers
            mw = sps.mannwhitneyu(uf, base, alternative="greater")
        out["mw_U"], out["mw_p"] = float(mw.statistic), float(mw.pvalue)
    else:
        out["mw_U"] = out["mw_p"] = NAN
    out["auc"] = roc_auc(uf, base)
    out["base_p95"] = float(np.percentile(base, 95)) if base.size else NAN
    if uf.size and base.size:
        k = int(np.sum(uf > out["base_p95"]))
        out["frac_above"] = k / uf.size
        out["frac_above_lo"], out["frac_above_hi"] = clopper_pearson(k, uf.size, alpha)
    else:
        out["frac_above"] = out["frac_above_lo"] = out["frac_above_hi"] = NAN
    return out


def _cluster_bootstrap(values: np.ndarray, codes: np.ndarray, n_boot: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cluster bootstrap of a pooled mean: (the means of `n_boot` resamples of the clusters
    present in `codes`, with replacement, each taking all its rows [n_boot]; the clusters'
    own means [C]). Fewer than 2 clusters give NaN resamples (no interval from one unit)."""
    ids, codes = np.unique(codes, return_inverse=True)
    sums = np.bincount(codes, weights=values, minlength=ids.size)
    counts = np.bincount(codes, minlength=ids.size).astype(np.float64)
    if ids.size < 2:
        return np.full(n_boot, NAN), sums / counts
    draws = rng.integers(0, ids.size, (n_boot, ids.size))
    return sums[draws].sum(axis=1) / counts[draws].sum(axis=1), sums / counts


def _compare_clustered(uf: np.ndarray, base: np.ndarray, clusters_uf: np.ndarray,
                       clusters_base: np.ndarray, *, n_boot: int, alpha: float, seed: int
                       ) -> dict[str, float]:
    """`compare` with rows grouped into clusters (see there); falls back to the unclustered
    statistics when no group repeats within a condition."""
    uf = np.asarray(uf, np.float64).reshape(-1)
    base = np.asarray(base, np.float64).reshape(-1)
    if len(clusters_uf) != uf.size or len(clusters_base) != base.size:
        raise ValueError(f"compare: {len(clusters_uf)}/{len(clusters_base)} cluster labels for "
                         f"{uf.size}/{base.size} UF/baseline scores")
    keep_uf, keep_base = np.isfinite(uf), np.isfinite(base)
    labels = np.concatenate([np.asarray(clusters_uf, dtype=object)[keep_uf],
                             np.asarray(clusters_base, dtype=object)[keep_base]]).astype(str)
    uf, base = uf[keep_uf], base[keep_base]
    out = compare(uf, base, n_boot=n_boot, alpha=alpha, seed=seed)
    out["n_dropped"] = int((~keep_uf).sum() + (~keep_base).sum())
    if labels.size == 0:
        return out
    _, codes = np.unique(labels, return_inverse=True)
    c_uf, c_base = codes[:uf.size], codes[uf.size:]
    n_c = int(codes.max()) + 1
    if np.bincount(c_uf, minlength=n_c).max(initial=0) <= 1 and \
            np.bincount(c_base, minlength=n_c).max(initial=0) <= 1:
        return out  # one row per group and condition: nothing to cluster
    # The two conditions resample their own groups apart, as the unclustered `compare`
    # resamples its two groups apart: the unpaired columns ignore the pairing (the paired
    # ones use it).
    rng = np.random.default_rng(seed)

    def interval(samples: np.ndarray) -> tuple[float, float]:
        samples = samples[np.isfinite(samples)]
        return _percentiles(samples, alpha) if samples.size else (NAN, NAN)

    boot_uf, means_uf = _cluster_bootstrap(uf, c_uf, n_boot, rng)
    boot_base, means_base = _cluster_bootstrap(base, c_base, n_boot, rng)
    if uf.size:
        out["mean_uf_lo"], out["mean_uf_hi"] = interval(boot_uf)
    if base.size:
        out["mean_base_lo"], out["mean_base_hi"] = interval(boot_base)
    if uf.size and base.size:
        out["diff_lo"], out["diff_hi"] = interval(boot_uf - boot_base)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mw = sps.mannwhitneyu(means_uf, means_base, alternative="greater")
        out["mw_U"], out["mw_p"] = float(mw.statistic), float(mw.pvalue)
        boot_above, _ = _cluster_bootstrap((uf > out["base_p95"]).astype(np.float64), c_uf,
                                           n_boot, rng)
        lo, hi = interval(boot_above)
        # A percentile bootstrap of a small share can be narrower than the exact interval
        # that already treats every row as independent: keep the wider of the two.
        out["frac_above_lo"] = float(np.fmin(lo, out["frac_above_lo"]))
        out["frac_above_hi"] = float(np.fmax(hi, out["frac_above_hi"]))
    return out


def paired_compare(
    uf: np.ndarray, base: np.ndarray, *, clusters: np.ndarray | None = None, n_boot: int = 2000,
    alpha: float = 0.05, seed: int = 0
) -> dict[str, float]:
    """UF models against their baseline twins for one score (pair i = uf[i], base[i]).

    A UF model and its twin share every key (init, data order, placement) and differ only by
    the feature's pixels, so their scores are strongly correlated (0.83 for M_score on the full
    MNIST, docs/reproduction.md): the paired difference is a far tighter test than comparing
    the two groups.

    Pairs that share seeds are not independent: with several canary placements, the pairs of
    one seed share their baseline network (and init and data order). `clusters` names the
    group of each pair (e.g. its seeds); when some group holds several pairs, the interval
    resamples groups (cluster bootstrap of the pooled mean) and the Wilcoxon test runs on the
    groups' mean differences, so each independent unit counts once.

    Args:
      uf, base: [N] scores of the pairs; a pair with a non-finite value is dropped.
      clusters: optional [N] group label of each pair (any hashable values).
    Returns:
      n_pairs; n_clusters (independent units: groups, or pairs without `clusters`);
      pair_diff, pair_diff_lo, pair_diff_hi (mean of uf - base over the pairs, bootstrap over
      pairs or groups); pair_frac_pos (share of pairs with uf > base); wilcoxon_p (one-sided
      Wilcoxon signed-rank, UF greater, over pairs or group means; zero differences dropped,
      SciPy's exact/asymptotic choice). NaN where there is no pair.
    Raises:
      ValueError: uf, base or clusters of different lengths, n_boot < 1 or alpha outside (0, 1).
    """
    _check_boot("paired_compare", n_boot, alpha)
    uf = np.asarray(uf, np.float64)
    base = np.asarray(base, np.float64)
    if uf.shape != base.shape:
        raise ValueError(f"paired_compare: {uf.shape} UF scores against {base.shape} baselines")
    if clusters is not None and len(clusters) != uf.size:
        raise ValueError(f"paired_compare: {len(clusters)} cluster labels for {uf.size} pairs")
    keep = np.isfinite(uf) & np.isfinite(base)
    d = uf[keep] - base[keep]
    out: dict[str, float] = {"n_pairs": int(d.size)}
    codes = None
    if clusters is not None and d.size:
        _, codes = np.unique(np.asarray(clusters, dtype=object)[keep].astype(str),
                             return_inverse=True)
        if codes.max() + 1 == d.size:  # one pair per group: nothing to cluster
            codes = None
    if codes is None:
        out["n_clusters"] = int(d.size)
        out["pair_diff"], out["pair_diff_lo"], out["pair_diff_hi"] = bootstrap_mean_ci(
            d, n_boot=n_boot, alpha=alpha, seed=seed)
        units = d
    else:
        boot, units = _cluster_bootstrap(d, codes, n_boot, np.random.default_rng(seed))
        out["n_clusters"] = int(units.size)
        out["pair_diff"] = float(d.mean())
        out["pair_diff_lo"], out["pair_diff_hi"] = (
            _percentiles(boot, alpha) if units.size >= 2 else (NAN, NAN))
    out["pair_frac_pos"] = float(np.mean(d > 0)) if d.size else NAN
    if np.any(units != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # few pairs: SciPy warns, still answers
            out["wilcoxon_p"] = float(sps.wilcoxon(units, alternative="greater",
                                                   zero_method="wilcox").pvalue)
    else:
        out["wilcoxon_p"] = NAN
    return out


# Columns that identify a UF model's baseline twin (memjax.population: the twins share them).
PAIR_KEYS = ("init_seed", "order_seed", "placement", "canary_index", "lr_mult")


def seed_clusters(table: "pd.DataFrame") -> np.ndarray | None:
    """The independent unit of each row for the statistics: its (init_seed, order_seed).

    The pairs of one seed pair share their baseline network whatever the canary placement,
    so they are one cluster (for the paired and the unpaired statistics). Dependence through a
    shared init seed alone (or a shared data order alone) is the crossed design's, handled by
    `crossed_seeds` in `summarise`. None without the seed columns.
    """
    if not {"init_seed", "order_seed"} <= set(table.columns):
        return None
    return (table["init_seed"].astype(str) + "/" + table["order_seed"].astype(str)).to_numpy()


def crossed_seeds(table: "pd.DataFrame") -> tuple[np.ndarray, np.ndarray] | None:
    """(init_seed [N], order_seed [N]) of the rows when they form a crossed design: at least 2
    init and 2 order seeds, and some init seed met with several order seeds (so rows share a
    seed without sharing both). Several rows per (init, order) cell (canary placements) are
    allowed. None otherwise, e.g. for seed_mode "same", "init" or "order"."""
    if not {"init_seed", "order_seed"} <= set(table.columns) or len(table) < 4:
        return None
    init, order = table["init_seed"].to_numpy(), table["order_seed"].to_numpy()
    if min(np.unique(init).size, np.unique(order).size) < 2:
        return None
    if table.groupby("init_seed")["order_seed"].nunique().max() < 2:
        return None
    return init, order


def _one_seed(rows: "pd.DataFrame") -> str:
    """" (one init seed)" or " (one order seed)" when the (UF) rows of several seed pairs all
    share that seed, else "": their pairs are independent given the seed, so their interval
    speaks for that init or data order only (the crossed decomposition measures how much it
    matters)."""
    if len(rows) < 2 or rows[["init_seed", "order_seed"]].drop_duplicates().shape[0] < 2:
        return ""
    for col, name in (("init_seed", "init"), ("order_seed", "order")):
        if rows[col].nunique() == 1:
            return f" (one {name} seed)"
    return ""


def _cell_means(values: np.ndarray, init: np.ndarray, order: np.ndarray) -> "pd.DataFrame":
    """[init seeds, order seeds] table of the finite `values` averaged per (init, order) cell
    (over canary placements, if several); NaN where a cell has none."""
    import pandas as pd

    keep = np.isfinite(values)
    return pd.DataFrame({"v": values[keep], "i": init[keep], "o": order[keep]}).pivot_table(
        index="i", columns="o", values="v", aggfunc="mean")


def _complete(*frames: "pd.DataFrame") -> list[np.ndarray] | None:
    """The largest complete sub-table (`seed_variance.largest_complete`) over the seeds all
    `frames` share, as one array per frame; None when there is no complete 2 x 2 table."""
    from memjax.seed_variance import largest_complete

    rows = sorted(set.intersection(*(set(f.index) for f in frames)))
    cols = sorted(set.intersection(*(set(f.columns) for f in frames)))
    if len(rows) < 2 or len(cols) < 2:
        return None
    parts = [f.reindex(index=rows, columns=cols).to_numpy(np.float64) for f in frames]
    keep_r, keep_c = largest_complete(np.logical_and.reduce([np.isfinite(p) for p in parts]))
    if keep_r.sum() < 2:
        return None
    return [p[np.ix_(keep_r, keep_c)] for p in parts]


def _crossed_cells(values: np.ndarray, init: np.ndarray, order: np.ndarray
                   ) -> np.ndarray | None:
    """The largest complete crossed table [A, B] of `values` averaged per (init, order) cell,
    or None when no complete 2 x 2 table remains."""
    tables = _complete(_cell_means(values, init, order))
    return None if tables is None else tables[0]


def _crossed_unpaired(row: dict, uf: np.ndarray, base: np.ndarray, seeds_uf: tuple | None,
                      seeds_base: tuple | None, alpha: float = 0.05) -> dict:
    """`compare`'s intervals and test for a crossed design (random-effects model).

    Each crossed condition's mean interval is `seed_variance.mean_interval` of its own
    largest complete table (NaN if none); a condition that is not crossed (independent
    models) keeps its bootstrap interval and enters the difference with its plain standard
    error. When both are crossed, diff, its interval and the p are taken over the seeds both
    keep (the largest table complete in both). The difference of the two means gets a
    Welch-Satterthwaite t interval, and mw_p the one-sided Welch t test of "UF greater"
    (mw_U NaN); NaN when a side has no complete table. mean_uf / mean_base stay the means
    over all valid models.
    """
    from memjax.seed_variance import mean_interval

    out = dict(row)
    frames, own = {}, {}
    for key, vals, seeds in (("uf", uf, seeds_uf), ("base", base, seeds_base)):
        if seeds is None:  # independent models: the plain mean's standard error
            vals = vals[np.isfinite(vals)]
            own[key] = {"mean": float(vals.mean()), "se": float(vals.std(ddof=1) / np.sqrt(vals.size)),
                        "df": float(vals.size - 1)} if vals.size >= 2 else None
            continue
        frames[key] = _cell_means(vals, *seeds)
        table = _complete(frames[key])
        own[key] = mean_interval(table[0], alpha) if table else None
        out[f"mean_{key}_lo"], out[f"mean_{key}_hi"] = (
            (own[key]["lo"], own[key]["hi"]) if own[key] else (NAN, NAN))
    out["mw_U"] = NAN
    if len(frames) == 2:  # both crossed: compare them over the seeds both keep
        joint = _complete(frames["uf"], frames["base"])
        m_uf, m_base = (mean_interval(t, alpha) for t in joint) if joint else (None, None)
    else:
        m_uf, m_base = own["uf"], own["base"]
    if m_uf is None or m_base is None:
        out["diff_lo"] = out["diff_hi"] = out["mw_p"] = NAN
        return out
    diff = m_uf["mean"] - m_base["mean"]
    var = m_uf["se"] ** 2 + m_base["se"] ** 2
    if var > 0:
        df = var ** 2 / sum(m["se"] ** 4 / m["df"] for m in (m_uf, m_base) if m["se"] > 0)
        half = float(sps.t.ppf(1 - alpha / 2, df)) * np.sqrt(var)
        out["diff_lo"], out["diff_hi"] = diff - half, diff + half
        out["mw_p"] = float(sps.t.sf(diff / np.sqrt(var), df))
    else:
        out["diff_lo"] = out["diff_hi"] = diff
        out["mw_p"] = NAN
    out["diff"] = diff
    return out


def _crossed_paired(paired: dict, d: np.ndarray, init: np.ndarray, order: np.ndarray
                    ) -> tuple[dict, str]:
    """Paired statistics of a crossed design: the UF-minus-twin differences d [N] averaged per
    (init, order) cell, the complete table of cells (`seed_variance.crossed_table`), and its
    random-effects t interval and one-sided t test (`seed_variance.mean_interval`).

    n_pairs and pair_frac_pos then count the table's cells, and n_clusters is the effective
    number of independent units (the Satterthwaite degrees of freedom + 1; the number of
    cells when the differences do not vary at all). With no complete
    2 x 2 table the interval and p are NaN ("crossed (incomplete)"): the pairs are never
    silently treated as independent.
    """
    from memjax.seed_variance import mean_interval

    table = _crossed_cells(d, init, order)
    if table is None:
        return {**paired, "n_clusters": 0, "pair_diff_lo": NAN, "pair_diff_hi": NAN,
                "wilcoxon_p": NAN}, "crossed (incomplete)"
    m = mean_interval(table)
    return {**paired, "n_pairs": int(table.size),
            "n_clusters": int(round(m["df"] + 1)) if np.isfinite(m["df"]) else int(table.size),
            "pair_diff": m["mean"], "pair_diff_lo": m["lo"], "pair_diff_hi": m["hi"],
            "pair_frac_pos": float(np.mean(table > 0)), "wilcoxon_p": m["p_greater"]
            }, "crossed random effects"


def twin_pairs(table: "pd.DataFrame", *, condition_col: str = "condition", uf: str = "uf",
               baseline: str = "baseline", keys: tuple[str, ...] = PAIR_KEYS
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """Row positions (uf_rows [N], base_rows [N]) of the UF/baseline twins of a models table,
    matched on `keys`; None when the table has no such columns or a key repeats within a
    condition (then the pairing is ambiguous and no paired statistic is given)."""
    keys = tuple(k for k in keys if k in table.columns)
    if not {"init_seed", "order_seed"} <= set(keys):
        return None
    indexed = table.assign(_pos=np.arange(len(table)))
    parts = {}
    for name in (uf, baseline):
        sub = indexed[(table[condition_col] == name).to_numpy()]
        if sub.duplicated(list(keys)).any():
            return None
        parts[name] = sub[[*keys, "_pos"]]
    merged = parts[uf].merge(parts[baseline], on=list(keys), suffixes=("_uf", "_base"))
    if merged.empty:
        return None
    return merged["_pos_uf"].to_numpy(), merged["_pos_base"].to_numpy()


def paired_by_epoch(models: "pd.DataFrame", epochs: "pd.DataFrame", score: str, *,
                    valid_col: str = "valid", n_boot: int = 1000, seed: int = 0
                    ) -> "pd.DataFrame":
    """`paired_compare` of a per-epoch score (e.g. the trajectory score traj_M_score) over the
    UF/baseline twins of a run, epoch by epoch: when memorisation appears during training.

    Args:
      models: the run's models table (model, condition, the `PAIR_KEYS`, optionally valid).
      epochs: its tidy per-epoch table (model, epoch, `score`).
    Returns:
      one row per epoch: epoch and `paired_compare`'s keys (clustered by seeds as in
      `summarise`); empty when the run has no twins or no such column.
    Raises:
      ValueError: n_boot < 1, or a `valid_col` that is not boolean (`valid_mask`).
    """
    import pandas as pd

    _check_boot("paired_by_epoch", n_boot)
    models = only_valid(models, valid_col).reset_index(drop=True)
    pairs = twin_pairs(models)
    if pairs is None or score not in epochs.columns:
        return pd.DataFrame(columns=["epoch", "n_pairs", "n_clusters", "pair_diff",
                                     "pair_diff_lo", "pair_diff_hi", "pair_frac_pos",
                                     "wilcoxon_p"])
    ids = models["model"].to_numpy()
    clusters = seed_clusters(models.iloc[pairs[0]])
    wide = epochs.pivot_table(index="model", columns="epoch", values=score, aggfunc="first")
    rows = []
    for e in wide.columns:
        col = wide[e]
        rows.append({"epoch": int(e), **paired_compare(
            col.reindex(ids[pairs[0]]).to_numpy(np.float64),
            col.reindex(ids[pairs[1]]).to_numpy(np.float64), clusters=clusters,
            n_boot=n_boot, seed=seed)})
    return pd.DataFrame(rows)


# Fewest matched seed pairs for a matched contrast: the two-sided Wilcoxon signed-rank test
# cannot reach p < 0.05 with 5 pairs, and a bootstrap over so few under-covers.
MIN_MATCHED = 6


def _unit_effects(models: "pd.DataFrame", score: str) -> "pd.Series | str":
    """One study's UF-minus-twin difference of `score` averaged per seed pair (init_seed,
    order_seed; over canary placements, if several): the independent units of a study whose
    seeds are not crossed. Otherwise the reason there are none (a `method` text)."""
    import pandas as pd

    if models.empty:
        return "no valid models: not contrasted"
    models = models.reset_index(drop=True)
    if "lr_mult" in models.columns and models["lr_mult"].nunique() > 1:
        return "several lr multipliers: not contrasted (split them into studies)"
    pairs = twin_pairs(models)
    if pairs is None:
        return "no twins (or ambiguous twins): not contrasted"
    if crossed_seeds(models.iloc[pairs[0]]) is not None:
        return "crossed seeds: not contrasted"
    col = pd.to_numeric(models[score], errors="coerce").to_numpy(np.float64)
    d = col[pairs[0]] - col[pairs[1]]
    rows = models.iloc[pairs[0]]
    keep = np.isfinite(d)
    seeds = [pd.to_numeric(rows[c], errors="coerce").to_numpy()[keep]
             for c in ("init_seed", "order_seed")]
    return pd.Series(d[keep]).groupby(seeds).mean()


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries left out)."""
    p = np.asarray(p, np.float64)
    out = np.full(p.shape, NAN)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok])]
    m = order.size
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def contrast_studies(models: "pd.DataFrame", scores: list[str], *, reference: str | None = None,
                     study_col: str = "study", condition_col: str = "condition",
                     valid_col: str = "valid", n_boot: int = 2000, alpha: float = 0.05,
                     seed: int = 0) -> "pd.DataFrame":
    """Each study's memorisation effect against a reference study's: does a regulariser (or any
    change of setting) change how much is memorised, not only "is it still memorised"?

    A study's effect is its UF-minus-twin difference per seed pair (`_unit_effects`; averaged
    over its canary placements, so compare studies with the same placements). The studies of
    one sweep share root_seed, training-set size and batch size, so seed s trains with the same
    data order in each (and the same initial weights where the parameters agree), and the seed
    pairs present in both are matched. With at least `MIN_MATCHED` of them: "matched seeds",
    the mean over the matched seed pairs of (effect in the study - effect in the reference),
    a bootstrap interval over them and the two-sided Wilcoxon signed-rank p; effect and
    effect_ref are then over the matched seed pairs too, so contrast = effect - effect_ref.
    With fewer, the studies are independent samples ("independent seeds": the reference
    leaves out the seed pairs the study has, then difference of means, independent bootstrap,
    two-sided Mann-Whitney), which needs 2 seed pairs on each side. A study with no valid model,
    no twins, a crossed init x order design (its seed pairs are not independent) or several
    lr multipliers gets NaN, and `method` says why; so does a contrast whose differences are
    all 0 (identical studies: no interval).

    p_holm adjusts p by Holm over the studies contrasted on the same score (the family a
    reader scans for "which regulariser changes it"); it does not adjust across scores.

    Args:
      models: a combined models table (`study_col`, `condition_col`, the `PAIR_KEYS`, the
        scores, optionally `valid_col`: invalid rows are left out).
      scores: the score columns to contrast.
      reference: the study to contrast against (default: the first in the table, e.g. "plain").
    Returns:
      one row per (study other than the reference, score): study, reference, score, effect,
      effect_ref, n_units (seed pairs used), contrast, contrast_lo, contrast_hi, p, p_holm,
      method.
    Raises:
      ValueError: a missing column, a reference that is not in the table, `scores` not a list
        of names, n_boot < 1, alpha outside (0, 1), or a `valid_col` that is not boolean
        (`valid_mask`).
    """
    import pandas as pd

    scores = _check_scores("contrast_studies", scores)
    _check_boot("contrast_studies", n_boot, alpha)
    missing = [c for c in [study_col, condition_col, *scores] if c not in models.columns]
    if missing:
        raise ValueError(f"contrast_studies: columns {missing} not in the table")
    studies = list(dict.fromkeys(models[study_col]))
    reference = studies[0] if reference is None and studies else reference
    if reference not in studies:
        raise ValueError(f"contrast_studies: reference study {reference!r} not in {studies}")
    models = only_valid(models, valid_col)
    if condition_col != "condition":
        models = models.rename(columns={condition_col: "condition"})  # as twin_pairs reads it
    groups = {name: models[models[study_col] == name] for name in studies}
    columns = ["study", "reference", "score", "effect", "effect_ref", "n_units", "contrast",
               "contrast_lo", "contrast_hi", "p", "p_holm", "method"]
    rows = []
    for score in scores:
        ref = _unit_effects(groups[reference], score)
        first = len(rows)
        for name in studies:
            if name == reference:
                continue
            eff = _unit_effects(groups[name], score)
            row = dict.fromkeys(columns, NAN) | {"study": name, "reference": reference,
                                                 "score": score, "n_units": 0}
            if isinstance(eff, str) or isinstance(ref, str):
                row["method"] = eff if isinstance(eff, str) else "reference: " + ref
                rows.append(row)
                continue
            both = eff.index.intersection(ref.index)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # few units: SciPy warns, still answers
                if len(both) >= MIN_MATCHED:
                    d = (eff[both] - ref[both]).to_numpy()
                    row.update(effect=float(eff[both].mean()), effect_ref=float(ref[both].mean()),
                               n_units=len(both), contrast=float(d.mean()), method="matched seeds")
                    if np.any(d != 0):
                        _, row["contrast_lo"], row["contrast_hi"] = bootstrap_mean_ci(
                            d, n_boot=n_boot, alpha=alpha, seed=seed)
                        row["p"] = float(sps.wilcoxon(d, zero_method="wilcox").pvalue)
                    else:
                        row["method"] = "matched seeds, all differences 0: no interval"
                else:
                    x, y = eff.to_numpy(), ref.drop(both).to_numpy()
                    row.update(effect=float(x.mean()) if x.size else NAN,
                               effect_ref=float(y.mean()) if y.size else NAN)
                    if min(x.size, y.size) >= 2:
                        row["contrast"], row["contrast_lo"], row["contrast_hi"] = bootstrap_diff_ci(
                            x, y, n_boot=n_boot, alpha=alpha, seed=seed)
                        row.update(n_units=x.size + y.size, method="independent seeds",
                                   p=float(sps.mannwhitneyu(x, y, alternative="two-sided").pvalue))
                    else:
                        row["method"] = "fewer than 2 seed pairs: not contrasted"
            rows.append(row)
        family = rows[first:]
        for row, adj in zip(family, _holm(np.array([r["p"] for r in family], np.float64))):
            row["p_holm"] = adj
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------------------------
# Variance over seed factors


def _prepare_design(values: np.ndarray, factors: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Finite values [N] and integer level codes per factor [N], rows with a non-finite value
    dropped. Raises ValueError on mismatched lengths or a factor named 'residual'."""
    y = np.asarray(values, np.float64).reshape(-1)
    if "residual" in factors:
        raise ValueError("variance_components: 'residual' is reserved; rename that factor")
    codes = {}
    for name, f in factors.items():
        f = np.asarray(f).reshape(-1)
        if f.shape != y.shape:
            raise ValueError(f"variance_components: factor {name!r} has {f.size} values, values has {y.size}")
        codes[name] = np.unique(f, return_inverse=True)[1].reshape(-1)
    keep = np.isfinite(y)
    return y[keep], {k: c[keep] for k, c in codes.items()}


def _dummies(codes: np.ndarray) -> np.ndarray:
    """Treatment coding of a factor: [N] level codes -> [N, L - 1] indicators (none if L = 1)."""
    levels = np.unique(codes)
    return (codes[:, None] == levels[None, 1:]).astype(np.float64)


def _rss(design: np.ndarray, y: np.ndarray) -> float:
    """Residual sum of squares of the least-squares fit of y on the columns of `design`
    (rank-deficient designs, e.g. confounded factors, are fine: lstsq projects)."""
    beta = np.linalg.lstsq(design, y, rcond=None)[0]
    return float(np.sum((y - design @ beta) ** 2))


def _shares(y: np.ndarray, codes: dict[str, np.ndarray]) -> dict[str, float]:
    total = float(np.sum((y - y.mean()) ** 2)) if y.size else 0.0
    design = np.ones((y.size, 1))
    rss_prev = total
    ss = {}
    for name, c in codes.items():
        design = np.hstack([design, _dummies(c)])
        rss = _rss(design, y)
        ss[name] = max(rss_prev - rss, 0.0)  # rounding can make a null increment -1e-16
        rss_prev = rss
    ss["residual"] = rss_prev
    if total <= 0.0:
        return {name: NAN for name in ss}
    return {name: v / total for name, v in ss.items()}


def variance_components(values: np.ndarray, factors: dict[str, np.ndarray]) -> dict[str, float]:
    """Share of the variance of a score across models due to each factor (main effects).

    Sequential (Type-I) sums of squares: the factors enter a linear model one after another in
    the dict's order, each factor's share being the drop in residual sum of squares it brings,
    over the total sum of squares; 'residual' is what no factor explains (interactions
    included). In a balanced complete crossed design (every combination equally often) the
    main effects are orthogonal, so the shares are the classical main-effect SS shares and do
    not depend on the order; in an unbalanced design a factor entered earlier also takes
    variance it shares with later ones. Shares are descriptive (eta squared): with pure noise a
    factor with L levels among N models still takes about (L - 1) / (N - 1).

    Args:
      values: [M] a score per model (non-finite rows are dropped).
      factors: name -> [M] level of each model (e.g. 'init_seed', 'order_seed', 'canary').
    Returns:
      name -> share for every factor and 'residual' (shares sum to 1; a factor with one level
      gets 0; all NaN if the values do not vary), plus 'n_obs' and 'n_levels_<name>'.
    Raises:
      ValueError: a factor's length differs from values', or a factor is named 'residual'.
    """
    y, codes = _prepare_design(values, factors)
    out: dict[str, float] = dict(_shares(y, codes))
    out["n_obs"] = int(y.size)
    for name, c in codes.items():
        out[f"n_levels_{name}"] = int(np.unique(c).size)
    return out


def variance_components_ci(
    values: np.ndarray,
    factors: dict[str, np.ndarray],
    *,
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: Seed = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap CIs of `variance_components`' shares, resampling models (rows)
    with replacement. Treating models as exchangeable is an approximation in a crossed design
    (a level's models are resampled independently); read the intervals as rough.

    Returns:
      name -> (lo, hi) for every factor and 'residual'.
    Raises:
      ValueError: as `variance_components`, or n_boot < 1 or alpha outside (0, 1).
    """
    _check_boot("variance_components_ci", n_boot, alpha)
    y, codes = _prepare_design(values, factors)
    rng = np.random.default_rng(seed)
    names = [*codes, "residual"]
    draws = np.full((n_boot, len(names)), np.nan)
    for b in range(n_boot):
        idx = rng.integers(0, y.size, y.size)
        shares = _shares(y[idx], {k: c[idx] for k, c in codes.items()})
        draws[b] = [shares[n] for n in names]
    out = {}
    for j, name in enumerate(names):
        col = draws[:, j][np.isfinite(draws[:, j])]
        out[name] = _percentiles(col, alpha) if col.size else (NAN, NAN)
    return out


# --------------------------------------------------------------------------------------------
# A table of scores


def summarise(
    table: "pd.DataFrame",
    scores: list[str],
    *,
    condition_col: str = "condition",
    uf: str = "uf",
    baseline: str = "baseline",
    valid_col: str = "valid",
    n_boot: int = 2000,
    seed: int = 0,
) -> "pd.DataFrame":
    """One row per score: `compare` of its UF models against its baseline models.

    Args:
      table: one row per model, with `condition_col`, the score columns and optionally a boolean
        `valid_col` (rows with False are left out, e.g. diverged models).
      scores: the score columns to summarise.
    Returns:
      a DataFrame with a 'score' column and `compare`'s keys (clustered by `seed_clusters`
      where a seed holds several rows of a condition), then `paired_compare`'s keys over the
      UF/baseline twins (`twin_pairs`; NaN when the table has none) and `paired_method`:
      "pairs" (independent pairs; "pairs (one init seed)" / "pairs (one order seed)" when
      every pair shares that seed, seed_mode "order" / "init": the interval is then conditional
      on that one seed, not over seeds), "seed clusters" (placements sharing a seed; the same
      suffix when one seed is shared) or "crossed random effects" (a crossed init x order
      design, `crossed_seeds`: pairs sharing an init
      or an order seed are not independent, so pair_diff, its interval and wilcoxon_p are the
      random-effects mean, t interval and one-sided t test of `_crossed_paired`), or "crossed
      (incomplete)" (no complete 2 x 2 table of seeds: no interval, no p). In a crossed
      design the unpaired columns likewise come from the random-effects model
      (`_crossed_unpaired`: each crossed condition's interval; diff over the seeds both
      keep, with a Welch t interval and the one-sided Welch t p in mw_p, mw_U NaN); auc,
      base_p95 and frac_above stay model-level (frac_above's interval treats models as
      independent). Each score uses the
      same `seed`, so a score's row does not depend on which other scores are listed. When a
      condition has no rows, the UF-vs-baseline columns are NaN and the other condition's mean
      is still given.
    Raises:
      ValueError: a score or the condition column is missing from the table, `scores` is not a
        list of names, n_boot < 1, or `valid_col` is not boolean (`valid_mask`).
    """
    import pandas as pd

    scores = _check_scores("summarise", scores)
    _check_boot("summarise", n_boot)
    missing = [c for c in [condition_col, *scores] if c not in table.columns]
    if missing:
        raise ValueError(f"summarise: columns {missing} not in the table; it has {list(table.columns)}")
    table = only_valid(table, valid_col)
    is_uf = (table[condition_col] == uf).to_numpy()
    is_base = (table[condition_col] == baseline).to_numpy()
    pairs = twin_pairs(table, condition_col=condition_col, uf=uf, baseline=baseline)
    no_pairs = {**paired_compare(np.zeros(0), np.zeros(0), n_boot=1), "paired_method": ""}
    clusters = None if pairs is None else seed_clusters(table.iloc[pairs[0]])
    crossed = None if pairs is None else crossed_seeds(table.iloc[pairs[0]])
    crossed_uf, crossed_base = crossed_seeds(table[is_uf]), crossed_seeds(table[is_base])
    row_clusters = seed_clusters(table)
    by_group = {} if row_clusters is None else {"clusters_uf": row_clusters[is_uf],
                                                "clusters_base": row_clusters[is_base]}
    rows = []
    for name in scores:
        col = pd.to_numeric(table[name], errors="coerce").to_numpy(np.float64)
        row = {"score": name, **compare(col[is_uf], col[is_base], n_boot=n_boot, seed=seed,
                                        **by_group)}
        if crossed_uf is not None or crossed_base is not None:
            row = _crossed_unpaired(row, col[is_uf], col[is_base], crossed_uf, crossed_base)
        if pairs is None:
            row.update(no_pairs)
        else:
            paired = paired_compare(col[pairs[0]], col[pairs[1]], clusters=clusters,
                                    n_boot=n_boot, seed=seed + 1)
            method = ("pairs" if paired["n_clusters"] == paired["n_pairs"] else "seed clusters"
                      ) + _one_seed(table.iloc[pairs[0]])
            if crossed is not None:
                paired, method = _crossed_paired(paired, col[pairs[0]] - col[pairs[1]], *crossed)
            row.update(paired, paired_method=method)
        rows.append(row)
    return pd.DataFrame(rows)
