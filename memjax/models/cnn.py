"""The reference's CNNs: CNN1 and CNN2 with batch-norm, dropout and augmentation variants."""
from __future__ import annotations

import flax.linen as nn
import jax

from memjax.models.augment import augment
from memjax.models.layers import Conv3x3, batch_norm, dense, max_pool2


class CNN1(nn.Module):
    """conv 32 3x3 valid ReLU, conv 64 3x3 valid ReLU, maxpool 2, dense 128, dense 128, dense C.

    [B, H, W, K] -> logits [B, C].
    """

    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
        x = nn.relu(Conv3x3(32, padding="VALID")(x))
        x = nn.relu(Conv3x3(64, padding="VALID")(x))
        x = max_pool2(x)
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(dense(128)(x))
        x = nn.relu(dense(128)(x))
        return dense(self.num_classes)(x)


class CNN2(nn.Module):
    """[conv 32 3x3 same ReLU x2, maxpool 2], [conv 64 x2, maxpool 2], dense 1024 ReLU, dense C.

    Variants: `bn` (batch norm before each ReLU), `dropout` (0.2 after each conv block, 0.5
    after dense 1024), `augment` (contrast 0.2, random crop H-1 resized back, horizontal flip).
    [B, H, W, K] -> logits [B, C].
    """

    num_classes: int = 10
    bn: bool = False
    dropout: bool = False
    augment: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
        if self.augment and train:
            x = augment(self.make_rng("augment"), x, contrast=0.2, crop=x.shape[1] - 1, flip=True)
        bn_mask = None if mask is None else mask[:, None, None, None]
        for width in (32, 64):
            for _ in range(2):
                x = Conv3x3(width, padding="SAME")(x)
                if self.bn:
                    x = batch_norm(train)(x, mask=bn_mask)
                x = nn.relu(x)
            x = max_pool2(x)
            if self.dropout:
                x = nn.Dropout(0.2, deterministic=not train)(x)
        x = x.reshape(x.shape[0], -1)
        x = dense(1024)(x)
        if self.bn:
            x = batch_norm(train)(x, mask=None if mask is None else mask[:, None])
        x = nn.relu(x)
        if self.dropout:
            x = nn.Dropout(0.5, deterministic=not train)(x)
        return dense(self.num_classes)(x)
