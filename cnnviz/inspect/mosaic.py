"""Many small maps laid out as one image.

pyqtgraph draws one large ``ImageItem`` far faster than hundreds of small ones, so feature maps and
filters are tiled into a single 2-D array here, with the layout kept alongside so a mouse position can
be mapped back to a tile (:meth:`Mosaic.tile_at`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cnnviz.inspect.activations import LayerActivation


# eq=False: the generated __eq__/__hash__ would compare/hash the numpy array, which raises.
@dataclass(frozen=True, eq=False)
class Mosaic:
    """Tiles laid out row-major in a ``rows`` x ``cols`` grid with ``pad`` pixels between tiles.

    Attributes
    ----------
    image : numpy.ndarray
        2-D float32, C-contiguous, of shape ``(rows * (tile_h + pad) - pad, cols * (tile_w + pad) - pad)``;
        in [-1, 1] when ``signed``, else in [0, 1]; padding and unused grid cells are 0.
    rows, cols, tile_h, tile_w, pad : int
        The grid.
    scale : float
        The original value shown as +1 (signed) or 1 (unsigned: the maximum).
    signed : bool
        Whether values were divided by max |v| (0 stays 0) rather than min-max scaled.
    count : int
        Number of tiles (the last grid row may be partly empty).
    offset : float
        The original value shown as 0: 0 when ``signed``, the minimum otherwise. An image value ``v``
        stands for ``offset + v * (scale - offset)``.
    """

    image: np.ndarray
    rows: int
    cols: int
    tile_h: int
    tile_w: int
    pad: int
    scale: float
    signed: bool
    count: int
    offset: float = 0.0

    def tile_at(self, row_px: float, col_px: float) -> int | None:
        """Index of the tile under image pixel (``row_px``, ``col_px``); None on padding or outside."""
        if not (math.isfinite(row_px) and math.isfinite(col_px)):
            return None
        r, c = math.floor(row_px), math.floor(col_px)
        if r < 0 or c < 0 or r >= self.image.shape[0] or c >= self.image.shape[1]:
            return None
        grid_r, in_r = divmod(r, self.tile_h + self.pad)
        grid_c, in_c = divmod(c, self.tile_w + self.pad)
        if in_r >= self.tile_h or in_c >= self.tile_w:
            return None
        index = grid_r * self.cols + grid_c
        return index if index < self.count else None

    def tile_rect(self, index: int) -> tuple[int, int, int, int]:
        """``(top, left, height, width)`` of tile ``index`` in :attr:`image`."""
        if not 0 <= index < self.count:
            raise IndexError(f"tile {index} out of range: the mosaic has {self.count} tiles")
        grid_r, grid_c = divmod(index, self.cols)
        return (grid_r * (self.tile_h + self.pad), grid_c * (self.tile_w + self.pad), self.tile_h, self.tile_w)


DATA, GAP, INNER = 0, 1, 2  # labels of gap_labels


def gap_labels(blank: Mosaic) -> np.ndarray:
    """Label every pixel of a layout: DATA, GAP (between tiles, unused cells) or INNER (a gap in a tile).

    ``blank`` is the same layout made from all-ones tiles, so any 0 in it is padding of some kind.
    """
    h, w = blank.image.shape
    rows = np.arange(h) % (blank.tile_h + blank.pad) < blank.tile_h
    cols = np.arange(w) % (blank.tile_w + blank.pad) < blank.tile_w
    cell = (np.arange(h) // (blank.tile_h + blank.pad))[:, None] * blank.cols + (
        np.arange(w) // (blank.tile_w + blank.pad))[None, :]
    in_tile = rows[:, None] & cols[None, :] & (cell < blank.count)
    labels = np.where(blank.image == 0, INNER, DATA).astype(np.uint8)
    labels[~in_tile] = GAP
    return labels


def grid_cols(n: int, tile_h: int, tile_w: int, pad: int) -> int:
    """Columns that make ``n`` tiles of ``tile_h`` x ``tile_w`` closest to a square image."""
    # rows * (h + pad) ~= cols * (w + pad) with rows * cols ~= n gives a real-valued estimate; the
    # integer just below or above it (with rows rounded up) that is closer to square wins, wider on ties.
    estimate = math.sqrt(n * (tile_h + pad) / (tile_w + pad))

    def badness(cols: int) -> float:
        height = math.ceil(n / cols) * (tile_h + pad) - pad
        width = cols * (tile_w + pad) - pad
        return round(abs(math.log(max(height, 1) / max(width, 1))), 9)  # rounded: exact ties stay ties

    candidates = {max(1, min(n, c)) for c in (math.floor(estimate), math.ceil(estimate))}
    return min(candidates, key=lambda cols: (badness(cols), -cols))


def layout(tiles: np.ndarray, cols: int, pad: int) -> np.ndarray:
    """Tile the last three axes ``(n, h, w)`` of ``tiles`` into ``(..., H, W)``, padding with 0.

    Vectorised (one reshape/transpose), so hundreds of tiles cost about as much as one copy.
    """
    *lead, n, h, w = tiles.shape
    rows = math.ceil(n / cols)
    grid = np.zeros((*lead, rows * cols, h + pad, w + pad), dtype=np.float32)
    grid[..., :n, :h, :w] = tiles
    grid = grid.reshape(*lead, rows, cols, h + pad, w + pad)
    k = len(lead)
    grid = grid.transpose(*range(k), k, k + 2, k + 1, k + 3)
    image = grid.reshape(*lead, rows * (h + pad), cols * (w + pad))
    return np.ascontiguousarray(image[..., : image.shape[-2] - pad, : image.shape[-1] - pad])


def normalise(
    values: np.ndarray, signed: bool, scale: float | None = None
) -> tuple[np.ndarray, float, float]:
    """``values`` (non-finite entries set to 0) mapped with one shared scale; also ``(scale, offset)``.

    signed: divided by ``scale`` (default max |v|) into [-1, 1]. Unsigned: min-max to [0, 1], or with an
    explicit ``scale`` divided by it (offset 0), clipped. A constant input never divides by zero.
    """
    v = np.asarray(values, dtype=np.float32)
    if not np.isfinite(v).all():
        v = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
    if v.size == 0:
        return v.copy(), 0.0, 0.0
    lo, hi = float(v.min()), float(v.max())
    explicit = scale is not None
    if signed:
        offset = 0.0
        if scale is None:
            scale = max(hi, -lo)
    elif scale is None:
        # A constant map: show a positive constant as 1 and zero/negative as 0.
        offset, scale = (lo, hi) if hi > lo else ((0.0, hi) if hi > 0 else (lo, lo))
    else:
        offset = 0.0
    span = float(scale) - offset
    if not span > 0 or not math.isfinite(span):
        return np.zeros_like(v), float(scale), offset
    out = (v - np.float32(offset)) if offset else v.copy()
    # Divide by the float32 span (not multiply by a reciprocal) so the extremes land exactly on 1.
    out /= np.float32(scale) - np.float32(offset)
    if explicit:  # a fixed scale may be smaller than this call's values
        np.clip(out, -1.0 if signed else 0.0, 1.0, out=out)
    return out, float(scale), offset


def make_mosaic(
    tiles: np.ndarray | torch.Tensor,
    cols: int | None = None,
    pad: int = 1,
    signed: bool = False,
    scale: float | None = None,
) -> Mosaic:
    """Lay ``tiles`` out as one normalised image.

    Parameters
    ----------
    tiles : array of shape (n, h, w) (or (h, w) for one tile)
        Non-finite values are treated as 0.
    cols : int, optional
        Grid columns; default: the grid closest to a square image.
    pad : int
        Pixels of background (0) between tiles.
    signed : bool
        True: divide by one shared max |v| so 0 stays 0 (weights, pre-activation maps). False: min-max
        over all tiles to [0, 1] (post-ReLU maps).
    scale : float, optional
        A fixed scale instead of the data's (e.g. to keep colours steady across training steps).

    Returns
    -------
    Mosaic
    """
    t = tiles.detach().cpu().numpy() if isinstance(tiles, torch.Tensor) else np.asarray(tiles)
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or 0 in t.shape:
        raise ValueError(f"tiles must have shape (n, h, w) with n, h, w > 0; got {t.shape}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    n, h, w = t.shape
    cols = grid_cols(n, h, w, pad) if cols is None else max(1, min(int(cols), n))
    values, used_scale, offset = normalise(t, signed, scale)
    return Mosaic(
        image=layout(values, cols, pad),
        rows=math.ceil(n / cols),
        cols=cols,
        tile_h=h,
        tile_w=w,
        pad=pad,
        scale=used_scale,
        signed=signed,
        count=n,
        offset=offset,
    )


def activation_mosaic(act: LayerActivation, signed: bool | None = None, scale: float | None = None) -> Mosaic:
    """The mosaic of one layer's output.

    (C, H, W) maps give C tiles; a flat (N,) output (dense layers) gives N tiles of 1 x 1 pixel with no
    padding, in a near-square grid, so :meth:`Mosaic.tile_at` returns the unit's index. Outputs with a
    negative value are shown signed (0 stays 0), others min-max scaled. ``signed`` and ``scale`` fix both
    instead (e.g. one scale for a layer over a whole run, in an animation).
    """
    v = np.asarray(act.values)
    if v.ndim == 0 or v.ndim == 1:
        v = v.reshape(-1, 1, 1)
        n = v.shape[0]
        cols, pad = math.ceil(math.sqrt(n)), 0
    else:
        v = v.reshape(-1, *v.shape[-2:])  # (H, W) -> one tile; (..., C, H, W) -> all maps
        cols, pad = None, 1
    if signed is None:
        signed = bool(float(np.where(np.isfinite(v), v, 0).min()) < 0)
    return make_mosaic(v, cols=cols, pad=pad, signed=signed, scale=scale)
