"""HealthView: each layer's dead units, update ratio and gradient norm over a recorded run, the warnings found
in them, a click on a warning that seeks and names the layer, the step on show, and the empty states."""
import math

import numpy as np
import pytest
from PySide6.QtCore import Qt

from cnnviz.gui.timeline_model import TimelineModel
from cnnviz.gui.widgets.health_view import CAPTION, MAX_POINTS, HealthView
from cnnviz.gui.widgets.timeline_plots import NO_STATS, NO_TIMELINE
from cnnviz.timeline.health import find_warnings
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
    w = HealthView(session, model)
    qtbot.addWidget(w)
    w.resize(700, 620)
    w.show()
    qtbot.waitExposed(w)
    return w


def healthy(step, dead=0.1):
    """A stats record of a healthy two-layer net (conv1 then dense1), conv1's ReLU `dead`."""
    return {"t": "stats", "step": step, "layers": {
        "conv1": {"weight_norm": 1.0, "grad_norm": 0.1, "update_ratio": 1e-3},
        "dense1": {"weight_norm": 2.0, "grad_norm": 0.2, "update_ratio": 2e-3},
        "conv1_relu": {"dead_fraction": dead}}}


def test_the_plots_draw_every_layer_s_figures_at_the_recorded_steps(view, model):
    records = model.timeline.stats
    for module, figure in (("conv1", "update_ratio"), ("dense1", "grad_norm"), ("conv2_relu", "dead_fraction"),
                           ("dense1_relu", "dead_fraction")):
        x, y = view.curve(module, figure).getOriginalDataset()
        taken = [r for r in records if figure in r["layers"].get(module, {})]  # (a figure can miss a record)
        assert len(taken) >= len(records) - 2
        np.testing.assert_array_equal(x, [r["step"] for r in taken])
        values = np.array([r["layers"][module][figure] for r in taken])
        moved = values > 0 if figure != "dead_fraction" else values >= 0
        np.testing.assert_allclose(y[moved], values[moved])
        assert np.all(y[~moved] < values[moved].min())  # a norm of 0: at the bottom of the log axis
    assert view.curve("dense2_relu", "dead_fraction") is None  # the output layer has no activation
    assert view.empty_message() is None and CAPTION.startswith("Healthy: update/weight ratio near 1e-3")
    # one colour per layer, the same for the layer's activation
    assert view.curve("conv1", "grad_norm").opts["pen"].color() == \
        view.curve("conv1_relu", "dead_fraction").opts["pen"].color()
    assert view.curve("conv1", "grad_norm").opts["pen"].color() != view.curve("conv2", "grad_norm").opts["pen"].color()
    legend = view.findChild(type(view._legend), "healthLegend").text()
    assert all(name in legend for name in ("conv1", "conv2", "conv3", "dense1", "dense2"))
    assert view.warnings() == find_warnings(records, order=model.session.model.layer_names())


def test_the_readout_gives_the_figures_of_the_nearest_record(view, model):
    record = model.timeline.stats[1]
    text = view.show_readout("ratioPlot", record["step"] + 0.2)
    assert text.startswith(f"step {record['step']:,} · update / weight: ")
    assert f"conv1 {record['layers']['conv1']['update_ratio']:.2g}" in text


def test_a_dead_layer_is_listed_and_a_click_on_it_seeks_and_selects_the_layer(view, model, qtbot):
    last = model.timeline.stats[-1]["step"]
    model.timeline.stats.extend(healthy(last + i, dead=0.1 if i < 3 else 0.9) for i in range(1, 8))
    model.changed.emit()
    qtbot.waitUntil(lambda: any(w.kind == "dead" and w.start_step == last + 3 for w in view.warnings()))
    dead = next(w for w in view.warnings() if w.kind == "dead" and w.start_step == last + 3)
    assert dead.layer == "conv1" and "conv1_relu" in dead.text
    listed = view.warning_list()
    item = next(listed.item(i) for i in range(listed.count()) if listed.item(i).text() == dead.text)
    assert not item.icon().isNull() and "dead ReLU" in item.toolTip()
    model.go_live()
    with qtbot.waitSignal(view.layer_selected) as selected, qtbot.waitSignal(model.shown_step_changed) as shown:
        qtbot.mouseClick(listed.viewport(), Qt.MouseButton.LeftButton, pos=listed.visualItemRect(item).center())
    assert selected.args == ["conv1"]
    assert shown.args == [model.timeline.nearest_keyframe(last + 3)] and not model.live
    assert all(line.isVisible() and line.value() == shown.args[0] for line in view.lines)


def test_a_healthy_run_lists_no_problem(view, model, qtbot):
    model.timeline.stats = [healthy(step) for step in range(2, 30, 3)]
    model.changed.emit()
    qtbot.waitUntil(lambda: view.warning_list().count() == 1 and view.warnings() == [])
    item = view.warning_list().item(0)
    assert item.text().startswith("No problems found") and not item.flags() & Qt.ItemFlag.ItemIsSelectable
    assert set(view._curves) == {(m, f) for m in ("conv1", "dense1") for f in ("grad_norm", "update_ratio")} | \
        {("conv1_relu", "dead_fraction")}  # the recorded run's curves are gone


def test_the_line_follows_the_step_on_show(view, model):
    assert not any(line.isVisible() for line in view.lines)
    shown = model.seek(20)
    assert all(line.isVisible() and line.value() == shown for line in view.lines)
    model.go_live()
    assert not any(line.isVisible() for line in view.lines)


def test_a_click_on_a_plot_seeks(view, model, qtbot):
    plot = view.plots["gradientPlot"]
    box = plot.getPlotItem().getViewBox()
    from PySide6.QtCore import QPointF

    pos = plot.mapFromScene(box.mapViewToScene(QPointF(12.2, box.viewRange()[1][0] + 0.5)))
    with qtbot.waitSignal(model.shown_step_changed) as shown:
        qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert shown.args == [model.timeline.nearest_keyframe(12)]


def test_empty_states_and_redraws_only_while_shown(qtbot, session, model, tmp_path):
    from cnnviz.cli import main

    empty = TimelineModel(session)
    w = HealthView(session, empty)
    qtbot.addWidget(w)
    w.show()
    assert w.empty_message() == NO_STATS
    plain = tmp_path / "plain"
    assert main(["train", "--preset", "gorner", "--subset", "100", "--max-steps", "1", "--no-timeline",
                 "--out", str(plain), "--json"]) == 0
    empty.set_folder(plain)
    qtbot.waitUntil(lambda: w.empty_message() == NO_TIMELINE)
    w.hide()
    empty.set_folder(model.folder)  # a run with statistics, while hidden: nothing is drawn
    qtbot.wait(300)
    assert w.empty_message() == NO_TIMELINE and w.curve("conv1", "grad_norm") is None
    w.show()
    qtbot.waitUntil(lambda: w.empty_message() is None and w.curve("conv1", "grad_norm") is not None)


def test_a_figure_missing_from_a_record_is_bridged_and_one_not_finite_breaks_the_curve(view, model, qtbot):
    model.timeline.stats = [healthy(2), healthy(4), {"step": 6, "layers": {"conv1": {"grad_norm": 0.0}}},
                            {"step": 8, "layers": {"conv1": {"grad_norm": None}, "conv1_relu": {"dead_fraction": 0.2}}},
                            healthy(10)]
    model.changed.emit()
    qtbot.waitUntil(lambda: view.curve("conv1_relu", "dead_fraction") is not None
                    and len(view.curve("conv1_relu", "dead_fraction").getOriginalDataset()[0]) == 4)
    x, y = view.curve("conv1_relu", "dead_fraction").getOriginalDataset()
    assert list(x) == [2, 4, 8, 10] and list(y) == [0.1, 0.1, 0.2, 0.1]  # step 6 did not take it
    x, y = view.curve("conv1", "grad_norm").getOriginalDataset()
    assert list(x) == [2, 4, 6, 8, 10] and math.isnan(y[3])
    assert y[2] == pytest.approx(0.01)  # 0 on a log axis: a decade under the plot's smallest value, 0.1
    assert view.show_readout("gradientPlot", 8) == "step 8 · gradient norm: conv1 not finite"
    assert [w.kind for w in view.warnings()] == ["vanishing", "exploding"]


def test_damaged_records_are_skipped(view, model, qtbot):
    last = model.timeline.stats[-1]["step"]
    model.timeline.stats.extend([{"t": "stats", "step": None, "layers": {"conv1": {"grad_norm": 1e9}}},
                                 {"t": "stats", "step": last + 1, "layers": {"conv1": "big", 3: {},
                                                                              "conv2": {"grad_norm": "big"}}},
                                 healthy(last + 2)])
    model.changed.emit()
    qtbot.waitUntil(lambda: view.curve("conv1", "grad_norm").getOriginalDataset()[0][-1] == last + 2)
    assert not any(w.kind == "exploding" and w.start_step > last for w in view.warnings())


def test_a_long_run_is_drawn_in_about_the_plot_s_width_of_points_keeping_a_spike(view, model, qtbot):
    records = [healthy(step) for step in range(1, 9001)]
    records[4321]["layers"]["conv1"]["grad_norm"] = 50.0
    model.timeline.stats = records
    model.changed.emit()
    qtbot.waitUntil(lambda: len(view.curve("conv1", "grad_norm").getOriginalDataset()[0]) == 9000)
    x, y = view.curve("conv1", "grad_norm").getData()
    assert len(x) <= 2 * (9000 // (9000 // MAX_POINTS)) + 2 < 9000
    assert np.nanmax(y) == pytest.approx(math.log10(50.0))  # (the display data of a log axis is log10)
