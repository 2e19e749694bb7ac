"""Conv filters as RGB pictures in the window's colours, without Qt (for TensorBoard and other exports).

The colours are the window's own (:mod:`cnnviz.inspect.colormap`, which the Filters view paints with): the
diverging map (ColorBrewer RdBu, negative blue, zero white, positive red) and the grey gaps between tiles; a
colour model's first layer as RGB tiles on dark gaps.
"""
from __future__ import annotations

import numpy as np

from cnnviz.inspect.colormap import diverging_lut, paint_mosaic, paint_rgb
from cnnviz.inspect.filters import filter_mosaic, rgb_filter_mosaic
from cnnviz.inspect.mosaic import gap_labels


def filter_picture(weight: np.ndarray, width: int = 320, max_zoom: int = 12, colour: bool = False) -> np.ndarray:
    """A conv layer's filters (out, in, kh, kw) as one (H, W, 3) uint8 picture, coloured as in the window
    (one scale, max |w| of the layer, for all) and enlarged by a whole factor to about `width` pixels.

    ``colour``: the first layer of a model of colour images (in = 3), drawn as RGB tiles as the window does."""
    weight = np.nan_to_num(np.asarray(weight, np.float32))
    if colour and weight.shape[1] == 3:
        mosaic, colours = rgb_filter_mosaic(weight)
        rgb = paint_rgb(colours, gap_labels(rgb_filter_mosaic(np.ones(weight.shape, np.float32))[0]))[:, :, :3]
    else:
        mosaic = filter_mosaic(weight)
        gaps = gap_labels(filter_mosaic(np.ones(weight.shape, np.float32)))
        rgb = paint_mosaic(mosaic.image, diverging_lut(), (-1.0, 1.0), gaps)[:, :, :3]
    zoom = int(np.clip(width // rgb.shape[1], 1, max_zoom))
    return np.ascontiguousarray(rgb.repeat(zoom, axis=0).repeat(zoom, axis=1))
