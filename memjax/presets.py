"""Named study presets. Each docstring gives the command, the expected time here and the result.

`get_preset(name)` returns a `StudyConfig` (or, for the toy experiment, a `ToyConfig`).
Times are for the 2-core CPU development machine (docs/reproduction.md has the measured ones).
"""
from __future__ import annotations

from collections.abc import Callable

from memjax.config import (
    CanaryConfig, DataConfig, ModelConfig, PopulationConfig, ProbeConfig, ScoreConfig, StudyConfig,
    TrainConfig,
)
from memjax.errors import ConfigError


def default() -> StudyConfig:
    """The README's main job: `memjax run` (or `make demo`).

    The first 2,000 images of the embedded MNIST subset (2,000 validation images), the
    reference MLP, the letter "A" on one canary, 16 UF models and their 16 baseline twins (same
    keys, no feature), shuffled data order per seed, Adam 3e-4, 25 epochs (the models overfit
    the small set, as memorisation needs); 1,600 embedded CIFAR-10 probes. About 2-3 minutes on
    2 CPU cores; validation accuracy ~0.88. The label-aware scores (M_score = -M3, PD_M) are
    higher for UF models than for baselines (docs/reproduction.md has the measured table).
    """
    return StudyConfig(
        name="default",
        data=DataConfig(dataset="mnist", source="embedded", n_train=2000),
        train=TrainConfig(epochs=25, early_stopping=False),
        population=PopulationConfig(n_seeds=16),
        probes=ProbeConfig(source="embedded"),
    )


def tiny() -> StudyConfig:
    """A seconds-long study for tests and notebooks: `memjax run tiny`.

    1,000 embedded MNIST images, 2 epochs, 2 seeds x (UF, baseline), 200 probes.
    """
    return StudyConfig(
        name="tiny",
        data=DataConfig(dataset="mnist", source="embedded", n_train=1000, n_val=500),
        train=TrainConfig(epochs=2, early_stopping=False, batch_size=128),
        population=PopulationConfig(n_seeds=2),
        probes=ProbeConfig(source="embedded", n=200, batch_size=100),
        score=ScoreConfig(n_boot=200),
    )


def paper_mnist_mlp() -> StudyConfig:
    """The reference's MNIST MLP, as a population.

    `memjax run paper-mnist-mlp --data-dir ../shared/data`: full MNIST, MLP 784-512-256-10,
    Adam 3e-4 (eps 1e-7), batch 128, up to 100 epochs with early stopping (patience 10, best
    weights restored), the reference canary (index 52734), 16 seeds x (UF, baseline), CIFAR-10
    probes (all available: 10,000 here). Expect validation accuracy ~0.98 and stopping near
    epoch 15; roughly half an hour on 2 CPU cores.
    """
    return StudyConfig(
        name="paper-mnist-mlp",
        data=DataConfig(dataset="mnist", source="auto"),
        train=TrainConfig(epochs=100, early_stopping=True, patience=10),
        population=PopulationConfig(n_seeds=16, canary=CanaryConfig(method="reference", k=1)),
        probes=ProbeConfig(source="auto"),
    )


def paper_fashion_mlp() -> StudyConfig:
    """As `paper-mnist-mlp` on Fashion-MNIST: `memjax run paper-fashion-mlp --data-dir ...`."""
    cfg = paper_mnist_mlp()
    return StudyConfig(
        name="paper-fashion-mlp",
        data=DataConfig(dataset="fashion_mnist", source="auto"),
        feature=cfg.feature, model=cfg.model, train=cfg.train, population=cfg.population,
        probes=cfg.probes, score=cfg.score,
    )


def paper_cifar_cnn() -> StudyConfig:
    """CNN2 on CIFAR-10 with MNIST probes (32x32 RGB), batch 512, early stopping.

    `memjax run paper-cifar-cnn --data-dir ../shared/data` (only 10,000 CIFAR-10 training
    images exist here). Slow on a CPU: hours; meant for accelerators.
    """
    return StudyConfig(
        name="paper-cifar-cnn",
        data=DataConfig(dataset="cifar10", source="auto"),
        model=ModelConfig(name="cnn2"),
        train=TrainConfig(epochs=100, batch_size=512, early_stopping=True, patience=10),
        population=PopulationConfig(n_seeds=16),
        probes=ProbeConfig(source="auto", n=10000),
    )


def toy_rare_concept():
    """The toy rare-concept experiment: `memjax run toy-rare-concept`.

    Two moons + a third coordinate of noise sigma, one rare canary with z=1; 500 runs per sigma
    in one vmapped program each. See `memjax.toy`.
    """
    from memjax.toy import ToyConfig

    return ToyConfig()


PRESETS: dict[str, Callable] = {
    "default": default,
    "tiny": tiny,
    "paper-mnist-mlp": paper_mnist_mlp,
    "paper-fashion-mlp": paper_fashion_mlp,
    "paper-cifar-cnn": paper_cifar_cnn,
    "toy-rare-concept": toy_rare_concept,
}


def get_preset(name: str):
    """The preset `name` (a fresh config object)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()
