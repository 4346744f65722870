"""Benchmarks memjax against one model at a time (JAX loop, PyTorch, Keras); see memjax/bench.py.

    python scripts/bench.py                      # the full table (~10-15 min on 2 idle cores)
    python scripts/bench.py --quick              # a smoke run (~2 min)
    python scripts/bench.py --only mlp scoring   # some sections: roofline mlp cnn toy scoring
    python scripts/bench.py --json bench.json --markdown bench.md
    python scripts/bench.py --merge run1.json run2.json --markdown bench.md   # best of runs

Data: MNIST from --data-dir, else $MEMJAX_DATA_DIR, else ../shared/data beside the checkout
when present, else the subset embedded in the package. PyTorch and TensorFlow columns need
`pip install -e .[bench]` (TensorFlow is optional: its column says "not installed").
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from memjax import bench

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--only", nargs="+", choices=bench.SECTIONS, default=list(bench.SECTIONS))
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the markdown tables here")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--merge", nargs="+", type=Path,
                        help="merge earlier --json outputs row by row (best of) instead of running")
    args = parser.parse_args(argv)
    if args.merge:
        result = bench.merge_results([json.loads(p.read_text()) for p in args.merge])
        return _write(result, args)
    data_dir = args.data_dir or os.environ.get("MEMJAX_DATA_DIR") or None
    if data_dir is None and (ROOT.parent / "shared" / "data" / "mnist").is_dir():
        data_dir = ROOT.parent / "shared" / "data"
    cfg = bench.QUICK if args.quick else bench.FULL
    result = bench.run_bench(cfg, tuple(args.only), data_dir,
                             log=lambda s: print(s, file=sys.stderr, flush=True))
    return _write(result, args)


def _write(result: dict, args: argparse.Namespace) -> int:
    report = bench.format_report(result)
    print(report)
    print(json.dumps(result, default=str))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    if args.markdown:
        args.markdown.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
