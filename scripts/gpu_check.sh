#!/usr/bin/env bash
# GPU check (H200 class, at most 5 minutes): trains 1,000 MNIST MLPs (784-512-256-10, Adam,
# batch 128) for one epoch in chunks that fit, scores them on 10,000 probes x 3 variants, and
# prints throughput and the fraction of the device's peak.
#
#   pip install -e .[cuda]
#   bash scripts/gpu_check.sh [--data-dir DIR]
#
# Data: MNIST from --data-dir, else $MEMJAX_DATA_DIR, else ../shared/data beside the checkout,
# else the 10,000-image subset embedded in the package (then the "epoch" is 10,000 images, and
# the script says so).
# Peaks (NVIDIA H100/H200 SXM, dense): fp32 66.9 TFLOP/s (FMA), tf32 tensor cores
# 494.7 TFLOP/s (989.4 with sparsity); NVIDIA H200 datasheet and the H100 SXM5 table at
# glennklockwood.com/garden/processors/h100. JAX runs fp32 matmuls at its default precision
# (tf32 on Hopper), so both fractions are printed.
# Sizes can be shrunk for a smoke run on any machine: GPU_CHECK_MODELS, GPU_CHECK_PROBES,
# GPU_CHECK_TRAIN (training images).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${MEMJAX_DATA_DIR:-}"
if [[ "${1:-}" == "--data-dir" ]]; then DATA_DIR="$2"; fi
if [[ -z "$DATA_DIR" && -d ../shared/data/mnist ]]; then DATA_DIR=../shared/data; fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm \
  --format=csv,noheader || echo "nvidia-smi not found"
export GPU_CHECK_DATA_DIR="$DATA_DIR"
exec timeout 290 python - <<'EOF'
import math, os, time
import jax, jax.numpy as jnp, numpy as np
from memjax import bench
from memjax.config import FeatureConfig, TrainConfig
from memjax.data import load_dataset
from memjax.models import model_family
from memjax.population import take
from memjax.scoring import score_population
from memjax.strategy import plan_chunk_size
from memjax.train import make_program
from memjax.trainer import estimate_model_bytes, make_train_data, train_population

M = int(os.environ.get("GPU_CHECK_MODELS", 1000))
P = int(os.environ.get("GPU_CHECK_PROBES", 10_000))
N = int(os.environ.get("GPU_CHECK_TRAIN", 0)) or None
data_dir = os.environ.get("GPU_CHECK_DATA_DIR") or None
source = "local" if data_dir else "embedded"
dev = jax.devices()[0]
print(f"device: {dev.device_kind} ({dev.platform}), jax {jax.__version__}, "
      f"matmul precision {jax.config.jax_default_matmul_precision or 'default (tf32 on GPU)'}")
train = load_dataset("mnist", "train", source, data_dir).take(N)
test = load_dataset("mnist", "test", source, data_dir)
print(f"data: MNIST {source} ({data_dir or 'embedded subset: 10,000 train / 2,000 test'}), "
      f"{len(train.labels)} train, {len(test.labels)} validation images")
cfg = TrainConfig(epochs=1, early_stopping=False)
data = make_train_data(train.images, train.labels, test.images, test.labels,
                       bench.MNIST_MEAN, bench.MNIST_STD)
inputs = bench.population_inputs(M, train.labels)
k = plan_chunk_size(M, "auto", None, estimate_model_bytes("mlp", cfg, data), model_family("mlp"))
t = time.perf_counter()
compile_s = bench.precompile("mlp", cfg, take(inputs, np.arange(k)), data)
print(f"train: {M} models in chunks of {k}; compile {compile_s:.1f} s")
t = time.perf_counter()
res = train_population("mlp", cfg, inputs, data, strategy="auto", progress=False)
train_s = time.perf_counter() - t
macs = bench.forward_macs("mlp")
flops = M * (6 * macs * len(train.labels) + 2 * macs * len(test.labels))
acc = np.nanmean(res.metrics["val_acc"][:, 0])
print(f"train: {train_s:.2f} s for {M} model-epochs = {M / train_s:.1f} model-epochs/s, "
      f"{flops / train_s / 1e12:.2f} TFLOP/s = {flops / train_s / bench.PEAK_H200['fp32']:.1%} "
      f"of fp32 peak, {flops / train_s / bench.PEAK_H200['tf32']:.1%} of tf32 peak; "
      f"mean val acc {acc:.4f}")
program = make_program("mlp", cfg)
probes = np.tile(test.images, (math.ceil(P / len(test.labels)), 1, 1, 1))[:P]
probes = probes.astype(np.float32) / 255.0
labels = np.tile(test.labels, math.ceil(P / len(test.labels)))[:P]
y_star = np.asarray(train.labels)[np.asarray(inputs.canary)]
chunk = min(M, 1000 if dev.platform != "cpu" else 16)
def score(p):
    return score_population(program, res.variables, inputs, y_star, probes[:p], labels[:p],
                            FeatureConfig(), mean=np.float32(bench.MNIST_MEAN),
                            std=np.float32(bench.MNIST_STD), batch_size=min(1000, P),
                            chunk_size=chunk, progress=False)
t = time.perf_counter()
score(min(1000, P))
warm = time.perf_counter() - t
t = time.perf_counter()
out = score(P)
score_s = time.perf_counter() - t
sflops = M * P * 3 * 2 * macs
print(f"score: {P} probes x 3 variants x {M} models in {score_s:.2f} s (first batch + compile "
      f"{warm:.1f} s) = {M * P / score_s:.3g} probe-models/s, {sflops / score_s / 1e12:.2f} "
      f"TFLOP/s = {sflops / score_s / bench.PEAK_H200['fp32']:.1%} of fp32 peak, "
      f"{sflops / score_s / bench.PEAK_H200['tf32']:.1%} of tf32 peak; "
      f"finite M3 scores: {np.isfinite(out.scores['M3']).mean():.3f}")
stats = dev.memory_stats() or {}
if "peak_bytes_in_use" in stats:
    print(f"peak device memory: {stats['peak_bytes_in_use'] / 2**30:.1f} GiB")
EOF
