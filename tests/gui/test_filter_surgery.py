"""Filter surgery in the real window: right-click a filter of a paused run, freeze or zero it, and the run (in its
own process) does it before its next batch; the views mark it, and the run folder records it."""
from __future__ import annotations

import numpy as np

from cnnviz.timeline.reader import RunTimeline


def _conv1(window) -> np.ndarray:
    return window.session.model.layers.conv1.weight.detach().numpy().copy()


def _trigger(menu, name: str) -> None:
    action = next(a for a in menu.actions() if a.objectName() == name)
    assert action.isEnabled()
    action.trigger()


def test_freeze_and_zero_a_filter_of_a_paused_run(window, qtbot):
    window.apply_preset("cntk-conv")
    window.session.set_recipe(window.session.recipe.replace(train__max_steps=400, train__evaluate_test=False))
    filters = window.filters
    idle = [a for a in filters.filter_menu("conv1", 2).actions() if a.objectName().startswith("filter_")]
    assert len(idle) == 3 and not any(a.isEnabled() for a in idle)  # idle: nothing to operate on
    window.step()  # starts the run paused, after one batch
    qtbot.waitUntil(lambda: window.session.state == "paused" and window.session.weights_step >= 1, timeout=60000)
    window.docks["filters"].show()
    window.docks["filters"].raise_()

    _trigger(filters.filter_menu("conv1", 2), "filter_freeze")
    qtbot.waitUntil(lambda: len(window.session.surgeries) == 1, timeout=20000)
    op = window.session.surgeries[0]
    assert (op.layer, op.index, op.action) == ("conv1", 2, "freeze")
    assert window.session.frozen_filters() == (("conv1", 2),)
    qtbot.waitUntil(lambda: filters.canvas_for("conv1").marked_tiles == [2], timeout=5000)
    assert [a.objectName() for a in filters.filter_menu("conv1", 2).actions()][1] == "filter_unfreeze"

    _trigger(filters.filter_menu("conv1", 3), "filter_zero")
    qtbot.waitUntil(lambda: len(window.session.surgeries) == 2 and not _conv1(window)[3].any(), timeout=20000)
    held = _conv1(window)[2]
    step = window.session.weights_step
    for _ in range(3):
        window.step()
        qtbot.waitUntil(lambda: window.session.weights_step > step, timeout=20000)
        step = window.session.weights_step
    after = _conv1(window)
    assert np.array_equal(after[2], held) and not after[3].any()  # frozen holds; zeroed stays silent under ReLU
    (x, label), = window.curves.surgery_marks  # both while paused at one step: one line says both
    assert label == "1 froze, 1 zeroed" and x == window.session.surgeries[0].step + 0.5

    window.stop()
    qtbot.waitUntil(lambda: not window.controller.active, timeout=30000)
    recorded = RunTimeline.open(window.controller.run_folder.path).surgeries
    assert [(o.action, o.index) for o in recorded] == [("freeze", 2), ("zero", 3)]


def test_a_followed_run_cannot_be_operated_on_and_says_why(window, qtbot):
    messages = []
    window.session.message.connect(lambda level, text: messages.append(text))
    assert not window.controller.operate_filter("conv1", 0, "zero")
    assert "press Train" in messages[-1]
