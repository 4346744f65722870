"""Whole-epoch timing of one MNIST MLP on real-sized data: how the bench's scaled figure
compares with an epoch of a real study (docs/benchmarks.md, "From the bench to a real study").

    python scripts/bench_full_epoch.py --data-dir ../shared/data

Prints, for one model per call: seconds per epoch for the bench's size (3,072 training and 512
validation images), the full MNIST with 1,000 and with 10,000 validation images (best of 3
epochs after the compiling one, best of --rounds rounds), and `memjax.trainer.train_population` on 4 models x 3 epochs
with chunk checkpoints (the path a study takes), each also scaled to 60,000 images.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from memjax.bench.machine import MNIST_MEAN, MNIST_STD, load_avg
from memjax.bench.training import population_inputs
from memjax.config import TrainConfig
from memjax.data import load_dataset
from memjax.population import take
from memjax.train import make_program
from memjax.trainer import make_train_data, train_population

FULL = 60_000


def epoch_seconds(train, val, n_train: int, n_val: int, repeats: int = 3) -> float:
    """Best wall seconds of `program.epoch` for one model (after one compiling call)."""
    x, y = train.images[:n_train], train.labels[:n_train].astype(np.int32)
    data = make_train_data(x, y, val.images[:n_val], val.labels[:n_val].astype(np.int32),
                           MNIST_MEAN, MNIST_STD)
    inputs = take(population_inputs(1, y), np.arange(1))
    program = make_program("mlp", TrainConfig(epochs=1, early_stopping=False))
    state = program.init(inputs, data)
    best = float("inf")
    for e in range(repeats + 1):
        t = time.perf_counter()
        state, _ = program.epoch(state, inputs, data, jnp.int32(e))
        jax.block_until_ready(state)
        if e:  # the first call compiles
            best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="folder with the MNIST IDX files")
    ap.add_argument("--rounds", type=int, default=2, help="best of this many rounds per row")
    args = ap.parse_args()
    train = load_dataset("mnist", "train", "local", args.data_dir)
    val = load_dataset("mnist", "test", "local", args.data_dir)
    print(f"load average at start {load_avg():.2f}; jax {jax.__version__} "
          f"({jax.default_backend()})")
    print("| epoch of | validation images | s per epoch | scaled to 60,000 |")
    print("|---|---:|---:|---:|")
    sizes = ((3072, 512), (FULL, 1000), (FULL, 10_000))
    best = {size: float("inf") for size in sizes}
    for _ in range(args.rounds):  # rounds alternate the sizes, so noise hits each alike
        for size in sizes:
            best[size] = min(best[size], epoch_seconds(train, val, *size))
    for (n_train, n_val), s in best.items():
        print(f"| {n_train:,} images | {n_val:,} | {s:.3f} | {s * FULL / n_train:.2f} |")
    y = train.labels.astype(np.int32)
    data = make_train_data(train.images, y, val.images, val.labels.astype(np.int32),
                           MNIST_MEAN, MNIST_STD)
    m, epochs = 4, 3
    with tempfile.TemporaryDirectory() as ckpt:
        res = train_population("mlp", TrainConfig(epochs=epochs, early_stopping=False),
                               population_inputs(m, y), data, progress=False,
                               checkpoint_dir=ckpt)
    # After the first epoch of the first chunk of k models: the rest of the chunk-epochs.
    k = res.chunk_size
    chunk_epochs = -(-m // k) * epochs - 1
    steady = (res.timings["total"] - res.timings["first_epoch"]) / (chunk_epochs * k)
    print(f"| train_population, {m} models x {epochs} epochs, chunks of {k}, "
          f"checkpoints | 10,000 | {steady:.2f} (after the first epoch) | {steady:.2f} |")
    print(f"load average at end {load_avg():.2f}")


if __name__ == "__main__":
    main()
