"""DistributionsView: one layer's weight and gradient histograms over a recorded run, the step on show, the
hover readout, a click that seeks, the empty states, and redraws skipped while hidden."""
import json
import math
import shutil

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from cnnviz.cli import main
from cnnviz.gui.timeline_model import TimelineModel
from cnnviz.gui.widgets.distributions_view import BINS, DistributionsView
from cnnviz.gui.widgets.timeline_plots import NO_STATS, NO_TIMELINE
from tests.gui.recorded_run import record_run


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A recorded `gorner` run of 30 steps (its statistics, keyframes and anchors)."""
    return record_run(tmp_path_factory.mktemp("recorded") / "run")


@pytest.fixture
def model(session, run_folder):
    m = TimelineModel(session)
    m.set_folder(run_folder)
    return m


@pytest.fixture
def view(qtbot, session, model):
    w = DistributionsView(session, model)
    qtbot.addWidget(w)
    w.resize(700, 520)
    w.show()
    qtbot.waitExposed(w)
    return w


def overlap_shares(h, low, high, bins):
    """The plain definition: each recorded bin gives every common bin the part of its share that overlaps it."""
    counts, total = h["counts"], sum(h["counts"])
    width = (h["high"] - h["low"]) / len(counts)
    size = (high - low) / bins
    out = np.zeros(bins)
    for k, c in enumerate(counts):
        a = h["low"] + k * width
        for j in range(bins):
            lo, hi = low + j * size, low + (j + 1) * size
            out[j] += c / total * max(0.0, min(hi, a + width) - max(lo, a)) / width
    return out


def expected_columns(records, layer, which):
    """What the heatmap must show, computed the plain way: one column per step from the first record's to the
    last's, each the histogram of the record at or before that step."""
    steps = [r["step"] for r in records]
    hists = [r["layers"][layer][which] for r in records]
    low, high = min(h["low"] for h in hists), max(h["high"] for h in hists)
    matrix = [overlap_shares(h, low, high, BINS) for h in hists]
    columns = [matrix[max(i for i, s in enumerate(steps) if s <= step)] for step in range(steps[0], steps[-1] + 1)]
    return np.array(columns), low, high


def test_the_heatmaps_show_the_layer_s_histograms_at_every_step(view, model):
    records = model.timeline.stats
    assert len(records) >= 2 and view.empty_message() is None
    assert view.layer_names() == ["conv1", "conv2", "conv3", "dense1", "dense2"]
    assert view.current_layer() == "conv1"
    assert view.select_layer("dense1") and view.current_layer() == "dense1"
    for which in ("weight_hist", "grad_hist"):
        heatmap = view.maps[which]
        expected, low, high = expected_columns(records, "dense1", which)
        np.testing.assert_allclose(heatmap.shares, expected, atol=1e-6)
        image = heatmap.image.image
        assert image.shape == (BINS, len(expected))  # row-major: value bins up, steps across
        shown = expected[expected > 0]
        bottom, top = heatmap.levels
        assert top == pytest.approx(math.log10(shown.max()), abs=1e-6)
        assert bottom == pytest.approx(max(math.log10(shown.min()), top - 3), abs=1e-6)
        assert tuple(heatmap.image.getLevels()) == pytest.approx((bottom, top))
        assert np.all(image[expected.T == 0] < bottom) and np.all(image[expected.T > 0] > bottom)
        rect = heatmap.image.mapRectToParent(heatmap.image.boundingRect())
        assert (rect.left(), rect.right()) == pytest.approx((records[0]["step"], records[-1]["step"] + 1))
        assert (rect.top(), rect.bottom()) == pytest.approx((low, high))
    assert not view.select_layer("conv1_relu")  # an activation has no weights


def test_the_line_marks_the_step_on_show_and_hides_while_live(view, model):
    lines = [m.line for m in view.maps.values()]
    assert not any(line.isVisible() for line in lines)
    shown = model.seek(13)
    assert shown <= 13
    assert all(line.isVisible() and line.value() == shown for line in lines)
    model.go_live()
    assert not any(line.isVisible() for line in lines)


def test_the_hover_readout_names_the_step_the_value_range_and_the_share(view, model):
    heatmap = view.maps["weight_hist"]
    record = model.timeline.stats[-1]
    column = len(heatmap.shares) - 1
    row = int(np.argmax(heatmap.shares[column]))
    size = (heatmap.high - heatmap.low) / BINS
    text = view.show_readout("weight_hist", record["step"] + 0.5, heatmap.low + (row + 0.5) * size)
    share = heatmap.shares[column, row]
    assert text == (f"conv1 weights at step {record['step']:,}: {100 * share:.3g}% of the values between "
                    f"{heatmap.low + row * size:.4g} and {heatmap.low + (row + 1) * size:.4g}")
    assert view.readout_text() == text
    assert view.show_readout("weight_hist", -5, 0.0) == ""  # off the heatmap


def click_at(qtbot, plot, step, value):
    box = plot.getPlotItem().getViewBox()
    pos = plot.mapFromScene(box.mapViewToScene(QPointF(step, value)))
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def test_a_click_shows_the_stored_weights_at_or_before_that_step(view, model, qtbot):
    heatmap = view.maps["grad_hist"]
    with qtbot.waitSignal(model.shown_step_changed) as shown:
        click_at(qtbot, heatmap.plot, 17.6, (heatmap.low + heatmap.high) / 2)
    assert shown.args == [model.timeline.nearest_keyframe(17)] and not model.live
    assert heatmap.line.isVisible() and heatmap.line.value() == shown.args[0]


def test_a_seek_that_fails_is_a_warning_not_a_crash(qtbot, session, run_folder, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(run_folder, folder)
    shutil.rmtree(folder / "keyframes")  # the weights of every step but the anchors' are gone
    model = TimelineModel(session)
    model.set_folder(folder)
    w = DistributionsView(session, model)
    qtbot.addWidget(w)
    step = next(s for s in range(1, model.last_step) if s not in model.timeline.anchors
                and model.timeline.nearest_keyframe(s) not in model.timeline.anchors)
    with qtbot.waitSignal(session.message) as message:
        w.seek_at(step + 0.3)
    assert message.args[0] == "warning" and "keyframes" in message.args[1]


def test_empty_states(qtbot, session, run_folder, tmp_path):
    model = TimelineModel(session)
    w = DistributionsView(session, model)
    qtbot.addWidget(w)
    w.show()
    assert w.empty_message() == NO_STATS and w.layer_names() == []
    assert "recorded while a run trains" in NO_STATS
    # a run saved without a timeline
    plain = tmp_path / "plain"
    assert main(["train", "--preset", "gorner", "--subset", "100", "--max-steps", "1", "--no-timeline",
                 "--out", str(plain), "--json"]) == 0
    model.set_folder(plain)
    qtbot.waitUntil(lambda: w.empty_message() == NO_TIMELINE)
    assert "saved without a timeline" in NO_TIMELINE
    # a timeline that has not recorded statistics yet
    young = tmp_path / "young"
    shutil.copytree(run_folder, young)
    lines = (young / "events.jsonl").read_text().splitlines()
    (young / "events.jsonl").write_text("".join(line + "\n" for line in lines if json.loads(line)["t"] != "stats"))
    model.set_folder(young)
    qtbot.waitUntil(lambda: w.empty_message() == NO_STATS)
    model.set_folder(run_folder)
    qtbot.waitUntil(lambda: w.empty_message() is None)
    assert w.layer_names()[0] == "conv1" and w.maps["weight_hist"].image.image is not None


def test_a_growing_run_redraws_only_while_shown_and_a_rewind_starts_over(view, model, qtbot):
    timeline = model.timeline
    records = list(timeline.stats)
    timeline.stats = records[:2]  # as if the run had just started: a new list, so the view starts over
    model.changed.emit()
    qtbot.waitUntil(lambda: len(view.maps["weight_hist"].shares) == records[1]["step"] - records[0]["step"] + 1)
    view.hide()
    timeline.stats.extend(records[2:])  # the run goes on while the view is hidden: nothing is drawn
    model.changed.emit()
    qtbot.wait(300)
    assert len(view.maps["weight_hist"].shares) == records[1]["step"] - records[0]["step"] + 1
    view.show()  # drawn on show
    full = records[-1]["step"] - records[0]["step"] + 1
    qtbot.waitUntil(lambda: len(view.maps["weight_hist"].shares) == full)
    np.testing.assert_allclose(view.maps["weight_hist"].shares, expected_columns(records, "conv1", "weight_hist")[0],
                               atol=1e-6)
    timeline._rewind(records[-3]["step"])  # a rewind replaces the list with a shorter one
    model.changed.emit()
    qtbot.waitUntil(lambda: len(view.maps["weight_hist"].shares) == records[-3]["step"] - records[0]["step"] + 1)


def test_damaged_histograms_are_left_out(view, model, qtbot):
    last = model.timeline.stats[-1]
    model.timeline.stats.append({"t": "stats", "step": last["step"] + 5,
                                 "layers": {"conv1": {"weight_hist": {"counts": "many", "low": 0, "high": 1}}}})
    model.timeline.stats.append({"t": "stats", "step": "soon", "layers": {}})
    model.changed.emit()
    qtbot.wait(300)
    assert view.maps["weight_hist"].record_steps[-1] == last["step"]  # the damaged records are not shown
