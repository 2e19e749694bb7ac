"""Two runs side by side: a variant trained beside this run on the same batches, a saved run opened to compare,
and any number of runs overlaid in the curves; one timeline drives both."""
from __future__ import annotations

import numpy as np
import pytest

from cnnviz.cli import main


@pytest.fixture(scope="module")
def saved_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    for name, batch in (("gorner", "100"), ("gorner-50", "50")):
        assert main(["train", "--preset", "gorner", "--subset", "500", "--epochs", "2", "--batch-size", batch,
                     "--out", str(root / name), "--json"]) == 0
    return root


def test_a_variant_trains_beside_the_run_and_follows_its_timeline(window, qtbot):
    window.session.set_recipe(window.session.recipe.replace(train__max_steps=10, train__evaluate_test=False))
    assert window.train_variant("activation", "sigmoid")
    b = window.compare.session
    assert b.spec.layers[0].activation == "sigmoid" and window.session.spec.layers[0].activation == "relu"
    qtbot.waitUntil(lambda: window.trainer_state() == "finished" and b.state == "finished"
                    and not window.controller.active and not window.compare.controller.active, timeout=90000)
    assert window.session.history.steps == b.history.steps == 10
    assert "compared" in window.curves.overlays.runs and window.curves.run_list.isVisibleTo(window)
    assert window.compare_setup.stop_button.isEnabled()
    answers = window.compare_view.answers()
    assert answers is not None and not np.allclose(*answers)  # two models, two answers
    window.timeline.refresh()
    window.compare.timeline.refresh()
    window.seek(4)
    assert window.shown_step() == 4 and b.weights_step == 4  # B shows the same step
    window.timeline.go_live()
    assert b.live and b.weights_step == 10
    window.compare.close()
    assert "compared" not in window.curves.overlays.runs and window.controller.job_threads is None


def test_a_saved_run_is_compared_at_the_same_point_of_the_epoch(window, qtbot, saved_runs):
    assert window.open_run(str(saved_runs / "gorner"))  # 5 steps an epoch
    assert window.compare_with(str(saved_runs / "gorner-50"))  # 10 steps an epoch
    c = window.compare
    assert c.active and c.session.history.steps == 20 and window.session.history.steps == 10
    assert c.map_step(3) == 6 and c.map_step(7) == 14  # the same point of the same epoch
    window.seek(7)
    assert window.shown_step() == 7 and c.session.weights_step == 14
    assert window.session.evaluation.step == 5 and c.session.evaluation.step == 10  # each run's own, at its epoch end
    difference = window.compare_view.confusion_difference()
    assert difference is not None and difference.shape == (10, 10)
    assert not window.compare_with(str(saved_runs / "nothing"))
    assert window.banner.isVisible() and "Could not compare" in window.banner.text()


def test_any_number_of_saved_runs_overlay_in_the_curves(window, saved_runs):
    assert window.add_run_to_curves(str(saved_runs / "gorner"))
    assert window.add_run_to_curves(str(saved_runs / "gorner-50"))
    overlays = window.curves.overlays
    assert len(overlays.runs) == 2 and len({run.colour for run in overlays.runs.values()}) == 2
    key = next(iter(overlays.runs))
    overlays.set_visible(key, False)
    assert not overlays.runs[key].items[0].isVisible()
    overlays.remove(key)
    assert len(overlays.runs) == 1


def test_cnnviz_open_run_a_run_b_opens_both(qtbot, tmp_path, monkeypatch, saved_runs):
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path / "appdata"))
    from cnnviz.app import create_window

    w = create_window([], run=str(saved_runs / "gorner"), compare=str(saved_runs / "gorner-50"))
    qtbot.addWidget(w)
    try:
        assert w.session.history.steps == 10 and w.compare.active and w.compare.session.history.steps == 20
    finally:
        w.close()
