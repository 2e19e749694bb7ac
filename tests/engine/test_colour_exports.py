"""A colour run's animation draws the first-layer filters as RGB tiles, as the window does."""
from __future__ import annotations

import numpy as np
from PIL import Image

from cnnviz.cli import main
from cnnviz.exports.frames import Chrome, FiltersFrames
from cnnviz.exports.plan import FrameStep, RunFigures
from cnnviz.inspect.colormap import RGB_GAP, diverging_lut
from cnnviz.timeline.reader import RunTimeline


def test_the_filters_frame_of_a_colour_run_is_rgb(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for c, name in enumerate(("r", "g", "b")):
        (tmp_path / "d" / name).mkdir(parents=True)
        for i in range(5):
            pixels = rng.integers(0, 60, (8, 8, 3), dtype=np.uint8)
            pixels[..., c] = 230
            Image.fromarray(pixels).save(tmp_path / "d" / name / f"{i}.png")
    assert main(["train", "--preset", "convnetjs-cifar", "--data-dir", str(tmp_path / "d"), "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--json"]) == 0
    capsys.readouterr()
    timeline = RunTimeline.open(tmp_path / "run")
    last = max(timeline.keyframe_steps())
    state = {k: v.copy() for k, v in timeline.weights(last).items()}
    w = np.zeros_like(state["layers.conv1.weight"])  # (16, 3, 5, 5)
    w[0, 0] = 0.5  # filter 0: red only
    w[1, 1] = -0.5  # filter 1: against green
    state["layers.conv1.weight"] = w
    timeline.weights = lambda step: state
    renderer = FiltersFrames(timeline, Chrome((640, 480), RunFigures(timeline), "t", []), scale="frame")
    renderer.prepare([FrameStep(last, last)])
    frame = renderer.render(FrameStep(last, last))
    top, left, zoom = renderer.picture_box(0)
    tile = 5 * zoom
    assert tuple(frame[top + tile // 2, left + tile // 2]) == (255, 128, 128)
    assert tuple(frame[top + tile // 2, left + tile + 2 * zoom + tile // 2]) == (128, 0, 128)  # 2 px apart
    assert tuple(frame[top + tile // 2, left + tile + zoom]) == RGB_GAP
    # conv2 keeps the window's diverging colours: its weights in the frame are those of the lookup table
    top, left, zoom = renderer.picture_box(1)
    colours = {tuple(c) for c in diverging_lut()[:, :3]}
    assert tuple(frame[top + zoom // 2, left + zoom // 2]) in colours


def test_filter_pictures_of_a_colour_first_layer_are_rgb():
    from cnnviz.exports.pictures import filter_picture

    w = np.zeros((2, 3, 3, 3), np.float32)
    w[0, 2] = 1.0  # blue
    picture = filter_picture(w, width=60, colour=True)
    zoom = picture.shape[1] // (2 * 3 + 2)  # two 3-pixel tiles 2 apart
    assert tuple(picture[zoom, zoom]) == (128, 128, 255)
    assert tuple(picture[zoom, 3 * zoom]) == RGB_GAP
    gray = filter_picture(w, width=60)  # not asked: the window's diverging colours
    assert tuple(gray[0, 0]) in {tuple(c) for c in diverging_lut()[:, :3]}
