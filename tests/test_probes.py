"""Probe images and standardisation (memjax.data.probes, memjax.data.normalise)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.data import STATS, load_dataset, make_probes, standardise
from memjax.data.probes import (
    GRAY_WEIGHTS, bilinear_matrix, convert_probes, resize_bilinear, rgb_to_grayscale,
)
from memjax.errors import ConfigError


# ---------------------------------------------------------------------------- resize


def test_bilinear_weights_by_hand():
    # Half-pixel centres: output i samples input (i + 0.5) * n_in / n_out - 0.5.
    np.testing.assert_allclose(bilinear_matrix(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    # Upsampling 2 -> 4 samples -0.25 (clamped to pixel 0), 0.25, 0.75, 1.25 (clamped to 1).
    np.testing.assert_allclose(bilinear_matrix(2, 4),
                               [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    np.testing.assert_allclose(bilinear_matrix(5, 5), np.eye(5))


def test_resize_of_a_2x2_image_by_hand():
    image = np.array([[0.0, 4.0], [8.0, 12.0]])[None, :, :, None]
    out = resize_bilinear(image, (4, 4))[0, :, :, 0]
    # Rows interpolate 0 -> 8 at weights (1, .75/.25, .25/.75, 1); columns 0 -> 4 likewise.
    row = np.array([0.0, 1.0, 3.0, 4.0])
    expected = np.array([0.0, 2.0, 6.0, 8.0])[:, None] + row[None, :]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_downsample_32_to_28_is_exact_on_a_linear_image():
    r, c = np.meshgrid(np.arange(32.0), np.arange(32.0), indexing="ij")
    image = np.stack([10 * r + c, r, c], axis=-1)[None]  # [1, 32, 32, 3]
    out = resize_bilinear(image, (28, 28))[0]
    coord = (np.arange(28) + 0.5) * 32 / 28 - 0.5  # all inside [0, 31]: no clamping
    np.testing.assert_allclose(out[..., 0], 10 * coord[:, None] + coord[None, :], atol=1e-4)


@pytest.mark.parametrize("src, dst, k", [(32, 28, 3), (28, 32, 1)])
def test_resize_matches_jax_without_antialias(src, dst, k):
    x = np.random.default_rng(0).uniform(0, 255, (3, src, src, k)).astype(np.float32)
    ref = jax.image.resize(jnp.asarray(x), (3, dst, dst, k), method="bilinear", antialias=False)
    np.testing.assert_allclose(resize_bilinear(x, (dst, dst)), np.asarray(ref), atol=1e-3)


def test_grayscale_weights_on_pure_colours():
    images = np.zeros((3, 32, 32, 3), np.uint8)
    for ch in range(3):
        images[ch, ..., ch] = 255
    gray = convert_probes(images, "mnist")
    assert gray.shape == (3, 28, 28, 1) and gray.dtype == np.float32
    for ch in range(3):
        np.testing.assert_allclose(gray[ch], GRAY_WEIGHTS[ch], rtol=1e-6)
    np.testing.assert_allclose(GRAY_WEIGHTS, [0.2989, 0.5870, 0.1140])
    np.testing.assert_allclose(rgb_to_grayscale(np.array([[10.0, 20.0, 30.0]])),
                               [[0.2989 * 10 + 0.5870 * 20 + 0.1140 * 30]], rtol=1e-6)


# ---------------------------------------------------------------------------- probes


def test_cifar_probes_for_mnist_models():
    probes = make_probes("mnist", n=64, source="embedded")
    cifar = load_dataset("cifar10", "train", source="embedded").take(64)
    assert probes.images.shape == (64, 28, 28, 1) and probes.images.dtype == np.float32
    assert 0.0 <= probes.images.min() and probes.images.max() <= 1.0
    assert probes.dataset == "cifar10" and probes.source == "embedded"
    np.testing.assert_array_equal(probes.labels, cifar.labels)
    np.testing.assert_array_equal(probes.example_index, cifar.example_index)
    # Reference recipe: tf.image.resize (bilinear, no antialias), rgb_to_grayscale, / 255.
    ref = jax.image.resize(jnp.asarray(cifar.images, jnp.float32), (64, 28, 28, 3),
                           method="bilinear", antialias=False)
    ref = jnp.tensordot(ref, jnp.asarray(GRAY_WEIGHTS), axes=[[-1], [-1]])[..., None] / 255.0
    np.testing.assert_allclose(probes.images, np.asarray(ref), atol=1e-5)
    assert make_probes("fashion_mnist", n=64, source="embedded").images.shape == (64, 28, 28, 1)


def test_mnist_probes_for_cifar_models():
    probes = make_probes("cifar10", n=16, source="embedded")
    mnist = load_dataset("mnist", "train", source="embedded").take(16)
    assert probes.images.shape == (16, 32, 32, 3) and probes.dataset == "mnist"
    np.testing.assert_array_equal(probes.images[..., 0], probes.images[..., 2])
    expected = resize_bilinear(mnist.images, (32, 32))[..., 0] / 255.0
    np.testing.assert_allclose(probes.images[..., 1], expected, atol=1e-6)
    assert 0.0 <= probes.images.min() and probes.images.max() <= 1.0
    np.testing.assert_array_equal(probes.labels, mnist.labels)


def test_probe_count_errors():
    assert len(make_probes("mnist", source="embedded")) == 1_600
    with pytest.raises(ConfigError, match="asked for 1601"):
        make_probes("mnist", n=1601, source="embedded")
    with pytest.raises(ConfigError, match="dataset 'svhn'"):
        make_probes("svhn")


# ---------------------------------------------------------------------------- standardise


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_standardise_numpy_and_jit_agree(name):
    k = 3 if name == "cifar10" else 1
    x = np.random.default_rng(1).uniform(0, 1, (4, 5, 5, k)).astype(np.float32)
    out = standardise(x, name)
    mean, std = (np.asarray(v) for v in STATS[name])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (x - mean) / std, rtol=1e-6, atol=1e-6)
    out_jit = jax.jit(lambda a: standardise(a, name))(jnp.asarray(x))
    assert out_jit.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out_jit), out, rtol=1e-6, atol=1e-6)


def test_standardise_values_and_errors():
    assert abs(float(standardise(np.full((1, 1, 1), 0.1307, np.float32), "mnist")[0, 0, 0])) < 1e-6
    np.testing.assert_allclose(standardise(np.ones((1, 1, 3), np.float32), "cifar10")[0, 0],
                               [(1 - 0.4914) / 0.2470, (1 - 0.4822) / 0.2435, (1 - 0.4465) / 0.2616],
                               rtol=1e-6)
    with pytest.raises(ConfigError, match="channels"):
        standardise(np.zeros((2, 28, 28, 3), np.float32), "mnist")
    with pytest.raises(ConfigError):
        standardise(np.zeros((2, 28, 28, 1), np.float32), "svhn")
