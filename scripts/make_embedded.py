"""Writes the small dataset subset shipped in memjax/data/embedded/ (see docs/data.md).

    python scripts/make_embedded.py [--src ../shared/data] [--out memjax/data/embedded]

Contents, in the standard formats so the package's own parsers load them:
  mnist/    the first 10,000 train and first 2,000 test images and labels (gzipped IDX)
  cifar10/  1,600 images of data_batch_1 (the first 160 of each class, in file order) as the
            "train" split (gzipped CIFAR-10 binary), and batches.meta.txt
  */index.json  each split's example_index: positions in the full official split
  SHA256SUMS    SHA-256 of every file's uncompressed bytes (what memjax checks on load)
ATTRIBUTION.md is kept by hand. The output is deterministic (gzip mtime 0).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from pathlib import Path

import numpy as np

from memjax.data import cifar, idx
from memjax.data.sources import load_dataset

ROOT = Path(__file__).resolve().parents[1]
N_MNIST = {"train": 10_000, "test": 2_000}
N_CIFAR_PER_CLASS = 160


def _write(out: Path, rel: str, data: bytes, sums: dict[str, str]) -> None:
    """Writes `data` gzipped (rel ends in .gz) or plain; records the SHA-256 of `data`."""
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if rel.endswith(".gz"):
        path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
        rel = rel[: -len(".gz")]
    else:
        path.write_bytes(data)
    sums[rel] = hashlib.sha256(data).hexdigest()


def _index_json(description: str, index: dict[str, np.ndarray]) -> bytes:
    table = {"description": description,
             "example_index": {s: [int(i) for i in v] for s, v in index.items()}}
    return json.dumps(table, separators=(",", ":")).encode() + b"\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "memjax" / "data" / "embedded")
    args = parser.parse_args()
    sums: dict[str, str] = {}

    index = {}
    for split, n in N_MNIST.items():
        ds = load_dataset("mnist", split, source="local", data_dir=args.src).take(n)
        prefix = "train" if split == "train" else "t10k"
        _write(args.out, f"mnist/{prefix}-images-idx3-ubyte.gz", idx.encode_images(ds.images[..., 0]), sums)
        _write(args.out, f"mnist/{prefix}-labels-idx1-ubyte.gz", idx.encode_labels(ds.labels), sums)
        index[split] = ds.example_index
    _write(args.out, "mnist/index.json", _index_json(
        "MNIST (official files): the first 10,000 train and first 2,000 test examples", index), sums)

    ds = load_dataset("cifar10", "train", source="local", data_dir=args.src)
    batch1 = ds.example_index < cifar.BATCH_SIZE
    keep = np.concatenate([np.flatnonzero(batch1 & (ds.labels == c))[:N_CIFAR_PER_CLASS]
                           for c in range(ds.num_classes)])
    keep.sort()  # file order
    _write(args.out, "cifar10/data_batch_1.bin.gz",
           cifar.encode(ds.images[keep], ds.labels[keep]), sums)
    _write(args.out, "cifar10/index.json", _index_json(
        "CIFAR-10 data_batch_1 (JPEG q75 copy): the first 160 images of each class, file order",
        {"train": ds.example_index[keep]}), sums)
    meta = args.src / "cifar10" / "batches.meta.txt"
    if meta.is_file():
        _write(args.out, "cifar10/batches.meta.txt", meta.read_bytes(), sums)

    (args.out / "SHA256SUMS").write_text("".join(f"{s}  {r}\n" for r, s in sorted(sums.items())))
    if not (args.out / "ATTRIBUTION.md").is_file():
        raise SystemExit(f"{args.out}/ATTRIBUTION.md is missing: restore it from git")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    for p in sorted(args.out.rglob("*")):
        if p.is_file():
            print(f"{p.stat().st_size:>10,d}  {p.relative_to(args.out)}")
    print(f"{total:>10,d}  total")


if __name__ == "__main__":
    main()
