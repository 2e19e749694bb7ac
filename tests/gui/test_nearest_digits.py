"""Nearest training digits in the draw panel: 8 labelled thumbnails after drawing, the true nearest ones."""
import numpy as np
import pytest

from cnnviz.gui.widgets.draw_panel import DrawPanel
from cnnviz.gui.widgets.nearest_digits import BANK_POINTS
from cnnviz.inspect.embedding import embed
from cnnviz.inspect.projection import subset_indices
from tests.gui.test_draw_panel import SEVEN, _draw


@pytest.fixture
def panel(qtbot, session, trained_snapshot):
    session.apply_snapshot(trained_snapshot)
    w = DrawPanel(session)
    qtbot.addWidget(w)
    w.resize(700, 700)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


def test_nearest_row_shows_eight_labelled_training_digits_after_drawing(qtbot, panel, session):
    assert panel.nearest.wait()
    qtbot.waitUntil(panel.nearest.bank_ready, timeout=10000)
    embedded = []
    panel.drawing_embedded.connect(embedded.append)
    _draw(panel.canvas, SEVEN)
    qtbot.waitUntil(lambda: len(panel.nearest.shown()) == 8, timeout=5000)
    shown = panel.nearest.shown()
    labels = panel.nearest.labels()
    names = session.data.class_names
    assert labels == [names[int(session.data.train.labels[i])] for i in shown]
    # the very nearest, by brute force over the same subset with the same weights
    idx = subset_indices(len(session.data.train), BANK_POINTS)
    bank = embed(session.model, session.data.train.images[idx])
    query = embed(session.model, session.to_tensor(panel.mnist_input()))[0]
    brute = idx[np.argsort(np.linalg.norm(bank - query, axis=1), kind="stable")[:8]]
    assert shown == [int(i) for i in brute]
    assert embedded and embedded[-1] is not None and np.allclose(embedded[-1], query, atol=1e-4)
    panel.canvas.clear()
    qtbot.waitUntil(lambda: panel.nearest.shown() == [], timeout=2000)
    assert embedded[-1] is None


def test_nearest_bank_follows_new_weights(qtbot, panel, session, trained_snapshot):
    assert panel.nearest.wait()
    qtbot.waitUntil(panel.nearest.bank_ready, timeout=10000)
    session.reset_weights()  # another model: the old bank is dropped and recomputed
    assert not panel.nearest.bank_ready()
    qtbot.waitUntil(panel.nearest.bank_ready, timeout=10000)


def test_the_bank_waits_ten_times_its_own_embedding_time(qtbot, panel, monkeypatch):
    """The bank's thread shares the cores with the GUI and training: a slow bank is recomputed less often."""
    from cnnviz.gui.widgets import nearest_digits

    assert panel.nearest.wait()
    qtbot.waitUntil(panel.nearest.bank_ready, timeout=10000)
    throttle = panel.nearest._throttle
    assert throttle._timer.interval() >= nearest_digits._BANK_MS
    bank = panel.nearest._bank
    panel.nearest._on_bank((3, bank, np.einsum("ij,ij->i", bank, bank), 1.5))  # as if it had taken 1.5 s
    assert throttle._timer.interval() == 15000


def test_the_cached_search_answers_as_the_shared_nearest():
    from cnnviz.gui.widgets.nearest_digits import search
    from cnnviz.inspect.embedding import nearest

    rng = np.random.default_rng(0)
    bank = rng.normal(size=(500, 16)).astype(np.float32)
    squared = np.einsum("ij,ij->i", bank, bank)
    for q in (bank[3], rng.normal(size=16)):
        rows, distances = search(bank, squared, q, 8)
        expected = nearest(bank, q, 8)
        assert list(rows) == list(expected.indices)
        assert np.allclose(distances, expected.distances, atol=1e-3)


def test_clicking_a_nearest_digit_shows_it_in_the_feature_maps(qtbot, panel, session):
    from PySide6.QtCore import Qt

    assert panel.nearest.wait()
    qtbot.waitUntil(panel.nearest.bank_ready, timeout=10000)
    _draw(panel.canvas, SEVEN)
    qtbot.waitUntil(lambda: len(panel.nearest.shown()) == 8, timeout=5000)
    second = panel.nearest.shown()[1]
    qtbot.mouseClick(panel.nearest._images[1], Qt.MouseButton.LeftButton)
    chosen = session.selected_input
    assert chosen.source == "train" and chosen.index == second and f"training #{second}" in chosen.label
    np.testing.assert_allclose(chosen.pixels, session.data.train.raw[second] / 255.0, atol=1e-6)
    session.set_data(session.data)  # other data: back to a test image, as for a test input
    assert session.selected_input.source == "test"
