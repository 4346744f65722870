"""Threat: a population too large for memory. "auto" chunks it to what fits; "vmap" and
"chunks" asking for more than fits are refused with the largest size that fits; nothing
beyond memory is ever attempted (the epoch program is not even traced)."""
import dataclasses
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memjax import strategy, study, train
from memjax.config import override
from memjax.errors import ConfigError
from memjax.presets import tiny
from memjax.strategy import PREFERRED_CHUNK, plan_chunk_size

MIB = 1 << 20


def test_auto_chunks_to_what_fits(monkeypatch):
    # 10 MiB per model and room for one fewer than the preferred chunk: that many fit.
    monkeypatch.setitem(PREFERRED_CHUNK, ("cpu", "mlp"), 8)
    preferred = PREFERRED_CHUNK[("cpu", "mlp")]
    k = plan_chunk_size(100, "auto", None, 10 * MIB, "mlp",
                        budget_bytes=(preferred - 1) * 10 * MIB + 5 * MIB)
    assert k == preferred - 1
    assert plan_chunk_size(100, "auto", None, 1 * MIB, "mlp", budget_bytes=10_000 * MIB) == \
        PREFERRED_CHUNK[("cpu", "mlp")]
    assert plan_chunk_size(2, "auto", None, 1 * MIB, "mlp", budget_bytes=10_000 * MIB) == 2
    monkeypatch.undo()
    assert plan_chunk_size(100, "auto", None, 1 * MIB, "mlp", budget_bytes=10_000 * MIB) == \
        PREFERRED_CHUNK[("cpu", "mlp")] == 1  # measured on CPU: one model per call


@pytest.mark.parametrize("strategy_name, chunk", [("vmap", None), ("chunks", 50)])
def test_too_wide_is_refused_with_the_largest_size_that_fits(strategy_name, chunk):
    with pytest.raises(ConfigError) as e:
        plan_chunk_size(100, strategy_name, chunk, 10 * MIB, "mlp", budget_bytes=35 * MIB)
    msg = str(e.value)
    assert f"population.strategy='{strategy_name}'" in msg
    assert "about 3 fit in memory" in msg and "chunk_size <= 3" in msg


def test_not_even_one_model_fits():
    with pytest.raises(ConfigError, match=r"one model needs about 100 MiB but only 60 MiB"):
        plan_chunk_size(4, "sequential", None, 100 * MIB, "mlp", budget_bytes=60 * MIB)


def test_sharded_chunks_are_multiples_of_the_device_count():
    k = plan_chunk_size(100, "auto", None, 10 * MIB, "mlp", n_devices=4, budget_bytes=35 * MIB)
    assert k % 4 == 0 and k * 10 * MIB <= 35 * MIB * 4


@settings(max_examples=500, deadline=None)
@given(n_models=st.integers(1, 100_000), strategy_name=st.sampled_from(["auto", "vmap", "chunks",
                                                                         "sequential"]),
       chunk=st.integers(1, 5000), model_mib=st.integers(1, 4096), budget_mib=st.integers(1, 200_000),
       n_devices=st.sampled_from([1, 2, 4, 8]))
def test_fuzz_plan_never_exceeds_the_budget(n_models, strategy_name, chunk, model_mib, budget_mib,
                                            n_devices):
    """Any plan either fits the budget (per device) or is a ConfigError naming what fits."""
    try:
        k = plan_chunk_size(n_models, strategy_name, chunk, model_mib * MIB, "mlp",
                            n_devices=n_devices, budget_bytes=budget_mib * MIB)
    except ConfigError as e:
        msg = str(e)
        assert "MiB" in msg
        m = re.search(r"chunk_size <= (\d+)", msg)
        if m:  # the size named must itself fit
            assert int(m.group(1)) * model_mib <= budget_mib * n_devices
        return
    assert k >= 1
    per_device = -(-k // n_devices)
    assert per_device * model_mib <= budget_mib, (k, n_devices)
    if n_devices == 1:
        assert k <= n_models
    if strategy_name == "vmap" and n_devices == 1:
        assert k == n_models


def test_train_stage_never_attempts_a_population_beyond_memory(monkeypatch, tmp_path):
    """End to end: with 1 MiB free, strategy vmap is refused before the epoch is traced."""
    monkeypatch.setattr(strategy, "available_memory_bytes", lambda *a, **k: 1 * MIB)
    before = train.TRACE_COUNTS["epoch"]
    cfg = override(tiny(), ['population.strategy="vmap"', "data.n_train=256", "data.n_val=64"])
    with pytest.raises(ConfigError, match=r"strategy='vmap'|one model needs"):
        study.train_stage(cfg, tmp_path / "run", progress=False)
    assert train.TRACE_COUNTS["epoch"] == before
    assert not (tmp_path / "run" / "population.npz").exists()


def test_auto_plan_for_the_real_model_under_a_small_budget(monkeypatch):
    """The memory estimate of the real MLP (abstract evaluation only) drives the chunking."""
    from memjax.trainer import estimate_model_bytes

    monkeypatch.setitem(PREFERRED_CHUNK, ("cpu", "mlp"), 8)  # as on an accelerator: wide chunks

    prep = study.prepare(override(tiny(), ["data.n_train=256", "data.n_val=64"]))
    per_model = estimate_model_bytes(prep.cfg.model.name, prep.cfg.train, prep.data)
    assert per_model > 1 * MIB  # the 784-512-256-10 MLP with Adam state
    budget = int(2.5 * per_model)
    assert plan_chunk_size(1000, "auto", None, per_model, "mlp", budget_bytes=budget) == 2
    with pytest.raises(ConfigError, match="about 2 fit"):
        plan_chunk_size(1000, "vmap", None, per_model, "mlp", budget_bytes=budget)


def test_memory_estimate_counts_conv_activations_and_dp_gradients():
    """CNN2 grows RSS by ~390 MB per model at batch 128 on 28x28 (docs/benchmarks.md): the
    estimate must not be below that (it was 82 MiB before it counted the im2col patches)."""
    import numpy as np

    from memjax.config import TrainConfig
    from memjax.trainer import estimate_model_bytes, make_train_data

    x = np.zeros((8, 28, 28, 1), np.uint8)
    y = np.zeros((8,), np.int32)
    data = make_train_data(x, y, x, y, [0.1], [0.3])
    cfg = TrainConfig(batch_size=128, early_stopping=False)
    cnn2 = estimate_model_bytes("cnn2", cfg, data)
    mlp = estimate_model_bytes("mlp", cfg, data)
    assert 390e6 <= cnn2 <= 1.5e9
    assert 10 * MIB <= mlp <= 40 * MIB  # ~2.1 MB of parameters x (params, Adam m, v) x 2 + batch
    dp = estimate_model_bytes("mlp", dataclasses.replace(cfg, dp_clip_norm=1.0), data)
    assert dp - mlp >= 128 * 2.1e6  # one gradient per example of the batch
