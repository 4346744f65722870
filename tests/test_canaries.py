"""Tests of memjax.canaries: reference draw, choice by label, explicit indices, dispatch."""
from __future__ import annotations

import numpy as np
import pytest

from memjax.canaries import canaries_by_label, choose_canaries, given_canaries, reference_canaries
from memjax.config import CanaryConfig
from memjax.errors import ConfigError

MNIST_FIRST_TEN = [52734, 15725, 28030, 17730, 54370, 15377, 7763, 46203, 58937, 23766]


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    """int [1000] labels 0..9, class 9 rare (3 images)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 9, size=1000)
    y[[10, 500, 990]] = 9
    return y


def test_reference_canaries_mnist():
    got = reference_canaries(60000, 10)
    assert got.dtype == np.int64 and got.shape == (10,)
    assert got.tolist() == MNIST_FIRST_TEN


def test_reference_canaries_equal_legacy_global_and_leave_it_alone():
    np.random.seed(999)
    before = np.random.get_state()[1].copy()
    got = reference_canaries(1234, 50, seed=7)
    after = np.random.get_state()[1]
    np.testing.assert_array_equal(before, after)
    state = np.random.get_state()
    try:
        np.random.seed(7)
        np.testing.assert_array_equal(got, np.random.randint(0, 1234, 50))
    finally:
        np.random.set_state(state)


@pytest.mark.parametrize("n,k", [(0, 1), (10, 0), (10, 1.5)])
def test_reference_canaries_reject(n, k):
    with pytest.raises(ConfigError):
        reference_canaries(n, k)


def test_by_label_returns_distinct_indices_of_that_label(labels):
    got = canaries_by_label(labels, 3, 20, seed=1)
    assert got.dtype == np.int64 and got.shape == (20,)
    assert np.all(labels[got] == 3)
    assert len(set(got.tolist())) == 20
    np.testing.assert_array_equal(got, canaries_by_label(labels, 3, 20, seed=1))
    assert not np.array_equal(got, canaries_by_label(labels, 3, 20, seed=2))
    assert sorted(canaries_by_label(labels, 9, 3, seed=0).tolist()) == [10, 500, 990]


def test_by_label_errors(labels):
    with pytest.raises(ConfigError, match="only 3 training images have label 9"):
        canaries_by_label(labels, 9, 4, seed=0)
    for bad in (10, -1):
        with pytest.raises(ConfigError, match="out of range"):
            canaries_by_label(labels, bad, 1, seed=0)


def test_given_canaries(labels):
    got = given_canaries([5, 0, 59999, 5], 60000)
    assert got.dtype == np.int64 and got.tolist() == [5, 0, 59999, 5]
    assert given_canaries(np.array([3, 4]), 10).tolist() == [3, 4]
    with pytest.raises(ConfigError, match=r"canary index 70000 out of range \[0, 60000\)"):
        given_canaries([1, 70000], 60000)
    with pytest.raises(ConfigError, match="-1"):
        given_canaries([-1], 60000)
    for bad in ([], [1.5], 3, [[1, 2]], [True]):
        with pytest.raises(ConfigError):
            given_canaries(bad, 10)


def test_choose_canaries_dispatch(labels):
    ref = choose_canaries(CanaryConfig(k=5), np.zeros(60000, np.int64))
    assert ref.tolist() == MNIST_FIRST_TEN[:5]
    by = choose_canaries(CanaryConfig(method="label", label=2, k=4, seed=5), labels)
    np.testing.assert_array_equal(by, canaries_by_label(labels, 2, 4, seed=5))
    idx = choose_canaries(CanaryConfig(method="indices", indices=(7, 8)), labels)
    assert idx.tolist() == [7, 8]
    with pytest.raises(ConfigError, match="1000"):
        choose_canaries(CanaryConfig(method="indices", indices=(1000,)), labels)
    with pytest.raises(ConfigError):
        choose_canaries(CanaryConfig(method="label", label=None), labels)
    with pytest.raises(ConfigError):
        choose_canaries(CanaryConfig(method="influence"), labels)
