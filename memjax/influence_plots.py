"""Figures of self-influence results (`memjax.influence`); drawn from saved numbers, never
retraining. The object API (`matplotlib.figure.Figure`): no pyplot state, no backend needed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from memjax.plotting import _save


def plot_influence_ranks(ranks, n_train: int, path: str | Path | None = None,
                         bins: int = 20, title: str | None = None) -> Figure:
    """Histogram over seeds of the UF image's rank by self-influence (0 = most influential).

    Args:
      ranks: int [S], one rank per seed (`memjax.influence.UFRank.rank`), each in [0, N).
      n_train: N, the number of training images (the x axis spans [0, N)).
      path: save a PNG there (atomically) when given.
      bins: histogram bins over [0, N).
    Returns:
      The Figure. A dashed line marks the count per bin expected if ranks were uniform.
    Raises:
      ValueError: no ranks, or a rank outside [0, N).
    """
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or ranks.size == 0:
        raise ValueError(f"ranks: expected a non-empty 1-D array, got shape {ranks.shape}")
    if ranks.min() < 0 or ranks.max() >= n_train:
        raise ValueError(f"ranks must lie in [0, {n_train}), got [{ranks.min()}, {ranks.max()}]")
    bins = max(1, min(bins, n_train))
    fig = Figure(figsize=(4.8, 3.2))
    ax = fig.subplots()
    ax.hist(ranks, bins=np.linspace(0, n_train, bins + 1), color="tab:red", alpha=0.8)
    ax.axhline(ranks.size / bins, color="grey", ls="--", lw=0.8, label="uniform")
    ax.axvline(float(np.median(ranks)), color="black", lw=0.8,
               label=f"median {int(np.median(ranks))}")
    ax.set_xlim(0, n_train)
    ax.set_xlabel(f"rank of the UF image by self-influence (0 = most; N = {n_train})")
    ax.set_ylabel("seeds")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title or f"UF image's self-influence rank over {ranks.size} seeds", fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_self_influence(si, marks: dict[str, list[int]] | None = None,
                        path: str | Path | None = None, title: str | None = None) -> Figure:
    """Distribution of self-influence over the training images (log scale), with chosen images
    marked by vertical lines (e.g. {"top-k": [...], "study canary": [...]}).

    Args:
      si: float [N], the SI of every training image (`self_influence.npz`'s si).
    """
    si = np.asarray(si, np.float64)
    if si.ndim != 1 or si.size == 0 or not np.all(np.isfinite(si)) or np.any(si < 0):
        raise ValueError(f"si: expected finite non-negative [N], got shape {si.shape}")
    fig = Figure(figsize=(4.8, 3.2))
    ax = fig.subplots()
    lo = max(float(si[si > 0].min()) if np.any(si > 0) else 1e-12, 1e-12)
    ax.hist(np.maximum(si, lo), bins=np.geomspace(lo, max(float(si.max()), lo * 10), 40),
            color="grey", alpha=0.7)
    ax.set_xscale("log")
    colors = ["tab:red", "tab:blue", "tab:green", "tab:orange"]
    for (label, idx), color in zip((marks or {}).items(), colors):
        for j, i in enumerate(idx):
            ax.axvline(max(float(si[int(i)]), lo), color=color, lw=1,
                       label=label if j == 0 else None)
    ax.set_xlabel("self-influence (sum over checkpoints of ||grad||^2)")
    ax.set_ylabel("training images")
    ax.set_title(title or f"self-influence of {si.size} training images", fontsize=9)
    if marks:
        ax.legend(fontsize=8)
    return _save(fig, path)
