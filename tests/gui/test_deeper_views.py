"""Top patches beside the enlarged filter, the counterfactual panel and the ablation chart, on a trained model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from cnnviz.gui.widgets.ablation_view import AblationView
from cnnviz.gui.widgets.counterfactual_view import CounterfactualView
from cnnviz.gui.widgets.draw_panel import DrawPanel
from cnnviz.gui.widgets.filters_view import FiltersView
from cnnviz.inspect.ablation import ablate
from cnnviz.inspect.top_patches import top_patches
from cnnviz.training.messages import RUNNING, WeightsSnapshot


def _show(qtbot, widget, size=(900, 600)):
    qtbot.addWidget(widget)
    widget.resize(*size)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def _initial(session) -> WeightsSnapshot:
    torch.manual_seed(session.recipe.train.seed)
    from cnnviz.models import build_model

    return WeightsSnapshot(0, 0, {k: v.numpy().copy() for k, v in build_model(session.spec).state_dict().items()})


@pytest.fixture
def trained(session, trained_snapshot):
    session.apply_snapshot(trained_snapshot)
    return session


def test_the_enlarged_filter_shows_its_top_test_patches_and_a_click_opens_the_image(qtbot, trained):
    view = _show(qtbot, FiltersView(trained))
    qtbot.waitUntil(lambda: view.layer_names() == ["conv1", "conv2", "conv3"], timeout=5000)
    view.select_filter("conv2", 3)
    panel = view.top_patches
    qtbot.waitUntil(panel.covered, timeout=10000)
    expected = top_patches(trained.model, trained.data.test.images, "conv2", k=8)
    assert panel.strip.indices() == expected.indices[3].tolist()
    assert "whole test set" in panel.caption.text() and "filter 3" in panel.caption.text()
    first = panel.strip.indices()[2]
    qtbot.mouseClick(panel.strip, Qt.MouseButton.LeftButton, pos=panel.strip._cell(2).center())
    assert trained.selected_input.index == first


def test_top_patches_follow_a_step_shown_from_the_timeline_and_while_training_run_one_slice_per_update(
        qtbot, trained, trained_snapshot):
    view = _show(qtbot, FiltersView(trained))
    qtbot.waitUntil(lambda: bool(view.layer_names()), timeout=5000)
    view.select_filter("conv1", 0)
    panel = view.top_patches
    qtbot.waitUntil(panel.covered, timeout=10000)
    trained.show_weights(_initial(trained))  # a seek to step 0: a whole pass at those weights
    qtbot.waitUntil(lambda: panel.covered() and trained.weights_step == 0, timeout=10000)
    assert panel.strip.indices() == top_patches(trained.model, trained.data.test.images, "conv1").indices[0].tolist()
    trained.set_state(RUNNING)  # while training: one slice of the test set per weight update
    trained.go_live()
    qtbot.waitUntil(lambda: panel._result_step == trained_snapshot.step, timeout=10000)
    assert not panel.covered() and "so far" in panel.caption.text()


def test_counterfactuals_flip_the_answer_and_send_to_canvas_puts_the_changed_image_on_the_canvas(qtbot, trained):
    trained.select_test_image(3)
    view = _show(qtbot, CounterfactualView(trained))
    qtbot.waitUntil(lambda: len(view.robustness_row()) >= 6, timeout=20000)
    answer = int(np.argmax(trained.predict(trained.selected_input.pixels)))
    target = next(t for t in view.robustness_row() if t != answer)
    view.set_target(target)
    r = view.result()
    assert r.success and int(np.argmax(trained.predict(r.image))) == target
    assert view.send_button.isEnabled() and f"L2 {r.l2:.2f}" in view.summary.text()
    assert view.robustness.item(0, target).text() == f"{r.l2:.2f}"
    assert view.robustness.item(0, answer).text() == "·"
    panel = _show(qtbot, DrawPanel(trained), (700, 500))
    view.send_to_canvas.connect(panel.set_image)
    with qtbot.waitSignal(panel.prediction_changed, timeout=3000):
        view.send_button.click()
    np.testing.assert_array_equal(panel.mnist_input(), r.image)
    assert int(np.argmax(panel.probabilities())) == target


def test_counterfactuals_of_the_drawing(qtbot, trained, sample_data):
    view = _show(qtbot, CounterfactualView(trained))
    drawing = {"pixels": None}
    view.drawing = lambda: drawing["pixels"]
    view.set_source("Drawing")
    qtbot.waitUntil(lambda: "Draw a digit first" in view.status.text(), timeout=3000)
    drawing["pixels"] = sample_data.test.raw[7].astype(np.float32) / 255.0
    view.drawing_changed()
    qtbot.waitUntil(lambda: bool(view.robustness_row()), timeout=20000)
    np.testing.assert_array_equal(view.input_pixels(), drawing["pixels"])


def test_ablation_chart_is_the_engines_answer_and_follows_the_step_on_show(qtbot, trained):
    view = _show(qtbot, AblationView(trained))
    assert view.layers() == ["conv1", "conv2", "conv3"]
    view.set_layer("conv2")
    view.run()
    qtbot.waitUntil(lambda: view.result() is not None, timeout=20000)
    expected = ablate(trained.model, trained.data.test.images, trained.data.test.labels, "conv2")
    np.testing.assert_allclose(view.result().accuracy_without_filter, expected.accuracy_without_filter)
    assert view.result().baseline_accuracy == expected.baseline_accuracy
    assert "conv2 at step 60" in view.status.text()
    trained.show_weights(_initial(trained))  # the timeline shows step 0: the chart is worked out again
    qtbot.waitUntil(lambda: view.result_step() == 0 and view.result() is not None, timeout=20000)
    again = ablate(trained.model, trained.data.test.images, trained.data.test.labels, "conv2")
    np.testing.assert_allclose(view.result().accuracy_without_filter, again.accuracy_without_filter)


def test_ablation_can_be_cancelled(qtbot, trained):
    view = _show(qtbot, AblationView(trained))
    view.set_layer("conv3")
    view.run()
    assert view.cancel_button.isEnabled()
    view.cancel()
    view.runner.wait()
    qtbot.waitUntil(lambda: not view.runner.busy, timeout=5000)
    assert view.result() is None and "Cancelled" in view.status.text()
    assert not view.cancel_button.isEnabled()


def test_a_view_deleted_while_its_job_runs_lets_the_job_end_on_its_own(qtbot, trained):
    view = AblationView(trained)
    view.show()
    qtbot.waitExposed(view)
    view.set_layer("conv3")
    view.run()
    ended = []
    thread = view.runner._thread
    assert thread is not None and thread.is_alive()
    view.close()
    view.deleteLater()  # its runner keeps itself (and its thread) alive until the job has ended
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=20000)
    ended.append(True)
    qtbot.wait(50)  # the thread's own deferred deletion
