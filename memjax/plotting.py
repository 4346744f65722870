"""Figures drawn from saved results only (`memjax.results.load`); plotting never retrains.

Each `plot_*` function returns a matplotlib `Figure` (shown inline by notebooks) and saves it
when given a path.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # the object API: no pyplot state, no backend needed

from memjax.results import ResultsError, RunResults
from memjax.stats import only_valid, roc_curve, twin_pairs

DIST_SCORES = ("M2", "M_score", "PD_M", "M6")
ROC_SCORES = ("M2", "M_score", "PD_M", "M12")
COLORS = {"uf": "tab:red", "baseline": "tab:blue"}
NO_VALID_MODEL = "no valid model"


def _valid(results: RunResults):
    return only_valid(results.models)


def _no_data(ax, text: str = NO_VALID_MODEL) -> None:
    """Writes `text` in the middle of an axes that has nothing to draw."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


def _as_names(names, fn: str, arg: str) -> tuple[str, ...]:
    """`names` (column names, or one name as a string) as a non-empty tuple of strings.

    Raises:
      ValueError: not a string or a sequence of strings, or empty; the message names `arg`.
    """
    if isinstance(names, str):
        return (names,)
    try:
        out = tuple(names)
    except TypeError:
        out = None
    if not out or not all(isinstance(n, str) for n in out):
        raise ValueError(f"{fn}: {arg}={names!r} must be a name or a non-empty sequence of names")
    return out


def _need_columns(table, columns, fn: str, what: str) -> None:
    """Raises a ValueError naming the `columns` missing from `table` (the `what`)."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{fn}: the {what} has no column {', '.join(map(repr, missing))}")


def _pick_scores(models, scores, default: tuple[str, ...], fn: str) -> list[str]:
    """The score columns to draw. The default's scores are drawn where the table has them; a
    score named by the caller (a sequence, or one name as a string) must be a column."""
    names = _as_names(scores, fn, "scores")
    if names == tuple(default):
        return [s for s in names if s in models.columns]
    missing = [s for s in names if s not in models.columns]
    if missing:
        raise ValueError(f"{fn}: {'scores' if len(missing) > 1 else 'score'} "
                         f"{', '.join(map(repr, missing))} "
                         f"{'are not columns' if len(missing) > 1 else 'is not a column'} of the "
                         "models table")
    return list(dict.fromkeys(names))


def plot_distributions(results: RunResults, path: Path | None = None, scores=DIST_SCORES) -> Figure:
    """Per score, the UF and baseline models' values (points and box plots); a panel without
    a valid model's value says "no valid model".

    `scores`: score columns, or one name as a string; a name that is not a column of the models
    table is a ValueError (of the default `DIST_SCORES`, those the table has are drawn).
    """
    scores = _pick_scores(results.models, scores, DIST_SCORES, "plot_distributions")
    if not scores:
        raise ValueError(f"plot_distributions: the models table has none of the scores "
                         f"{', '.join(DIST_SCORES)}; name the score columns with scores=")
    _need_columns(results.models, ("condition",), "plot_distributions", "models table")
    df = _valid(results)
    fig = Figure(figsize=(3.2 * len(scores), 3.4))
    axes = fig.subplots(1, len(scores), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, s in zip(axes[0], scores):
        groups = [(c, df.loc[df["condition"] == c, s].dropna().to_numpy()) for c in ("uf", "baseline")]
        groups = [(c, v) for c, v in groups if len(v)]
        if not groups:
            _no_data(ax)
            ax.set_title(s)
            continue
        ax.boxplot([v for _, v in groups], tick_labels=[c for c, _ in groups], showfliers=False)
        for i, (c, v) in enumerate(groups):
            ax.scatter(i + 1 + rng.uniform(-0.12, 0.12, len(v)), v, s=10, alpha=0.7, color=COLORS[c])
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(s)
    fig.suptitle(f"{results.config['config']['name']}: scores over the population")
    return _save(fig, path)


def plot_roc(results: RunResults, path: Path | None = None, scores=ROC_SCORES) -> Figure | None:
    """ROC of "UF model vs baseline model" for each score (`scores` as in
    `plot_distributions`). None without valid models of both conditions."""
    scores = _pick_scores(results.models, scores, ROC_SCORES, "plot_roc")
    _need_columns(results.models, ("condition",), "plot_roc", "models table")
    df = _valid(results)
    if not {"uf", "baseline"} <= set(df["condition"]):
        return None
    fig = Figure(figsize=(4, 4))
    ax = fig.subplots()
    for s in scores:
        pos = df.loc[df["condition"] == "uf", s].dropna().to_numpy()
        neg = df.loc[df["condition"] == "baseline", s].dropna().to_numpy()
        if len(pos) and len(neg):
            fpr, tpr, _ = roc_curve(pos, neg)
            ax.plot(fpr, tpr, label=s)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5, ls="--")
    ax.set_xlabel("false positive rate (baseline models)")
    ax.set_ylabel("true positive rate (UF models)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_pairs(results: RunResults, path: Path | None = None, scores=DIST_SCORES) -> Figure | None:
    """Per score, each UF model's value against its baseline twin's (`stats.twin_pairs`).

    Twins share init, data order and placement, so seed effects put the points near the
    diagonal; memorisation shows as points above it. None when the table has no twins
    (`scores` as in `plot_distributions`).
    """
    scores = _pick_scores(results.models, scores, DIST_SCORES, "plot_pairs")
    _need_columns(results.models, ("condition",), "plot_pairs", "models table")
    df = _valid(results).reset_index(drop=True)
    pairs = twin_pairs(df)
    if pairs is None or not scores:
        return None
    fig = Figure(figsize=(3.2 * len(scores), 3.4))
    axes = fig.subplots(1, len(scores), squeeze=False)
    for ax, s in zip(axes[0], scores):
        x = df[s].to_numpy(np.float64)[pairs[1]]
        y = df[s].to_numpy(np.float64)[pairs[0]]
        ok = np.isfinite(x) & np.isfinite(y)
        ax.scatter(x[ok], y[ok], s=10, alpha=0.7, color=COLORS["uf"])
        if ok.any():
            lo, hi = float(min(x[ok].min(), y[ok].min())), float(max(x[ok].max(), y[ok].max()))
            ax.plot([lo, hi], [lo, hi], color="grey", lw=0.5, ls="--")
            above = float(np.mean(y[ok] > x[ok]))
            ax.set_title(f"{s}: {above:.0%} of {int(ok.sum())} above")
        else:
            ax.set_title(s)
        ax.set_xlabel("baseline twin")
        ax.set_ylabel("UF model")
    fig.suptitle(f"{results.config['config']['name']}: UF model against its baseline twin")
    fig.tight_layout()
    return _save(fig, path)


def plot_examples(results: RunResults, path: Path | None = None) -> Figure | None:
    """The canary without/with the feature, and probes clean / with UF / with control patch.
    None when the run saved no example (no `example/canary_uf` array).

    Raises:
      ValueError: an example array is missing, not numeric, not an image ([H, W] or [H, W, C]
        with C 1, 3 or 4; probes [N, ...] with N >= 1), or the probe arrays differ in N; the
        message names the array.
    """
    a = results.arrays
    if "example/canary_uf" not in a:
        return None
    n = _check_examples(a)
    fig = Figure(figsize=(1.6 * (n + 1), 5))
    axes = fig.subplots(3, n + 1)
    rows = [("canary", "example/canary_clean", "example/probe_clean", "clean"),
            ("canary + UF", "example/canary_uf", "example/probe_uf", "probe + UF"),
            (None, None, "example/probe_ctrl", "probe + control")]
    for r, (title, canary_key, probe_key, label) in enumerate(rows):
        ax = axes[r, 0]
        ax.axis("off")
        if canary_key:
            ax.imshow(_show(a[canary_key]), cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=8)
        for i in range(n):
            ax = axes[r, i + 1]
            ax.imshow(_show(a[probe_key][i]), cmap="gray", vmin=0, vmax=1)
            ax.axis("off")
            if i == 0:
                ax.set_title(label, fontsize=8)
    return _save(fig, path)


EXAMPLE_IMAGES = ("example/canary_clean", "example/canary_uf")
EXAMPLE_PROBES = ("example/probe_clean", "example/probe_uf", "example/probe_ctrl")


def _check_examples(arrays) -> int:
    """The number of probe images of `plot_examples`' arrays, after checking them all."""
    counts = {}
    for key in (*EXAMPLE_IMAGES, *EXAMPLE_PROBES):
        if key not in arrays:
            raise ValueError(f"plot_examples: no array {key!r} in the run's arrays")
        x = np.asarray(arrays[key])
        probes = key in EXAMPLE_PROBES
        if x.dtype.kind not in "iuf":
            raise ValueError(f"plot_examples: array {key!r} has dtype {x.dtype}, not numeric")
        if probes and (x.ndim == 0 or x.shape[0] == 0):
            raise ValueError(f"plot_examples: array {key!r} of shape {x.shape} holds no image")
        image = x.shape[1:] if probes else x.shape
        if not (len(image) == 2 or (len(image) == 3 and image[-1] in (1, 3, 4))) or 0 in image:
            raise ValueError(f"plot_examples: array {key!r} has shape {x.shape}; expected "
                             + ("[N, H, W] or [N, H, W, C]" if probes else "[H, W] or [H, W, C]")
                             + " with C 1, 3 or 4")
        if probes:
            counts[key] = x.shape[0]
    if len(set(counts.values())) > 1:
        raise ValueError("plot_examples: the probe arrays hold different numbers of images: "
                         + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts[EXAMPLE_PROBES[0]]


def _save(fig: Figure, path: Path | None) -> Figure:
    fig.tight_layout()
    if path is not None:
        from memjax.results import atomic_path

        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    return fig


def _show(img: np.ndarray) -> np.ndarray:
    img = np.clip(img, 0, 1)
    return img[..., 0] if img.shape[-1] == 1 else img


def plot_training(results: RunResults, path: Path | None = None) -> Figure:
    """Validation accuracy per epoch, mean and range over models, per condition; says "no
    epoch recorded" when the epochs table is empty.

    Raises:
      ValueError: a non-empty epochs table without model, epoch or val_acc, or a models table
        without model or condition (the message names the column).
    """
    if len(results.epochs) == 0:
        fig = Figure(figsize=(4.5, 3.2))
        ax = fig.subplots()
        _no_data(ax, "no epoch recorded")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy")
        return _save(fig, path)
    _need_columns(results.epochs, ("model", "epoch", "val_acc"), "plot_training", "epochs table")
    _need_columns(results.models, ("model", "condition"), "plot_training", "models table")
    ep = results.epochs.merge(results.models[["model", "condition"]], on="model")
    fig = Figure(figsize=(4.5, 3.2))
    ax = fig.subplots()
    for c, g in ep.groupby("condition"):
        agg = g.groupby("epoch")["val_acc"].agg(["mean", "min", "max"])
        ax.plot(agg.index + 1, agg["mean"], color=COLORS.get(c), label=c)
        ax.fill_between(agg.index + 1, agg["min"], agg["max"], color=COLORS.get(c), alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.legend()
    return _save(fig, path)


def plot_trajectories(results: RunResults, path: Path | None = None) -> Figure | None:
    """Trajectory scores per epoch (mean and range over models) per condition."""
    ep = results.epochs
    cols = [c for c in ("traj_M2", "traj_M_score", "traj_PD_M") if c in ep]
    if not cols:
        return None
    ep = ep.merge(results.models[["model", "condition"]], on="model")
    fig = Figure(figsize=(3.6 * len(cols), 3.2))
    axes = fig.subplots(1, len(cols), squeeze=False)[0]
    for ax, col in zip(axes, cols):
        for c, g in ep.groupby("condition"):
            agg = g.groupby("epoch")[col].agg(["mean", "min", "max"])
            ax.plot(agg.index + 1, agg["mean"], color=COLORS.get(c), label=c)
            ax.fill_between(agg.index + 1, agg["min"], agg["max"], color=COLORS.get(c), alpha=0.2)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("epoch")
        ax.set_title(col[5:])
    axes[0].legend()
    return _save(fig, path)


def figures(results: RunResults, outdir: str | Path) -> list[Path]:
    """All figures of a run directory into `outdir` (PNG).

    Raises:
      ResultsError: `outdir` (or a folder above it) exists and is not a folder; nothing drawn.
    """
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ResultsError(f"{outdir}: exists and is not a folder; name a folder for the figures")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        raise ResultsError(f"{outdir}: cannot create the figures folder ({e})") from e
    made = []
    for name, fn in (("scores.png", plot_distributions), ("pairs.png", plot_pairs),
                     ("roc.png", plot_roc),
                     ("examples.png", plot_examples), ("training.png", plot_training),
                     ("trajectories.png", plot_trajectories)):
        if fn(results, outdir / name) is not None:
            made.append(outdir / name)
    return made
