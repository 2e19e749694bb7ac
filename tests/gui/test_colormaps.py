"""The colour tables moved out of the window into the engine (cnnviz/inspect/colormap.py, Qt-free) are the
window's tables exactly: the exported animations colour as the window does."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from cnnviz.gui.widgets import colormaps
from cnnviz.inspect import colormap


def test_viridis_is_pyqtgraphs_table():
    expected = pg.colormap.get("viridis").getLookupTable(nPts=256, alpha=True)
    np.testing.assert_array_equal(colormap.viridis_lut(), expected)
    np.testing.assert_array_equal(colormaps.sequential_lut("viridis"), expected)


def test_the_window_uses_the_engines_tables_and_pyqtgraph_for_the_others():
    assert colormaps.diverging_lut() is colormap.diverging_lut()
    assert colormaps.lut_for(False)[0] is colormap.viridis_lut()
    np.testing.assert_array_equal(colormaps.sequential_lut("inferno"),
                                  pg.colormap.get("inferno").getLookupTable(nPts=256, alpha=True))
    gray = colormaps.sequential_lut("gray")
    assert gray[0, :3].tolist() == [0, 0, 0] and gray[255, :3].tolist() == [255, 255, 255]
    assert not colormap.diverging_lut().flags.writeable


def test_the_diverging_table_is_blue_white_red():
    lut = colormap.diverging_lut()
    assert lut[0, :3].tolist() == [5, 48, 97] and lut[255, :3].tolist() == [103, 0, 31]
    assert min(lut[128, :3]) >= 250
