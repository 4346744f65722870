"""Writing a toy experiment's results: a run directory like a study's (no pickle)."""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from memjax import results as R
from memjax.toy.experiment import ToyResult


def plot_fraction(result: ToyResult, path: Path | None = None) -> Figure:
    """Fraction of memorising runs per sigma with Clopper-Pearson 95% intervals."""
    s = result.summary
    fig = Figure(figsize=(4.2, 3.2))
    ax = fig.subplots()
    ax.errorbar(s["sigma"], s["fraction"], yerr=[s["fraction"] - s["lo"], s["hi"] - s["fraction"]],
                fmt="o-", capsize=3)
    ax.set_xlabel("sigma (std of z on ordinary points)")
    ax.set_ylabel(f"fraction memorising (p < {result.config.alpha})")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    if path is not None:
        with R.atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    return fig


def write_toy_results(result: ToyResult, workdir: str | Path) -> Path:
    """config.json, runs.csv, summary.csv, figures/fraction.png, MANIFEST.json in `workdir`."""
    from memjax.study import environment

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    R.write_json(workdir / R.CONFIG, {"config": result.to_dict()["config"], **environment()})
    R.write_table(workdir / "runs.csv", result.runs)
    R.write_table(workdir / R.SUMMARY, result.summary)
    (workdir / R.FIGURES).mkdir(exist_ok=True)
    plot_fraction(result, workdir / R.FIGURES / "fraction.png")
    R.write_manifest(workdir)
    return workdir


__all__ = ["plot_fraction", "write_toy_results"]
