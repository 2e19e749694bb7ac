"""The convolution playground: kernels, stride, padding, pooling, the size formula and bad input."""
import numpy as np
import pytest

from cnnviz.errors import ConfigError
from cnnviz.gui.session import InputImage
from cnnviz.gui.widgets.conv_playground import KERNELS, ConvPlayground


@pytest.fixture
def playground(qtbot, session):
    w = ConvPlayground(session)
    qtbot.addWidget(w)
    w.resize(800, 560)
    w.show()
    qtbot.waitExposed(w)
    return w


def _image(session, index=0):
    return session.data.test.raw[index].astype(np.float32) / 255.0


def _reference(image, kernel, stride=1, padding=0):
    """Cross-correlation the slow, obvious way (what a CNN layer computes)."""
    x = np.pad(image.astype(np.float64), padding)
    k = np.asarray(kernel, np.float64)
    n = (x.shape[0] - k.shape[0]) // stride + 1
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = (x[i * stride:i * stride + k.shape[0], j * stride:j * stride + k.shape[1]] * k).sum()
    return out


def test_identity_kernel_returns_the_input(playground, session):
    playground.set_test_index(5)
    playground.set_kernel("identity")
    playground.set_padding(1)
    playground.set_stride(1)
    assert np.allclose(playground.output(), _image(session, 5))


def test_sobel_x_matches_a_numpy_reference(playground, session):
    playground.set_kernel("Sobel x")
    playground.set_padding(1)
    out = playground.output()
    assert out.shape == (28, 28)
    assert np.allclose(out, _reference(_image(session), KERNELS["Sobel x"], 1, 1), atol=1e-5)
    assert out.min() < 0 < out.max()  # edges of both signs


def test_formula_worked_out_for_stride_2_padding_1(playground):
    playground.set_kernel("Sobel y")
    playground.set_padding(1)
    playground.set_stride(2)
    text = playground.formula_text()
    assert text.startswith("O = (W + 2P - F) / S + 1 = (28 + 2*1 - 3) / 2 + 1 = 14")
    assert playground.output().shape == (14, 14)
    assert "14" in playground.formula_label.text()


def test_impossible_shape_shows_a_message(playground, session):
    session.select_input(InputImage(np.ones((4, 4), np.float32), "tiny", "file"))
    playground.set_source("Selected input")
    playground.set_kernel("Gaussian blur 5x5")
    playground.set_padding(0)
    assert playground.output().shape == (0, 0)
    assert playground.formula_text().endswith("= 0")
    assert "Impossible" in playground.message_text() and "5 × 5" in playground.message_text()
    playground.set_padding(1)  # 4 + 2 - 5 = 1: now it fits
    assert playground.output().shape == (2, 2) and playground.message_text() == ""


def test_max_and_average_pooling(playground, session):
    playground.set_operation("Max pooling")
    playground.set_pool_size(2)
    playground.set_stride(2)
    playground.set_padding(0)
    out = playground.output()
    img = _image(session)
    assert out.shape == (14, 14)
    assert np.allclose(out, img.reshape(14, 2, 14, 2).max(axis=(1, 3)))
    assert "(28 + 2*0 - 2) / 2 + 1 = 14" in playground.formula_text()
    playground.set_operation("average pooling")
    assert np.allclose(playground.output(), img.reshape(14, 2, 14, 2).mean(axis=(1, 3)), atol=1e-6)
    playground.set_pool_size(3)
    playground.set_stride(3)
    assert playground.output().shape == (9, 9)
    assert "rounded down" in playground.formula_text()


def test_editing_the_kernel_table_updates_the_output(playground, session):
    playground.set_kernel("identity")
    playground.set_padding(1)
    before = playground.output()
    playground.kernel_table.item(1, 1).setText("2")
    assert playground.kernel_combo.currentText() == "Custom"
    assert np.allclose(playground.output(), 2 * before)
    playground.kernel_table.item(0, 0).setText("1/4")  # fractions are accepted
    assert playground.kernel()[0, 0] == pytest.approx(0.25)
    good = playground.output()
    playground.kernel_table.item(2, 2).setText("abc")  # rejected with a message, not an exception
    assert "not a number" in playground.message_text()
    assert playground.kernel_table.item(2, 2).text() == "0"
    assert np.allclose(playground.output(), good)


def test_set_custom_kernel(playground, session):
    k = np.arange(25, dtype=np.float32).reshape(5, 5) / 100
    playground.set_custom_kernel(k)
    playground.set_padding(2)
    assert playground.kernel_table.rowCount() == 5
    assert np.allclose(playground.output(), _reference(_image(session), k, 1, 2), atol=1e-5)
    playground.size_combo.setCurrentIndex(0)  # shrink to 3 x 3: the centre is kept
    assert np.allclose(playground.kernel(), k[1:4, 1:4])
    with pytest.raises(ConfigError, match="3 x 3 or 5 x 5"):
        playground.set_custom_kernel(np.ones((4, 4)))
    with pytest.raises(ConfigError, match="unknown kernel"):
        playground.set_kernel("wobble")
    with pytest.raises(ConfigError, match="unknown operation"):
        playground.set_operation("min pooling")


def test_selected_input_follows_the_session(playground, session):
    playground.set_source("Selected input")
    playground.set_kernel("identity")
    playground.set_padding(1)
    drawing = np.zeros((28, 28), np.float32)
    drawing[5:20, 13:15] = 1.0
    session.select_input(InputImage(drawing, "drawing", "drawing"))
    assert np.allclose(playground.output(), drawing)
    session.select_test_image(7)
    assert np.allclose(playground.output(), _image(session, 7))


def test_hidden_playground_catches_up_when_asked(qtbot, playground, session):
    playground.set_source("Selected input")
    playground.set_kernel("identity")
    playground.hide()
    session.select_test_image(3)
    assert playground._dirty  # nothing computed while hidden
    assert np.allclose(playground.output(), _image(session, 3))


def test_hovering_the_output_outlines_its_input_window(qtbot, playground):
    from PySide6.QtCore import QPointF

    playground.set_kernel("Sobel x")
    playground.set_padding(1)
    playground.set_stride(2)
    view = playground._out_vb.scene().views()[0]
    scene_pos = playground._out_vb.mapViewToScene(QPointF(7.5, 5.5))  # centre of output pixel (5, 7)
    qtbot.mouseMove(view.viewport(), view.mapFromScene(scene_pos))
    qtbot.waitUntil(lambda: "row 5, column 7" in playground.hover_label.text(), timeout=1000)
    assert "(row 10, column 14)" in playground.hover_label.text()  # stride 2: the window starts at 2 x (5, 7)
