"""Model registry: `MODELS[name]()` builds a Flax module with `__call__(x, *, train, mask=None)`.

Every model maps images [B, H, W, K] (standardised) to logits [B, C]; any input shape works.
Dropout draws from the "dropout" RNG stream and augmentation from "augment"; batch-norm models
keep statistics in the "batch_stats" collection (`uses_batch_stats`).
"""
from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn

from memjax.models.cnn import CNN1, CNN2
from memjax.models.mlp import MLP

MODELS: dict[str, Callable[[], nn.Module]] = {
    "mlp": lambda: MLP(),
    "mlp_bn": lambda: MLP(bn=True),
    "mlp_dropout": lambda: MLP(dropout=0.5),
    "mlp_aug": lambda: MLP(augment=True),
    "cnn1": lambda: CNN1(),
    "cnn2": lambda: CNN2(),
    "cnn2_bn": lambda: CNN2(bn=True),
    "cnn2_dropout": lambda: CNN2(dropout=True),
    "cnn2_aug": lambda: CNN2(augment=True),
}


def build_model(name: str) -> nn.Module:
    """The registered model `name` (see `MODELS`)."""
    from memjax.errors import ConfigError

    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]()


def uses_batch_stats(name: str) -> bool:
    """Whether the model keeps batch-norm statistics."""
    return name.endswith("_bn")


def model_family(name: str) -> str:
    """'mlp' or 'cnn' (execution strategies are measured per family)."""
    return "mlp" if name.startswith("mlp") else "cnn"


__all__ = ["MODELS", "MLP", "CNN1", "CNN2", "build_model", "uses_batch_stats", "model_family"]
