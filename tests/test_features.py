"""Tests of memjax.features: font, feature bitmaps, fit checks, rendering, insertion, controls."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memjax.config import FeatureConfig
from memjax.errors import FeatureError
from memjax.features import (
    FONT,
    Overlay,
    check_fits,
    control_bitmaps,
    feature_bitmap,
    feature_extent,
    insert,
    letter_bitmap,
    render,
    render_feature,
    text_bitmap,
)

A_METHOD_MD = np.array(
    [
        [0, 0, 1, 0, 0],
        [0, 1, 0, 1, 0],
        [1, 1, 1, 1, 1],
        [1, 0, 0, 0, 1],
        [1, 0, 0, 0, 1],
    ],
    dtype=np.uint8,
)


@pytest.fixture(scope="module")
def mnist_like() -> np.ndarray:
    """[8, 28, 28, 1] float32 images: random uint8 pixels / 255, as loaded data look."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(8, 28, 28, 1), dtype=np.uint8).astype(np.float32) / 255


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise difference, so that -0.0 vs 0.0 or NaN payloads would count as changes."""
    return a.view(np.uint32) != b.view(np.uint32)


# --------------------------------------------------------------------------------------------
# Font and bitmaps


def test_letter_a_is_method_md_bitmap():
    np.testing.assert_array_equal(FONT["A"], A_METHOD_MD)
    assert FONT["A"].dtype == np.uint8
    np.testing.assert_array_equal(letter_bitmap("a"), A_METHOD_MD)


def test_font_has_26_distinct_binary_letters_with_ink():
    assert sorted(FONT) == [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    seen = set()
    for ch, bm in FONT.items():
        assert bm.shape == (5, 5) and bm.dtype == np.uint8, ch
        assert set(np.unique(bm)) <= {0, 1}, ch
        assert bm.sum() > 0, ch
        seen.add(bm.tobytes())
    assert len(seen) == 26


def test_font_is_read_only_and_letter_bitmap_copies():
    with pytest.raises(ValueError):
        FONT["A"][0, 0] = 1
    b = letter_bitmap("A")
    b[0, 0] = 1
    np.testing.assert_array_equal(FONT["A"], A_METHOD_MD)


@pytest.mark.parametrize("bad", ["", "AB", "1", "é", " "])
def test_letter_bitmap_rejects_non_letters(bad):
    with pytest.raises(FeatureError):
        letter_bitmap(bad)


def test_text_bitmap_side_by_side_with_blank_columns():
    ab = text_bitmap("AB")
    assert ab.shape == (5, 11) and ab.dtype == np.uint8
    np.testing.assert_array_equal(ab[:, :5], FONT["A"])
    np.testing.assert_array_equal(ab[:, 5], 0)
    np.testing.assert_array_equal(ab[:, 6:], FONT["B"])
    assert text_bitmap("abc", spacing=0).shape == (5, 15)
    assert text_bitmap("ANNA", spacing=2).shape == (5, 4 * 5 + 3 * 2)
    np.testing.assert_array_equal(text_bitmap("A"), FONT["A"])


@pytest.mark.parametrize("text,spacing", [("", 1), ("A1", 1), ("A B", 1), ("AB", -1)])
def test_text_bitmap_rejects(text, spacing):
    with pytest.raises(FeatureError):
        text_bitmap(text, spacing)


def test_feature_bitmap_kinds():
    bm = feature_bitmap(FeatureConfig())
    assert bm.dtype == np.float32
    np.testing.assert_array_equal(bm, A_METHOD_MD.astype(np.float32))
    sq = feature_bitmap(FeatureConfig(kind="square", size=3, value=0.5))
    assert sq.shape == (3, 3) and sq.dtype == np.float32 and np.all(sq == 0.5)
    user = feature_bitmap(FeatureConfig(kind="bitmap", bitmap=((0.0, 0.25), (1.0, 0.5), (1, 0))))
    np.testing.assert_array_equal(user, np.array([[0, 0.25], [1, 0.5], [1, 0]], np.float32))


@pytest.mark.parametrize(
    "cfg",
    [
        FeatureConfig(kind="bitmap", bitmap=None),
        FeatureConfig(kind="bitmap", bitmap=()),
        FeatureConfig(kind="bitmap", bitmap=((0.0, 1.0), (1.0,))),  # ragged
        FeatureConfig(kind="bitmap", bitmap=((0.0, 1.5),)),  # > 1
        FeatureConfig(kind="bitmap", bitmap=((0.0, -0.1),)),  # < 0
        FeatureConfig(kind="bitmap", bitmap=((0.0, float("nan")),)),
        FeatureConfig(kind="bitmap", bitmap=(0.0, 1.0)),  # 1-D
        FeatureConfig(kind="square", size=0),
        FeatureConfig(kind="square", value=1.5),
        FeatureConfig(kind="text", text="A!"),
        FeatureConfig(kind="circle"),
    ],
)
def test_feature_bitmap_rejects_malformed(cfg):
    with pytest.raises(FeatureError):
        feature_bitmap(cfg)


def test_feature_extent():
    assert feature_extent(FeatureConfig()) == (5, 5)
    assert feature_extent(FeatureConfig(scale=2)) == (10, 10)
    assert feature_extent(FeatureConfig(text="AB", scale=3)) == (15, 33)
    assert feature_extent(FeatureConfig(kind="square", size=4)) == (4, 4)


# --------------------------------------------------------------------------------------------
# Fit checks


@pytest.mark.parametrize(
    "cfg,shape",
    [
        (FeatureConfig(offset=(25, 25)), (28, 28, 1)),
        (FeatureConfig(offset=(0, 24)), (28, 28, 1)),
        (FeatureConfig(kind="square", size=29, offset=(0, 0)), (28, 28, 1)),
        (FeatureConfig(scale=6, offset=(0, 0)), (28, 28, 1)),
        (FeatureConfig(text="ANNA", offset=(1, 10)), (32, 32, 3)),
    ],
)
def test_check_fits_rejects_with_sizes_in_message(cfg, shape):
    with pytest.raises(FeatureError) as e:
        check_fits(cfg, shape)
    msg = str(e.value)
    fh, fw = feature_extent(cfg)
    assert f"{fh}x{fw}" in msg
    assert f"{shape[0]}x{shape[1]}" in msg
    assert str(tuple(cfg.offset)) in msg
    with pytest.raises(FeatureError):  # render_feature checks too, before rendering anything
        render_feature(cfg, shape)


def test_check_fits_exact_border_ok():
    check_fits(FeatureConfig(offset=(23, 23)), (28, 28, 1))
    check_fits(FeatureConfig(kind="square", size=28, offset=(0, 0)), (28, 28, 1))
    check_fits(FeatureConfig(scale=2, offset=(22, 22)), (32, 32, 3))
    check_fits(FeatureConfig(text="ANNA", offset=(27, 9)), (32, 32, 3))


@pytest.mark.parametrize("offset", [(-1, 0), (0, 1.5), (1,), "11"])
def test_check_fits_rejects_bad_offsets(offset):
    with pytest.raises(FeatureError):
        check_fits(FeatureConfig(offset=offset), (28, 28, 1))


def test_check_fits_rejects_bad_scale():
    with pytest.raises(FeatureError):
        check_fits(FeatureConfig(scale=0), (28, 28, 1))


# --------------------------------------------------------------------------------------------
# Insertion into images


def test_default_feature_changes_exactly_25_pixels_of_one_image(mnist_like):
    x = mnist_like
    ov = render_feature(FeatureConfig(), (28, 28, 1))
    assert isinstance(ov, Overlay)
    assert ov.mask.shape == (28, 28, 1) and ov.mask.dtype == bool
    assert ov.value.shape == (28, 28, 1) and ov.value.dtype == np.float32
    i = 3
    y = x.copy()
    y[i] = insert(x[i], ov.mask, ov.value)
    assert y.dtype == np.float32
    changed_at = np.zeros(x.shape, bool)
    changed_at[i, 1:6, 1:6, 0] = True
    # Every one of the 25 pixels now holds the letter (1 -> 1.0, 0 -> 0.0) ...
    np.testing.assert_array_equal(y[i, 1:6, 1:6, 0], A_METHOD_MD.astype(np.float32))
    # ... and every other pixel of the batch is bitwise unchanged.
    np.testing.assert_array_equal(y[~changed_at].view(np.uint32), x[~changed_at].view(np.uint32))
    # The random images differ from the letter on (almost) all 25 pixels, so the overwrite is real.
    assert _changed(y, x)[changed_at].sum() >= 20


def test_insert_batch_with_per_image_mask(mnist_like):
    x = mnist_like
    ov = render_feature(FeatureConfig(), (28, 28, 1))
    which = np.zeros((8, 1, 1, 1), bool)
    which[5] = True
    y = insert(x, ov.mask & which, ov.value)
    want = x.copy()
    want[5, 1:6, 1:6, 0] = A_METHOD_MD
    np.testing.assert_array_equal(y.view(np.uint32), want.view(np.uint32))


def test_transparent_mode_writes_only_ink(mnist_like):
    x = mnist_like[0]
    ov = render_feature(FeatureConfig(transparent=True), (28, 28, 1))
    ink = np.zeros((28, 28, 1), bool)
    ink[1:6, 1:6, 0] = A_METHOD_MD == 1
    np.testing.assert_array_equal(ov.mask, ink)
    y = insert(x, ov.mask, ov.value)
    np.testing.assert_array_equal(y[ink], 1.0)
    np.testing.assert_array_equal(y[~ink].view(np.uint32), x[~ink].view(np.uint32))


def test_rgb_writes_every_channel():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8).astype(np.float32) / 255
    ov = render_feature(FeatureConfig(offset=(2, 3)), (32, 32, 3))
    y = insert(x, ov.mask, ov.value)
    for k in range(3):
        np.testing.assert_array_equal(y[:, 2:7, 3:8, k], np.broadcast_to(A_METHOD_MD, (4, 5, 5)))
    outside = np.ones(x.shape, bool)
    outside[:, 2:7, 3:8, :] = False
    np.testing.assert_array_equal(y[outside].view(np.uint32), x[outside].view(np.uint32))


def test_scale_2_is_nearest_neighbour_block(mnist_like):
    x = mnist_like[0]
    ov = render_feature(FeatureConfig(scale=2, offset=(4, 6)), (28, 28, 1))
    y = insert(x, ov.mask, ov.value)
    block = y[4:14, 6:16, 0]
    np.testing.assert_array_equal(block, np.kron(A_METHOD_MD, np.ones((2, 2))).astype(np.float32))
    assert ov.mask.sum() == 100
    outside = ~ov.mask
    np.testing.assert_array_equal(y[outside].view(np.uint32), x[outside].view(np.uint32))


def test_square_of_value_half(mnist_like):
    x = mnist_like[0]
    ov = render_feature(FeatureConfig(kind="square", size=4, value=0.5, offset=(10, 20)), x.shape)
    y = insert(x, ov.mask, ov.value)
    np.testing.assert_array_equal(y[10:14, 20:24, 0], 0.5)
    assert ov.mask.sum() == 16
    np.testing.assert_array_equal(y[~ov.mask].view(np.uint32), x[~ov.mask].view(np.uint32))


def test_user_bitmap_and_transparent_zeros(mnist_like):
    x = mnist_like[0]
    bm = ((0.0, 0.25, 1.0), (0.75, 0.0, 0.5))
    for transparent in (False, True):
        cfg = FeatureConfig(kind="bitmap", bitmap=bm, offset=(20, 0), transparent=transparent)
        ov = render_feature(cfg, x.shape)
        y = insert(x, ov.mask, ov.value)
        region = y[20:22, 0:3, 0]
        want = np.array(bm, np.float32)
        if transparent:  # zeros of the bitmap keep the image's pixels
            want = np.where(want == 0, x[20:22, 0:3, 0], want)
        np.testing.assert_array_equal(region, want)
        assert ov.mask.sum() == (4 if transparent else 6)


def test_insert_keeps_dtype_and_rejects_integer_images(mnist_like):
    ov = render_feature(FeatureConfig(), (28, 28, 1))
    y64 = insert(mnist_like[0].astype(np.float64), ov.mask, ov.value)
    assert y64.dtype == np.float64
    with pytest.raises(FeatureError, match="255"):
        insert((mnist_like[0] * 255).astype(np.uint8), ov.mask, ov.value)


def test_render_feature_arrays_are_read_only():
    ov = render_feature(FeatureConfig(), (28, 28, 1))
    with pytest.raises(ValueError):
        ov.mask[0, 0, 0] = True


# --------------------------------------------------------------------------------------------
# NumPy and jax.jit agree bitwise


@pytest.mark.parametrize("transparent", [False, True])
def test_render_insert_numpy_equals_jit_with_traced_controls(transparent):
    P, shape, offset, scale = 6, (28, 28, 1), (1, 1), 2
    ctrl = control_bitmaps(P, (5, 5), seed=7)
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(P, *shape), dtype=np.uint8).astype(np.float32) / 255

    def f(bitmaps, images, xp):
        mask, value = render(bitmaps, shape, offset, scale, transparent, xp=xp)
        return mask, value, insert(images, mask, value, xp=xp)

    m_np, v_np, y_np = f(ctrl, x, np)
    m_j, v_j, y_j = jax.jit(lambda b, im: f(b, im, jnp))(jnp.asarray(ctrl), jnp.asarray(x))
    assert m_np.shape == (P, 28, 28, 1) and v_np.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(m_j), m_np)
    np.testing.assert_array_equal(np.asarray(v_j).view(np.uint32), v_np.view(np.uint32))
    np.testing.assert_array_equal(np.asarray(y_j).view(np.uint32), y_np.view(np.uint32))
    # Each probe gets its own control.
    for p in range(P):
        block = y_np[p, 1:11, 1:11, 0]
        want = np.kron(ctrl[p], np.ones((2, 2))).astype(np.float32)
        if transparent:
            want = np.where(want == 0, x[p, 1:11, 1:11, 0], want)
        np.testing.assert_array_equal(block, want)


def test_render_feature_into_rgb_batch_numpy_equals_jit():
    cfg = FeatureConfig(kind="bitmap", bitmap=((0.1, 0.9), (0.3, 0.0)), offset=(30, 29))
    ov = render_feature(cfg, (32, 32, 3))
    rng = np.random.default_rng(3)
    x = rng.random((5, 32, 32, 3), dtype=np.float32)
    y_np = insert(x, ov.mask, ov.value)
    y_j = jax.jit(lambda im, m, v: insert(im, m, v, xp=jnp))(x, ov.mask, ov.value)
    np.testing.assert_array_equal(np.asarray(y_j).view(np.uint32), y_np.view(np.uint32))


# --------------------------------------------------------------------------------------------
# Property tests: the changed pixels are exactly the rendered region


@st.composite
def placements(draw):
    H = draw(st.integers(5, 20))
    W = draw(st.integers(5, 20))
    K = draw(st.sampled_from([1, 3]))
    h = draw(st.integers(1, 5))
    w = draw(st.integers(1, 5))
    scale = draw(st.integers(1, max(1, min(H // h, W // w, 3))))
    r = draw(st.integers(0, H - h * scale))
    c = draw(st.integers(0, W - w * scale))
    seed = draw(st.integers(0, 2**16))
    transparent = draw(st.booleans())
    return (H, W, K), (h, w), scale, (r, c), seed, transparent


@settings(max_examples=150, deadline=None)
@given(placements())
def test_property_changed_pixels_are_rendered_region(p):
    (H, W, K), (h, w), scale, (r, c), seed, transparent = p
    rng = np.random.default_rng(seed)
    bitmap = (rng.random((h, w)) < 0.5).astype(np.float32)
    # Images strictly inside (0, 1) so that every written 0 or 1 is a visible change.
    x = (rng.integers(1, 255, size=(2, H, W, K)).astype(np.float32)) / 255
    mask, value = render(bitmap, (H, W, K), (r, c), scale, transparent)
    y = insert(x, mask, value)

    region = np.zeros((H, W, K), bool)
    up = np.kron(bitmap, np.ones((scale, scale), np.float32))
    footprint = up != 0 if transparent else np.ones_like(up, bool)
    region[r : r + h * scale, c : c + w * scale, :] = footprint[..., None]
    np.testing.assert_array_equal(mask, region)
    np.testing.assert_array_equal(_changed(y, x), np.broadcast_to(region, x.shape))
    canvas = np.zeros((H, W, K), np.float32)
    canvas[r : r + h * scale, c : c + w * scale, :] = up[..., None]
    want = np.where(region, canvas, x)
    np.testing.assert_array_equal(y.view(np.uint32), want.view(np.uint32))


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 30), st.integers(1, 30), st.integers(0, 30), st.integers(0, 30),
    st.integers(1, 4),
)
def test_property_check_fits_iff_inside(H, W, r, c, scale):
    cfg = FeatureConfig(offset=(r, c), scale=scale)
    fits = r + 5 * scale <= H and c + 5 * scale <= W
    if fits:
        check_fits(cfg, (H, W, 1))
        assert render_feature(cfg, (H, W, 1)).mask.sum() == 25 * scale * scale
    else:
        with pytest.raises(FeatureError):
            check_fits(cfg, (H, W, 1))


# --------------------------------------------------------------------------------------------
# Control bitmaps


def test_control_bitmaps_shape_values_determinism():
    a = control_bitmaps(2000, (5, 5), seed=0)
    assert a.shape == (2000, 5, 5) and a.dtype == np.uint8
    assert set(np.unique(a)) == {0, 1}
    np.testing.assert_array_equal(a, control_bitmaps(2000, (5, 5), seed=0))
    assert not np.array_equal(a, control_bitmaps(2000, (5, 5), seed=1))
    assert abs(a.mean() - 0.5) < 0.01  # 50,000 draws: sd 0.0022
    # Pixels are independent across positions, not one shared pattern.
    assert len({b.tobytes() for b in a}) > 1900


def test_control_bitmaps_prefix_stable_and_shape():
    np.testing.assert_array_equal(
        control_bitmaps(10, (5, 11), seed=3), control_bitmaps(50, (5, 11), seed=3)[:10]
    )
    assert control_bitmaps(0, (5, 5), seed=0).shape == (0, 5, 5)
    for bad in [(-1, (5, 5)), (3, (0, 5)), (3, (5,))]:
        with pytest.raises(FeatureError):
            control_bitmaps(bad[0], bad[1], seed=0)


def test_control_same_shape_as_feature_bitmap():
    cfg = dataclasses.replace(FeatureConfig(), text="ANNA", scale=2)
    ctrl = control_bitmaps(4, feature_bitmap(cfg).shape, seed=0)
    mask, _ = render(ctrl, (32, 48, 1), cfg.offset, cfg.scale, cfg.transparent)
    ov = render_feature(cfg, (32, 48, 1))
    np.testing.assert_array_equal(mask, np.broadcast_to(ov.mask, mask.shape))  # same footprint
