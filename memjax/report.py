"""The short `report.md` of a run directory, rendered from saved results only."""
from __future__ import annotations

import numpy as np
import pandas as pd

from memjax.results import RunResults
from memjax.stats import valid_mask

REPORT_COLUMNS = ("score", "n_uf", "n_base", "mean_uf", "mean_base", "diff", "diff_lo", "diff_hi",
                  "auc", "mw_p", "frac_above", "frac_above_lo", "frac_above_hi", "n_pairs",
                  "n_clusters", "pair_diff", "pair_diff_lo", "pair_diff_hi", "wilcoxon_p",
                  "paired_method")


def summary_markdown(summary: pd.DataFrame, columns=REPORT_COLUMNS) -> str:
    """The UF-vs-baseline summary as a Markdown table."""
    cols = [c for c in columns if c in summary]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in summary.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, (float, np.floating)):
                cells.append("nan" if not np.isfinite(v) else (f"{v:.3g}" if c.endswith("_p") or c == "mw_p" else f"{v:.4f}"))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scores_without_values(models: pd.DataFrame, scores) -> list[str]:
    """The scores of `scores` (columns of `models`) that no valid model has a finite value of:
    a population that trained without diverging but whose outputs saturate (probabilities of
    exactly 0 or 1 make log-ratio scores infinite or undefined) gets no statistic for them."""
    keep = valid_mask(models)
    if not keep.any():
        return []
    return [s for s in scores if s in models.columns and not np.isfinite(
        pd.to_numeric(models.loc[keep, s], errors="coerce").to_numpy(np.float64)).any()]


def render(results: RunResults, timings: dict | None = None) -> str:
    """Markdown text of the report."""
    cfg = results.config["config"]
    df = results.models
    n_valid = int(valid_mask(df).sum())
    data = results.config.get("data", {})
    lines = [
        f"# memjax study `{cfg['name']}`",
        "",
        f"- data: {cfg['data']['dataset']} from {data.get('train', {}).get('source')} "
        f"({data.get('train', {}).get('n')} train, {data.get('val', {}).get('n')} validation images)",
        f"- model: {cfg['model']['name']}; optimiser {cfg['train']['optimizer']} "
        f"lr {cfg['train']['learning_rate']}, batch {cfg['train']['batch_size']}, "
        f"up to {cfg['train']['epochs']} epochs, early stopping {cfg['train']['early_stopping']}",
        f"- feature: {cfg['feature']['kind']} {cfg['feature']['text'] if cfg['feature']['kind'] == 'text' else ''} "
        f"at offset {tuple(cfg['feature']['offset'])}",
        f"- population: {len(df)} models ({', '.join(f'{k}: {v}' for k, v in df['condition'].value_counts().items())}), "
        f"{n_valid} valid, {int(df['diverged'].sum())} diverged",
        f"- validation accuracy: mean {df['val_acc'].mean():.4f} (min {df['val_acc'].min():.4f}, max {df['val_acc'].max():.4f})",
        f"- epochs trained: mean {df['epochs_trained'].mean():.1f}",
    ]
    if timings:
        lines.append("- wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    lines += [
        f"- versions: jax {results.config['versions'].get('jax')}, flax {results.config['versions'].get('flax')}, "
        f"optax {results.config['versions'].get('optax')}",
        "",
        "## UF models vs baseline models",
        "",
        "mean_uf / mean_base: population means; diff: their difference with a bootstrap 95% interval;",
        "auc: ROC AUC of 'UF model vs baseline model'; mw_p: one-sided Mann-Whitney p;",
        "frac_above: fraction of UF models above the baseline's 95th percentile (Clopper-Pearson 95%);",
        "pair_diff: mean of UF minus its baseline twin (same init, data order and placement; bootstrap",
        "95% interval), wilcoxon_p: one-sided Wilcoxon signed-rank p over the twins; with several",
        "placements per seed the n_clusters seeds are the units (cluster bootstrap, Wilcoxon on",
        "the seeds' mean differences; the unpaired columns likewise count seeds); in a crossed",
        "init x order design the intervals and p-values (wilcoxon_p, mw_p) come from the two-way",
        "random-effects model: t intervals and t tests (paired_method says which applies).",
        "M_score is -M3 (label-aware); PD_M the probability-difference score at the canary's label.",
        "",
        summary_markdown(results.summary),
        "",
        "![scores](figures/scores.png) ![roc](figures/roc.png)",
        "",
        "![examples](figures/examples.png) ![training](figures/training.png)",
        "",
    ]
    if n_valid == 0:
        lines.insert(2, "**Every model of this study diverged: no score is valid.**\n")
    empty = scores_without_values(df, list(results.summary.get("score", [])))
    if empty:
        lines.insert(2, f"**No valid model has a finite value of {', '.join(empty)}** (outputs "
                        "saturated at probability 0 or 1?): those rows of the table are NaN.\n")
    return "\n".join(lines)
