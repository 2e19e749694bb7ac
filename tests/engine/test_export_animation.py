"""`cnnviz export RUN --gif/--mp4`: the learning process as an animation, read back and looked at.

Every test works on one tiny recorded run (cntk-conv, 300 examples of the embedded sample, 2 epochs: 10 steps,
every step stored) made once for the module in a temporary folder.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from cnnviz.cli import main
from cnnviz.errors import CnnvizError
from cnnviz.exports import animation as anim
from cnnviz.exports.animation import AnimationOptions, StderrProgress, export_animation
from cnnviz.exports.encoders import HOLD_SECONDS, MP4_MISSING, hold_frames
from cnnviz.exports.frames import Chrome, FiltersFrames
from cnnviz.exports.plan import FrameStep, RunFigures, plan_frames
from cnnviz.inspect.colormap import colorize, diverging_lut
from cnnviz.timeline.reader import RunTimeline


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    code = main(["train", "--preset", "cntk-conv", "--subset", "300", "--epochs", "2", "--out", str(out), "--json"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def stored(run):
    return RunTimeline.open(run).keyframe_steps()


def export(capsys, run, *argv):
    code = main(["export", str(run), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def gif_frames(path) -> tuple[list[np.ndarray], list[int], dict]:
    with Image.open(path) as im:
        info = dict(im.info)
        frames, durations = [], []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
            durations.append(im.info["duration"])
    return frames, durations, info


# -- what is written ---------------------------------------------------------------------------------------------
def test_a_gif_has_a_frame_per_stored_step_the_size_and_the_frame_rate_and_loops(run, stored, tmp_path, capsys):
    out = tmp_path / "filters.gif"
    code, said, err = export(capsys, run, "--gif", str(out), "--fps", "20", "--size", "320x240")
    assert code == 0, err
    assert len(stored) == 11 and f"11 frames of 320x240" in said
    frames, durations, info = gif_frames(out)
    assert len(frames) == 11 and all(f.shape == (240, 320, 3) for f in frames)
    assert durations[:-1] == [50] * 10 and durations[-1] == HOLD_SECONDS * 1000  # the end is held
    assert info["loop"] == 0  # forever
    assert not [p for p in tmp_path.iterdir() if p.name != "filters.gif"]  # no temporary file left


def test_every_n_steps_and_at_most_n_frames(run, tmp_path, capsys):
    out = tmp_path / "a.gif"
    assert export(capsys, run, "--gif", str(out), "--every", "3", "--size", "160x120")[0] == 0
    assert len(gif_frames(out)[0]) == 5  # steps 0, 3, 6, 9 and the last, 10
    assert export(capsys, run, "--gif", str(out), "--frames", "4", "--size", "160x120")[0] == 0
    assert len(gif_frames(out)[0]) == 4
    timeline = RunTimeline.open(run)
    assert [f.step for f in plan_frames(timeline, max_frames=4)] == [0, 3, 7, 10]  # evenly by index, both ends
    assert [f.stored for f in plan_frames(timeline, every=4)] == [0, 4, 8, 10]


def test_an_mp4_has_the_frames_and_the_size(run, stored, tmp_path, capsys):
    imageio = pytest.importorskip("imageio.v2")
    out = tmp_path / "filters.mp4"
    code, said, err = export(capsys, run, "--mp4", str(out), "--fps", "5", "--size", "320x240")
    assert code == 0, err
    reader = imageio.get_reader(out, format="FFMPEG")
    try:
        assert reader.count_frames() == len(stored) + hold_frames(5)
        assert reader.get_meta_data()["size"] == (320, 240)
        assert reader.get_meta_data()["fps"] == 5
        assert reader.get_data(0).shape == (240, 320, 3)
    finally:
        reader.close()


def test_an_odd_mp4_size_is_made_even_and_said(run, tmp_path, capsys):
    pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / "odd.mp4"
    code, said, err = export(capsys, run, "--mp4", str(out), "--size", "321x241", "--frames", "2")
    assert code == 0 and "note: MP4 frames need even sides: writing 320x240" in err and "of 320x240" in said


def test_the_caption_changes_from_frame_to_frame(run, tmp_path, capsys):
    out = tmp_path / "curves.gif"
    assert export(capsys, run, "--gif", str(out), "--view", "curves", "--size", "320x240")[0] == 0
    frames = gif_frames(out)[0]
    assert all(not np.array_equal(a, b) for a, b in zip(frames, frames[1:]))
    timeline = RunTimeline.open(run)
    top = Chrome((320, 240), RunFigures(timeline), "t", []).top
    assert not np.array_equal(frames[0][:top], frames[-1][:top])  # the caption region itself differs


def test_the_captions_figures(run):
    figures = RunFigures(RunTimeline.open(run))
    first, middle, last = figures.at(0), figures.at(5), figures.at(10)
    assert first.train_accuracy is None and first.test_accuracy is None and first.epoch == 0
    assert middle.epoch == 1.0 and middle.test_step == 5 and middle.train_accuracy is not None
    assert last.test_step == 10 and last.epochs == 2 and last.last_step == 10


def test_the_filters_frame_shows_red_where_a_weight_is_positive_and_blue_where_negative(run):
    timeline = RunTimeline.open(run)
    state = {k: v.copy() for k, v in timeline.weights(10).items()}
    w = np.zeros_like(state["layers.conv1.weight"])  # (8, 1, 5, 5)
    w[0] = 0.5  # filter 0: all positive
    w[1] = -0.5  # filter 1: all negative; the others stay 0
    state["layers.conv1.weight"] = w
    timeline.weights = lambda step: state  # every stored step has these weights
    renderer = FiltersFrames(timeline, Chrome((640, 480), RunFigures(timeline), "t", []), scale="frame")
    renderer.prepare([FrameStep(10, 10)])
    frame = renderer.render(FrameStep(10, 10))
    top, left, zoom = renderer.picture_box(0)  # conv1's mosaic: filters 0, 1, 2 in its first row
    red, blue = tuple(diverging_lut()[-1, :3]), tuple(diverging_lut()[0, :3])
    tile = 5 * zoom
    assert tuple(frame[top + tile // 2, left + tile // 2]) == red
    assert tuple(frame[top + tile // 2, left + tile + zoom + tile // 2]) == blue  # 1 px gap between filters
    white = tuple(diverging_lut()[128, :3])  # zero: white, as the window shows it (254, 254, 253)
    assert min(white) >= 250 and tuple(frame[top + tile // 2, left + 2 * (tile + zoom) + tile // 2]) == white
    assert (frame[top:top + tile, left:left + tile] == red).all()


def test_feature_maps_of_a_png_file(run, tmp_path, capsys):
    digit = np.full((60, 40), 255, np.uint8)  # a dark bar on white paper, as a scanned digit
    digit[10:50, 18:24] = 0
    Image.fromarray(digit).save(tmp_path / "one.png")
    png, test0 = tmp_path / "png.gif", tmp_path / "test0.gif"
    code, _, err = export(capsys, run, "--gif", str(png), "--view", "feature-maps", "--image",
                          str(tmp_path / "one.png"), "--size", "320x240", "--frames", "3")
    assert code == 0, err
    assert export(capsys, run, "--gif", str(test0), "--view", "feature-maps", "--size", "320x240",
                  "--frames", "3")[0] == 0
    a, b = gif_frames(png)[0], gif_frames(test0)[0]
    assert len(a) == 3 and not np.array_equal(a[0], b[0])  # another input, other maps


@pytest.mark.parametrize("scale", ["run", "frame"])
def test_one_scale_over_the_run_shows_a_filter_strengthen_one_per_frame_does_not(run, scale):
    timeline = RunTimeline.open(run)
    base = {k: v.copy() for k, v in timeline.weights(10).items()}
    base["layers.conv1.weight"] = np.full_like(base["layers.conv1.weight"], 0.1)  # every conv1 weight positive
    timeline.weights = lambda step: {**base, "layers.conv1.weight": base["layers.conv1.weight"] * (step + 1)}
    renderer = FiltersFrames(timeline, Chrome((640, 480), RunFigures(timeline), "t", []), scale=scale)
    frames = [FrameStep(0, 0), FrameStep(10, 10)]
    renderer.prepare(frames)
    first, last = (renderer.render(f) for f in frames)
    top, left, zoom = renderer.picture_box(0)
    red = tuple(diverging_lut()[-1, :3])
    assert tuple(last[top + 1, left + 1]) == red  # the largest weight of the run: full red either way
    if scale == "run":  # at step 0 the weights are 1/11 of their last size: pale, against the same scale
        assert tuple(first[top + 1, left + 1]) == tuple(colorize(np.array([[1 / 11]]), diverging_lut(), (-1, 1))[0, 0, :3])
    else:
        assert tuple(first[top + 1, left + 1]) == red


def test_the_default_scale_is_the_runs_for_filters_and_the_frames_for_feature_maps():
    assert anim.default_scale("filters") == "run" and anim.default_scale("feature-maps") == "frame"


# -- progress and cancelling -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gif", "mp4"])
def test_ctrl_c_leaves_no_file_and_keeps_an_older_one_whole(run, tmp_path, capsys, monkeypatch, kind):
    if kind == "mp4":
        pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / f"a.{kind}"
    assert export(capsys, run, f"--{kind}", str(out), "--size", "160x120", "--frames", "2")[0] == 0
    before = out.read_bytes()

    def interrupt(self, done, total):
        if done == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(StderrProgress, "__call__", interrupt)
    code, _, err = export(capsys, run, f"--{kind}", str(out), "--size", "160x120")
    assert code == 130 and err.strip() == "error: interrupted"
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [out.name]


def test_progress_says_frames_and_eta_on_stderr(run, tmp_path):
    class Stream(list):
        def write(self, text):
            self.append(text)

        def flush(self):
            pass

    stream = Stream()
    progress = StderrProgress(stream)
    progress(0, 10)
    progress(4, 10)  # within the first second: quiet
    assert stream == []
    progress.started -= 2.0  # two seconds in
    progress(5, 10)
    assert stream == ["export: frame 5/10, ETA 0:02\n"]


# -- bad input: one error line each, exit 2, nothing written -------------------------------------------------------
def _one_error(code, err):
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("argv, needle", [
    (["--view", "bogus"], "invalid choice: 'bogus'"),
    (["--image", "test:99999", "--view", "feature-maps"], "the run's test set has 1,000 images, test:0 to test:999"),
    (["--image", "test:x", "--view", "feature-maps"], "needs a whole number"),
    (["--image", "test:0"], "--image chooses the input of --view feature-maps"),
    (["--fps", "0"], "--fps must be between 1 and 50, got 0"),
    (["--fps", "1000"], "--fps must be between 1 and 50, got 1,000"),
    (["--size", "10x10"], "--size 10x10 is out of range: the width must be 160 to 3840 pixels and the height 120 to 2160"),
    (["--size", "100000x100000"], "--size 100000x100000 is out of range"),
    (["--size", "big"], "--size must be WIDTHxHEIGHT in pixels, e.g. 640x480; got 'big'"),
    (["--every", "0"], "--every must be between 1 and 1,000,000,000, got 0"),
    (["--frames", "1"], "--frames must be between 2 and 10,000, got 1"),
    (["--every", "2", "--frames", "5"], "not allowed with argument"),
])
def test_bad_options(run, tmp_path, capsys, argv, needle):
    out = tmp_path / "a.gif"
    err = _one_error(*export(capsys, run, "--gif", str(out), *argv)[::2])
    assert needle in err and not out.exists()


def test_a_non_image_file_as_the_input(run, tmp_path, capsys):
    (tmp_path / "notes.png").write_text("not a picture")
    err = _one_error(*export(capsys, run, "--gif", str(tmp_path / "a.gif"), "--view", "feature-maps", "--image",
                             str(tmp_path / "notes.png"))[::2])
    assert "notes.png: not a PNG, JPEG, BMP or GIF image" in err


def test_a_run_without_a_timeline_is_refused(tmp_path, capsys):
    flat = tmp_path / "flat"
    assert main(["train", "--preset", "cntk-conv", "--subset", "300", "--epochs", "1", "--out", str(flat),
                 "--no-timeline", "--json"]) == 0
    capsys.readouterr()
    err = _one_error(*export(capsys, flat, "--gif", str(tmp_path / "a.gif"))[::2])
    assert "nothing to animate: it was recorded without a timeline" in err and not (tmp_path / "a.gif").exists()


def test_no_run_and_no_format(run, tmp_path, capsys):
    assert "no such run folder or file" in _one_error(*export(capsys, tmp_path / "nope", "--gif",
                                                              str(tmp_path / "a.gif"))[::2])
    assert "nothing to export: give --onnx OUT.onnx, --tensorboard DIR, --gif OUT.gif" in _one_error(
        *export(capsys, run)[::2])


def test_output_paths_that_cannot_be_written(run, tmp_path, capsys, monkeypatch):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "checkpoint.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    cases = [
        (tmp_path, f"{tmp_path} is a folder; give the file to write, e.g. {tmp_path / 'animation.gif'}"),
        (tmp_path / "afile" / "a.gif", f"cannot write {tmp_path / 'afile' / 'a.gif'}: {tmp_path / 'afile'} is a "
                                       "file, not a folder"),
        (tmp_path / "missing" / "a.gif", f"the folder {tmp_path / 'missing'} does not exist"),
        (tmp_path / "checkpoint.safetensors", "exists and is not an GIF file; cnnviz does not overwrite it"),
    ]
    for out, needle in cases:
        assert needle in _one_error(*export(capsys, run, "--gif", str(out))[::2])
    assert (tmp_path / "checkpoint.safetensors").read_bytes().startswith(b"\x08")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("cnnviz.exports.encoders.tempfile.mkstemp", refuse)  # as root, chmod would not stop it
    err = _one_error(*export(capsys, run, "--gif", str(tmp_path / "b.gif"))[::2])
    assert f"cannot write {tmp_path / 'b.gif'}: Permission denied" in err


@pytest.mark.parametrize("missing", ["imageio_ffmpeg", "imageio"])
def test_mp4_without_the_video_extra_says_how_to_get_it(run, tmp_path, capsys, monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # `import` of it now fails as if it were not installed
    if missing == "imageio":
        monkeypatch.setitem(sys.modules, "imageio.v2", None)
    code, _, err = export(capsys, run, "--mp4", str(tmp_path / "a.mp4"))
    assert code == 2 and err == f"error: {MP4_MISSING}\n"
    assert err == f"error: {MP4_MISSING}\n" and "pip install imageio imageio-ffmpeg" in err
    assert not list(tmp_path.iterdir())


def test_the_defaults_are_in_range():
    anim.check_options(AnimationOptions(run="r", out="o.gif"))
    assert anim.parse_size("640x480") == anim.DEFAULT_SIZE


def test_a_gif_too_large_for_memory_is_refused_before_drawing(run, tmp_path, monkeypatch):
    monkeypatch.setattr("cnnviz.exports.encoders.GIF_MEMORY_BYTES", 1000)
    with pytest.raises(Exception, match=r"needs 206.2 KiB of memory to write \(at most 1000 bytes\)"):
        export_animation(AnimationOptions(run=str(run), out=str(tmp_path / "a.gif"), size=(160, 120)))
    assert not list(tmp_path.iterdir())


def test_pixels_handed_over_show_that_input_and_a_wrong_size_is_refused(run, tmp_path):
    bar = np.zeros((28, 28), np.float32)
    bar[4:24, 12:16] = 1.0
    done = export_animation(AnimationOptions(str(run), str(tmp_path / "bar.gif"), view="feature-maps",
                                             size=(320, 240), frames=2, pixels=bar, pixels_label="a bar"))
    assert done.frames == 2 and (tmp_path / "bar.gif").is_file()
    with pytest.raises(CnnvizError, match="the input image is 20x20 but the run's model takes 28x28"):
        export_animation(AnimationOptions(str(run), str(tmp_path / "small.gif"), view="feature-maps",
                                          pixels=np.zeros((20, 20))))
    with pytest.raises(CnnvizError, match="either as --image or as pixels"):
        export_animation(AnimationOptions(str(run), str(tmp_path / "both.gif"), view="feature-maps",
                                          image="test:0", pixels=bar))


def test_a_cancel_at_the_first_progress_call_leaves_no_file(run, tmp_path):
    def cancel(done, total):
        raise CnnvizError("cancelled")

    with pytest.raises(CnnvizError, match="cancelled"):
        export_animation(AnimationOptions(str(run), str(tmp_path / "a.gif"), size=(160, 120)), progress=cancel)
    assert list(tmp_path.iterdir()) == []


# -- two runs side by side (--compare) ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sigmoid_run(tmp_path_factory):
    """cntk-conv with sigmoid and half the batch size: its epochs are twice as many steps as `run`'s."""
    import json

    from cnnviz.presets import get_preset

    folder = tmp_path_factory.mktemp("export")
    spec = get_preset("cntk-conv").spec.to_dict()
    spec["layers"] = [dict(layer, activation="sigmoid") if layer["activation"] else layer for layer in spec["layers"]]
    (folder / "sigmoid.json").write_text(json.dumps(spec))
    out = folder / "sigmoid"
    assert main(["train", "--model", str(folder / "sigmoid.json"), "--subset", "300", "--epochs", "2",
                 "--batch-size", "32", "--out", str(out), "--json"]) == 0
    return out


def test_map_step_is_the_same_step_or_the_same_point_of_the_same_epoch():
    from cnnviz.timeline.pairing import map_step

    assert map_step(7, 5, 5) == 7 and map_step(7, None, 10) == 7
    assert map_step(5, 5, 10) == 10 and map_step(7, 5, 10) == 14 and map_step(3, 10, 5) == 2


def test_a_compared_pair_shows_each_run_at_the_same_point_of_training(run, sigmoid_run, tmp_path, capsys):
    out = tmp_path / "pair.gif"
    code, said, err = export(capsys, run, "--gif", str(out), "--compare", str(sigmoid_run), "--size", "648x240")
    assert code == 0, err
    frames = gif_frames(out)[0]
    assert len(frames) == 11 and frames[0].shape == (240, 648, 3)

    a, b = RunTimeline.open(run), RunTimeline.open(sigmoid_run)
    pair = anim.make_renderer(a, AnimationOptions(str(run), "x.gif", compare=str(sigmoid_run)), (648, 240))
    alone_a = anim.make_renderer(a, AnimationOptions(str(run), "x.gif"), (322, 240))
    alone_b = anim.make_renderer(b, AnimationOptions(str(sigmoid_run), "x.gif"), (322, 240))
    steps = plan_frames(a)
    pair.prepare(steps)
    alone_a.prepare(steps)
    at_5 = next(f for f in steps if f.step == 5)  # A's first epoch end is B's (10 steps of 32)
    assert pair.b_frame(at_5) == FrameStep(10, 10)
    alone_b.prepare([pair.b_frame(f) for f in steps])
    picture = pair.render(at_5)
    assert np.array_equal(picture[:, :322], alone_a.render(at_5))
    assert np.array_equal(picture[:, 326:], alone_b.render(FrameStep(10, 10)))


@pytest.mark.parametrize("argv, needle", [
    (["--view", "window"], "--compare shows two runs' filters, feature maps or curves side by side"),
    (["--size", "320x240"], "--compare needs --size at least 324 pixels wide"),
])
def test_a_compare_that_cannot_be_drawn_is_refused(run, sigmoid_run, tmp_path, capsys, argv, needle):
    code, _, err = export(capsys, run, "--gif", str(tmp_path / "a.gif"), "--compare", str(sigmoid_run), *argv)
    assert code == 2 and needle in err and list(tmp_path.iterdir()) == []


def test_a_compare_with_no_such_run_is_refused(run, tmp_path, capsys):
    code, _, err = export(capsys, run, "--gif", str(tmp_path / "a.gif"), "--compare", str(tmp_path / "nope"))
    assert code == 2 and "nope" in err and list(tmp_path.iterdir()) == []
