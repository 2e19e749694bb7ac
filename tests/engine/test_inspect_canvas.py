"""render_strokes / to_mnist / strokes_to_mnist: rasterising and MNIST-style preparation."""
import math
import time

import numpy as np
import pytest

from cnnviz.inspect import render_strokes, strokes_to_mnist, to_mnist


def centre_of_mass(img):
    total = img.sum()
    rows = (img.sum(axis=1) * np.arange(img.shape[0])).sum() / total
    cols = (img.sum(axis=0) * np.arange(img.shape[1])).sum() / total
    return rows, cols


def ink_box(img, threshold=0.05):
    """(top, left, height, width) of the pixels above threshold."""
    rows = np.flatnonzero((img > threshold).any(axis=1))
    cols = np.flatnonzero((img > threshold).any(axis=0))
    return rows[0], cols[0], rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


# --- render_strokes -------------------------------------------------------------------------------


def test_line_coverage_is_anti_aliased_with_round_caps():
    img = render_strokes([[(50.0, 100.25), (150.0, 100.25)]], size=280, width=18.0)
    assert img.shape == (280, 280) and img.dtype == np.float32
    assert img.min() == 0.0 and img.max() == 1.0
    # Pixel (row i, col j) has its centre at (j + 0.5, i + 0.5): row 100 is 0.25 px off the line.
    assert img[100, 100] == 1.0
    assert img[108, 100] == 1.0  # distance 8.25 <= 9 - 0.5
    assert img[109, 100] == pytest.approx(0.25)  # distance 9.25: clip(9 - 9.25 + 0.5) = 0.25
    assert img[110, 100] == 0.0
    # Round cap: ink continues past the end point by the radius, along a circle.
    assert img[100, 155] == 1.0
    d = math.hypot(158.5 - 150.0, 104.5 - 100.25)  # a pixel diagonally beyond the end
    assert img[104, 158] == pytest.approx(np.clip(9 - d + 0.5, 0, 1), abs=1e-5)
    assert img[100, 160] == 0.0 and img[100, 39] == 0.0


def test_single_point_is_a_round_dot():
    img = render_strokes([[(140.0, 140.0)]], width=18.0)
    assert img[139, 139] == 1.0 and img[140, 140] == 1.0
    assert img.sum() == pytest.approx(math.pi * 9**2, rel=0.03)  # the area of the pen's disc
    np.testing.assert_allclose(img, img.T, atol=1e-6)  # round: symmetric about the diagonal
    np.testing.assert_allclose(img[:, ::-1], img, atol=1e-6)  # and about x = 140 (between pixels)


def test_empty_and_outside_strokes_are_not_errors():
    assert not render_strokes([]).any()
    assert not render_strokes([[]]).any()
    assert not render_strokes([[(-50, -50), (-10, -400)]]).any()
    assert not render_strokes([[(1e9, 5.0)], [(float("nan"), 3.0)]]).any()
    across = render_strokes([[(-100.0, 140.0), (400.0, 140.0), (float("inf"), 0.0)]], size=280)
    assert np.all(across[140] == 1.0) and not across[:100].any()  # clipped at both edges


def test_points_may_be_arrays_and_bad_strokes_are_rejected():
    a = render_strokes([np.array([[10.0, 10.0], [50.0, 60.0]])])
    b = render_strokes([[(10.0, 10.0), (50.0, 60.0)]])
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        render_strokes([[(1.0, 2.0, 3.0)]])
    with pytest.raises(ValueError):
        render_strokes([], width=0)


def test_200_segments_render_in_a_few_ms():
    rng = np.random.default_rng(0)
    stroke = (np.cumsum(rng.normal(0, 3, (201, 2)), axis=0) + 140).tolist()  # a mouse-like path
    render_strokes([stroke])
    best = min(_timed(render_strokes, [stroke]) for _ in range(3))
    assert best < 0.05  # ~4 ms measured


def _timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


# --- to_mnist ------------------------------------------------------------------------------------


def test_no_ink_gives_none():
    assert to_mnist(np.zeros((280, 280))) is None
    assert to_mnist(np.full((50, 50), 0.04)) is None  # below the threshold everywhere
    assert strokes_to_mnist([]) is None
    assert strokes_to_mnist([[(-20.0, -20.0)]]) is None  # drawn entirely off the canvas


def test_a_dot_becomes_a_centred_round_blob():
    m = strokes_to_mnist([[(30.0, 250.0)]])  # off in a corner
    assert m.shape == (28, 28) and m.dtype == np.float32
    assert 0 <= m.min() and m.max() <= 1.0 and m.max() > 0.9
    cy, cx = centre_of_mass(m)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    assert ink_box(m)[2:] == (20, 20)
    np.testing.assert_allclose(m, m.T, atol=1e-5)


def test_a_small_off_centre_one_is_scaled_to_20_and_centred():
    m = strokes_to_mnist([[(40.0, 30.0), (40.0, 90.0)]], width=6.0)
    cy, cx = centre_of_mass(m)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
    top, left, h, w = ink_box(m)
    assert abs(h - 20) <= 1 and w <= 4  # long side 20, still a thin stroke


def test_a_seven_keeps_its_aspect_ratio():
    strokes = [[(100.0, 100.0), (160.0, 100.0), (120.0, 200.0)]]
    raster = render_strokes(strokes, width=10.0)
    _, _, rh, rw = ink_box(raster)
    m = to_mnist(raster)
    _, _, h, w = ink_box(m)
    assert abs(h - 20) <= 1
    assert abs(w - 20 * rw / rh) <= 1
    cy, cx = centre_of_mass(m)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


def test_centring_never_pushes_ink_off_the_field():
    # Heavy blob in the top-left corner of a square box: centring by mass would move the digit
    # 5+ px down-right, past the edge; the shift is clipped instead.
    raster = np.zeros((100, 100), np.float32)
    raster[:30, :30] = 1.0
    raster[96:, 96:] = 1.0
    m = to_mnist(raster)
    top, left, h, w = ink_box(m)
    assert (h, w) == (20, 20) and top + h == 28 and left + w == 28
    assert m[-1, -1] > 0.5  # the far corner's ink is still there


def test_raster_values_are_cleaned():
    raster = np.zeros((40, 40))
    raster[10:30, 18:22] = 3.0  # above 1: clipped
    raster[0, 0] = np.nan
    m = to_mnist(raster)
    assert np.isfinite(m).all() and m.max() == pytest.approx(1.0) and m.min() == 0.0
    with pytest.raises(ValueError):
        to_mnist(np.zeros((3, 3, 3)))


def test_the_incremental_rasterizer_matches_a_full_render_through_growth_undo_and_width_changes():
    from cnnviz.inspect.canvas import StrokeRasterizer

    rng = np.random.default_rng(3)
    raster = StrokeRasterizer(280)
    strokes: list[list[tuple[float, float]]] = []
    width = 18.0
    for k in range(120):
        action = rng.random()
        if action < 0.6 and strokes:  # the pen moves on
            strokes[-1].append(tuple(rng.uniform(-10, 290, 2)))
        elif action < 0.85:  # a new stroke (a dot until it moves)
            strokes.append([tuple(rng.uniform(0, 280, 2))])
        elif action < 0.95 and strokes:  # undo
            strokes.pop()
        else:
            width = float(rng.choice([6.0, 18.0, 30.0]))
        got = raster.render([list(s) for s in strokes], width)
        # equal up to float32 rounding (coverage 0..1: segments are computed from other origins)
        np.testing.assert_allclose(got, render_strokes(strokes, 280, width), atol=1e-4, err_msg=f"after action {k}")
    got[:] = 0  # a copy: the caller may keep or change it
    assert raster.render(strokes, width).any() == bool(strokes)


def test_the_incremental_rasterizer_draws_only_the_new_segments(monkeypatch):
    import cnnviz.inspect.canvas as canvas

    drawn = []
    real = canvas._draw_into
    monkeypatch.setattr(canvas, "_draw_into",
                        lambda img, strokes, width: (drawn.append(strokes), real(img, strokes, width)))
    raster = canvas.StrokeRasterizer(280)
    stroke = [(10.0, 10.0)]
    for i in range(1, 200):
        stroke.append((10.0 + i, 10.0 + (i % 7)))
        raster.render([list(stroke)], 18.0)
    assert all(len(parts) == 1 and len(parts[0]) == 2 for parts in drawn[1:])  # one new segment each time


def test_the_incremental_rasterizer_redraws_when_an_earlier_stroke_differs_inside():
    """A drawing cleared and redrawn with the same number of points and the same end points, but another
    path in between, is not taken for an extension of the old one."""
    from cnnviz.inspect.canvas import StrokeRasterizer

    raster = StrokeRasterizer(280)
    raster.render([[(20.0, 20.0), (140.0, 250.0), (260.0, 20.0)], [(10.0, 10.0)]], 18.0)
    redrawn = [[(20.0, 20.0), (140.0, 30.0), (260.0, 20.0)], [(10.0, 10.0), (50.0, 60.0)]]
    np.testing.assert_array_equal(raster.render(redrawn, 18.0) > 0.5, render_strokes(redrawn, 280, 18.0) > 0.5)
