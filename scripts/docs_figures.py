"""Redraws the figures of docs/ from finished run and sweep directories (never trains).

    python scripts/docs_figures.py [--runs runs] [--out docs/figures] [--only influence dp seed-variance ...]

Each figure is drawn only when its runs exist (the commands are in docs/reproduction.md and
docs/audit.md); the rest are listed as skipped.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def _summary(run_dir: Path, study: str) -> pd.DataFrame:
    return pd.read_csv(run_dir / "summary.csv").assign(study=study)


def influence(runs: Path, out: Path) -> list[str]:
    from memjax.influence_plots import plot_influence_ranks, plot_self_influence
    from memjax.influence_study import load_influence_study
    from memjax.sweep_plots import plot_paired_by_study

    made = []
    if (runs / "influence" / "uf_ranks.csv").is_file():
        st = load_influence_study(runs / "influence")
        plot_self_influence(st.clean_si, {"top-4 by SI": list(st.canaries),
                                          "study canaries": sorted(set(st.ranks.canary))},
                            path=out / "influence_si.png")
        plot_influence_ranks(st.ranks["rank"].to_numpy(), len(st.clean_si),
                             path=out / "influence_ranks.png")
        made += ["influence_si.png", "influence_ranks.png"]
    parts = [(runs / "influence-top", "UF on top-4 SI"),
             (runs / "trajectories" / "studies" / "plain", "UF on reference canary"),
             (runs / "influence-bottom", "UF on bottom-4 SI")]
    parts = [(d, name) for d, name in parts if (d / "summary.csv").is_file()]
    if parts:
        summary = pd.concat([_summary(d, name) for d, name in parts], ignore_index=True)
        plot_paired_by_study(summary, ("M_score", "PD_M"), path=out / "influence_placement.png")
        made.append("influence_placement.png")
    return made


def trajectories(runs: Path, out: Path) -> list[str]:
    from memjax import results
    from memjax.stats import paired_by_epoch
    from memjax.sweep_plots import plot_trajectory_pairs

    studies = runs / "trajectories" / "studies"
    if not studies.is_dir():
        return []
    loaded = {d.name: results.load(d) for d in sorted(studies.iterdir())
              if (d / "MANIFEST.json").is_file()}
    tables = {k: paired_by_epoch(r.models, r.epochs, "traj_M_score") for k, r in loaded.items()}
    return ["trajectory_pairs.png"] if plot_trajectory_pairs(
        tables, "traj_M_score", path=out / "trajectory_pairs.png") is not None else []


def dp(runs: Path, out: Path) -> list[str]:
    from memjax.audit import audit_sweep
    from memjax.sweep_plots import plot_dp_tradeoff

    d = runs / "dp"
    if not (d / "combined_models.csv").is_file():
        return []
    models = pd.read_csv(d / "combined_models.csv")
    summary = pd.read_csv(d / "combined_summary.csv")
    audit = audit_sweep(d)  # each study at delta = 1 / N of its own training set
    plot_dp_tradeoff(models, audit, "M_score", path=out / "dp_tradeoff.png", summary=summary)
    return ["dp_tradeoff.png"]


def regularisation(runs: Path, out: Path) -> list[str]:
    from memjax.sweep_plots import plot_contrasts, plot_paired_by_study

    made = []
    for name in ("regularisation", "regularisation-memorised"):
        path = runs / name / "combined_summary.csv"
        if path.is_file() and path.stat().st_size > 1:
            plot_paired_by_study(pd.read_csv(path), ("M_score", "PD_M"),
                                 path=out / f"{name}_pairs.png")
            made.append(f"{name}_pairs.png")
        path = runs / name / "combined_contrasts.csv"
        if path.is_file() and plot_contrasts(pd.read_csv(path), "M_score",
                                             path=out / f"{name}_contrasts.png") is not None:
            made.append(f"{name}_contrasts.png")
    return made


def seed_variance(runs: Path, out: Path) -> list[str]:
    from memjax.seed_variance import crossed_decomposition
    from memjax.sweep_plots import plot_crossed_components

    path = runs / "seed-variance" / "combined_models.csv"
    if not path.is_file():
        return []
    table = crossed_decomposition(pd.read_csv(path), ("M_score",))
    fig = plot_crossed_components(table, "M_score", path=out / "full_mnist_crossed_components.png")
    return [] if fig is None else ["full_mnist_crossed_components.png"]


def tail(runs: Path, out: Path) -> list[str]:
    """The M score by bins of p(y*), plain against batch norm (rescores both studies in log
    space, about 70 s each on 2 CPU cores; set MEMJAX_DATA_DIR to the full MNIST)."""
    from memjax.sweep_plots import plot_tail
    from memjax.tail import tail_study

    studies = runs / "regularisation-memorised" / "studies"
    names = [n for n in ("plain", "batch-norm") if (studies / n / "MANIFEST.json").is_file()]
    if not names:
        return []
    paired = {n: tail_study(studies / n, progress=False)[1] for n in names}
    fig = plot_tail(paired, path=out / "regularisation-memorised_tail.png")
    return [] if fig is None else ["regularisation-memorised_tail.png"]


FIGURES = {"influence": influence, "trajectories": trajectories, "dp": dp,
           "regularisation": regularisation, "seed-variance": seed_variance, "tail": tail}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    parser.add_argument("--only", nargs="+", choices=list(FIGURES), default=list(FIGURES))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for fn in (FIGURES[name] for name in args.only):
        made = fn(args.runs, args.out)
        print(f"{fn.__name__}: {', '.join(made) if made else 'skipped (no runs)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
