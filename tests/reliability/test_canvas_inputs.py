"""Odd drawings on the real window's canvas: covered in ink, strokes only outside the square, a dot in a
corner, 300 tiny strokes, a right click on an empty canvas. Each gives no prediction or a sensible
one, never an exception (pytest-qt fails a test on any exception raised inside Qt). The empty canvas, a
centre dot and strokes that run off the edges are in tests/gui/test_draw_panel.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.gui.test_draw_panel import _draw

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


@pytest.fixture
def window(make_window, qtbot):
    w = make_window()
    w.resize(1400, 900)
    w.show()
    qtbot.waitExposed(w)
    w.docks["draw"].raise_()
    return w


def _sensible(window) -> list[float]:
    probs = window.draw.probabilities()
    assert len(probs) == 10 and np.isfinite(probs).all() and sum(probs) == pytest.approx(1.0, abs=1e-4)
    return probs


def _zigzag(step: float = 12.0):
    """Back and forth over the whole 280 x 280 square: every pixel inked."""
    points = []
    for i, y in enumerate(np.arange(0.0, 281.0, step)):
        points += [(0.0, y), (280.0, y)] if i % 2 == 0 else [(280.0, y), (0.0, y)]
    return points


CASES = {
    "covered in ink": lambda c: _draw(c, _zigzag()),
    "only outside the square": lambda c: _draw(c, [(-200, -150), (-40, -300), (-500, 900), (1200, -80)]),
    "a dot in a corner": lambda c: _draw(c, [(279.0, 279.0)]),
    "300 tiny strokes": lambda c: [_draw(c, [(x, y), (x + 0.5, y)])
                                          for x, y in np.random.default_rng(0).uniform(0, 280, (300, 2))],
}


@pytest.mark.parametrize("case", list(CASES))
def test_odd_drawings_give_a_sensible_prediction(case, window, qtbot):
    canvas = window.draw.canvas
    CASES[case](canvas)
    probs = _sensible(window)
    pixels = window.draw.mnist_input()
    assert pixels.shape == (28, 28) and 0.0 <= pixels.min() and pixels.max() <= 1.0
    for stroke in canvas.strokes():  # every point inside the square, whatever the mouse did
        points = np.asarray(stroke)
        assert points.min() >= 0 and points.max() <= 280
    if case == "covered in ink":
        assert pixels.mean() > 0.3  # a filled square, scaled into the 20 x 20 box like any digit
    window.draw.feature_maps_check.setChecked(True)  # the drawing goes to the feature maps as well
    window.docks["feature_maps"].raise_()
    qtbot.waitUntil(lambda: window.session.selected_input.source == "drawing", timeout=5000)
    assert window.draw.probabilities() == probs


def test_clear_undo_and_right_click_on_an_empty_canvas(window, qtbot):
    canvas = window.draw.canvas
    for _ in range(3):
        canvas.undo()
    qtbot.mouseClick(canvas, Qt.MouseButton.RightButton)  # right click = undo
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert canvas.is_empty() and window.draw.probabilities() == [] and window.draw.mnist_input() is None
    assert "Draw" in window.draw.headline.text()
