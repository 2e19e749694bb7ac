"""Colour lookup tables shared by the views: signed weights, activations and tile backgrounds.

Every table is a (256, 4) uint8 RGBA array, ready for ``ImageItem.setLookupTable``. They are built once
and cached; callers must not modify them (they are returned read-only).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyqtgraph as pg

# ColorBrewer RdBu, reversed so that negative is blue, with pure white at zero: the eye reads "no
# weight" as blank paper and the two signs as opposite hues of equal lightness.
_DIVERGING_STOPS = (
    (-1.00, (5, 48, 97)),
    (-0.75, (33, 102, 172)),
    (-0.50, (67, 147, 195)),
    (-0.25, (146, 197, 222)),
    (0.00, (255, 255, 255)),
    (0.25, (244, 165, 130)),
    (0.50, (214, 96, 77)),
    (0.75, (178, 24, 43)),
    (1.00, (103, 0, 31)),
)

# Padding between tiles (between filters, between maps). Mid grey is far enough from white (zero
# weight), from viridis' dark purple (no activation) and from its yellow (maximum).
TILE_BACKGROUND = (128, 128, 128)
# The thinner gaps inside one tile (between the kernels of one filter): lighter, so a filter's kernels
# read as one block and filters as separate blocks.
INNER_GAP = (205, 205, 205)


def _readonly(lut: np.ndarray) -> np.ndarray:
    lut = np.ascontiguousarray(lut, dtype=np.uint8)
    lut.setflags(write=False)
    return lut


@lru_cache(maxsize=None)
def diverging_lut() -> np.ndarray:
    """Blue (negative) - white (zero) - red (positive), for signed values shown with levels (-1, 1)."""
    where = np.array([s[0] for s in _DIVERGING_STOPS])
    colours = np.array([s[1] for s in _DIVERGING_STOPS], dtype=np.float64)
    t = np.linspace(-1.0, 1.0, 256)
    rgb = np.stack([np.interp(t, where, colours[:, c]) for c in range(3)], axis=1)
    alpha = np.full((256, 1), 255.0)
    return _readonly(np.round(np.hstack([rgb, alpha])))


@lru_cache(maxsize=None)
def sequential_lut(name: str = "viridis") -> np.ndarray:
    """A perceptual sequential map from pyqtgraph's bundled colour maps (``viridis``, ``inferno``, ...)."""
    if name == "gray":
        ramp = np.arange(256, dtype=np.uint8)
        return _readonly(np.stack([ramp, ramp, ramp, np.full(256, 255, np.uint8)], axis=1))
    table = pg.colormap.get(name).getLookupTable(nPts=256, alpha=True)
    return _readonly(table)


def lut_for(signed: bool) -> tuple[np.ndarray, tuple[float, float]]:
    """The table and levels for a mosaic image: diverging on (-1, 1) if signed, viridis on (0, 1)."""
    return (diverging_lut(), (-1.0, 1.0)) if signed else (sequential_lut("viridis"), (0.0, 1.0))


def colorize(values: np.ndarray, lut: np.ndarray, levels: tuple[float, float]) -> np.ndarray:
    """``values`` (2-D, finite) as an (H, W, 4) uint8 RGBA image: ``levels`` map to the ends of ``lut``."""
    lo, hi = levels
    n = len(lut)
    index = (np.asarray(values, dtype=np.float32) - np.float32(lo)) * np.float32(n / (hi - lo))
    np.clip(index, 0, n - 1, out=index)
    return lut[index.astype(np.intp)]


def color_at(lut: np.ndarray, value: float, levels: tuple[float, float]) -> tuple[int, int, int]:
    """RGB of ``value`` under ``lut`` with ``levels`` (clipped), e.g. to colour a table cell."""
    lo, hi = levels
    t = 0.0 if hi == lo or not np.isfinite(value) else (float(value) - lo) / (hi - lo)
    index = int(np.clip(round(t * (len(lut) - 1)), 0, len(lut) - 1))
    r, g, b = (int(v) for v in lut[index, :3])
    return r, g, b


def ink_for(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better as text on a background of colour ``rgb``."""
    r, g, b = rgb
    luminance = 0.299 * r + 0.587 * g + 0.114 * b
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)
