"""Colour data in the window: RGB first-layer filters, the input in colour and per channel, colour thumbnails,
the drawing on a colour model (gray copied into 3 channels, with a note), and the dataset choices."""
import numpy as np
import pytest
import torch

from cnnviz.config import DataConfig
from cnnviz.data.prepare import prepare
from cnnviz.data.sources import RawDataset
from cnnviz.inspect.filters import rgb_filter_mosaic
from cnnviz.models import spec_for_data
from cnnviz.presets import get_preset


@pytest.fixture(scope="module")
def colour_data():
    """20 train / 10 test RGB images of 16 x 16: red ones (class 0) and blue ones (class 1)."""
    rng = np.random.default_rng(0)

    def images(n):
        out = rng.integers(0, 40, (n, 16, 16, 3), dtype=np.uint8)
        out[0::2, :, :, 0] = 220  # even: red
        out[1::2, :, :, 2] = 220  # odd: blue
        return out, (np.arange(n) % 2).astype(np.int64)

    (tx, ty), (vx, vy) = images(20), images(10)
    raw = RawDataset("colours", tx, ty, vx, vy, ("red", "blue"))
    return prepare(raw, DataConfig(validation="none"))


@pytest.fixture
def colour_session(qtbot, colour_data):
    from cnnviz.gui.session import Session

    preset = get_preset("convnetjs-cifar")
    s = Session(spec_for_data(preset.spec, colour_data), preset.recipe)
    s.set_data(colour_data)
    return s


def test_the_first_layer_of_a_colour_model_is_drawn_in_rgb(qtbot, colour_session):
    from cnnviz.gui.widgets.filters_view import FiltersView

    conv1 = colour_session.model.layers.conv1
    with torch.no_grad():
        conv1.weight.zero_()
        conv1.weight[0, 0] = 0.5  # filter 0 looks for red only
        conv1.weight[1, 2] = -0.5  # filter 1 looks against blue
    view = FiltersView(colour_session)
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    qtbot.waitUntil(lambda: len(view.layer_names()) == 3)
    view._refresh(force=True)
    canvas = view.canvas_for("conv1")
    shown = canvas.displayed_image()
    mosaic, rgb = rgb_filter_mosaic(conv1.weight.detach().numpy())
    assert shown.shape == rgb.shape[:2] + (4,)
    top, left, _, _ = mosaic.tile_rect(0)
    assert shown[top + 2, left + 2, :3].tolist() == [255, 128, 128]  # red on, green and blue at zero
    top, left, _, _ = mosaic.tile_rect(1)
    assert shown[top + 2, left + 2, :3].tolist() == [128, 128, 0]  # blue fully negative
    top, left, _, _ = mosaic.tile_rect(2)
    assert shown[top + 2, left + 2, :3].tolist() == [128, 128, 128]  # all zero: grey
    top, left, _, width = mosaic.tile_rect(0)
    assert shown[top, left + width, :3].tolist() == [24, 24, 24]  # the padding is dark, not the grey of 0
    assert view._panels["conv1"].note.text().startswith("RGB: weights on red, green, blue")
    # deeper layers keep the diverging map; a click on a colour filter shows its three channels
    assert view.canvas_for("conv2").mosaic.image.shape != (0,)
    view.select_filter("conv1", 0)
    assert view.detail_image().shape[0] > 0 and view.selected_filter() == ("conv1", 0)


def test_rgb_filter_mosaic_known_values():
    w = np.zeros((2, 3, 3, 3), np.float32)
    w[0, 1] = 2.0  # green
    w[1, 0, 1, 1] = -1.0
    mosaic, rgb = rgb_filter_mosaic(w)
    assert mosaic.count == 2 and mosaic.scale == 2.0 and rgb.shape[2] == 3
    assert rgb[0, 0].tolist() == [0.5, 1.0, 0.5]
    top, left, _, _ = mosaic.tile_rect(1)
    assert rgb[top + 1, left + 1].tolist() == [0.25, 0.5, 0.5]
    assert mosaic.tile_at(top + 1, left + 1) == 1


def test_the_feature_maps_show_the_input_in_colour_and_per_channel(qtbot, colour_session):
    from cnnviz.gui.widgets.feature_maps_view import FeatureMapsView

    view = FeatureMapsView(colour_session)
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    qtbot.waitUntil(lambda: len(view.layer_titles()) > 0)
    assert view.layer_titles()[0] == "input  3 x 16 x 16  (red, green, blue)"
    red_input = view.mosaic_for("input")
    assert red_input.shape[1] > 16  # three maps side by side (or stacked)
    thumb = view._thumb.pixmap().toImage()
    colour = thumb.pixelColor(thumb.width() // 2, thumb.height() // 2)
    assert colour.red() > 200 and colour.blue() < 60  # test image 0 is red


def test_gallery_thumbnails_are_in_colour():
    from cnnviz.gui.widgets.image_gallery import thumbnail

    pixels = np.zeros((4, 5, 3), np.uint8)
    pixels[..., 1] = 200
    image = thumbnail(pixels, 3).toImage()
    assert (image.width(), image.height()) == (15, 12)
    assert (image.pixelColor(7, 6).red(), image.pixelColor(7, 6).green()) == (0, 200)


def test_drawing_on_a_colour_model_is_copied_to_three_channels_with_a_note(qtbot, colour_session):
    from cnnviz.gui.widgets.draw_panel import DrawPanel
    from tests.gui.test_draw_panel import SEVEN, _draw

    panel = DrawPanel(colour_session)
    qtbot.addWidget(panel)
    panel.resize(700, 500)
    panel.show()
    _draw(panel.canvas, SEVEN)
    qtbot.waitUntil(lambda: len(panel.probabilities()) == 2)
    assert panel.colour_note.isVisible() and "copied into the red, green and blue channels" in panel.colour_note.text()
    assert sum(panel.probabilities()) == pytest.approx(1.0, abs=1e-5)
    x = colour_session.to_tensor(panel.mnist_input())
    assert tuple(x.shape) == (1, 3, 16, 16) and torch.equal(x[0, 0], x[0, 2])


def test_the_dataset_choices_offer_cifar_and_any_data_folder(qtbot, session):
    from PySide6.QtWidgets import QComboBox

    from cnnviz.gui.widgets.experiment_panel import ExperimentPanel

    panel = ExperimentPanel(session)
    qtbot.addWidget(panel)
    combo = panel.findChild(QComboBox, "datasetCombo")
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert "CIFAR-10 (colour, download, 170 MB)" in texts and texts[-1] == "Open data folder…"
    assert "class" in combo.toolTip()
