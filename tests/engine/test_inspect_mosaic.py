"""make_mosaic / activation_mosaic: layout, tile lookup, scaling, degenerate inputs, speed."""
import time

import numpy as np
import pytest

from cnnviz.inspect import LayerActivation, Mosaic, activation_mosaic, make_mosaic


def tiles(n, h, w, seed=0):
    return np.random.default_rng(seed).uniform(-3, 5, (n, h, w)).astype(np.float32)


def test_layout_and_tile_lookup_round_trip():
    t = tiles(10, 3, 4)
    m = make_mosaic(t, pad=1)
    assert isinstance(m, Mosaic)
    assert (m.rows, m.cols, m.tile_h, m.tile_w, m.pad, m.count) == (4, 3, 3, 4, 1, 10)
    assert m.image.shape == (4 * 4 - 1, 3 * 5 - 1)
    assert m.image.dtype == np.float32 and m.image.flags["C_CONTIGUOUS"]

    owner = np.full(m.image.shape, -1)
    for i in range(m.count):
        top, left, h, w = m.tile_rect(i)
        assert (h, w) == (3, 4)
        owner[top : top + h, left : left + w] = i
        expected = (t[i] - t.min()) / (t.max() - t.min())
        np.testing.assert_allclose(m.image[top : top + h, left : left + w], expected, rtol=1e-5, atol=1e-6)
    # Every pixel maps back to the tile drawn there, or to None on padding / empty grid cells.
    for r in range(m.image.shape[0]):
        for c in range(m.image.shape[1]):
            got = m.tile_at(r + 0.7, c + 0.2)  # sub-pixel mouse positions
            assert got == (owner[r, c] if owner[r, c] >= 0 else None)
    assert (owner == -1).sum() > 0 and np.all(m.image[owner == -1] == 0)  # background is 0
    for r, c in [(-1, 0), (0, -0.5), (m.image.shape[0], 0), (0, m.image.shape[1]), (float("nan"), 0)]:
        assert m.tile_at(r, c) is None
    with pytest.raises(IndexError):
        m.tile_rect(10)


def test_grid_is_near_square_or_as_asked():
    m = make_mosaic(tiles(256, 28, 28))
    assert (m.rows, m.cols) == (16, 16) and m.image.shape == (463, 463)
    m = make_mosaic(tiles(12, 2, 2), cols=6, pad=0)
    assert (m.rows, m.cols) == (2, 6) and m.image.shape == (4, 12)
    wide = make_mosaic(tiles(8, 2, 16))  # wide tiles stack in fewer columns
    assert wide.cols < wide.rows
    assert 0.5 < wide.image.shape[0] / wide.image.shape[1] < 2


def test_signed_scaling_keeps_zero_and_shares_one_scale():
    t = np.zeros((2, 2, 2), np.float32)
    t[0, 0, 0], t[1, 1, 1], t[0, 1, 0] = -2.0, 4.0, 1.0
    m = make_mosaic(t, signed=True, pad=0, cols=2)
    assert m.signed and m.scale == 4.0 and m.offset == 0.0
    np.testing.assert_allclose(m.image, np.concatenate(list(t), axis=1) / 4.0)
    assert m.image.min() == -0.5 and m.image.max() == 1.0


def test_unsigned_is_min_max_and_value_mapping():
    t = np.array([[[2.0, 4.0]], [[6.0, 3.0]]], np.float32)
    m = make_mosaic(t, pad=0, cols=2)
    np.testing.assert_allclose(m.image, [[0.0, 0.5, 1.0, 0.25]])
    assert (m.offset, m.scale) == (2.0, 6.0)
    v = m.image[0, 3]
    assert m.offset + v * (m.scale - m.offset) == pytest.approx(3.0)


def test_explicit_scale_is_used_and_clipped():
    t = np.array([[[-4.0, 1.0, 2.0]]], np.float32)
    np.testing.assert_allclose(make_mosaic(t, signed=True, scale=2.0).image, [[-1.0, 0.5, 1.0]])
    np.testing.assert_allclose(make_mosaic(t, scale=1.0).image, [[0.0, 1.0, 1.0]])


def test_single_tile():
    t = tiles(1, 5, 7)
    for arg in (t, t[0]):
        m = make_mosaic(arg, signed=True)
        assert (m.rows, m.cols, m.count) == (1, 1, 1) and m.image.shape == (5, 7)
        np.testing.assert_allclose(m.image, t[0] / np.abs(t).max(), rtol=1e-6)
        assert m.tile_at(4, 6) == 0 and m.tile_rect(0) == (0, 0, 5, 7)


@pytest.mark.parametrize("signed", [False, True])
def test_all_zero_and_constant_tiles_do_not_divide_by_zero(signed):
    m = make_mosaic(np.zeros((4, 3, 3)), signed=signed)
    assert np.all(m.image == 0)
    m = make_mosaic(np.full((4, 3, 3), 2.5), signed=signed)
    assert np.all(np.isfinite(m.image))
    top, left, h, w = m.tile_rect(0)
    assert np.all(m.image[top : top + h, left : left + w] == 1.0)  # a positive constant shows as full


@pytest.mark.parametrize("signed", [False, True])
def test_nan_and_inf_become_zero(signed):
    t = np.array([[[np.nan, np.inf], [-np.inf, 2.0]], [[1.0, -1.0], [0.0, 0.0]]], np.float32)
    m = make_mosaic(t, signed=signed, pad=0, cols=2)
    assert np.all(np.isfinite(m.image))
    zero_shows_as = 0.0 if signed else 1 / 3  # unsigned: 0 in min-max of [-1, 2]
    np.testing.assert_allclose(m.image[0, :2], [zero_shows_as, zero_shows_as])
    np.testing.assert_allclose(m.image[1, 1], 1.0)


def test_bad_tiles_are_rejected():
    with pytest.raises(ValueError):
        make_mosaic(np.zeros((0, 3, 3)))
    with pytest.raises(ValueError):
        make_mosaic(np.zeros((2, 2, 3, 3)))


def test_256_maps_is_fast():
    t = tiles(256, 28, 28)
    make_mosaic(t)
    best = min(_timed(make_mosaic, t) for _ in range(5))
    assert best < 0.01  # ~0.2 ms measured; a per-tile Python loop or a slow path would show up here


def _timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def test_activation_mosaic_of_conv_maps():
    values = tiles(6, 5, 5)
    m = activation_mosaic(LayerActivation("conv1", "Conv2d", values.shape, values))
    assert m.count == 6 and (m.tile_h, m.tile_w) == (5, 5) and m.signed  # has negative values
    relu = np.maximum(values, 0)
    assert not activation_mosaic(LayerActivation("r", "ReLU", relu.shape, relu)).signed


def test_activation_mosaic_of_a_flat_layer_is_a_near_square_block_of_units():
    values = np.arange(10, dtype=np.float32)
    m = activation_mosaic(LayerActivation("dense1", "Linear", (10,), values))
    assert (m.tile_h, m.tile_w, m.pad, m.count) == (1, 1, 0, 10)
    assert (m.rows, m.cols) == (3, 4) and m.image.shape == (3, 4)
    for unit in range(10):
        r, c = divmod(unit, 4)
        assert m.tile_at(r, c) == unit
        assert m.image[r, c] == pytest.approx(unit / 9)
    assert m.tile_at(2, 3) is None  # the unused cell
