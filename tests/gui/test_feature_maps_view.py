"""FeatureMapsView: one mosaic per layer of the selected input, the input picker, click-to-enlarge."""
import numpy as np
import pytest
from PySide6.QtCore import Qt

from cnnviz.gui.session import InputImage
from cnnviz.gui.widgets.feature_maps_view import FeatureMapsView
from cnnviz.inspect.activations import feature_maps
from cnnviz.inspect.mosaic import activation_mosaic


@pytest.fixture
def view(qtbot, session):
    w = FeatureMapsView(session)
    qtbot.addWidget(w)
    w.resize(700, 500)
    w.show()
    qtbot.waitUntil(lambda: w.refresh_count > 0)
    return w


def expected(session):
    """What the engine computes for the session's selected input."""
    return feature_maps(session.model, session.to_tensor(session.selected_input.pixels))


def test_one_title_per_layer_with_its_output_shape(view, session):
    acts = expected(session)
    assert view.layer_titles() == [f"{a.name}  {' x '.join(map(str, a.shape))}" for a in acts]
    assert "conv2_relu  8 x 14 x 14" in view.layer_titles()
    assert "dense1  200" in view.layer_titles()
    for a in acts:
        np.testing.assert_array_equal(view.mosaic_for(a.name), activation_mosaic(a).image)


def test_trained_weights_change_the_maps_to_what_the_engine_computes(view, session, trained_snapshot, qtbot):
    before = view.mosaic_for("conv2_relu").copy()
    count = view.refresh_count
    session.apply_snapshot(trained_snapshot)
    qtbot.waitUntil(lambda: view.refresh_count > count)
    after = view.mosaic_for("conv2_relu")
    assert not np.array_equal(before, after)
    for a in expected(session):
        np.testing.assert_array_equal(view.mosaic_for(a.name), activation_mosaic(a).image)


def test_layers_reuse_their_image_items_when_the_layout_is_unchanged(view, session, trained_snapshot, qtbot):
    items = [view.canvas_for(n).image_item for n in ("conv1", "dense2")]
    count = view.refresh_count
    session.apply_snapshot(trained_snapshot)
    qtbot.waitUntil(lambda: view.refresh_count > count)
    assert [view.canvas_for(n).image_item for n in ("conv1", "dense2")] == items


def test_changing_the_test_index_changes_the_input_and_the_maps(view, session, qtbot):
    before = view.mosaic_for("input").copy()
    count = view.refresh_count
    view._spin.setValue(5)
    assert session.selected_input.index == 5
    assert session.selected_input.source == "test"
    qtbot.waitUntil(lambda: view.refresh_count > count)
    assert not np.array_equal(before, view.mosaic_for("input"))
    assert view._input_label.text() == session.selected_input.label
    count = view.refresh_count
    qtbot.mouseClick(view._next, Qt.MouseButton.LeftButton)
    assert session.selected_input.index == 6
    qtbot.waitUntil(lambda: view.refresh_count > count)
    for a in expected(session):
        np.testing.assert_array_equal(view.mosaic_for(a.name), activation_mosaic(a).image)


def test_selecting_an_image_elsewhere_moves_the_spin_box(view, session, qtbot):
    session.select_test_image(17)
    qtbot.waitUntil(lambda: view._spin.value() == 17)
    assert session.selected_input.index == 17  # syncing the spin box does not select again


def test_a_drawing_is_labelled_as_such(view, session, qtbot):
    pixels = np.zeros((28, 28), np.float32)
    pixels[8:20, 13:15] = 1.0
    count = view.refresh_count
    session.select_input(InputImage(pixels, "drawing", "drawing"))
    qtbot.waitUntil(lambda: view.refresh_count > count)
    assert "drawing" in view._input_note.text()
    np.testing.assert_array_equal(view.mosaic_for("input"), activation_mosaic(expected(session)[0]).image)


def test_inputs_faster_than_the_view_draws_are_coalesced(view, session, qtbot):
    pixels = np.zeros((28, 28), np.float32)
    count = view.refresh_count
    session.select_input(InputImage(pixels, "drawing", "drawing"))
    qtbot.waitUntil(lambda: view.refresh_count == count + 1)  # a cheap refresh: the next one comes at once
    view._last_refresh_cost = 0.3  # as if the model took 300 ms to draw
    for k in range(5):  # a pen moving at 60 Hz
        pixels = pixels.copy()
        pixels[10 + k, 10:18] = 1.0
        session.select_input(InputImage(pixels, "drawing", "drawing"))
    qtbot.wait(100)
    assert view.refresh_count == count + 1  # waited as long as the last refresh took ...
    qtbot.waitUntil(lambda: view.refresh_count == count + 2, timeout=2000)  # ... then drew the latest once
    qtbot.wait(50)
    assert view.refresh_count == count + 2
    np.testing.assert_array_equal(view.mosaic_for("input"), activation_mosaic(expected(session)[0]).image)


def test_no_work_while_hidden_and_catch_up_on_show(view, session, trained_snapshot, qtbot):
    view.hide()
    count = view.refresh_count
    session.apply_snapshot(trained_snapshot)
    session.select_test_image(3)
    qtbot.wait(50)  # let any timer that was wrongly started fire
    assert view.refresh_count == count
    view.show()
    qtbot.waitUntil(lambda: view.refresh_count == count + 1)
    for a in expected(session):
        np.testing.assert_array_equal(view.mosaic_for(a.name), activation_mosaic(a).image)


def test_weight_updates_are_coalesced(view, session, trained_snapshot, qtbot):
    count = view.refresh_count
    for _ in range(5):
        session.apply_snapshot(trained_snapshot)
    qtbot.waitUntil(lambda: view.refresh_count > count)
    qtbot.wait(150)
    assert view.refresh_count == count + 1


def test_clicking_a_map_enlarges_that_channel(view, session, qtbot):
    canvas = view.canvas_for("conv2_relu")
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.tile_center(5))
    assert view.selected_map() == ("conv2_relu", 5)
    mosaic = activation_mosaic(expected(session)[4])
    top, left, h, w = mosaic.tile_rect(5)
    np.testing.assert_array_equal(view.detail_image(), mosaic.image[top:top + h, left:left + w])
    values = expected(session)[4].values[5]
    assert f"max {values.max():.4g}" in view._detail_info.text()


def test_clicking_padding_selects_nothing(view, qtbot):
    canvas = view.canvas_for("conv2_relu")
    top, left, h, w = canvas.mosaic.tile_rect(0)
    # Just right of tile 0: the one-pixel gap between tiles.
    gap = canvas.mapFromScene(canvas.image_item.mapToScene(left + w + 0.5, top + h / 2))
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=gap)
    assert view.selected_map() is None


def test_dense_units_can_be_enlarged_too(view, session):
    view.select_map("dense2", 3)
    logits = expected(session)[-1].values
    assert view.selected_map() == ("dense2", 3)
    assert f"value {logits[3]:.4g}" in view._detail_info.text()


def test_a_new_model_rebuilds_the_layers(view, session, qtbot):
    from cnnviz.presets import get_preset

    count = view.refresh_count
    session.set_spec(get_preset("cntk-pool").spec)
    qtbot.waitUntil(lambda: view.refresh_count > count)
    assert view.layer_titles() == [f"{a.name}  {' x '.join(map(str, a.shape))}" for a in expected(session)]


def test_export_png_writes_a_picture(view, tmp_path):
    path = tmp_path / "maps.png"
    view.export_png(str(path))
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_long_layer_note_ends_in_an_ellipsis_with_the_whole_text_in_its_tooltip(qtbot):
    from cnnviz.gui.widgets.mosaic_canvas import ElidedLabel

    label = ElidedLabel("values -0.758 to 1.21  (blue < 0 < red)")
    qtbot.addWidget(label)
    label.resize(80, 20)
    label.show()
    assert label.text() == "values -0.758 to 1.21  (blue < 0 < red)"  # the whole text for the program
    assert label.toolTip() == label.text()
    label.resize(800, 20)
    assert label.toolTip() == ""  # it fits
