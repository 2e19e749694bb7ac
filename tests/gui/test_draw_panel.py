"""The drawing panel: strokes from real mouse events, live predictions, overlays and the session link."""
import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QPushButton

from cnnviz.gui.widgets.draw_canvas import DrawCanvas
from cnnviz.gui.widgets.draw_panel import DrawPanel

# A "7": a top bar and a slanted stem, in 280-pixel canvas coordinates.
SEVEN = [(80, 60), (200, 60), (190, 100), (160, 160), (130, 230)]
ONE = [(140, 40), (140, 120), (141, 180), (140, 240)]


def _send(canvas: DrawCanvas, kind: QEvent.Type, x: float, y: float, held: bool) -> None:
    """One mouse event at canvas point (x, y) of the 280 x 280 frame (qtbot.mouseMove loses buttons)."""
    sq = canvas.square()
    pos = QPointF(sq.x() + x / 280 * sq.width(), sq.y() + y / 280 * sq.height())
    button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else Qt.MouseButton.LeftButton
    buttons = Qt.MouseButton.LeftButton if held else Qt.MouseButton.NoButton
    event = QMouseEvent(kind, pos, canvas.mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(canvas, event)


def _moves(points, steps=6):
    """The polyline through ``points`` sampled like a mouse would report it."""
    out = [points[0]]
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        out += [(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t) for t in np.linspace(0, 1, steps + 1)[1:]]
    return out


def _draw(canvas: DrawCanvas, points) -> None:
    path = _moves(points)
    _send(canvas, QEvent.Type.MouseButtonPress, *path[0], held=True)
    for x, y in path[1:]:
        _send(canvas, QEvent.Type.MouseMove, x, y, held=True)
    _send(canvas, QEvent.Type.MouseButtonRelease, *path[-1], held=False)


@pytest.fixture
def panel(qtbot, session):
    w = DrawPanel(session)
    qtbot.addWidget(w)
    w.resize(700, 500)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_predicts_while_drawing_and_after_release(qtbot, panel):
    seen = []
    panel.prediction_changed.connect(lambda probs: seen.append((panel.canvas.is_drawing(), probs)))
    path = _moves(SEVEN)
    _send(panel.canvas, QEvent.Type.MouseButtonPress, *path[0], held=True)
    for x, y in path[1:]:
        _send(panel.canvas, QEvent.Type.MouseMove, x, y, held=True)
    # Moves within one 16 ms interval are coalesced into one update that comes while the button is down.
    with qtbot.waitSignal(panel.prediction_changed, timeout=2000):
        pass
    assert panel.canvas.is_drawing()
    during = [probs for drawing, probs in seen if drawing]
    assert len(during) >= 2 and all(len(p) == 10 for p in during)
    _send(panel.canvas, QEvent.Type.MouseButtonRelease, *path[-1], held=False)
    assert not seen[-1][0]  # one more update on release
    probs = panel.probabilities()
    assert len(probs) == 10 and sum(probs) == pytest.approx(1.0, abs=1e-4)
    assert seen[-1][1] == pytest.approx(probs)
    top = int(np.argmax(probs))
    assert panel.headline.text().endswith(f"({probs[top] * 100:.1f}%)")  # the same figure as the top bar


def test_mnist_input_is_centred_by_mass(panel):
    _draw(panel.canvas, SEVEN)
    img = panel.mnist_input()
    assert img.shape == (28, 28) and img.max() > 0.9
    rows, cols = np.indices(img.shape)
    mass = img.sum()
    assert abs((rows * img).sum() / mass - 14) < 1.0
    assert abs((cols * img).sum() / mass - 14) < 1.0


def test_clear_empties_prediction_and_signals_empty_list(qtbot, panel):
    _draw(panel.canvas, SEVEN)
    clear = panel.findChild(QPushButton, "clearCanvasButton")
    with qtbot.waitSignal(panel.prediction_changed, timeout=1000) as blocker:
        qtbot.mouseClick(clear, Qt.MouseButton.LeftButton)
    assert blocker.args == [[]]
    assert panel.probabilities() == [] and panel.mnist_input() is None
    assert panel.canvas.is_empty()
    assert "Draw a digit" in panel.headline.text()


def test_undo_removes_the_last_stroke(qtbot, panel):
    _draw(panel.canvas, ONE)
    first = panel.canvas.strokes()
    _draw(panel.canvas, [(60, 140), (220, 140)])
    assert len(panel.canvas.strokes()) == 2
    with qtbot.waitSignal(panel.prediction_changed, timeout=1000):
        qtbot.keyClick(panel.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert panel.canvas.strokes() == first
    panel.canvas.undo()
    assert panel.canvas.is_empty() and panel.probabilities() == []
    panel.canvas.undo()  # nothing left: no error
    assert panel.canvas.is_empty()


def test_dot_outside_strokes_and_empty_canvas_are_safe(panel):
    assert panel.probabilities() == [] and panel.mnist_input() is None
    panel.canvas.clear()
    _send(panel.canvas, QEvent.Type.MouseButtonPress, 140, 140, held=True)  # a dot
    _send(panel.canvas, QEvent.Type.MouseButtonRelease, 140, 140, held=False)
    assert len(panel.probabilities()) == 10
    _draw(panel.canvas, [(200, 200), (350, 260), (-80, -40), (900, 900)])  # runs off every edge
    for stroke in panel.canvas.strokes():
        pts = np.asarray(stroke)
        assert pts.min() >= 0 and pts.max() <= 280
    assert len(panel.probabilities()) == 10


def test_strokes_survive_resizing(qtbot, panel):
    _draw(panel.canvas, SEVEN)
    before = panel.canvas.strokes()
    panel.resize(900, 700)
    qtbot.waitUntil(lambda: panel.canvas.width() > 450)
    assert np.allclose(panel.canvas.strokes()[0], before[0])
    assert np.allclose(before[0][0], SEVEN[0], atol=1.5)  # reported in the 280-pixel frame


def test_stroke_width_thickens_the_mnist_input(panel):
    _draw(panel.canvas, ONE)
    thin = panel.mnist_input().sum()
    panel.width_slider.setValue(36)
    assert panel.canvas.stroke_width() == 36
    assert panel.mnist_input().sum() > thin * 1.3


def test_untrained_note_and_trained_prediction(qtbot, panel, session, trained_snapshot):
    assert not panel.untrained_note.isHidden()
    assert "untrained" in panel.untrained_note.text()
    _draw(panel.canvas, ONE)
    untrained = panel.probabilities()
    with qtbot.waitSignal(panel.prediction_changed, timeout=2000):
        session.apply_snapshot(trained_snapshot)
    assert panel.untrained_note.isHidden()
    trained = panel.probabilities()
    assert len(trained) == 10 and not np.allclose(trained, untrained, atol=1e-3)
    assert int(np.argmax(trained)) == 1  # a vertical stroke reads as a "1" after a little training
    session.reset_weights()  # back to random weights: the note returns
    assert not panel.untrained_note.isHidden()


@pytest.mark.parametrize("mode", ["Saliency", "Grad-CAM", "Occlusion"])
def test_overlay_maps(qtbot, panel, mode):
    _draw(panel.canvas, SEVEN)
    assert panel.overlay() is None  # "None" by default: nothing computed
    if mode == "Occlusion":  # worked out in the background: it follows the answer
        with qtbot.waitSignal(panel.overlay_changed, timeout=5000):
            panel.set_overlay(mode)
    else:
        panel.set_overlay(mode)
    heat = panel.overlay()
    assert heat.shape == (28, 28) and heat.dtype == np.float32
    assert 0.0 <= heat.min() and heat.max() <= 1.0 and heat.max() > 0
    panel.set_overlay("None")
    assert panel.overlay() is None
    with pytest.raises(ValueError, match="unknown overlay"):
        panel.set_overlay("heat")


def test_occlusion_overlay_follows_the_answer_from_the_background_and_is_the_drawings_own_map(
        qtbot, panel, session, trained_snapshot):
    from cnnviz.inspect.occlusion import DRAW_STRIDE, DRAW_WINDOW, occlusion

    session.apply_snapshot(trained_snapshot)
    with qtbot.waitSignal(panel.overlay_changed, timeout=5000):
        panel.set_overlay("Occlusion")
        _draw(panel.canvas, SEVEN)
    x = session.to_tensor(panel.mnist_input())
    expected = occlusion(session.model, x, target=int(np.argmax(panel.probabilities())), window=DRAW_WINDOW,
                         stride=DRAW_STRIDE)
    np.testing.assert_allclose(panel.overlay(), expected, atol=1e-6)
    first = panel.overlay()
    with qtbot.waitSignal(panel.overlay_changed, timeout=5000):
        _draw(panel.canvas, ONE)  # drawn on: the seven's map stays on show until the new drawing's arrives
        assert panel.probabilities() and np.array_equal(panel.overlay(), first)
    x = session.to_tensor(panel.mnist_input())
    expected = occlusion(session.model, x, target=int(np.argmax(panel.probabilities())), window=DRAW_WINDOW,
                         stride=DRAW_STRIDE)
    np.testing.assert_allclose(panel.overlay(), expected, atol=1e-6)


def test_an_image_sent_to_the_canvas_is_read_as_it_is_and_strokes_add_to_it(qtbot, panel, session, sample_data):
    image = sample_data.test.raw[5].astype(np.float32) / 255.0
    with qtbot.waitSignal(panel.prediction_changed, timeout=2000):
        panel.set_image(image)
    np.testing.assert_array_equal(panel.mnist_input(), image)
    np.testing.assert_allclose(panel.probabilities(), session.predict(image), atol=1e-6)
    _draw(panel.canvas, ONE)
    qtbot.waitUntil(lambda: not np.array_equal(panel.mnist_input(), image), timeout=2000)
    assert panel.canvas.picture() is not None
    panel.canvas.clear()
    assert panel.canvas.is_empty() and panel.canvas.picture() is None


def test_show_in_feature_maps_selects_the_drawing(qtbot, panel, session):
    assert session.selected_input.source == "test"
    _draw(panel.canvas, ONE)
    assert session.selected_input.source == "test"  # not asked to
    panel.feature_maps_check.setChecked(True)  # the current drawing goes at once
    assert session.selected_input.source == "drawing"
    _draw(panel.canvas, [(60, 140), (220, 140)])
    qtbot.waitUntil(lambda: np.allclose(session.selected_input.pixels, panel.mnist_input()), timeout=2000)
    assert session.selected_input.label == "drawing"


def test_feature_maps_follow_every_update_while_the_pen_moves(qtbot, panel, session, trained_snapshot):
    panel.feature_maps_check.setChecked(True)
    updates, inputs = [], []
    panel.canvas.strokes_changed.connect(lambda: updates.append(panel.mnist_input()))
    session.input_changed.connect(lambda image: inputs.append(image.pixels))
    path = _moves(SEVEN)
    _send(panel.canvas, QEvent.Type.MouseButtonPress, *path[0], held=True)
    for x, y in path[1:]:
        _send(panel.canvas, QEvent.Type.MouseMove, x, y, held=True)
        qtbot.wait(20)  # past the canvas's 16 ms coalescing: every move is an update
    assert panel.canvas.is_drawing() and len(updates) >= len(path) - 2
    # Each update of the drawing went to the feature maps at once, not at a slower rate.
    assert len(inputs) == len(updates)
    np.testing.assert_array_equal(inputs[-1], panel.mnist_input())
    session.apply_snapshot(trained_snapshot)  # new weights: the feature-map view redraws on its own
    qtbot.wait(150)
    assert len(inputs) == len(updates)


def test_weights_while_hidden_are_caught_up(qtbot, panel, session, trained_snapshot):
    _draw(panel.canvas, ONE)
    before = panel.probabilities()
    panel.hide()
    emitted = []
    panel.prediction_changed.connect(emitted.append)
    session.apply_snapshot(trained_snapshot)
    assert emitted == []  # hidden: no work done
    assert not np.allclose(panel.probabilities(), before, atol=1e-3)  # asked: brought up to date


def test_binary_task_shows_two_named_bars(qtbot):
    from cnnviz.config import DataConfig
    from cnnviz.data.prepare import load_data
    from cnnviz.gui.session import Session
    from cnnviz.presets import get_preset

    preset = get_preset("gorner")
    session = Session(preset.spec.with_num_classes(2), preset.recipe)
    session.set_data(load_data(DataConfig(validation="none", one_vs_rest=6)))
    w = DrawPanel(session)
    qtbot.addWidget(w)
    w.resize(700, 500)
    w.show()
    qtbot.waitExposed(w)
    _draw(w.canvas, SEVEN)
    probs = w.probabilities()
    assert len(probs) == 2 and sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert w.bars.names() == ("not 6", "6") and w.bars.values() == pytest.approx(probs)
    assert any(name in w.headline.text() for name in ("not 6", "6"))


def test_canvas_coalesces_updates_while_drawing(qtbot):
    canvas = DrawCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(280, 280)
    count = []
    canvas.strokes_changed.connect(lambda: count.append(1))
    _send(canvas, QEvent.Type.MouseButtonPress, 100, 100, held=True)
    for i in range(30):  # all within one 16 ms window (no event loop in between)
        _send(canvas, QEvent.Type.MouseMove, 100 + i * 3, 100, held=True)
    assert len(count) == 1  # the press at once, the moves coalesced ...
    qtbot.waitUntil(lambda: len(count) == 2, timeout=1000)  # ... into one trailing update
    assert len(canvas.strokes()[0]) == 30  # the press point and 29 moves (the first move did not move)
    _send(canvas, QEvent.Type.MouseButtonRelease, 190, 100, held=False)
    assert len(count) == 3  # release: at once


def test_canvas_draws_with_touch_and_pen(qtbot):
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QInputDevice, QPointingDevice, QTabletEvent
    from PySide6.QtTest import QTest

    canvas = DrawCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(280, 280)
    canvas.show()
    qtbot.waitExposed(canvas)
    finger = QTest.createTouchDevice()
    QTest.touchEvent(canvas, finger).press(0, QPoint(100, 50)).commit()
    QTest.touchEvent(canvas, finger).move(0, QPoint(100, 150)).commit()
    QTest.touchEvent(canvas, finger).release(0, QPoint(100, 200)).commit()
    assert len(canvas.strokes()) == 1 and not canvas.is_drawing()
    (x0, y0), (x1, y1) = canvas.strokes()[0][0], canvas.strokes()[0][-1]
    assert abs(x1 - x0) < 3 and y1 - y0 == pytest.approx(150, abs=3)

    pen = QPointingDevice("test pen", 77, QInputDevice.DeviceType.Stylus, QPointingDevice.PointerType.Pen,
                          QInputDevice.Capability.Position | QInputDevice.Capability.Pressure, 1, 3)
    for kind, y, held in ((QEvent.Type.TabletPress, 40, True), (QEvent.Type.TabletMove, 140, True),
                          (QEvent.Type.TabletRelease, 240, False)):
        pos = QPointF(200, y)
        event = QTabletEvent(kind, pen, pos, canvas.mapToGlobal(pos), 0.5, 0, 0, 0, 0, 0,
                             Qt.KeyboardModifier.NoModifier, Qt.MouseButton.LeftButton,
                             Qt.MouseButton.LeftButton if held else Qt.MouseButton.NoButton)
        QApplication.sendEvent(canvas, event)
    assert len(canvas.strokes()) == 2
    assert canvas.strokes()[1] == [(200.0, 40.0), (200.0, 140.0), (200.0, 240.0)]
