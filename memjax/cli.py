"""The `memjax` command (argument parsing only; it calls library functions). Main options:

    memjax run [PRESET] [--set section.field=value ...] [--workdir DIR] [--data-dir DIR]
    memjax train PRESET [...]          train only (writes population.npz)
    memjax score WORKDIR [--stats-only]   score a trained population (or only recompute stats)
    memjax sweep SPEC --out DIR [--shard i/n] [--combine-only]   a grid of studies (resumable)
    memjax audit DIR [--delta D] [--alpha A] [--out F]   membership-test audit: ROC, TPR at
                                       low FPR, epsilon bound
    memjax tail DIR [--out F]          where the M score comes from: UF - twin by bins of the
                                       canary class's probability (rescores, writes nothing)
    memjax influence PRESET --out DIR  TracIn self-influence: canaries by SI, UF-image ranks
    memjax check DIR                   verify a run directory (checksums, completeness)
    memjax presets                     list the presets
    memjax show PRESET [--set ...]     print the resolved config as JSON
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from memjax.config import StudyConfig, override, to_dict, validate
from memjax.errors import MemjaxError
from memjax.presets import PRESETS, get_preset


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memjax", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command")

    def study_args(sp, preset_required: bool):
        if preset_required:
            sp.add_argument("preset", choices=sorted(PRESETS))
        else:
            sp.add_argument("preset", nargs="?", default="default", choices=sorted(PRESETS))
        sp.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set train.epochs=5 (repeatable)")
        sp.add_argument("--workdir", type=Path, default=None, help="run directory (default runs/PRESET)")
        sp.add_argument("--data-dir", default=None, help="folder of standard dataset files")
        sp.add_argument("--no-progress", action="store_true", help="no progress bars")
        dist = sp.add_argument_group("multi-host (jax.distributed; implies population.shard)")
        dist.add_argument("--distributed", action="store_true",
                          help="initialise jax.distributed (auto-detects Slurm / Open MPI)")
        dist.add_argument("--coordinator", default=None, help="coordinator host:port")
        dist.add_argument("--num-processes", type=int, default=None)
        dist.add_argument("--process-id", type=int, default=None)

    study_args(sub.add_parser("run", help="train and score a study (default: the default preset)"), False)
    study_args(sub.add_parser("train", help="train a study's population only"), True)
    sc = sub.add_parser("score", help="score a trained population")
    sc.add_argument("workdir", type=Path)
    sc.add_argument("--stats-only", action="store_true",
                    help="recompute summary.csv, figures and report from models.csv (no scoring)")
    sc.add_argument("--no-progress", action="store_true")
    sw = sub.add_parser("sweep", help="run or resume a sweep of studies (JSON spec)")
    sw.add_argument("spec", type=Path, help="sweep spec (JSON file, see memjax/sweep.py) or a shipped "
                    "spec: " + ", ".join(sorted(f.stem for f in (Path(__file__).parent / "sweeps").glob("*.json"))))
    sw.add_argument("--out", type=Path, required=True, help="sweep directory")
    sw.add_argument("--shard", default=None, help="run only studies i mod n (array jobs), e.g. 0/4")
    sw.add_argument("--combine-only", action="store_true", help="only rebuild the combined tables")
    sw.add_argument("--no-progress", action="store_true")
    au = sub.add_parser("audit", help="audit a run: UF vs baseline as a membership test")
    au.add_argument("workdir", type=Path)
    au.add_argument("--delta", type=float, default=None,
                    help="default: the run's train.dp_delta, else 1/N for its N training images")
    au.add_argument("--alpha", type=float, default=0.05, help="1 - confidence of the bound")
    au.add_argument("--out", type=Path, default=None, help="also write the table (CSV)")
    tl = sub.add_parser("tail", help="M score by bins of the canary class's probability "
                        "(UF - twin per bin; rescores in log space, writes nothing into DIR)")
    tl.add_argument("workdir", type=Path)
    tl.add_argument("--out", type=Path, default=None,
                    help="also write the per-model, per-bin table (CSV)")
    tl.add_argument("--no-progress", action="store_true")
    inf = sub.add_parser("influence", help="TracIn self-influence: canaries by SI; UF-image ranks")
    inf.add_argument("preset", choices=sorted(PRESETS))
    inf.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    inf.add_argument("--data-dir", default=None)
    inf.add_argument("--out", type=Path, required=True)
    inf.add_argument("--k", type=int, default=1)
    inf.add_argument("--which", choices=("top", "bottom"), default="top")
    inf.add_argument("--rank-seeds", type=int, default=0,
                     help="also train the UF at each ranked canary with this many seeds and rank it")
    inf.add_argument("--rank-at", choices=("chosen", "study"), default="chosen",
                     help="rank the UF at the chosen top/bottom-k images or at the study's canaries")
    inf.add_argument("--batch-size", type=int, default=32)
    inf.add_argument("--no-progress", action="store_true")
    ck = sub.add_parser("check", help="verify a run directory (checksums, completeness)")
    ck.add_argument("workdir", type=Path)
    sub.add_parser("presets", help="list the presets")
    show = sub.add_parser("show", help="print a preset's resolved config")
    show.add_argument("preset", choices=sorted(PRESETS))
    show.add_argument("--set", dest="sets", action="append", default=[])
    return p


def _resolve(args) -> StudyConfig:
    cfg = get_preset(args.preset)
    sets = list(args.sets)
    if getattr(args, "data_dir", None):
        sets += [f"data.data_dir={json.dumps(args.data_dir)}"]
    if getattr(args, "distributed", False):
        sets += ["population.shard=true"]
    cfg = override(cfg, sets)
    if isinstance(cfg, StudyConfig):
        validate(cfg)
    elif hasattr(cfg, "validate"):
        cfg.validate()
    return cfg


def _print_summary(results) -> None:
    from memjax.report import scores_without_values
    from memjax.stats import valid_mask

    s = results.summary
    df = results.models
    print(f"\n{len(df)} models, results in {results.path}")
    bad = df[~valid_mask(df)]
    if len(bad) == len(df):
        print(f"every model diverged: no score is valid (see {results.path / 'report.md'})")
    elif len(bad):
        print(f"{len(bad)} of {len(df)} models diverged or have non-finite scores, left out of "
              f"the statistics: models {bad['model'].tolist()}")
    empty = scores_without_values(df, list(s["score"])) if "score" in s else []
    if empty:
        print(f"no valid model has a finite value of {', '.join(empty)} (outputs saturated at "
              "probability 0 or 1?): their statistics are NaN")
    print(f"{'score':>8} {'mean UF':>10} {'mean base':>10} {'diff [95% CI]':>30} {'AUC':>6} {'p':>9}")
    for _, r in s.iterrows():
        print(f"{r['score']:>8} {r['mean_uf']:>10.4f} {r['mean_base']:>10.4f} "
              f"{r['diff']:>10.4f} [{r['diff_lo']:.4f}, {r['diff_hi']:.4f}] {r['auc']:>6.3f} {r['mw_p']:>9.2g}")
    print(f"report: {results.path / 'report.md'}")


def _run_toy(cfg, workdir: Path, progress: bool) -> int:
    from memjax.toy import run_toy
    from memjax.toy.io import write_toy_results

    result = run_toy(cfg, progress=progress)
    write_toy_results(result, workdir)
    print(result.summary.to_string(index=False))
    print(f"results in {workdir}")
    return 0


def _influence(args) -> int:
    from memjax.influence_study import run_influence_study

    res = run_influence_study(_resolve(args), args.out, k=args.k, which=args.which,
                              rank_seeds=args.rank_seeds, rank_at=args.rank_at,
                              batch_size=args.batch_size, progress=not args.no_progress)
    idx = [int(i) for i in res.canaries]
    print(f"{args.which}-{args.k} training images by self-influence: {idx}")
    print(f"study them with: --set population.canary.method=indices "
          f"--set 'population.canary.indices={json.dumps(idx)}'")
    if len(res.ranks):
        print(res.ranks.to_string(index=False))
    print(f"-> {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The `memjax` command; its exit status (2 for a refused input, 141 when the reader of its
    output left early, as in `memjax check DIR | head`, which is no error of the command's)."""
    try:
        status = _main(argv)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 128 + 13  # the shell's status for a process ended by SIGPIPE


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        args = _parser().parse_args(["run", *(argv or [])])
    try:
        if args.command == "presets":
            for name, fn in PRESETS.items():
                print(f"{name:20s} {(fn.__doc__ or '').strip().splitlines()[0]}")
            return 0
        if args.command == "show":
            print(json.dumps(to_dict(_resolve(args)), indent=2))
            return 0
        if args.command == "check":
            from memjax.check import check_dir

            report = check_dir(args.workdir)
            print(report.text())
            return 0 if report.ok else 1
        if args.command == "audit":
            from memjax.audit import audit_run
            from memjax.results import check_output_file

            if args.out:
                check_output_file(args.out, outside=args.workdir)
            table = audit_run(args.workdir, delta=args.delta, alpha=args.alpha)
            print(table.to_string(index=False))
            if args.out:
                from memjax.results import write_table

                write_table(args.out, table)
            return 0
        if args.command == "tail":
            from memjax.results import check_output_file
            from memjax.tail import tail_study

            if args.out:
                check_output_file(args.out, outside=args.workdir)
            terms, paired = tail_study(args.workdir, progress=not args.no_progress)
            cols = ["bin", "value", "mean_uf", "mean_base", "pair_diff", "pair_diff_lo",
                    "pair_diff_hi", "pair_frac_pos", "wilcoxon_p"]
            print(paired[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}")
                  if len(paired) else
                  "no UF/baseline twins in this study: nothing to compare")
            if args.out:
                from memjax.results import write_table

                write_table(args.out, terms)
            return 0
        if args.command == "influence":
            return _influence(args)
        if args.command == "sweep":
            from memjax import sweep

            spec = sweep.load_spec(args.spec)
            if args.combine_only:
                table = sweep.combine(args.out, sweep.expand(spec))
            else:
                table = sweep.run_sweep(spec, args.out, shard=sweep.parse_shard(args.shard),
                                        progress=not args.no_progress)
            n_studies = table["study"].nunique() if len(table) else 0
            print(f"{n_studies} complete studies, {len(table)} models -> {args.out / sweep.COMBINED_MODELS}")
            return 0
        from memjax import study

        if args.command == "score":
            if args.stats_only:
                _print_summary(study.resummarise(args.workdir))
                return 0
            _print_summary(study.score_stage(args.workdir, progress=not args.no_progress))
            return 0
        cfg = _resolve(args)
        if getattr(args, "distributed", False):
            from memjax.sharding import init_distributed

            init_distributed(args.coordinator, args.num_processes, args.process_id)
        workdir = args.workdir or Path("runs") / args.preset
        if not isinstance(cfg, StudyConfig):
            return _run_toy(cfg, workdir, not args.no_progress)
        if args.command == "train":
            result = study.train_stage(cfg, workdir, progress=not args.no_progress)
            if getattr(args, "distributed", False) and args.process_id:
                return 0
            nets = int(result.timings.get("networks_trained", result.n_models))
            shared = f" ({nets} networks: baselines shared across placements)" \
                if nets < result.n_models else ""
            print(f"trained {result.n_models} models{shared} in {result.timings['total']:.1f} s"
                  f" -> {workdir}")
            return 0
        results = study.run_study(cfg, workdir, progress=not args.no_progress)
        if getattr(args, "distributed", False):  # leave together: process 0 writes longest
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("memjax run done")
        if results is not None:  # None on the non-writing processes of a multi-host run
            _print_summary(results)
        return 0
    except MemjaxError as e:
        print(f"memjax: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
