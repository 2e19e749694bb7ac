"""Colour lookup tables shared by the views: signed weights, activations and tile backgrounds.

The tables themselves are Qt-free, in :mod:`cnnviz.inspect.colormap` (the headless exports colour with them
too); this module adds pyqtgraph's other bundled maps (``inferno``, ...) by name.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyqtgraph as pg

from cnnviz.inspect.colormap import (INNER_GAP, TILE_BACKGROUND, _readonly, color_at, colorize, diverging_lut,
                                     gray_lut, ink_for, lut_for, viridis_lut)

__all__ = ["INNER_GAP", "TILE_BACKGROUND", "color_at", "colorize", "diverging_lut", "ink_for", "lut_for",
           "sequential_lut"]


@lru_cache(maxsize=None)
def sequential_lut(name: str = "viridis") -> np.ndarray:
    """A perceptual sequential map from pyqtgraph's bundled colour maps (``viridis``, ``inferno``, ...)."""
    if name == "gray":
        return gray_lut()
    if name == "viridis":
        return viridis_lut()
    return _readonly(pg.colormap.get(name).getLookupTable(nPts=256, alpha=True))
