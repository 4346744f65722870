"""Figures of a sweep, from its combined tables only (`memjax.sweep.combine`); never retrains.

Each function returns a matplotlib `Figure` (shown inline by notebooks) and saves it when given
a path. An empty table (what `sweep.combine` returns when no study is complete) draws a figure
that says "no complete study", one whose models are all invalid says "no valid model"; the
functions documented to return None when there is nothing to draw still do. A table without a
column the figure needs, a score it does not hold, or a text column where numbers belong is a
ValueError naming it, raised before anything is drawn.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from memjax.plotting import COLORS, NO_VALID_MODEL, _as_names, _need_columns, _no_data, _save
from memjax.stats import only_valid, valid_mask, variance_components

NO_COMPLETE_STUDY = "no complete study"


def _message_figure(text: str, path: Path | None, ylabel: str | None = None) -> Figure:
    """A figure whose only content is `text` (nothing to draw)."""
    fig = Figure(figsize=(4.0, 3.4))
    ax = fig.subplots()
    _no_data(ax, text)
    ax.set_xticks([])
    ax.set_yticks([])
    if ylabel:
        ax.set_ylabel(ylabel)
    return _save(fig, path)


def _one_name(name, fn: str, arg: str) -> str:
    if not isinstance(name, str):
        raise ValueError(f"{fn}: {arg}={name!r} must be a column name (a string)")
    return name


def _floats(table: pd.DataFrame, col: str, fn: str, what: str) -> np.ndarray:
    """Column `col` of `table` as float64 [N]; a ValueError naming it when it is not numeric."""
    try:
        return table[col].to_numpy(np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{fn}: column {col!r} of the {what} is not numeric ({e})") from None


def _need_score(table: pd.DataFrame, score: str, fn: str, what: str) -> None:
    """Raises a ValueError unless `score` is a value of the table's score column."""
    have = list(dict.fromkeys(table["score"].astype(str)))
    if score not in have:
        raise ValueError(f"{fn}: score {score!r} is not in the {what} (its scores: "
                         f"{', '.join(have)})")


def plot_scores_by_study(models: pd.DataFrame, score: str = "M_score",
                         path: Path | None = None) -> Figure:
    """One score's UF and baseline distributions for every study of a sweep ("no complete
    study" for an empty table, "no valid model" when no valid model has a finite `score`).

    Raises:
      ValueError: no study or condition column, or `score` not a numeric column of `models`.
    """
    fn = "plot_scores_by_study"
    _one_name(score, fn, "score")
    if len(models) == 0:
        return _message_figure(NO_COMPLETE_STUDY, path, score)
    _need_columns(models, ("study", "condition"), fn, "models table")
    if score not in models.columns:
        raise ValueError(f"{fn}: score {score!r} is not a column of the models table")
    df = only_valid(models)
    if not np.isfinite(_floats(df, score, fn, "models table")).any():
        return _message_figure(NO_VALID_MODEL, path, score)
    studies = list(dict.fromkeys(df["study"]))
    fig = Figure(figsize=(max(4.0, 1.3 * len(studies)), 3.6))
    ax = fig.subplots()
    rng = np.random.default_rng(0)
    for i, study in enumerate(studies):
        for j, cond in enumerate(("uf", "baseline")):
            v = df.loc[(df["study"] == study) & (df["condition"] == cond), score].dropna()
            x = i + (j - 0.5) * 0.35
            ax.scatter(x + rng.uniform(-0.08, 0.08, len(v)), v, s=8, alpha=0.6,
                       color=COLORS[cond], label=cond if i == 0 else None)
            if len(v):
                ax.hlines(v.mean(), x - 0.15, x + 0.15, color="black", lw=1.5)
    ax.set_xticks(range(len(studies)), studies, rotation=30, ha="right", fontsize=8)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_ylabel(score)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_memorised_fraction(summary: pd.DataFrame, score: str = "M_score",
                            path: Path | None = None) -> Figure:
    """Per study: the fraction of UF models above the baseline's 95th percentile, with its
    Clopper-Pearson 95% interval (the share of models that measurably memorised); "no
    complete study" for an empty table.

    Raises:
      ValueError: a missing column (study, score, frac_above and its _lo, _hi), one of them not
        numeric, or a `score` the summary does not hold.
    """
    fn = "plot_memorised_fraction"
    _one_name(score, fn, "score")
    if len(summary) == 0:
        return _message_figure(NO_COMPLETE_STUDY, path, f"UF models above baseline p95 ({score})")
    _need_columns(summary, ("study", "score", "frac_above", "frac_above_lo", "frac_above_hi"),
                  fn, "summary table")
    _need_score(summary, score, fn, "summary table")
    for col in ("frac_above", "frac_above_lo", "frac_above_hi"):
        _floats(summary, col, fn, "summary table")
    s = summary[summary["score"] == score]
    fig = Figure(figsize=(max(4.0, 1.1 * len(s)), 3.4))
    ax = fig.subplots()
    x = np.arange(len(s))
    frac = s["frac_above"].to_numpy(np.float64)
    err = [frac - s["frac_above_lo"].to_numpy(np.float64),
           s["frac_above_hi"].to_numpy(np.float64) - frac]
    ax.bar(x, frac, color="tab:red", alpha=0.7)
    ax.errorbar(x, frac, yerr=err, fmt="none", color="black", capsize=3)
    ax.axhline(0.05, color="grey", ls="--", lw=0.8, label="chance (5%)")
    ax.set_xticks(x, s["study"], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"UF models above baseline p95 ({score})")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _paired_errorbars(ax, x: np.ndarray, rows: pd.DataFrame, label, col: str = "pair_diff",
                      color: str = COLORS["uf"]) -> None:
    """Mean differences (`col`, default the UF-minus-twin `pair_diff`) with their intervals
    (`col`_lo, `col`_hi) at positions x, each labelled above its interval (at the point when
    it has none) with `label(row)`; a dashed line at 0."""
    d = rows[col].to_numpy(np.float64)
    lo, hi = rows[f"{col}_lo"].to_numpy(np.float64), rows[f"{col}_hi"].to_numpy(np.float64)
    ax.errorbar(x, d, yerr=[d - lo, hi - d], fmt="o", color=color, capsize=4)
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    for xi, (_, r), top in zip(x, rows.iterrows(), np.where(np.isfinite(hi), hi, d)):
        if np.isfinite(r[col]):
            ax.annotate(label(r), (xi, top), textcoords="offset points",
                        xytext=(0, 4), ha="center", fontsize=7)
    ax.margins(y=0.15)


def plot_paired_by_study(summary: pd.DataFrame, scores: tuple[str, ...] = ("M_score", "PD_M"),
                         path: Path | None = None) -> Figure | None:
    """Per study and score: the mean UF-minus-twin difference with its bootstrap 95% interval,
    labelled with the share of pairs above 0 and the Wilcoxon signed-rank p.

    The paired test is the sensitive one (twins share init, data order and placement), so this
    is the figure that says whether a regulariser removed memorisation. None without twins
    (no pair_diff column, or no finite pair_diff of these scores; also for an empty table).

    `scores`: score names, or one name as a string (drawn alone).

    Raises:
      ValueError: `scores` not names, a score the summary does not hold, a missing column
        (study, score, pair_diff_lo, pair_diff_hi, pair_frac_pos, wilcoxon_p) or one of them
        or pair_diff not numeric.
    """
    fn = "plot_paired_by_study"
    scores = _as_names(scores, fn, "scores")
    if "pair_diff" not in summary or len(summary) == 0:
        return None
    numeric = ("pair_diff", "pair_diff_lo", "pair_diff_hi", "pair_frac_pos", "wilcoxon_p")
    _need_columns(summary, ("study", "score", *numeric), fn, "summary table")
    for sc in scores:
        _need_score(summary, sc, fn, "summary table")
    diff, *_ = [_floats(summary, col, fn, "summary table") for col in numeric]  # each checked
    s = summary[summary["score"].isin(scores) & np.isfinite(diff)]
    if s.empty:
        return None
    studies = list(dict.fromkeys(s["study"]))
    present = [sc for sc in scores if sc in set(s["score"])]
    fig = Figure(figsize=(3.0 + 1.2 * len(studies), 3.2 * len(present)))
    axes = fig.subplots(len(present), 1, squeeze=False)[:, 0]
    for ax, score in zip(axes, present):
        rows = s[s["score"] == score].set_index("study").reindex(studies)
        x = np.arange(len(studies))
        _paired_errorbars(ax, x, rows, lambda r: f"{r['pair_frac_pos']:.0%} > 0\n"
                                                 f"p={r['wilcoxon_p']:.2g}")
        ax.set_xticks(x, studies, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"{score}: UF - twin")
        ax.margins(x=0.5 / max(len(studies), 1), y=0.25)   # room for the edge labels
    fig.tight_layout()
    return _save(fig, path)


def plot_contrasts(contrasts: pd.DataFrame, score: str = "M_score",
                   path: Path | None = None) -> Figure | None:
    """Per study: its UF-minus-twin effect minus the reference study's (`stats.contrast_studies`,
    `combined_contrasts.csv`) with the 95% interval, labelled with the two-sided p and the
    Holm-adjusted p: does the setting *change* memorisation. None if nothing was contrasted
    (also for an empty table).

    Raises:
      ValueError: a missing column (study, reference, score, contrast and its _lo, _hi, p,
        p_holm), one of the numbers not numeric, or a `score` the table does not hold.
    """
    fn = "plot_contrasts"
    _one_name(score, fn, "score")
    if len(contrasts) == 0:
        return None
    numeric = ("contrast", "contrast_lo", "contrast_hi", "p", "p_holm")
    _need_columns(contrasts, ("study", "reference", "score", *numeric), fn, "contrasts table")
    _need_score(contrasts, score, fn, "contrasts table")
    contrast, *_ = [_floats(contrasts, col, fn, "contrasts table") for col in numeric]
    c = contrasts[(contrasts["score"] == score) & np.isfinite(contrast)]
    if c.empty:
        return None
    studies = list(c["study"])
    fig = Figure(figsize=(3.0 + 1.2 * len(studies), 3.4))
    ax = fig.subplots()
    x = np.arange(len(studies))
    _paired_errorbars(ax, x, c, lambda r: f"p={r['p']:.2g}\nHolm {r['p_holm']:.2g}",
                      col="contrast", color="tab:purple")
    ax.set_xticks(x, studies, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"{score} (UF - twin) minus {c['reference'].iloc[0]}'s")
    ax.margins(x=0.5 / len(studies), y=0.25)
    fig.tight_layout()
    return _save(fig, path)


def plot_tail(by_study: dict[str, pd.DataFrame], path: Path | None = None) -> Figure | None:
    """Where the M score comes from (`memjax.tail.paired_by_bin` of each study): per bin of the
    canary class's control probability, the UF-minus-twin part of the M score (top) and of the
    probability-scale sum (bottom) with bootstrap 95% intervals, one colour per study. The parts
    of a study add up to its M score (resp. its mean probability shift). None when no study has
    twins."""
    by_study = {k: v for k, v in by_study.items() if len(v)}
    if not by_study:
        return None
    bins = list(dict.fromkeys(next(iter(by_study.values()))["bin"]))
    fig = Figure(figsize=(2.0 + 1.6 * len(bins), 6.0))
    axes = fig.subplots(2, 1)
    width = 0.7 / len(by_study)
    for ax, value, ylabel in ((axes[0], "M_score_part", "M score part: UF - twin"),
                              (axes[1], "prob_part", "probability part: UF - twin")):
        for j, (study, paired) in enumerate(by_study.items()):
            rows = paired[paired["value"] == value].set_index("bin").reindex(bins)
            x = np.arange(len(bins)) + (j - (len(by_study) - 1) / 2) * width
            d = rows["pair_diff"].to_numpy(np.float64)
            err = [d - rows["pair_diff_lo"].to_numpy(np.float64),
                   rows["pair_diff_hi"].to_numpy(np.float64) - d]
            ax.errorbar(x, d, yerr=err, fmt="o", capsize=3, label=study, color=f"C{j}")
        ax.axhline(0, color="grey", lw=0.8, ls="--")
        ax.set_xticks(np.arange(len(bins)), bins, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=9)
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("bin of f(x^R)_{y*}, the control output's probability of the canary class")
    return _save(fig, path)


def plot_trajectory_pairs(by_study: dict[str, pd.DataFrame], score: str = "traj_M_score",
                          path: Path | None = None) -> Figure | None:
    """Per study, the mean UF-minus-twin difference of a trajectory score at every epoch with its
    95% interval (`stats.paired_by_epoch` tables): when memorisation appears. None if empty."""
    tables = {k: v for k, v in by_study.items() if len(v)}
    if not tables:
        return None
    fig = Figure(figsize=(5.2, 3.4))
    ax = fig.subplots()
    cmap = ["tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown"]
    for i, (name, t) in enumerate(tables.items()):
        x = t["epoch"].to_numpy() + 1
        color = cmap[i % len(cmap)]
        ax.plot(x, t["pair_diff"], color=color, label=name, marker="o", ms=3)
        ax.fill_between(x, t["pair_diff_lo"].astype(float), t["pair_diff_hi"].astype(float),
                        color=color, alpha=0.2)
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{score.removeprefix('traj_')}: UF - twin")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def variance_table(models: pd.DataFrame, score: str = "M_score", condition: str = "uf",
                   factors: tuple[str, ...] = ("init_seed", "order_seed", "placement")
                   ) -> pd.DataFrame:
    """Share of a score's variance due to each seed factor, per study (UF models).

    Returns one row per study with valid `condition` models: study, n, the factors, residual;
    an empty table (with those columns) for an empty `models`.

    Raises:
      ValueError: a missing column (study, condition, the factors) or `score` not a numeric
        column of `models`.
    """
    fn = "variance_table"
    _one_name(score, fn, "score")
    _one_name(condition, fn, "condition")
    factors = _as_names(factors, fn, "factors")
    if len(models) == 0:
        return pd.DataFrame(columns=["study", "n", *factors, "residual"])
    _need_columns(models, ("study", "condition", *factors), fn, "models table")
    if score not in models.columns:
        raise ValueError(f"{fn}: score {score!r} is not a column of the models table")
    _floats(models, score, fn, "models table")
    rows = []
    for study, g in models[(models["condition"] == condition) & valid_mask(models)
                           ].groupby("study", sort=False):
        shares = variance_components(g[score].to_numpy(), {f: g[f].to_numpy() for f in factors})
        rows.append({"study": study, "n": len(g), **{f: shares[f] for f in factors},
                     "residual": shares["residual"]})
    return pd.DataFrame(rows)


def plot_variance_components(models: pd.DataFrame, score: str = "M_score",
                             path: Path | None = None) -> Figure:
    """Stacked bars: variance shares of init seed, data-order seed, placement, residual ("no
    complete study" for an empty table, "no valid model" without a valid UF model). Raises as
    `variance_table`."""
    if len(models) == 0:
        _one_name(score, "plot_variance_components", "score")
        return _message_figure(NO_COMPLETE_STUDY, path, f"share of variance of {score}")
    table = variance_table(models, score)
    if len(table) == 0:
        return _message_figure(NO_VALID_MODEL, path, f"share of variance of {score}")
    parts = [c for c in ("init_seed", "order_seed", "placement", "residual") if c in table]
    fig = Figure(figsize=(max(4.0, 1.1 * len(table)), 3.4))
    ax = fig.subplots()
    bottom = np.zeros(len(table))
    for part in parts:
        ax.bar(table["study"], table[part], bottom=bottom, label=part)
        bottom += table[part].to_numpy()
    ax.set_ylabel(f"share of variance of {score}")
    ax.tick_params(axis="x", rotation=30, labelsize=8)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_crossed_components(decomposition: pd.DataFrame, score: str = "M_score",
                            path: Path | None = None) -> Figure | None:
    """Variance of one model's score due to the init seed, the data-order seed and the rest,
    with 95% intervals, for the UF models, the baselines and the UF-minus-twin difference of
    every crossed study (`seed_variance.crossed_decomposition`). None when there is none."""
    from memjax.seed_variance import COMPONENTS

    d = decomposition[decomposition["score"] == score] if len(decomposition) else decomposition
    if d.empty:
        return None
    groups = list(dict.fromkeys(zip(d["study"], d["of"])))
    fig = Figure(figsize=(3.0 + 1.3 * len(groups), 3.4))
    ax = fig.subplots()
    x = np.arange(len(groups))
    width = 0.8 / len(COMPONENTS)
    for k, name in enumerate(COMPONENTS):
        rows = d.set_index(["study", "of"]).loc[groups]
        v = rows[f"var_{name}"].to_numpy(np.float64)
        err = [v - rows[f"var_{name}_lo"].to_numpy(np.float64),
               rows[f"var_{name}_hi"].to_numpy(np.float64) - v]
        ax.bar(x + (k - 1) * width, v, width, yerr=err, capsize=3, label=f"{name} seed"
               if name != "residual" else "residual (init x order, rest)")
    labels = [of if d["study"].nunique() == 1 else f"{study}\n{of}" for study, of in groups]
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel(f"variance of {score}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_dp_tradeoff(models: pd.DataFrame, audit: pd.DataFrame, score: str = "M_score",
                     path: Path | None = None, summary: pd.DataFrame | None = None) -> Figure:
    """Memorisation against the accounted epsilon, per study of a DP sweep: the UF-vs-baseline
    AUC, the empirical epsilon lower bound (`audit` has columns study, score, auc, eps_lb) and,
    when `summary` has the paired columns, the mean UF-minus-twin difference with its 95%
    interval (the sensitive measure: twins share every key). "no complete study" for an empty
    `audit`.

    Raises:
      ValueError: an audit without study, score, auc or eps_lb, a `score` it does not hold, a
        models table with dp_epsilon but no study column, a summary with pair_diff but without
        study, score, pair_diff_lo, pair_diff_hi or wilcoxon_p (or not holding `score`), or any
        of those numbers not numeric.
    """
    fn = "plot_dp_tradeoff"
    _one_name(score, fn, "score")
    if len(audit) == 0:
        return _message_figure(NO_COMPLETE_STUDY, path, f"AUC, UF vs baseline ({score})")
    _need_columns(audit, ("study", "score", "auc", "eps_lb"), fn, "audit table")
    _need_score(audit, score, fn, "audit table")
    for col in ("auc", "eps_lb"):
        _floats(audit, col, fn, "audit table")
    if "dp_epsilon" in models:
        _need_columns(models, ("study",), fn, "models table")
        _floats(models, "dp_epsilon", fn, "models table")
    if summary is not None and "pair_diff" in summary:
        numeric = ("pair_diff", "pair_diff_lo", "pair_diff_hi", "wilcoxon_p")
        _need_columns(summary, ("study", "score", *numeric), fn, "summary table")
        if len(summary):
            _need_score(summary, score, fn, "summary table")
        for col in numeric:
            _floats(summary, col, fn, "summary table")
    eps = models.groupby("study")["dp_epsilon"].median() if "dp_epsilon" in models else None
    a = audit[audit["score"] == score].set_index("study")
    studies = list(a.index)
    x = np.array([eps.get(s, np.inf) if eps is not None else np.inf for s in studies], float)
    x = np.where(np.isfinite(x), x, np.nan)
    paired = None
    if summary is not None and "pair_diff" in summary:
        paired = summary[summary["score"] == score].set_index("study").reindex(studies)
    n_panels = 3 if paired is not None else 2
    fig = Figure(figsize=(3.75 * n_panels, 3.4))
    axes = fig.subplots(1, n_panels)
    short = [s.replace("dp_noise_multiplier=", "noise ") for s in studies]
    labels = [f"{s}\n(eps={e:.2g})" if np.isfinite(e) else f"{s}\n(no DP bound)"
              for s, e in zip(short, x)]
    pos = np.arange(len(studies))
    if paired is not None:
        ax = axes[0]
        _paired_errorbars(ax, pos, paired, lambda r: f"p={r['wilcoxon_p']:.2g}")
        ax.set_ylabel(f"{score}: UF - twin (mean, 95% CI)")
    ax1, ax2 = axes[-2], axes[-1]
    ax1.bar(pos, a["auc"], color="tab:red", alpha=0.7)
    ax1.axhline(0.5, color="grey", ls="--", lw=0.8)
    ax1.set_ylabel(f"AUC, UF vs baseline ({score})")
    ax2.bar(pos, a["eps_lb"], color="tab:purple", alpha=0.7, label="empirical lower bound")
    ax2.scatter(pos, x, color="black", marker="_", s=300, label="accounted epsilon")
    ax2.set_ylabel("epsilon")
    ax2.legend(fontsize=7)
    for ax in axes:
        ax.set_xticks(pos, labels, rotation=30, ha="right", fontsize=7)
    fig.tight_layout()
    return _save(fig, path)
