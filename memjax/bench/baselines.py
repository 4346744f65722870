"""One model at a time in PyTorch and Keras, each in a subprocess (its own thread pool and
peak RSS): `run_worker` starts `worker` on a job."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from memjax.bench.machine import MNIST_MEAN, MNIST_STD, baseline_row, package_version
from memjax.results import write_npz

if TYPE_CHECKING:
    from memjax.bench.training import BenchData

def subprocess_row(impl: str, model_name: str, data: BenchData, roofline: float,
                   epochs: int = 3) -> dict:
    """A one-model baseline ("torch" or "keras") in a subprocess (own threads and peak RSS).

    Returns a row, or one with "skipped" when the framework is not installed or fails.
    """
    row = {"section": "train", "model": model_name, "impl": impl, "strategy": "one at a time",
           "M": 1, "chunk": 1}
    out = run_worker({"impl": impl, "model": model_name, "epochs": epochs},
                     {"x_train": data.x_train, "y_train": data.y_train, "x_val": data.x_val,
                      "y_val": data.y_val})
    if "skipped" in out:
        return {**row, **out}
    return baseline_row(model_name, impl, out["times"], out["cpus"], len(data.y_train),
                         len(data.y_val), roofline, peak_rss_mb=out["peak_rss_mb"],
                         version=out["version"])


def run_worker(job: dict, arrays: dict[str, np.ndarray], timeout: int = 1200) -> dict:
    """Runs `worker` in a subprocess on `job` and `arrays`; returns its JSON output, or
    {"skipped": reason} when the framework is missing or the job fails."""
    module = {"torch": "torch", "torch-toy": "torch", "keras": "tensorflow"}[job["impl"]]
    if package_version(module) is None:
        return {"skipped": f"{module} not installed (pip install -e .[bench])"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        write_npz(path, arrays)
        # PASSIVE: OpenMP threads sleep at barriers instead of spinning; on a shared machine
        # spinning made PyTorch 10-40x slower (measured), on an idle one it costs little.
        env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
               "KERAS_BACKEND": "tensorflow"}
        proc = subprocess.run(
            [sys.executable, "-c", "from memjax.bench import worker; worker()",
             json.dumps({**job, "data": str(path)})],
            capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        return {"skipped": f"{job['impl']} failed: {proc.stderr.strip()[-300:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def worker() -> None:
    """Subprocess entry: runs one job (JSON in argv[1]) and prints its times as JSON."""
    job = json.loads(sys.argv[1])
    with np.load(job["data"], allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    if job["impl"] == "torch-toy":
        times, cpus, version = _torch_toy(arrays, job)
    else:
        run = {"torch": _torch_train, "keras": _keras_train}[job["impl"]]
        times, cpus, version = run(job["model"], arrays, job["epochs"])
    print(json.dumps({"times": times, "cpus": cpus, "version": version,
                      "peak_rss_mb": round(_peak_rss_bytes() / 2**20, 1)}))


def _peak_rss_bytes() -> int:
    """This process's peak RSS (VmHWM; ru_maxrss would carry the parent's over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def standardise(x_u8: np.ndarray) -> np.ndarray:
    return ((x_u8.astype(np.float32) / 255.0 - MNIST_MEAN[0]) / MNIST_STD[0]).astype(np.float32)


def _torch_train(model_name: str, arrays: dict, epochs: int
                 ) -> tuple[list[float], list[float], str]:
    """A standard PyTorch loop: shuffled mini-batches, Adam, validation every epoch."""
    import torch
    from torch import nn

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    x = torch.from_numpy(standardise(arrays["x_train"])).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(arrays["y_train"]).long()
    xv = torch.from_numpy(standardise(arrays["x_val"])).permute(0, 3, 1, 2).contiguous()
    yv = torch.from_numpy(arrays["y_val"]).long()
    if model_name.startswith("mlp"):
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256),
                            nn.ReLU(), nn.Linear(256, 10))
    else:
        def conv(a, b):
            return [nn.Conv2d(a, b, 3, padding=1), nn.ReLU()]
        net = nn.Sequential(*conv(1, 32), *conv(32, 32), nn.MaxPool2d(2), *conv(32, 64),
                            *conv(64, 64), nn.MaxPool2d(2), nn.Flatten(),
                            nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Linear(1024, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-4, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    times, cpus = [], []
    for _ in range(epochs):
        t, c = time.perf_counter(), time.process_time()
        net.train()
        for idx in torch.randperm(len(y)).split(128):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            for i in range(0, len(yv), 1000):
                loss_fn(net(xv[i:i + 1000]), yv[i:i + 1000]).item()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return times, cpus, torch.__version__


def _keras_train(model_name: str, arrays: dict, epochs: int
                 ) -> tuple[list[float], list[float], str]:
    """Keras `fit` as the reference: batch 128, Adam, validation every epoch."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    layers = keras.layers
    if model_name.startswith("mlp"):
        body = [layers.Flatten(), layers.Dense(512, activation="relu"),
                layers.Dense(256, activation="relu")]
    else:
        body = []
        for width in (32, 64):
            body += [layers.Conv2D(width, 3, padding="same", activation="relu"),
                     layers.Conv2D(width, 3, padding="same", activation="relu"),
                     layers.MaxPooling2D(2)]
        body += [layers.Flatten(), layers.Dense(1024, activation="relu")]
    net = keras.Sequential([keras.Input((28, 28, 1)), *body, layers.Dense(10)])
    net.compile(optimizer=keras.optimizers.Adam(3e-4, epsilon=1e-7),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
    times: list[float] = []
    cpus: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t, self.c = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t)
            cpus.append(time.process_time() - self.c)

    net.fit(standardise(arrays["x_train"]), arrays["y_train"], batch_size=128, epochs=epochs,
            validation_data=(standardise(arrays["x_val"]), arrays["y_val"]), verbose=0,
            callbacks=[Timer()])
    return times, cpus, f"tensorflow {tf.__version__}, keras {keras.__version__}"




def _torch_toy(arrays: dict, job: dict) -> tuple[list[float], list[float], str]:
    """PyTorch, one toy run after another: full-batch Adam, `epochs` steps per run."""
    import torch
    from torch import nn

    torch.set_num_threads(os.cpu_count() or 1)
    x, y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"]).long()
    sizes = job["sizes"]
    times, cpus = [], []
    for run in range(job["runs"]):
        t, c = time.perf_counter(), time.process_time()
        torch.manual_seed(run)
        layers: list[nn.Module] = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        net = nn.Sequential(*layers[:-1])
        opt = torch.optim.Adam(net.parameters(), lr=job["lr"])
        for _ in range(job["epochs"]):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return times, cpus, torch.__version__


