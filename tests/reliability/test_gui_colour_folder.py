"""A folder of colour images opened in the window, as a user does: the model takes 3 channels, trains in the
training process, and the views show colour (with the drawing's note)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.gui.test_draw_panel import SEVEN, _draw
from tests.reliability.conftest import short_run
from tests.reliability.test_gui_image_sizes import _open_folder

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


def _colour_folder(root):
    """train/ and test/ with classes "red" and "blue", 20 x 24 images (a few 40 x 48, and one gray JPEG)."""
    rng = np.random.default_rng(1)
    for split, n in (("train", 30), ("test", 8)):
        for c, name in enumerate(("blue", "red")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                size = (40, 48) if i % 7 == 0 else (20, 24)
                pixels = rng.integers(0, 50, (*size, 3), dtype=np.uint8)
                pixels[..., 0 if name == "red" else 2] += 180
                Image.fromarray(pixels).save(root / split / name / f"{i:02d}.png")
    Image.fromarray(np.full((20, 24), 90, np.uint8)).save(root / "train" / "red" / "gray.jpg")
    return root


def test_a_colour_folder_trains_in_the_window_and_shows_in_colour(make_window, qtbot, tmp_path, monkeypatch):
    window = make_window()
    window.resize(1400, 900)
    window.show()
    formats = []
    window.loader.progress.connect(lambda *args: formats.append(window.controls.progress.format()))
    _open_folder(window, monkeypatch, qtbot, _colour_folder(tmp_path / "colours"))
    assert formats and formats[-1] == "reading images 100%"
    s = window.session
    assert s.spec.input_shape == (3, 20, 24) and s.data.test.raw.shape[1:] == (20, 24, 3)
    assert s.data.class_names == ("blue", "red") and len(s.data.train) == 61
    assert window.controls.train_button.isEnabled() and window.data_problem == ""
    short_run(window, train__epochs=1, train__max_steps=3, train__batch_size=10)
    window.train()
    qtbot.waitUntil(lambda: window.trainer_state() == "finished", timeout=120000)
    qtbot.waitUntil(lambda: not window.controller.active, timeout=30000)
    assert len(s.history.step_loss) == 3 and not (window.banner.isVisible() and window.banner.level == "error")
    window.docks["draw"].raise_()
    _draw(window.draw.canvas, SEVEN)
    qtbot.waitUntil(lambda: window.draw.probabilities() != [], timeout=5000)
    assert window.draw.colour_note.isVisibleTo(window.draw) and sum(window.draw.probabilities()) == pytest.approx(1.0)
    window.docks["filters"].raise_()
    qtbot.waitUntil(lambda: window.filters.layer_names() != [], timeout=5000)
    first = window.filters.layer_names()[0]
    assert window.filters.canvas_for(first).displayed_image().shape[2] == 4
    assert window.filters._panels[first].note.text().startswith("RGB:")
