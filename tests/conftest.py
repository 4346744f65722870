"""Shared fixtures: several fake CPU devices, small real data, the shared data folder."""
import os

# Several CPU devices so that sharding code runs on one machine (must precede importing jax).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = Path(os.environ.get("MEMJAX_SHARED_DATA",
                                  Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip with the reason."""
    if not (SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"shared datasets not found at {SHARED_DATA} (set MEMJAX_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_mnist():
    """512 embedded MNIST training images and 256 validation images (real data, tiny)."""
    from memjax.data import load_dataset

    train = load_dataset("mnist", "train", "embedded").take(512)
    val = load_dataset("mnist", "test", "embedded").take(256)
    return train, val


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory) -> Path:
    """tests/data/tiny_sweep.json run once, uninterrupted, through the CLI."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("sweep") / "full"
    spec = Path(__file__).parent / "data" / "tiny_sweep.json"
    subprocess.run([sys.executable, "-m", "memjax.cli", "sweep", str(spec), "--no-progress",
                    "--out", str(out)], check=True, timeout=900, capture_output=True)
    return out


@pytest.fixture(scope="session")
def tiny_influence(tmp_path_factory) -> Path:
    """`memjax influence tiny` (3 epochs, top-2, the study's canary ranked over 2 seeds)."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("influence") / "tiny"
    subprocess.run([sys.executable, "-m", "memjax.cli", "influence", "tiny", "--out", str(out),
                    "--set", "train.epochs=3", "--k", "2", "--rank-seeds", "2",
                    "--rank-at", "study", "--no-progress"],
                   check=True, timeout=900, capture_output=True)
    return out
