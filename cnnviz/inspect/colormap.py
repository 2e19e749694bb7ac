"""Colour lookup tables for signed weights, activations and tile backgrounds, without Qt.

Every table is a (256, 4) uint8 RGBA array, ready for pyqtgraph's ``ImageItem.setLookupTable`` or for
:func:`colorize`. They are built once and cached; callers must not modify them (they are returned read-only).
The window (``cnnviz/gui/widgets/colormaps.py``) and the headless exports (``cnnviz/exports``) colour with the
same tables, so an exported picture has the window's colours.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

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

# matplotlib's viridis (CC0; N. J. Smith, S. van der Walt, E. Firing) as pyqtgraph's bundled map samples it at
# 256 points: 256 RGB triples in hex. Kept here so that colouring needs no Qt (pyqtgraph imports it);
# tests/engine/test_colormap.py checks it against pyqtgraph's table.
_VIRIDIS_HEX = (
    "44015444025645045745055946075a46085c460a5d460b5e470d60470e61471063471164471365481467481668481769"
    "48186a481a6c481b6d481c6e481d6f481f70482071482173482374482475482576482677482878482979472a7a472c7a"
    "472d7b472e7c472f7d46307e46327e46337f463480453581453781453882443983443a83443b84433d84433e85423f85"
    "4240864241864142874144874045884046883f47883f48893e49893e4a893e4c8a3d4d8a3d4e8a3c4f8a3c508b3b518b"
    "3b528b3a538b3a548c39558c39568c38588c38598c375a8c375b8d365c8d365d8d355e8d355f8d34608d34618d33628d"
    "33638d32648e32658e31668e31678e31688e30698e306a8e2f6b8e2f6c8e2e6d8e2e6e8e2e6f8e2d708e2d718e2c718e"
    "2c728e2c738e2b748e2b758e2a768e2a778e2a788e29798e297a8e297b8e287c8e287d8e277e8e277f8e27808e26818e"
    "26828e26828e25838e25848e25858e24868e24878e23888e23898e238a8d228b8d228c8d228d8d218e8d218f8d21908d"
    "21918c20928c20928c20938c1f948c1f958b1f968b1f978b1f988b1f998a1f9a8a1e9b8a1e9c891e9d891f9e891f9f88"
    "1fa0881fa1881fa1871fa28720a38620a48621a58521a68522a78522a88423a98324aa8325ab8225ac8226ad8127ad81"
    "28ae8029af7f2ab07f2cb17e2db27d2eb37c2fb47c31b57b32b67a34b67935b77937b87838b9773aba763bbb753dbc74"
    "3fbc7340bd7242be7144bf7046c06f48c16e4ac16d4cc26c4ec36b50c46a52c56954c56856c66758c7655ac8645cc863"
    "5ec96260ca6063cb5f65cb5e67cc5c69cd5b6ccd5a6ece5870cf5773d05675d05477d1537ad1517cd2507fd34e81d34d"
    "84d44b86d54989d5488bd6468ed64590d74393d74195d84098d83e9bd93c9dd93ba0da39a2da37a5db36a8db34aadc32"
    "addc30b0dd2fb2dd2db5de2bb8de29bade28bddf26c0df25c2df23c5e021c8e020cae11fcde11dd0e11cd2e21bd5e21a"
    "d8e219dae319dde318dfe318e2e418e5e419e7e419eae51aece51befe51cf1e51df4e61ef6e620f8e621fbe723fde725"
)

# Padding between tiles (between filters, between maps). Mid grey is far enough from white (zero
# weight), from viridis' dark purple (no activation) and from its yellow (maximum).
TILE_BACKGROUND = (128, 128, 128)
# The thinner gaps inside one tile (between the kernels of one filter): lighter, so a filter's kernels
# read as one block and filters as separate blocks.
INNER_GAP = (205, 205, 205)
# The padding between colour tiles (a colour model's first-layer filters): near black, because grey means
# a weight of 0 there and a grey gap would melt into the tiles.
RGB_GAP = (24, 24, 24)


def _readonly(lut: np.ndarray) -> np.ndarray:
    lut = np.ascontiguousarray(lut, dtype=np.uint8)
    lut.setflags(write=False)
    return lut


def _with_alpha(rgb: np.ndarray) -> np.ndarray:
    return np.hstack([rgb, np.full((len(rgb), 1), 255, rgb.dtype)])


@lru_cache(maxsize=None)
def diverging_lut() -> np.ndarray:
    """Blue (negative) - white (zero) - red (positive), for signed values shown with levels (-1, 1)."""
    where = np.array([s[0] for s in _DIVERGING_STOPS])
    colours = np.array([s[1] for s in _DIVERGING_STOPS], dtype=np.float64)
    t = np.linspace(-1.0, 1.0, 256)
    rgb = np.stack([np.interp(t, where, colours[:, c]) for c in range(3)], axis=1)
    return _readonly(np.round(_with_alpha(rgb)))


@lru_cache(maxsize=None)
def viridis_lut() -> np.ndarray:
    """Viridis, dark purple (low) to yellow (high), for unsigned values shown with levels (0, 1)."""
    rgb = np.frombuffer(bytes.fromhex("".join(_VIRIDIS_HEX)), np.uint8).reshape(256, 3)
    return _readonly(_with_alpha(rgb))


@lru_cache(maxsize=None)
def gray_lut() -> np.ndarray:
    """Black to white."""
    ramp = np.arange(256, dtype=np.uint8)
    return _readonly(_with_alpha(np.stack([ramp, ramp, ramp], axis=1)))


def lut_for(signed: bool) -> tuple[np.ndarray, tuple[float, float]]:
    """The table and levels for a mosaic image: diverging on (-1, 1) if signed, viridis on (0, 1)."""
    return (diverging_lut(), (-1.0, 1.0)) if signed else (viridis_lut(), (0.0, 1.0))


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


def paint_mosaic(image: np.ndarray, lut: np.ndarray, levels: tuple[float, float],
                 gaps: np.ndarray | None = None) -> np.ndarray:
    """A mosaic's image as (H, W, 4) RGBA, its gaps greyed out as the window shows them.

    ``gaps`` are the labels of :func:`cnnviz.inspect.mosaic.gap_labels` (ignored when of another shape): the
    padding between tiles gets :data:`TILE_BACKGROUND`, the thin gaps inside a tile :data:`INNER_GAP`, instead
    of the colour of value 0.
    """
    from cnnviz.inspect.mosaic import GAP, INNER

    rgba = colorize(image, lut, levels)
    if gaps is not None and gaps.shape == image.shape:
        rgba[gaps == GAP, :3] = TILE_BACKGROUND
        rgba[gaps == INNER, :3] = INNER_GAP
    return rgba


def paint_rgb(rgb: np.ndarray, gaps: np.ndarray | None = None) -> np.ndarray:
    """A colour mosaic (H, W, 3) in [0, 1] (:func:`cnnviz.inspect.filters.rgb_filter_mosaic`) as (H, W, 4)
    uint8 RGBA, its padding :data:`RGB_GAP` (``gaps`` from :func:`cnnviz.inspect.mosaic.gap_labels`)."""
    from cnnviz.inspect.mosaic import GAP

    rgba = np.empty(rgb.shape[:2] + (4,), np.uint8)
    rgba[..., :3] = np.clip(np.nan_to_num(rgb) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rgba[..., 3] = 255
    if gaps is not None and gaps.shape == rgb.shape[:2]:
        rgba[gaps == GAP, :3] = RGB_GAP
    return rgba
