"""Images that are not 28x28 in the window: the model follows the data's size, or the window says why it
cannot (and refuses Train) without a traceback, a crash or a lost model."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtWidgets import QComboBox

from cnnviz.presets import PRESETS

from tests.engine.test_image_sizes import write_sized_folder
from tests.gui.test_draw_panel import SEVEN, _draw
from tests.reliability.conftest import short_run

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


def _open_folder(window, monkeypatch, qtbot, folder) -> None:
    """Open an IDX folder from the Experiment panel's dataset combo, as a user does, and wait for it."""
    monkeypatch.setattr(window.experiment, "choose_folder", lambda: str(folder))
    combo = window.findChild(QComboBox, "datasetCombo")
    combo.setCurrentIndex(combo.findData("open-folder"))
    qtbot.waitUntil(lambda: not window.loader.busy and window.session.recipe.data.data_dir == str(folder),
                    timeout=30000)


def _choose_preset(window, qtbot, name: str) -> None:
    combo = window.findChild(QComboBox, "presetCombo")
    combo.setCurrentIndex(combo.findData(name))
    qtbot.waitUntil(lambda: not window.loader.busy, timeout=30000)


def test_a_32x32_folder_fits_the_model_trains_and_every_view_follows(make_window, qtbot, tmp_path, monkeypatch):
    window = make_window()
    window.resize(1400, 900)
    window.show()
    _open_folder(window, monkeypatch, qtbot, write_sized_folder(tmp_path / "d32", 32, n_train=120, n_test=30))
    s = window.session
    assert s.spec.input_shape == (1, 32, 32) and s.data.test.raw.shape[1:] == (32, 32)
    assert window.data_problem == "" and window.experiment.data_problem() == ""
    assert not (window.banner.isVisible() and window.banner.level == "error"), window.banner.text()
    assert "32x32 image" in window.model_editor.table.item(0, 2).text()  # the model table's input row
    assert window.controls.train_button.isEnabled()
    # a few steps of training in the training process
    short_run(window, train__epochs=1, train__max_steps=3, train__batch_size=20)
    window.train()
    qtbot.waitUntil(lambda: window.trainer_state() == "finished", timeout=120000)
    qtbot.waitUntil(lambda: not window.controller.active, timeout=30000)
    assert len(s.history.step_loss) == 3 and not (window.banner.isVisible() and window.banner.level == "error")
    # the drawing is prepared at 32x32 and predicted, with a 32x32 overlay
    window.docks["draw"].raise_()
    _draw(window.draw.canvas, SEVEN)
    qtbot.waitUntil(lambda: window.draw.probabilities() != [], timeout=5000)
    assert window.draw.mnist_input().shape == (32, 32)
    assert sum(window.draw.probabilities()) == pytest.approx(1.0, abs=1e-4)
    assert not window.draw.error_note.isVisibleTo(window.draw)
    assert window.draw.seen_label.text() == "What the network sees (32 × 32)"
    window.draw.set_overlay("Grad-CAM")
    assert window.draw.overlay().shape == (32, 32)
    # the drawing as the feature-map input, and the evaluation gallery's 32x32 thumbnails
    window.draw.feature_maps_check.setChecked(True)
    assert s.selected_input.source == "drawing" and s.selected_input.pixels.shape == (32, 32)
    window.docks["feature_maps"].raise_()
    qtbot.waitUntil(lambda: window.feature_maps.layer_titles() != [], timeout=5000)
    assert window.feature_maps.layer_titles()[0] == "input  1 x 32 x 32"
    assert s.evaluation is not None and len(s.evaluation.labels) == 30
    window.docks["evaluation"].raise_()
    gallery = window.evaluation.predictions_gallery
    qtbot.waitUntil(lambda: gallery.list_widget().count() == 30, timeout=5000)
    assert gallery.list_widget().iconSize().width() == 64  # 32 pixels at 2x, like 28 at 2x
    # the model editor sizes a preset and a model file (written for 28x28) to the data
    editor = window.model_editor
    editor.load_preset("cntk-pool")
    assert editor.draft_spec().input_shape == (1, 32, 32) and editor.error_text() == ""
    model_file = tmp_path / "model.json"
    model_file.write_text(json.dumps(PRESETS["cnn1"].spec.to_dict()))
    assert editor.load_model(str(model_file)) and editor.draft_spec().input_shape == (1, 32, 32)
    assert editor.error_text() == "" and editor.apply()
    assert [layer.kind for layer in s.spec.layers] == ["conv", "dense"] and s.spec.input_shape == (1, 32, 32)


def test_images_the_preset_cannot_take_load_show_why_and_train_is_refused(make_window, qtbot, tmp_path,
                                                                          monkeypatch):
    window = make_window()
    _choose_preset(window, qtbot, "basic-cnn")
    s = window.session
    model_before = s.model
    folder = write_sized_folder(tmp_path / "d1", 1, n_train=60, n_test=20)
    _open_folder(window, monkeypatch, qtbot, folder)
    expected = ("preset 'basic-cnn' cannot take the data's 1x1 images: layer 1 'conv1': kernel 3 is larger than "
                "its 1x1 input padded by 0")
    # the data is loaded; the problem is in the banner and under the dataset chooser
    assert s.data.test.raw.shape[1:] == (1, 1)
    assert window.banner.isVisible() and window.banner.level == "error" and window.banner.text() == expected
    assert window.experiment.data_problem().startswith("Preset 'basic-cnn' cannot take the data's 1x1 images")
    assert "Train stays off until the model or the data changes" in window.experiment.data_problem()
    # the model is kept as it was; Train and Step are off and refused (no run, no traceback)
    assert s.model is model_before and s.spec.input_shape == (1, 28, 28)
    assert not window.controls.train_button.isEnabled() and not window.controls.step_button.isEnabled()
    assert window.controls.train_button.toolTip() == expected
    window.banner.dismiss()
    window.train()
    window.step()
    assert window.trainer_state() == "idle" and not window.controller.active
    assert window.banner.isVisible() and window.banner.text() == expected
    # the views say they cannot run the 28x28 model on a 1x1 test image, and nothing breaks
    window.show()
    window.docks["feature_maps"].raise_()
    qtbot.waitUntil(lambda: window.feature_maps._stack.message.text() != "", timeout=5000)
    assert window.feature_maps.layer_titles() == []
    assert "this image is 1x1 but the model takes 28x28 images" in window.feature_maps._stack.message.text()

    # a preset whose layers take 1x1 images ('same' padding): the problem is gone, and it trains
    _choose_preset(window, qtbot, "gorner")
    assert s.spec.input_shape == (1, 1, 1) and window.data_problem == ""
    assert window.experiment.data_problem() == "" and not window.banner.isVisible()
    assert window.controls.train_button.isEnabled() and window.controls.train_button.toolTip() != expected

    # back to basic-cnn: refused again; then 28x28 data (the sample) lets it train again
    _choose_preset(window, qtbot, "basic-cnn")
    assert window.data_problem == expected and s.spec.input_shape == (1, 1, 1)
    combo = window.findChild(QComboBox, "datasetCombo")
    combo.setCurrentIndex(combo.findData("sample"))
    qtbot.waitUntil(lambda: not window.loader.busy and s.data.test.raw.shape[1:] == (28, 28), timeout=30000)
    assert window.data_problem == "" and s.spec.input_shape == (1, 28, 28)
    assert [layer.kind for layer in s.spec.layers] == [layer.kind for layer in PRESETS["basic-cnn"].spec.layers]
    assert window.controls.train_button.isEnabled()


def test_opening_a_28x28_run_while_32x32_data_is_loaded(make_window, qtbot, tmp_path, monkeypatch):
    from cnnviz.cli import main
    run = tmp_path / "run28"
    assert main(["train", "--preset", "cntk-conv", "--max-steps", "2", "--subset", "200", "--json",
                 "--out", str(run)]) == 0
    window = make_window()
    _open_folder(window, monkeypatch, qtbot, write_sized_folder(tmp_path / "d32", 32, n_train=60, n_test=20))
    assert window.session.spec.input_shape == (1, 32, 32)
    assert window.open_run(str(run / "checkpoint.safetensors"))  # no evaluation on images it cannot take
    qtbot.waitUntil(lambda: not window.loader.busy and window.session.data.test.raw.shape[1:] == (28, 28),
                    timeout=30000)  # the run's own data (the sample) comes back with it
    s = window.session
    assert s.spec.input_shape == (1, 28, 28) and s.weights_step == 2 and window.data_problem == ""
    assert np.isfinite(s.predict(np.zeros((28, 28), np.float32))).all()
