"""Conv filters as RGB pictures in the window's colours, without Qt (for TensorBoard and other exports).

The window colours a filter mosaic (:func:`cnnviz.inspect.filters.filter_mosaic`) through a lookup table of
``cnnviz/gui/widgets/colormaps.py``, which needs pyqtgraph; the same diverging map (ColorBrewer RdBu,
negative blue, zero white, positive red) and the same grey gaps are rebuilt here in numpy, so an exported
picture looks like the Filters view. A test checks that the two tables agree.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from cnnviz.inspect.filters import filter_mosaic
from cnnviz.inspect.mosaic import Mosaic

# The window's stops (colormaps._DIVERGING_STOPS): value in [-1, 1] -> RGB.
DIVERGING_STOPS = (
    (-1.00, (5, 48, 97)), (-0.75, (33, 102, 172)), (-0.50, (67, 147, 195)), (-0.25, (146, 197, 222)),
    (0.00, (255, 255, 255)),
    (0.25, (244, 165, 130)), (0.50, (214, 96, 77)), (0.75, (178, 24, 43)), (1.00, (103, 0, 31)),
)
TILE_BACKGROUND = (128, 128, 128)  # between filters and in unused grid cells, as in the window
INNER_GAP = (205, 205, 205)  # between the kernels of one filter


@lru_cache(maxsize=None)
def diverging_table() -> np.ndarray:
    """The (256, 3) uint8 RGB table of values -1 .. 1 (read-only)."""
    where = np.array([s[0] for s in DIVERGING_STOPS])
    colours = np.array([s[1] for s in DIVERGING_STOPS], dtype=np.float64)
    t = np.linspace(-1.0, 1.0, 256)
    table = np.round(np.stack([np.interp(t, where, colours[:, c]) for c in range(3)], axis=1)).astype(np.uint8)
    table.setflags(write=False)
    return table


def colour_signed(values: np.ndarray) -> np.ndarray:
    """2-D values in [-1, 1] (clipped; non-finite as 0) as an (H, W, 3) uint8 RGB image."""
    table = diverging_table()
    v = np.nan_to_num(np.asarray(values, np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    index = (v + np.float32(1.0)) * np.float32(len(table) / 2.0)  # as the window's colorize on levels (-1, 1)
    return table[np.clip(index, 0, len(table) - 1).astype(np.intp)]


def _gaps(blank: Mosaic) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the padding between tiles (and unused cells) and of the gaps inside tiles, from the layout
    of all-ones tiles (any 0 in it is padding)."""
    h, w = blank.image.shape
    rows = np.arange(h) % (blank.tile_h + blank.pad) < blank.tile_h
    cols = np.arange(w) % (blank.tile_w + blank.pad) < blank.tile_w
    cell = (np.arange(h) // (blank.tile_h + blank.pad))[:, None] * blank.cols + \
        (np.arange(w) // (blank.tile_w + blank.pad))[None, :]
    in_tile = rows[:, None] & cols[None, :] & (cell < blank.count)
    return ~in_tile, in_tile & (blank.image == 0)


def filter_picture(weight: np.ndarray, width: int = 320, max_zoom: int = 12) -> np.ndarray:
    """A conv layer's filters (out, in, kh, kw) as one (H, W, 3) uint8 picture, coloured as in the window
    (one scale, max |w| of the layer, for all) and enlarged by a whole factor to about `width` pixels."""
    weight = np.asarray(weight, np.float32)
    mosaic = filter_mosaic(weight)
    rgb = colour_signed(mosaic.image)
    between, inside = _gaps(filter_mosaic(np.ones(weight.shape, np.float32)))
    rgb[between] = TILE_BACKGROUND
    rgb[inside] = INNER_GAP
    zoom = int(np.clip(width // rgb.shape[1], 1, max_zoom))
    return np.ascontiguousarray(rgb.repeat(zoom, axis=0).repeat(zoom, axis=1))
