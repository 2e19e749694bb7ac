"""Turn a digit drawn with the mouse into an MNIST-like image (28 x 28, or the model's own input size).

A network trained on MNIST only recognises drawings prepared the way MNIST was: the digit's bounding
box scaled (keeping its aspect ratio, anti-aliased) to fit 20 x 20, then placed in 28 x 28 so that its
centre of mass is at the centre. Skipping either step is the usual reason a clearly drawn digit is
misread, so :func:`to_mnist` follows that recipe.

For a model that takes another image size (H x W), the same recipe is scaled to that field: the box is
20/28 of the field's shorter side (rounded, at least 1 pixel) and the centre of mass goes to
(H / 2, W / 2). At 28 x 28 that is exactly MNIST's 20 x 20 box and (14, 14).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

_BOX = 20  # MNIST digits are scaled to fit 20 x 20 ...
_FIELD = 28  # ... and centred by mass in 28 x 28 (the centre of mass lands on pixel (14, 14))
MNIST_SHAPE = (_FIELD, _FIELD)


def _segments(strokes: Sequence[Sequence[tuple[float, float]]]) -> np.ndarray:
    """All segments ``(x0, y0, x1, y1)``; a one-point stroke is a zero-length segment (a dot)."""
    segs = []
    for stroke in strokes:
        pts = np.asarray(stroke, dtype=np.float64)
        if pts.size == 0:
            continue
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"a stroke must be a list of (x, y) points; got an array of shape {pts.shape}")
        pts = pts[np.isfinite(pts).all(axis=1)]  # a NaN point would poison its whole segment
        if len(pts) == 0:
            continue
        if len(pts) == 1:
            pts = np.repeat(pts, 2, axis=0)
        segs.append(np.concatenate([pts[:-1], pts[1:]], axis=1))
    return np.concatenate(segs) if segs else np.zeros((0, 4))


def render_strokes(
    strokes: Sequence[Sequence[tuple[float, float]]], size: int = 280, width: float = 18.0
) -> np.ndarray:
    """Rasterise polylines as anti-aliased thick lines with round caps.

    Parameters
    ----------
    strokes : list of polylines
        Each a list of ``(x, y)`` points in canvas pixels (x to the right, y down; pixel (row i,
        column j) has its centre at (j + 0.5, i + 0.5)). A one-point stroke is a dot; points outside
        the canvas are clipped.
    size : int
        The canvas is ``size`` x ``size``.
    width : float
        Line width in pixels.

    Returns
    -------
    numpy.ndarray
        float32 (size, size) in [0, 1]: ink coverage (1 = ink, 0 = paper).
    """
    if size < 1 or not width > 0:
        raise ValueError(f"size must be >= 1 and width > 0; got size={size}, width={width}")
    img = np.zeros((size, size), dtype=np.float32)
    _draw_into(img, strokes, width)
    return img


def _draw_into(img: np.ndarray, strokes: Sequence[Sequence[tuple[float, float]]], width: float) -> None:
    """Add the strokes' ink to `img` (size x size float32): each pixel keeps its highest coverage."""
    size = img.shape[0]
    # Coverage of a pixel at distance d from the segment: clip(width/2 - d + 0.5, 0, 1), a 1 px ramp.
    reach = width / 2 + 0.5
    for x0, y0, x1, y1 in _segments(strokes):
        # Only the segment's bounding box (grown by the pen's reach) can get ink.
        c0 = max(0, math.floor(min(x0, x1) - reach))
        c1 = min(size, math.ceil(max(x0, x1) + reach))
        r0 = max(0, math.floor(min(y0, y1) - reach))
        r1 = min(size, math.ceil(max(y0, y1) + reach))
        if c0 >= c1 or r0 >= r1:
            continue
        px = np.arange(c0, c1, dtype=np.float32)[None, :] + np.float32(0.5 - x0)  # relative to (x0, y0)
        py = np.arange(r0, r1, dtype=np.float32)[:, None] + np.float32(0.5 - y0)
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy
        if length2 > 0:
            t = np.clip((px * np.float32(dx / length2)) + (py * np.float32(dy / length2)), 0, 1)
            ex, ey = px - t * np.float32(dx), py - t * np.float32(dy)
        else:
            ex, ey = px, py
        cover = np.clip(np.float32(reach) - np.sqrt(ex * ex + ey * ey), 0, 1)
        box = img[r0:r1, c0:c1]
        np.maximum(box, cover, out=box)


class StrokeRasterizer:
    """`render_strokes` for a drawing that grows point by point: only the new segments are drawn.

    Ink coverage is a per-pixel maximum, so adding segments in any order gives the same raster. When the
    strokes are not exactly the last ones with points or strokes added at the end (undo, clear, another
    width), the raster is drawn afresh.
    """

    def __init__(self, size: int = 280) -> None:
        self.size = size
        self._img = np.zeros((size, size), dtype=np.float32)
        self._width: float | None = None
        self._drawn: list[list[tuple[float, float]]] = []  # copies of the strokes in the raster

    def render(self, strokes: Sequence[Sequence[tuple[float, float]]], width: float = 18.0) -> np.ndarray:
        """The raster of `strokes`, as `render_strokes(strokes, size, width)` returns it (a new array)."""
        if not width > 0:
            raise ValueError(f"width must be > 0; got {width}")
        strokes = [[tuple(point) for point in stroke] for stroke in strokes]
        if self._extends(strokes, width):  # the last drawn stroke from its last drawn point on, and new ones
            last = len(self._drawn) - 1
            new = [strokes[last][len(self._drawn[last]) - 1:]] if self._drawn else []
            new += strokes[last + 1:]
        else:
            self._img.fill(0)
            self._width, new = width, strokes
        _draw_into(self._img, new, width)
        self._drawn = strokes
        return self._img.copy()

    def _extends(self, strokes: list, width: float) -> bool:
        """True when `strokes` are the drawn ones with points added to the last and/or new strokes after it."""
        drawn = self._drawn
        if width != self._width or len(strokes) < len(drawn):
            return False
        if not drawn:
            return True
        last = len(drawn) - 1
        return strokes[:last] == drawn[:last] and len(drawn[last]) > 0 \
            and strokes[last][:len(drawn[last])] == drawn[last]


def _resize(crop: np.ndarray, h: int, w: int) -> np.ndarray:
    """Anti-aliased resize (a triangle filter as wide as the scale when shrinking)."""
    t = torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32))[None, None]
    out = F.interpolate(t, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return out[0, 0].numpy().clip(0, 1)


def digit_box(shape: tuple[int, int] = MNIST_SHAPE) -> int:
    """Long side of the digit in an ``(H, W)`` field: MNIST's 20/28 of the shorter side, at least 1."""
    return max(1, round(_BOX * min(shape) / _FIELD))


def to_mnist(raster: np.ndarray, threshold: float = 0.05, shape: tuple[int, int] = MNIST_SHAPE) -> np.ndarray | None:
    """Prepare a drawing the way MNIST digits were prepared.

    Parameters
    ----------
    raster : array (H, W)
        Ink coverage, 1 = ink, 0 = paper (invert a dark-on-light image first).
    threshold : float
        Pixels above it count as ink for the bounding box.
    shape : (height, width)
        The field to fill: MNIST's 28 x 28, or the input size of the model that will read it.

    Returns
    -------
    numpy.ndarray or None
        float32 ``shape`` in [0, 1] (not normalised for the model: the caller does that), with the ink's
        bounding box scaled to a long side of :func:`digit_box` pixels (20 in 28 x 28; keeping the aspect
        ratio) and its centre of mass on the field's centre (pixel (14, 14) in 28 x 28) as far as the
        field allows; None when there is no ink.
    """
    a = np.asarray(raster, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"a raster must be 2-D (height, width); got shape {a.shape}")
    field_h, field_w = (int(v) for v in shape)
    if field_h < 1 or field_w < 1:
        raise ValueError(f"the field must be at least 1 x 1; got {field_h} x {field_w}")
    a = np.clip(np.where(np.isfinite(a), a, 0), 0, 1)
    ink = a > threshold
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return None
    crop = a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = digit_box((field_h, field_w)) / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    digit = _resize(crop, nh, nw)
    mass = float(digit.sum())
    if not mass > 0:
        return None
    # Centre of mass in pixel-index units; place it on the centre without pushing ink off the field.
    cy = float((digit.sum(axis=1) * np.arange(nh)).sum()) / mass
    cx = float((digit.sum(axis=0) * np.arange(nw)).sum()) / mass
    top = min(max(math.floor(field_h / 2 - cy + 0.5), 0), field_h - nh)
    left = min(max(math.floor(field_w / 2 - cx + 0.5), 0), field_w - nw)
    out = np.zeros((field_h, field_w), dtype=np.float32)
    out[top : top + nh, left : left + nw] = digit
    return out


def strokes_to_mnist(
    strokes: Sequence[Sequence[tuple[float, float]]], size: int = 280, width: float = 18.0,
    shape: tuple[int, int] = MNIST_SHAPE,
) -> np.ndarray | None:
    """``to_mnist(render_strokes(strokes, size, width), shape=shape)``: the drawing as a ``shape`` image, or
    None."""
    return to_mnist(render_strokes(strokes, size=size, width=width), shape=shape)
