"""The real window, driven like a user: train, pause/step/stop, draw, evaluate, edit, save/open, close."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QPushButton, QWidget

from tests.gui.test_draw_panel import SEVEN, _draw

NAMES = ["trainButton", "pauseButton", "stopButton", "presetCombo", "datasetCombo", "drawCanvas",
         "clearCanvasButton", "lossPlot", "filterView", "featureMapView", "confusionMatrixView", "modelTable"]


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path / "appdata"))
    from cnnviz.app import create_window

    threads_before = set(threading.enumerate())
    w = create_window([])
    qtbot.addWidget(w)
    w.confirm = lambda *args: True  # answer "yes" to every question
    yield w
    w.close()
    assert not w.controller.active
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert leftover == [], leftover


def pick_preset(window, name: str, qtbot=None) -> None:
    combo = window.findChild(QComboBox, "presetCombo")
    combo.setCurrentIndex(combo.findData(name))
    assert window.preset_name == name
    wait_for_data(window)


def wait_for_data(window) -> None:
    from pytestqt.qtbot import QtBot

    QtBot(window).waitUntil(lambda: not window.loader.busy and window.controls.train_button.isEnabled(),
                            timeout=30000)


def short_run(window, epochs=1, **changes) -> None:
    window.session.set_recipe(window.session.recipe.replace(train__epochs=epochs, **changes))


def click(qtbot, window, name: str) -> None:
    button = window.findChild(QPushButton, name)
    assert button.isEnabled(), name
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_the_window_has_its_automation_surface(window):
    for name in NAMES:
        assert window.findChild(QWidget, name) is not None, name
    assert window.trainer_state() == "idle"
    assert window.draw.probabilities() == []
    assert window.findChild(QComboBox, "presetCombo").currentData() == "gorner"
    assert window.session.data is not None and len(window.session.data.train) > 0


def test_train_a_preset_and_watch_curves_filters_and_evaluation(qtbot, window):
    pick_preset(window, "cntk-conv")
    short_run(window, epochs=2)
    window.docks["filters"].raise_()  # a view behind another tab draws nothing until its tab is raised
    qtbot.waitUntil(lambda: "conv1" in window.filters.layer_names(), timeout=10000)
    before = window.filters.mosaic_for("conv1").copy()
    click(qtbot, window, "trainButton")
    assert window.trainer_state() == "running"
    qtbot.waitUntil(lambda: window.curves.point_count() > 0, timeout=60000)
    qtbot.waitUntil(lambda: window.trainer_state() == "finished", timeout=120000)
    assert window.curves.point_count() == len(window.session.history.step_loss) > 0
    window.docks["filters"].raise_()
    qtbot.waitUntil(lambda: not np.array_equal(window.filters.mosaic_for("conv1"), before), timeout=10000)
    assert window.session.evaluation is not None and window.session.evaluation.accuracy > 0.5
    assert window.evaluation.confusion() is not None
    assert window.controller.last_checkpoint is not None and window.controller.last_checkpoint.exists()


def test_pause_resume_step_and_stop(qtbot, window):
    pick_preset(window, "gorner")
    short_run(window, epochs=50)
    click(qtbot, window, "trainButton")
    qtbot.waitUntil(lambda: window.curves.point_count() > 0, timeout=60000)
    click(qtbot, window, "pauseButton")
    qtbot.waitUntil(lambda: window.trainer_state() == "paused", timeout=10000)
    steps = len(window.session.history.step_loss)
    qtbot.waitUntil(lambda: window.session.weights_step == steps, timeout=10000)  # final weights arrived
    click(qtbot, window, "stepButton")
    qtbot.waitUntil(lambda: len(window.session.history.step_loss) == steps + 1, timeout=10000)
    assert window.trainer_state() == "paused"
    click(qtbot, window, "pauseButton")  # now "Resume"
    qtbot.waitUntil(lambda: window.trainer_state() == "running", timeout=10000)
    qtbot.waitUntil(lambda: len(window.session.history.step_loss) > steps + 3, timeout=30000)
    click(qtbot, window, "stopButton")
    qtbot.waitUntil(lambda: window.trainer_state() == "stopped", timeout=30000)
    qtbot.waitUntil(lambda: not window.controller.active, timeout=30000)
    done = len(window.session.history.step_loss)
    click(qtbot, window, "trainButton")  # continues the stopped run
    qtbot.waitUntil(lambda: len(window.session.history.step_loss) > done, timeout=60000)
    window.controller.stop()
    qtbot.waitUntil(lambda: not window.controller.active, timeout=30000)
    assert window.session.history.step_loss[:done] == pytest.approx(window.session.history.step_loss[:done])


def test_draw_a_digit_and_read_the_probabilities(qtbot, window):
    window.docks["draw"].raise_()
    with qtbot.waitSignal(window.draw.prediction_changed, timeout=5000):
        _draw(window.draw.canvas, SEVEN)
    probs = window.draw.probabilities()
    assert len(probs) == 10 and sum(probs) == pytest.approx(1.0, abs=1e-4)
    qtbot.mouseClick(window.findChild(QPushButton, "clearCanvasButton"), Qt.MouseButton.LeftButton)
    assert window.draw.probabilities() == []


def test_click_a_confusion_cell_to_see_its_images(qtbot, window):
    pick_preset(window, "cntk-conv")
    short_run(window, epochs=1)
    click(qtbot, window, "trainButton")
    qtbot.waitUntil(lambda: window.trainer_state() == "finished", timeout=120000)
    window.docks["evaluation"].raise_()
    ev = window.session.evaluation
    off = ev.confusion.copy()
    np.fill_diagonal(off, 0)
    t, p = np.unravel_index(int(off.argmax()), off.shape)
    view = window.findChild(QWidget, "confusionMatrixView")
    qtbot.waitUntil(view.isVisible, timeout=5000)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=view.cell_center(int(t), int(p)))
    expected = np.flatnonzero((ev.labels == t) & (ev.predicted == p)).tolist()
    assert sorted(window.evaluation.gallery_indices()) == sorted(expected) and expected


def test_an_impossible_layer_shows_a_message(qtbot, window):
    from PySide6.QtWidgets import QLabel

    window.docks["model"].raise_()
    editor = window.model_editor
    editor.set_layer_field(0, "padding", "valid")
    editor.set_layer_field(0, "kernel", 40)
    assert "conv1" in editor.error_text() and "40" in editor.error_text() and "28" in editor.error_text()
    label = window.findChild(QLabel, "modelMessage")
    assert label.isVisible() and "conv1" in label.text()
    editor.set_layer_field(0, "kernel", 5)
    assert editor.error_text() == ""


def test_save_and_reopen_a_run(qtbot, window, tmp_path):
    from cnnviz.gui.window_menus import save_run

    pick_preset(window, "cntk-pool")
    short_run(window, epochs=1)
    click(qtbot, window, "trainButton")
    qtbot.waitUntil(lambda: window.trainer_state() == "finished", timeout=120000)
    qtbot.waitUntil(lambda: not window.controller.active, timeout=30000)
    path = str(tmp_path / "saved.safetensors")
    assert save_run(window, path)
    losses = list(window.session.history.step_loss)
    accuracy = window.session.evaluation.accuracy
    window.reset()
    assert window.session.history.step_loss == [] and not window.session.trained
    assert window.open_run(path)
    assert window.session.history.step_loss == pytest.approx(losses)
    assert window.session.trained and window.session.evaluation.accuracy == pytest.approx(accuracy)
    assert window.trainer_state() == "stopped"
    click(qtbot, window, "trainButton")  # continues for another epoch
    qtbot.waitUntil(lambda: window.trainer_state() == "finished", timeout=120000)
    assert len(window.session.history.epochs) == 2


def test_an_opened_run_shows_its_preset_or_custom_in_the_preset_box(window, tmp_path):
    import json

    from cnnviz.cli import main
    from cnnviz.presets import get_preset

    spec = get_preset("cntk-conv").spec.to_dict()  # cntk-conv with 5 filters in its first layer: no preset's
    spec["layers"] = [dict(layer, size=5) if layer["size"] == 8 else layer for layer in spec["layers"]]
    (tmp_path / "m.json").write_text(json.dumps(spec))
    combo = window.findChild(QComboBox, "presetCombo")
    pick_preset(window, "gorner")
    for model, shown in (("cntk-conv", "cntk-conv"), ("custom", "custom")):
        argv = ["--preset", "cntk-conv"] if model == "cntk-conv" else ["--model", str(tmp_path / "m.json")]
        out = tmp_path / model
        assert main(["train", *argv, "--subset", "200", "--epochs", "1", "--out", str(out), "--json"]) == 0
        assert window.open_run(str(out))
        assert window.preset_name == shown and combo.currentData() == shown, (model, combo.currentText())
    assert combo.currentText().startswith("custom")


def test_opening_a_garbage_run_shows_a_message(window, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage" * 10)
    assert not window.open_run(str(bad))
    assert window.banner.isVisible() and "bad.safetensors" in window.banner.text()


def test_close_while_training_ends_cleanly(qtbot, window):
    short_run(window, epochs=100)
    click(qtbot, window, "trainButton")
    qtbot.waitUntil(lambda: window.curves.point_count() > 0, timeout=60000)
    process = window.controller._worker  # the run is live
    assert process is not None
    window.close()  # the fixture checks: no thread left, controller idle
    assert not window.controller.active


def test_a_stray_dock_tab_bar_is_hidden_and_the_real_ones_stay(qtbot):
    """Qt 6.11 can keep the bar made by the first tabify of a second tab group visible after the next tabify
    replaces it (seen offscreen and under X: a "Feature maps | Filters" bar over the Experiment panel; it
    does not happen in this test process, so the stray bar is made here by hand). The window hides a bar of
    its own whose tabs are a strict subset of another visible bar's."""
    from PySide6.QtWidgets import QMainWindow, QTabBar

    from cnnviz.gui.window_docks import hide_orphan_tab_bars

    w = QMainWindow()
    qtbot.addWidget(w)
    made = {}
    for tabs in (("Curves", "Evaluation"), ("Feature maps", "Filters"), ("Feature maps", "Filters", "Health")):
        bar = QTabBar(w)
        for text in tabs:
            bar.addTab(text)
        made[tabs] = bar
    w.show()
    qtbot.waitExposed(w)
    assert hide_orphan_tab_bars(w) == [["Feature maps", "Filters"]]
    assert not made[("Feature maps", "Filters")].isVisible()
    assert made[("Curves", "Evaluation")].isVisible() and made[("Feature maps", "Filters", "Health")].isVisible()


def test_the_projector_dock_places_the_drawing_and_clicks_select_inputs(qtbot, window):
    window.docks["projector"].raise_()
    projector = window.projector
    qtbot.waitUntil(lambda: projector.shown() is not None, timeout=30000)
    window.docks["draw"].raise_()
    _draw(window.draw.canvas, SEVEN)
    qtbot.waitUntil(lambda: projector.drawing_position() is not None, timeout=5000)
    qtbot.waitUntil(lambda: len(window.draw.nearest.shown()) == 8, timeout=30000)
    index = int(projector.shown().indices[5])
    projector.select_point(index)
    assert window.session.selected_input.index == index
