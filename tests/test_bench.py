"""Smoke tests of memjax.bench at tiny sizes: every measurement returns a well-formed row.

Nothing here is timed against a threshold (the machine is shared); the numbers only have to
be positive and finite, and the timed runs must not trace again.
"""
import math

import numpy as np
import pytest

from memjax import bench


@pytest.fixture(scope="module")
def tiny_data(small_mnist):
    train, val = small_mnist
    return bench.BenchData(train.images[:256], train.labels[:256].astype(np.int32),
                           val.images[:42], val.labels[:42].astype(np.int32), "embedded")


def test_forward_macs_by_hand_and_by_xla():
    assert bench.forward_macs("mlp") == 784 * 512 + 512 * 256 + 256 * 10
    conv = 28 * 28 * 9 * (1 * 32 + 32 * 32) + 14 * 14 * 9 * (32 * 64 + 64 * 64)
    assert bench.forward_macs("cnn2") == conv + 7 * 7 * 64 * 1024 + 1024 * 10
    assert bench.toy_forward_macs((3, 32, 2)) == 4 * 32 + 33 * 2
    xla = bench.xla_forward_flops("mlp", batch=8)
    if xla is not None:  # XLA also counts bias adds and ReLUs: within a few percent
        assert xla == pytest.approx(2 * bench.forward_macs("mlp"), rel=0.03)


def test_train_row_chunks_has_rates_and_no_retrace(tiny_data):
    row = bench.train_row("mlp", "chunks", 2, 1, tiny_data, roofline=100.0, min_seconds=0.0)
    assert row["retraces"] == 0
    for key in ("s_per_model_epoch", "e2e_s_per_model_epoch", "gflops", "compile_s",
                "peak_rss_mb"):
        assert math.isfinite(row[key]) and row[key] > 0, key
    assert row["frac_roofline"] == pytest.approx(row["gflops"] / 100.0, abs=1e-3)
    assert row["chunk"] == 1 and row["M"] == 2


def test_scoring_row(tiny_data):
    row = bench.scoring_row(2, 1000, 2, tiny_data, roofline=100.0)
    assert row["probe_models_per_s"] > 0 and row["gflops"] > 0
    assert row["P"] == 1000 and row["M"] == 2


def test_best_of_and_peak_rss():
    calls = []
    timing = bench.best_of(lambda: calls.append(1), min_seconds=0.0)
    assert timing.repeats == 1 and len(calls) == 1 and timing.best <= timing.median
    with bench.PeakRSS() as rss:
        block = np.ones(8 << 20, np.uint8)  # 8 MiB touched
        block[::4096] = 2
    assert rss.peak >= rss.start and rss.delta_mb >= 0 and rss.peak_mb > 0


def test_torch_toy_worker_or_skip():
    out = bench.run_worker({"impl": "torch-toy", "sizes": [3, 8, 2], "epochs": 2, "lr": 1e-3,
                            "runs": 1},
                           {"x": np.zeros((10, 3), np.float32), "y": np.zeros(10, np.int64)})
    if "skipped" in out:
        assert "not installed" in out["skipped"]
    else:
        assert len(out["times"]) == 1 and out["peak_rss_mb"] > 0


def test_targets_and_report_from_rows():
    rows = [
        {"section": "roofline", "gflops": 100.0, "by_size": {1024: 100.0}, "load": 0.1},
        {"section": "train", "model": "mlp", "impl": "memjax", "strategy": "vmap", "M": 64,
         "chunk": 64, "s_per_model_epoch": 2.0, "model_epochs_per_s": 0.5, "gflops": 80.0,
         "frac_roofline": 0.8, "compile_s": 1.0, "peak_rss_mb": 1.0, "retraces": 0,
         "load": 0.1},
        {"section": "train", "model": "mlp", "impl": "torch", "strategy": "one at a time",
         "M": 1, "chunk": 1, "s_per_model_epoch": 3.5, "model_epochs_per_s": 0.29,
         "gflops": 45.0, "frac_roofline": 0.45, "load": 0.1},
        {"section": "train", "model": "mlp", "impl": "keras", "strategy": "one at a time",
         "M": 1, "chunk": 1, "skipped": "tensorflow not installed"},
    ]
    met = {t["target"]: t for t in bench.targets(rows)}
    assert met["MLP population (M>=64, best strategy): fraction of roofline"]["met"] is True
    assert met["MLP population (M>=64) vs torch one at a time"]["value"] == pytest.approx(1.75)
    assert met["MLP population (M>=64) vs keras one at a time"]["met"] is None
    result = {"machine": {"cores": 2, "mem_gb": 1, "jax": "x", "platform": "cpu", "flax": "x",
                          "optax": "x", "torch": None, "tensorflow": None, "load_start": 0.1},
              "rows": rows, "targets": bench.targets(rows)}
    text = bench.format_report(result)
    assert "tensorflow not installed" in text and "| mlp | memjax | vmap | 64 |" in text


def test_merge_keeps_the_best_row_of_each_measurement():
    def result(gflops, load):
        rows = [{"section": "roofline", "gflops": 100.0, "by_size": {}, "load": load},
                {"section": "train", "model": "mlp", "impl": "memjax", "strategy": "vmap",
                 "M": 64, "chunk": 64, "s_per_model_epoch": 100.0 / gflops,
                 "model_epochs_per_s": gflops / 100.0, "gflops": gflops,
                 "frac_roofline": gflops / 100.0, "load": load}]
        return {"machine": {"load_start": load, "load_end": load, "seconds": 1.0},
                "config": {}, "rows": rows}
    merged = bench.merge_results([result(50.0, 4.0), result(80.0, 2.0)])
    row = next(r for r in merged["rows"] if r["section"] == "train")
    assert row["gflops"] == 80.0 and row["run"] == 1
    assert merged["machine"]["runs_merged"] == 2 and merged["machine"]["seconds"] == 2.0


@pytest.mark.slow
def test_run_bench_tiny_end_to_end():
    """Every section of one small run (about a minute): rows, targets and the markdown."""
    result = bench.run_bench(bench.TINY, ("roofline", "mlp", "toy", "scoring"),
                             log=lambda s: None)
    impls = {r.get("impl") for r in result["rows"]}
    assert {"memjax", "jax-loop", "jax loop"} <= impls
    assert all(r.get("retraces", 0) == 0 for r in result["rows"])
    report = bench.format_report(result)
    assert "scoring: fraction of roofline" in report
