"""FiltersView: one diverging mosaic per conv layer, per-epoch filter change, click-to-enlarge."""
import numpy as np
import pytest
from PySide6.QtCore import Qt

from cnnviz.gui.widgets.filters_view import FiltersView
from cnnviz.inspect.filters import conv_weights, filter_change, filter_mosaic
from cnnviz.presets import get_preset
from cnnviz.training.messages import EpochMetrics


@pytest.fixture
def view(qtbot, session):
    w = FiltersView(session)
    qtbot.addWidget(w)
    w.resize(700, 500)
    w.show()
    qtbot.waitUntil(lambda: len(w.layer_names()) > 0)
    return w


def epoch(n):
    return EpochMetrics(n, 0.5, 0.8, None, None, 0.003, 1.0, 100.0)


def test_one_mosaic_per_conv_layer_as_the_engine_lays_it_out(view, session):
    layers = conv_weights(session.model)
    assert view.layer_names() == [name for name, _ in layers] == ["conv1", "conv2", "conv3"]
    titles = [p.title.text() for p in view._stack.panels]
    assert titles == ["conv1  4 x 1 x 5 x 5", "conv2  8 x 4 x 5 x 5", "conv3  12 x 8 x 4 x 4"]
    for name, w in layers:
        np.testing.assert_array_equal(view.mosaic_for(name), filter_mosaic(w).image)
    # Displayed crisply: the canvas is a whole multiple of the mosaic's size.
    canvas = view.canvas_for("conv1")
    h, w = view.mosaic_for("conv1").shape
    assert canvas.zoom >= 4 and (canvas.width(), canvas.height()) == (w * canvas.zoom, h * canvas.zoom)


def test_trained_weights_change_the_mosaics(view, session, trained_snapshot, qtbot):
    before = view.mosaic_for("conv2").copy()
    session.apply_snapshot(trained_snapshot)
    qtbot.waitUntil(lambda: not np.array_equal(view.mosaic_for("conv2"), before))
    for name, w in conv_weights(session.model):
        np.testing.assert_array_equal(view.mosaic_for(name), filter_mosaic(w).image)


def test_clicking_a_filter_enlarges_it_with_its_numbers(view, session, qtbot):
    canvas = view.canvas_for("conv1")
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.tile_center(2))
    assert view.selected_filter() == ("conv1", 2)
    w = dict(conv_weights(session.model))["conv1"]
    scale = float(np.abs(w).max())
    np.testing.assert_array_equal(view.detail_image(), filter_mosaic(w, out_channel=2, scale=scale).image)
    table = view._table
    assert not table.isHidden() and (table.rowCount(), table.columnCount()) == (5, 5)
    assert table.item(1, 3).text() == f"{w[2, 0, 1, 3]:+.2f}"


def test_deeper_filters_show_their_in_channel_kernels(view, session, qtbot):
    view.select_filter("conv2", 6)
    w = dict(conv_weights(session.model))["conv2"]
    scale = float(np.abs(w).max())
    np.testing.assert_array_equal(view.detail_image(), filter_mosaic(w, out_channel=6, scale=scale).image)
    detail = view._detail_canvas
    qtbot.mouseClick(detail.viewport(), Qt.MouseButton.LeftButton, pos=detail.tile_center(3))
    assert view._table.item(0, 0).text() == f"{w[6, 3, 0, 0]:+.2f}"  # numbers of input channel 3


def test_changes_appear_after_epochs_with_different_weights(view, session, trained_snapshot, qtbot):
    assert view.changes_for("conv1") is None
    assert "after the first epoch" in view._panels["conv1"].extra._text
    start = dict(conv_weights(session.model))
    session.add_epoch(epoch(1))  # weights unchanged since the start: zero change
    np.testing.assert_array_equal(view.changes_for("conv1"), np.zeros(4))
    session.apply_snapshot(trained_snapshot)
    session.add_epoch(epoch(2))
    now = dict(conv_weights(session.model))
    for name in view.layer_names():
        expected = filter_change(start[name], now[name])
        np.testing.assert_allclose(view.changes_for(name), expected)
        assert (expected > 0).all()
    qtbot.waitUntil(lambda: view._panels["conv2"].extra._values is not None)
    np.testing.assert_allclose(view._panels["conv2"].extra._values, view.changes_for("conv2"))
    assert "epoch 2" in view._panels["conv2"].extra._text


def test_an_opened_trained_run_waits_for_the_next_epoch(view, session, trained_snapshot, qtbot):
    session.apply_snapshot(trained_snapshot)
    session.reset_history()  # as when a saved run is opened: its last epoch's weights are unknown
    session.add_epoch(epoch(1))
    assert view.changes_for("conv1") is None
    qtbot.waitUntil(lambda: "next epoch" in view._panels["conv1"].extra._text)


def test_a_dense_model_shows_a_message_instead(view, session, qtbot):
    session.set_spec(get_preset("dense-baseline").spec)
    qtbot.waitUntil(lambda: view.empty_message() is not None)
    assert view.layer_names() == []
    assert "no convolution layers" in view.empty_message()


def test_a_new_spec_rebuilds_the_layers(view, session, qtbot):
    session.set_spec(get_preset("keras-deep").spec)
    qtbot.waitUntil(lambda: view.layer_names() == ["conv1", "conv2", "conv3", "conv4"])
    assert view.empty_message() is None
    assert view.mosaic_for("conv4").shape == filter_mosaic(dict(conv_weights(session.model))["conv4"]).image.shape


def test_no_work_while_hidden(view, session, trained_snapshot, qtbot):
    before = view.mosaic_for("conv1").copy()
    view.hide()
    session.apply_snapshot(trained_snapshot)
    qtbot.wait(250)  # longer than the throttle: a wrongly started timer would have fired
    np.testing.assert_array_equal(view.mosaic_for("conv1"), before)
    view.show()
    trained = filter_mosaic(dict(conv_weights(session.model))["conv1"]).image
    qtbot.waitUntil(lambda: np.array_equal(view.mosaic_for("conv1"), trained))


def test_export_png_writes_a_picture(view, tmp_path):
    path = tmp_path / "filters.png"
    view.export_png(str(path))
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_select_layer_scrolls_to_it_and_marks_its_title(qtbot, session):
    w = FiltersView(session)
    qtbot.addWidget(w)
    w.resize(700, 300)  # too short for the three layers: the stack scrolls
    w.show()
    qtbot.waitUntil(lambda: len(w.layer_names()) == 3)
    bar = w._stack.verticalScrollBar()
    assert bar.maximum() > 0 and bar.value() == 0
    assert w.select_layer("conv3")
    panels = dict(zip(w.layer_names(), w._stack.panels))
    assert bar.value() == min(bar.maximum(), panels["conv3"].y()) > 0
    assert "highlight" in panels["conv3"].title.styleSheet() and panels["conv1"].title.styleSheet() == ""
    assert w.select_layer("conv1") and bar.value() == panels["conv1"].y()
    assert panels["conv3"].title.styleSheet() == ""
    assert not w.select_layer("dense1") and not w.select_layer("nothing")  # no filters to show
