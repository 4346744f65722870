"""Two moons with a third coordinate z, and the one canary point that carries the rare concept.

Random draws (host side, NumPy; one stream per data seed so nothing shares a seed by accident):

    np.random.RandomState(data_seed)
      1. shuffle of the 1,000 moon points    (inside `make_moons`, as sklearn's make_moons)
      2. moon noise, normal(scale=noise)     (inside `make_moons`, as sklearn's make_moons)
      3. eps ~ N(0, 1), one per moon point   (in `make_toy_data`)

and z = sigma * eps. The same eps serves every sigma, so the conditions differ by the scale of
z alone (common random numbers: comparisons between sigmas are not blurred by a fresh draw).
"""
from __future__ import annotations

import numpy as np

from memjax.toy.config import ToyConfig

CANARY_Z = 1.0  # the rare concept: z = 1 on one training point, and on the "unique" test inputs
CANARY_LABEL = 1


def make_moons(
    n_samples: int, noise: float | None, random_state: int | np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles, point for point as ``sklearn.datasets.make_moons``.

    The order of the random draws is sklearn's (``make_moons(n_samples, shuffle=True, noise,
    random_state)``): one ``RandomState.shuffle`` of ``arange(N)`` (what ``sklearn.utils.shuffle``
    does), then ``normal(scale=noise, size=(N, 2))`` added to the shuffled points.

    Args:
      n_samples: N, total points; the outer moon (label 0) gets N // 2, the inner (label 1) the rest.
      noise: standard deviation of the Gaussian noise; None adds none and draws nothing.
      random_state: an int seed or a ``np.random.RandomState`` (advanced in place).

    Returns:
      x: [N, 2] float64 points; y: [N] int64 labels, 0 outer moon, 1 inner moon.
    """
    rng = (
        random_state
        if isinstance(random_state, np.random.RandomState)
        else np.random.RandomState(random_state)
    )
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0, np.pi, n_out)
    t_in = np.linspace(0, np.pi, n_in)
    x = np.vstack(
        [
            np.append(np.cos(t_out), 1 - np.cos(t_in)),
            np.append(np.sin(t_out), 1 - np.sin(t_in) - 0.5),
        ]
    ).T
    y = np.hstack([np.zeros(n_out, dtype=np.intp), np.ones(n_in, dtype=np.intp)])
    order = np.arange(n_samples)
    rng.shuffle(order)
    x, y = x[order], y[order]
    if noise is not None:
        x = x + rng.normal(scale=noise, size=x.shape)
    return x, y


def make_toy_data(cfg: ToyConfig, sigma: float) -> dict[str, np.ndarray]:
    """The training set and test inputs of one sigma (method.md, toy experiment).

    The moons are centred (their mean over the N points subtracted). Point i gets
    z_i = sigma * eps_i. The canary is the class-1 point at position N // 4 among the class-1
    points in data order, copied with z = 1 and label 1 and appended as point N + 1.

    Args:
      cfg: the experiment; uses n_points (N), noise and data_seed.
      sigma: standard deviation of z.

    Returns:
      A dict of NumPy arrays (P = number of class-1 points among the N originals):
        x: [N + 1, 3] float32 training inputs (x1, x2, z), the canary last.
        y: [N + 1] int32 labels.
        clean: [P, 3] float32, the class-1 training inputs with their own z ("clean" inputs).
        unique: [P, 3] float32, the same (x1, x2) with z = 1 ("unique" inputs).
        class1_index: [P] int, positions of the class-1 points in x.
        canary_source: [] int, position in x of the point the canary copies.
    """
    rng = np.random.RandomState(cfg.data_seed)
    moons, labels = make_moons(cfg.n_points, cfg.noise, rng)
    moons = moons - moons.mean(axis=0)
    eps = rng.standard_normal(cfg.n_points)
    x = np.column_stack([moons, sigma * eps])
    class1 = np.flatnonzero(labels == CANARY_LABEL)
    source = class1[len(labels) // 4]
    canary = np.array([moons[source, 0], moons[source, 1], CANARY_Z])
    unique = x[class1].copy()
    unique[:, 2] = CANARY_Z
    return {
        "x": np.vstack([x, canary]).astype(np.float32),
        "y": np.append(labels, CANARY_LABEL).astype(np.int32),
        "clean": x[class1].astype(np.float32),
        "unique": unique.astype(np.float32),
        "class1_index": class1,
        "canary_source": np.asarray(source),
    }
