"""The exports' Qt-free filter pictures are the Filters view's image (one colour table for both)."""
from __future__ import annotations

import numpy as np

from cnnviz.exports import pictures
from cnnviz.gui.widgets import colormaps
from cnnviz.gui.widgets.mosaic_canvas import GAP, INNER, gap_labels
from cnnviz.inspect.filters import filter_mosaic


def test_a_filter_picture_is_the_filters_views_image():
    weight = np.random.default_rng(0).normal(size=(5, 3, 3, 3)).astype(np.float32)
    mosaic = filter_mosaic(weight)
    window = colormaps.colorize(mosaic.image, colormaps.diverging_lut(), (-1.0, 1.0))
    gaps = gap_labels(filter_mosaic(np.ones(weight.shape, np.float32)))
    window[gaps == GAP, :3] = colormaps.TILE_BACKGROUND
    window[gaps == INNER, :3] = colormaps.INNER_GAP
    picture = pictures.filter_picture(weight, width=mosaic.image.shape[1])  # zoom 1
    assert np.array_equal(picture, window[:, :, :3])
    assert tuple(picture[0, 0]) != (255, 255, 255)  # the padding is grey, not the colour of 0
    zoomed = pictures.filter_picture(weight, width=4 * mosaic.image.shape[1])
    assert np.array_equal(zoomed[::4, ::4], picture) and zoomed.shape == (4 * picture.shape[0], 4 * picture.shape[1], 3)
