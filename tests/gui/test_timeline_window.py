"""The timeline in the real window, through its automation surface: seek to any step (nearest keyframe at once,
the exact step recomputed), back to live, and follow a run that a headless trainer writes in another process."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PySide6.QtWidgets import QSlider

from cnnviz.cli import main
from cnnviz.presets import get_preset




@pytest.fixture(scope="module")
def sparse_run(tmp_path_factory):
    """A 2-epoch cntk-conv run (5 steps an epoch) recorded with no room for keyframes: anchors only."""
    out = tmp_path_factory.mktemp("sparse") / "run"
    assert main(["train", "--preset", "cntk-conv", "--subset", "300", "--epochs", "2", "--timeline-mb", "0",
                 "--out", str(out), "--json"]) == 0
    return out


def straight_weights(step: int) -> dict[str, torch.Tensor]:
    from cnnviz.data.prepare import load_data
    from cnnviz.training.trainer import Trainer

    preset = get_preset("cntk-conv")
    recipe = preset.recipe.replace(data__train_subset=300, train__epochs=2, train__max_steps=step)
    trainer = Trainer(preset.spec, recipe, load_data(recipe.data, fallback=False))
    trainer.fit()
    return trainer.model.state_dict()


def test_the_window_s_own_run_can_be_scrubbed_and_goes_back_to_live(window, qtbot):
    window.session.set_recipe(window.session.recipe.replace(train__max_steps=12, train__evaluate_test=False))
    window.train()
    qtbot.waitUntil(lambda: not window.controller.active and window.trainer_state() == "finished", timeout=60000)
    window.timeline.refresh()
    window.timeline_wiring.update_bar()
    assert window.timeline.timeline.keyframe_steps() == list(range(13))
    seen = []
    window.session.weights_changed.connect(lambda snapshot: seen.append(snapshot.step))
    assert window.seek(5) == 5 and window.shown_step() == 5 and seen == [5]
    slider = window.findChild(QSlider, "timelineSlider")
    assert slider.value() == 5 and slider.maximum() == 12
    assert window.curves.shown_step_marker() == 5 and "step 5" in window.live_label.text()
    probabilities_at_5 = window.session.predict(np.zeros((28, 28), np.float32))
    window.timeline.go_live()
    assert window.shown_step() == 12 and window.curves.shown_step_marker() is None and window.live_label.text() == ""
    assert not np.allclose(window.session.predict(np.zeros((28, 28), np.float32)), probabilities_at_5)
    slider.setValue(3)  # dragging the slider seeks too
    assert window.shown_step() == 3


def test_an_opened_run_shows_the_nearest_anchor_then_the_exact_step(window, qtbot, sparse_run):
    assert window.open_run(str(sparse_run))
    assert window.timeline.timeline.keyframe_steps() == [0, 5, 10]  # no keyframes fit: the anchors
    assert window.seek(7) == 5 and window.timeline.shown_precision == "exact"  # an anchor is exact
    with qtbot.waitSignal(window.timeline.exact_finished, timeout=60000) as finished:
        window.seek(7, exact=True)
    assert finished.args == [True] and window.shown_step() == 7 and window.timeline.shown_precision == "exact"
    for name, value in straight_weights(7).items():
        assert torch.equal(window.session.model.state_dict()[name], value), name


def test_a_run_written_by_a_headless_trainer_is_followed_live(window, qtbot, tmp_path):
    out = tmp_path / "elsewhere"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    trainer = subprocess.Popen([sys.executable, "-m", "cnnviz", "train", "--preset", "cntk-conv", "--subset", "600",
                                "--epochs", "400", "--threads", "1", "--out", str(out), "--json"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        qtbot.waitUntil(lambda: (out / "run.json").is_file() and (out / "events.jsonl").is_file(), timeout=60000)
        assert window.open_run(str(out), follow=True)
        qtbot.waitUntil(lambda: window.session.history.steps > 30 and window.session.weights_step > 0, timeout=60000)
        assert window.trainer_state() == "running" and window.controller.following is not None
        assert window.session.spec.to_dict()["layers"] == get_preset("cntk-conv").spec.named().to_dict()["layers"]
        steps_before = window.session.history.steps
        qtbot.waitUntil(lambda: window.session.history.steps > steps_before + 20, timeout=30000)  # it goes on
        window.timeline.refresh()
        assert window.timeline.timeline is not None and window.timeline.timeline.keyframe_steps()
        window.close()  # closing the window leaves the trainer training
        assert trainer.poll() is None
    finally:
        trainer.kill()
        trainer.wait(10)


def test_the_export_menu_writes_onnx_at_the_step_shown_and_tensorboard_files(window, qtbot, sparse_run, tmp_path):
    import onnx

    assert window.open_run(str(sparse_run))
    window.seek(5)
    assert window.export_run("onnx", str(tmp_path / "model.onnx"))
    window.exports.wait()
    model = onnx.load(str(tmp_path / "model.onnx"))
    assert {p.key: p.value for p in model.metadata_props}["step"] == "5"
    assert window.export_run("tensorboard", str(tmp_path / "tb"))
    window.exports.wait()
    qtbot.wait(50)
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*")), window.banner.text()
    window.export_run("onnx", str(tmp_path))  # a folder: the export says so in the banner
    window.exports.wait()
    qtbot.waitUntil(lambda: window.banner.isVisible() and window.banner.level == "error", timeout=5000)
    assert "folder" in window.banner.text()


def test_the_export_menu_writes_an_animation_of_the_feature_maps_of_the_input_shown(window, qtbot, sparse_run,
                                                                                   tmp_path, monkeypatch):
    from PIL import Image
    from PySide6.QtWidgets import QDialog, QFileDialog

    from cnnviz.gui.animation_dialog import AnimationDialog

    assert window.open_run(str(sparse_run))
    window.session.select_test_image(3)
    monkeypatch.setattr(AnimationDialog, "exec", lambda self: (
        self.view.setCurrentIndex(self.view.findData("feature-maps")), self.size.setCurrentText("320x240"),
        QDialog.DialogCode.Accepted)[-1])
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "maps"), ""))
    window.actions_by_name["export_animation"].trigger()
    window.exports.wait()
    qtbot.wait(50)
    gif = tmp_path / "maps.gif"  # the format's suffix is added
    assert gif.is_file(), window.banner.text()
    with Image.open(gif) as image:
        assert image.n_frames == 3 and image.size == (320, 240)  # the run's three stored steps
    assert "Wrote 3 frames" in window.statusBar().currentMessage()


def test_a_cancelled_animation_export_leaves_no_file(window, qtbot, sparse_run, tmp_path):
    assert window.open_run(str(sparse_run))
    choices = {"kind": "gif", "view": "filters", "size": (320, 240), "fps": 10, "frames": 150, "scale": None}
    assert window.export_animation(str(tmp_path / "a.gif"), choices)
    window.exports.cancel()
    window.exports.wait()
    qtbot.wait(50)
    assert "cancelled" in window.statusBar().currentMessage() and list(tmp_path.iterdir()) == []


def test_the_animation_dialog_refuses_a_bad_size_and_says_how_long_the_animation_is(qtbot):
    from PySide6.QtWidgets import QDialogButtonBox

    from cnnviz.gui.animation_dialog import AnimationDialog

    dialog = AnimationDialog(40, "test image 3 (7)")
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert "40 steps: 40 frames, 4.0 s" in dialog.summary.text() and ok.isEnabled()
    assert dialog.view.itemText(1) == "Feature maps of test image 3 (7)"
    dialog.size.setCurrentText("12x9000")
    assert not ok.isEnabled() and "out of range" in dialog.error.text()
    dialog.size.setCurrentText("800x600")
    dialog.frames.setValue(20)
    assert ok.isEnabled() and "20 frames, 2.0 s" in dialog.summary.text()
    assert dialog.choices() == {"kind": "gif", "view": "filters", "size": (800, 600), "fps": 10, "frames": 20,
                                "scale": None}
    assert dialog.scale.isEnabled()
    dialog.view.setCurrentIndex(dialog.view.findData("curves"))
    assert not dialog.scale.isEnabled()  # curves and the window have no colour scale to choose


def test_the_whole_window_is_grabbed_at_each_stored_step_and_left_at_the_step_it_showed(window, qtbot, sparse_run,
                                                                                         tmp_path):
    from PIL import Image

    assert window.open_run(str(sparse_run))
    window.seek(5)
    choices = {"kind": "gif", "view": "window", "size": (640, 400), "fps": 10, "frames": 150, "scale": None}
    assert window.export_animation(str(tmp_path / "window.gif"), choices)  # done when it returns
    with Image.open(tmp_path / "window.gif") as image:
        assert image.n_frames == 3 and image.size == (640, 400)
        image.seek(2)
        last = np.asarray(image.convert("RGB"))
    assert last[100:, :].std() > 20  # the window's picture, not a blank frame
    assert window.shown_step() == 5 and "Wrote 3 frames" in window.statusBar().currentMessage()


def test_a_compared_pair_is_exported_side_by_side_from_the_window(window, qtbot, sparse_run, tmp_path, monkeypatch):
    from PIL import Image
    from PySide6.QtWidgets import QDialog, QFileDialog

    from cnnviz.gui.animation_dialog import AnimationDialog

    assert window.open_run(str(sparse_run))
    assert window.compare.open(str(sparse_run))
    seen = {}

    def accept(self):
        seen["enabled"] = self.both.isEnabled()
        self.both.setChecked(True)
        self.size.setCurrentText("648x240")
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(AnimationDialog, "exec", accept)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "pair.gif"), ""))
    window.actions_by_name["export_animation"].trigger()
    window.exports.wait()
    qtbot.wait(50)
    assert seen["enabled"], "a compare is open: side by side can be chosen"
    with Image.open(tmp_path / "pair.gif") as image:
        assert image.n_frames == 3 and image.size == (648, 240)
        left, right = (np.asarray(image.convert("RGB"))[:, :322], np.asarray(image.convert("RGB"))[:, 326:])
    assert np.array_equal(left[40:], right[40:])  # the same run twice: the same pictures under each caption


def test_seeking_shows_recorded_evaluations_again_without_adding_test_points(window, qtbot, sparse_run):
    assert window.open_run(str(sparse_run))
    before = window.curves._test_acc.getData()[0].tolist()
    assert before == [5.0, 10.0]  # the run's two epoch-end evaluations
    for step in (7, 2, 10, 6, 9, 5):
        window.seek(step)
    qtbot.wait(150)  # (the curves redraw coalesced)
    assert window.curves._test_acc.getData()[0].tolist() == before


def test_the_slider_shows_a_steps_evaluation_one_turn_after_its_weights(window, qtbot, sparse_run):
    """Play and the slider split a frame in two: the weights at once, the recorded evaluation a turn later."""
    assert window.open_run(str(sparse_run))  # anchors only: steps 0, 5 and 10 are stored
    window.seek(10)
    assert window.session.evaluation.step == 10  # the automation surface: all at once
    window.timeline.seek(7, defer_evaluation=True)
    assert window.shown_step() == 5 and window.session.evaluation.step == 10
    qtbot.waitUntil(lambda: window.session.evaluation.step == 5, timeout=2000)
    window.timeline_bar.slider.setValue(10)  # the slider defers
    assert window.shown_step() == 10 and window.session.evaluation.step == 5
    qtbot.waitUntil(lambda: window.session.evaluation.step == 10, timeout=2000)
