"""The reference's MLP 784-512-256-10 (ReLU) and its regularised variants."""
from __future__ import annotations

import flax.linen as nn
import jax

from memjax.models.augment import augment
from memjax.models.layers import batch_norm, dense


class MLP(nn.Module):
    """MLP on flattened images: [B, H, W, K] -> logits [B, C].

    Attributes:
      hidden: hidden widths (512, 256 as the reference).
      num_classes: C.
      bn: batch norm before each ReLU.
      dropout: dropout rate after each hidden layer (0: none).
      augment: random contrast 0.2 and random crop 27x27 resized back, in train mode.
    """

    hidden: tuple[int, ...] = (512, 256)
    num_classes: int = 10
    bn: bool = False
    dropout: float = 0.0
    augment: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
        if self.augment and train:
            x = augment(self.make_rng("augment"), x, contrast=0.2, crop=x.shape[1] - 1, flip=False)
        x = x.reshape(x.shape[0], -1)
        bn_mask = None if mask is None else mask[:, None]
        for width in self.hidden:
            x = dense(width)(x)
            if self.bn:
                x = batch_norm(train)(x, mask=bn_mask)
            x = nn.relu(x)
            if self.dropout > 0:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return dense(self.num_classes)(x)
