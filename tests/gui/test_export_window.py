"""`cnnviz export RUN --gif OUT --view window`: the real window, offscreen, at each frame's step."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtWidgets import QApplication

from cnnviz.cli import main
from cnnviz.exports.animation import AnimationOptions, export_animation


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("export-window") / "run"
    assert main(["train", "--preset", "cntk-conv", "--subset", "300", "--epochs", "2", "--out", str(out),
                 "--json"]) == 0
    return out


def test_the_window_view_grabs_the_window_at_each_step_and_closes_it(qtbot, run, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path / "appdata"))
    out = tmp_path / "window.gif"
    before = set(QApplication.topLevelWidgets())
    result = export_animation(AnimationOptions(run=str(run), out=str(out), view="window", size=(640, 400),
                                               frames=3))
    assert result.frames == 3
    with Image.open(out) as im:
        assert im.n_frames == 3 and im.size == (640, 400)
        frames = []
        for i in range(3):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
    top = frames[0][:60]  # the caption
    assert not np.array_equal(top, frames[-1][:60])
    body = [f[80:] for f in frames]  # the window itself: another step shows other curves, filters and maps
    assert not np.array_equal(body[0], body[-1])
    assert (frames[0][200, 320] != 255).any()  # the window is there, not a blank frame
    qtbot.wait(10)
    left = [w for w in QApplication.topLevelWidgets() if w not in before and w.isVisible()]
    assert not left  # the export's window is closed
