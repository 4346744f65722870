"""Where a model's M score comes from: its per-probe terms, by how unlikely the canary class is.

The M score (method.md, the negative of M3) is a mean over the probes of the canary's label y*
of log f(x_i^U)_{y*} - log f(x_i^R)_{y*}. On that log scale, raising a probability from 1e-9 to
3e-9 counts as much as raising it from 0.1 to 0.3, so a model that puts y* deep in the tail of
most probes can score high while the UF barely moves its outputs. `tail_terms` splits each
model's M score into bins of the control output's probability of y*, p_i = f(x_i^R)_{y*}: the
bins' parts add up to the M score. Beside each part it gives the same sum on the probability
scale, f(x_i^U)_{y*} - f(x_i^R)_{y*}, which the tail cannot inflate. `paired_by_bin` compares
UF models with their baseline twins bin by bin; `tail_study` does it all for a finished study
(read only: it rescores the saved population in log space and writes nothing).

Measured on the full-MNIST regularisation sweep (docs/reproduction.md): batch norm's five-fold
M score sits in probes where p_i < 1e-4; on the probability scale its UF effect is plain's
(+0.0029 both, no detectable difference).

Shapes: M models, P probes, N twin pairs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from memjax.stats import (crossed_seeds, paired_compare, seed_clusters, twin_pairs,
                          valid_mask)

# Bin edges of p_i = f(x_i^R)_{y*}; 1e-7 is Keras' clipping floor (`score.clip`): the
# reference's clipped KL sees a probe only as far as its UF or control probability rises above it.
EDGES = (0.0, 1e-7, 1e-4, 1e-2, 1.0)


def _bin_labels(edges: tuple[float, ...]) -> list[str]:
    return [f"[{lo:g}, {hi:g}{']' if i == len(edges) - 2 else ')'}"
            for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]


def _check_edges(edges) -> np.ndarray:
    """`edges` as float64 [B + 1]: 1-D, finite, strictly increasing from 0 to 1, B >= 1."""
    try:
        raw = np.asarray(edges)
        ok = raw.dtype.kind in "iuf" and raw.ndim == 1 and raw.size >= 2
    except (TypeError, ValueError):  # ragged nested sequences
        ok = False
    if ok:
        e = raw.astype(np.float64)
        ok = bool(np.all(np.isfinite(e)) and e[0] == 0 and e[-1] == 1 and np.all(np.diff(e) > 0))
    if not ok:
        raise ValueError(f"tail_terms: edges={edges!r} must be a 1-D, finite, strictly "
                         "increasing sequence of at least 2 numbers from 0 to 1")
    return e


def tail_terms(kl_q_uf: np.ndarray, kl_q_ctrl: np.ndarray, y_star: np.ndarray,
               probe_labels: np.ndarray, edges: tuple[float, ...] = EDGES) -> pd.DataFrame:
    """Each model's M score split into bins of the control probability of its canary class.

    Args:
      kl_q_uf, kl_q_ctrl: float [M, P], per-probe KL(one-hot(y*) || f(x^U)) and
        KL(one-hot(y*) || f(x^R)) in log space, i.e. -log f(.)_{y*} (`ScoreOutput.per_probe`
        scored with clip=False, or a study's arrays.npz with `score.keep_per_probe`).
      y_star: int [M], each model's canary label.
      probe_labels: int [P].
      edges: bin edges of p = f(x^R)_{y*}: a 1-D sequence of at least 2 finite numbers,
        strictly increasing from 0 to 1 (the last bin includes 1).
    Returns:
      One row per (model row m, bin): row, bin (its label), lo, hi, n_probes (probes of label
      y* in the bin), share (of the model's probes of label y*), M_score_part (the bin's sum of
      log f(x^U)_{y*} - log f(x^R)_{y*} over ALL the model's probes of label y*: the parts of a
      model add up to its M_score), mean_log_ratio (the bin's mean, NaN when empty) and
      prob_part (the same sum on the probability scale). A model with no probe of its label
      or with non-finite values (a diverged model) gets NaN parts.
    Raises:
      ValueError: inconsistent shapes, edges that are not such a sequence, or a negative
        per-probe KL (clipped scores are not log-space KLs).
    """
    kl_uf = np.asarray(kl_q_uf, np.float64)
    kl_ctrl = np.asarray(kl_q_ctrl, np.float64)
    y_star = np.asarray(y_star).reshape(-1)
    labels = np.asarray(probe_labels).reshape(-1)
    e = _check_edges(edges)
    if kl_uf.ndim != 2 or kl_uf.shape != kl_ctrl.shape or kl_uf.shape != (y_star.size, labels.size):
        raise ValueError(f"tail_terms: per-probe arrays {kl_uf.shape} / {kl_ctrl.shape}, "
                         f"{y_star.size} canary labels and {labels.size} probe labels: expected "
                         "[M, P], [M, P], [M] and [P]")
    names = _bin_labels(tuple(float(x) for x in e))
    rows = []
    for m in range(y_star.size):
        own = labels == y_star[m]
        lu, lr = -kl_uf[m, own], -kl_ctrl[m, own]
        if np.any((lu > 1e-6) | (lr > 1e-6)):
            raise ValueError(f"tail_terms: model row {m} has negative per-probe KLs: not "
                             "log-space KLs to a one-hot target; score with clip=False")
        n_own = int(own.sum())
        if n_own == 0 or not (np.all(np.isfinite(lu)) and np.all(np.isfinite(lr))):
            # No probe of its label (its M score is NaN too), or a diverged model: NaN parts,
            # which the paired statistics drop.
            rows += [{"row": m, "bin": name, "lo": e[b], "hi": e[b + 1], "n_probes": n_own,
                      "share": np.nan, "M_score_part": np.nan, "mean_log_ratio": np.nan,
                      "prob_part": np.nan} for b, name in enumerate(names)]
            continue
        p_ctrl = np.exp(lr)
        # The last bin is closed: p = 1 (and float round-up above it) falls in it.
        which = np.clip(np.searchsorted(e, p_ctrl, side="right") - 1, 0, e.size - 2)
        ratio, prob = lu - lr, np.exp(lu) - p_ctrl
        for b, name in enumerate(names):
            k = which == b
            rows.append({"row": m, "bin": name, "lo": e[b], "hi": e[b + 1],
                         "n_probes": int(k.sum()), "share": float(k.sum() / n_own),
                         "M_score_part": float(ratio[k].sum() / n_own),
                         "mean_log_ratio": float(ratio[k].mean()) if k.any() else np.nan,
                         "prob_part": float(prob[k].sum() / n_own)})
    return pd.DataFrame(rows)


def paired_by_bin(models: pd.DataFrame, terms: pd.DataFrame, *, n_boot: int = 2000,
                  seed: int = 0) -> pd.DataFrame:
    """UF minus baseline twin, bin by bin, of `tail_terms`' parts (`stats.paired_compare`,
    clustered by seeds as in `stats.summarise`).

    Args:
      models: the study's models table, row m of it being `terms`' row m (the columns of
        `stats.PAIR_KEYS`, condition, optionally valid).
      terms: `tail_terms` of those models.
    Returns:
      One row per (bin, value) with value in M_score_part, prob_part, share: bin, lo, hi,
      value, mean_uf, mean_base, `paired_compare`'s keys and paired_method (which says when a
      crossed init x order design makes the clustered intervals optimistic). Empty when there
      are no twins (or when both tables are empty).
    Raises:
      ValueError: `models` without condition, `terms` without a column of `tail_terms`' (row,
        bin, lo, hi, M_score_part, prob_part, share), or tables that do not describe the same
        models: `terms`' rows must be exactly 0 .. len(models) - 1, each bin once per row, and
        where both tables have a model column, row m's model must be `models`' row m's.
    """
    models = models.reset_index(drop=True)
    if len(models) == 0 and len(terms) == 0:
        return pd.DataFrame()
    _check_paired_inputs(models, terms)
    keep = (valid_mask(models) if "valid" in models.columns
            else np.ones(len(models), bool))
    valid_rows = np.flatnonzero(keep)
    pairs = twin_pairs(models.iloc[valid_rows].reset_index(drop=True))
    out = []
    if pairs is None:
        return pd.DataFrame(out)
    uf_rows, base_rows = valid_rows[pairs[0]], valid_rows[pairs[1]]
    clusters = seed_clusters(models.iloc[uf_rows])
    method = ("crossed seeds: clustered by (init, order) cell; shared init or order seeds are "
              "not modelled, so intervals may be too narrow (summary.csv has the random-effects "
              "interval of the M score)" if crossed_seeds(models.iloc[valid_rows]) is not None
              else "pairs clustered by seeds")
    for (name, lo, hi), g in terms.groupby(["bin", "lo", "hi"], sort=False):
        g = g.set_index("row")
        for value in ("M_score_part", "prob_part", "share"):
            uf = g[value].reindex(uf_rows).to_numpy(np.float64)
            base = g[value].reindex(base_rows).to_numpy(np.float64)
            out.append({"bin": name, "lo": lo, "hi": hi, "value": value,
                        "mean_uf": float(np.nanmean(uf)) if np.isfinite(uf).any() else np.nan,
                        "mean_base": float(np.nanmean(base)) if np.isfinite(base).any()
                        else np.nan,
                        **paired_compare(uf, base, clusters=clusters, n_boot=n_boot,
                                         seed=seed), "paired_method": method})
    return pd.DataFrame(out)


TERM_COLUMNS = ("row", "bin", "lo", "hi", "M_score_part", "prob_part", "share")


def _check_paired_inputs(models: pd.DataFrame, terms: pd.DataFrame) -> None:
    """`paired_by_bin`'s checks: the columns it reads, and `terms` covering exactly the rows of
    `models` (index reset), each bin once, with the same model ids where both have them."""
    if "condition" not in models.columns:
        raise ValueError("paired_by_bin: the models table has no column 'condition'")
    missing = [c for c in TERM_COLUMNS if c not in terms.columns]
    if missing:
        raise ValueError(f"paired_by_bin: terms has no column {', '.join(map(repr, missing))} "
                         "(expected tail_terms' table)")
    row = terms["row"].to_numpy()
    if row.dtype.kind not in "iu":
        raise ValueError(f"paired_by_bin: terms' column 'row' has dtype {row.dtype}; expected "
                         "integer row positions of the models table")
    n = len(models)
    have = np.unique(row)
    if not np.array_equal(have, np.arange(n)):
        extra, lacking = np.setdiff1d(have, np.arange(n)), np.setdiff1d(np.arange(n), have)
        raise ValueError(
            f"paired_by_bin: terms and models describe different models: the models table has "
            f"{n} rows but terms cover {have.size} row(s)"
            + (f"; none for model rows {_few(lacking)}" if lacking.size else "")
            + (f"; terms rows {_few(extra)} are not rows of the models table" if extra.size
               else "")
            + " (terms' row m is the models table's row m: pass the same models as to tail_terms)")
    if terms.duplicated(["row", "bin"]).any():
        raise ValueError("paired_by_bin: terms repeat a (row, bin): several tables concatenated? "
                         "each model row must have each bin once")
    if "model" in terms.columns and "model" in models.columns:
        mine = models["model"].to_numpy()[row]
        bad = np.flatnonzero(terms["model"].to_numpy() != mine)
        if bad.size:
            i = bad[0]
            theirs, ours = (v.item() if isinstance(v, np.generic) else v
                            for v in (terms["model"].iloc[i], mine[i]))
            raise ValueError(f"paired_by_bin: terms and models describe different models: terms "
                             f"row {row[i]} is model {theirs!r} but the models table's row "
                             f"{row[i]} is model {ours!r} (same order needed)")


def _few(values: np.ndarray) -> str:
    shown = ", ".join(str(v) for v in values[:5])
    return shown + (f", ... ({values.size} in all)" if values.size > 5 else "")


def tail_study(workdir: str | Path, *, edges: tuple[float, ...] = EDGES, progress: bool = True
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`tail_terms` and `paired_by_bin` of a finished study, rescored in log space.

    Reads the study's config, data and population.npz and rescores every model on the study's
    probes with clip=False (whatever `score.clip` says: the bins need true probabilities); it
    writes nothing into the study. A study whose files fail MANIFEST.json, or whose population
    does not match its config, is refused (`ResultsError`), as for `memjax score`.

    Returns:
      (terms, paired): `tail_terms` with the models table's model, condition, init_seed,
      order_seed and placement columns added, and `paired_by_bin`.
    """
    from memjax import results as R
    from memjax.study import load_trained, score_prepared

    _, prep, variables, _ = load_trained(workdir, "analyse", also=(R.MODELS_CSV,))
    models = R.read_table(Path(workdir) / R.MODELS_CSV)  # the table only, not arrays.npz
    probes, out = score_prepared(prep, variables, progress=progress, clip=False)
    y_star = prep.table["canary_label"].to_numpy()
    terms = tail_terms(out.per_probe["kl_q_uf"], out.per_probe["kl_q_ctrl"], y_star,
                       probes.labels, edges)
    ids = [c for c in ("model", "condition", "init_seed", "order_seed", "placement")
           if c in models.columns]
    terms = models[ids].reset_index(drop=True).iloc[terms["row"]].reset_index(drop=True).join(terms)
    return terms, paired_by_bin(models, terms)
