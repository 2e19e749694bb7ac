"""`cnnviz export RUN --gif OUT.gif | --mp4 OUT.mp4`: the learning process of a recorded run as an animation.

One frame per stored step of the run (thinned evenly to at most ``--frames``), or one every ``--every`` steps
(each showing the stored step at or before it); each frame captioned with its step, epoch and accuracies. The
views (``--view``): ``filters`` and ``feature-maps`` (as the window shows them), ``curves`` (growing over axes
that span the whole run), and ``window`` (the real window, rendered offscreen through Qt, in
``cnnviz/gui/export_window.py``). Everything else here is Qt-free.

Every option is checked, and the output path too, before any frame is drawn; the file is written under a
temporary name and renamed at the end, so a failure or Ctrl+C leaves nothing half-written.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cnnviz.errors import CnnvizError
from cnnviz.formatting import format_seconds

VIEWS = ("filters", "feature-maps", "curves", "window")
FPS_RANGE = (1, 50)  # GIF delays are in 1/100 s, and viewers slow anything under 2/100 s down to 1/10 s
WIDTH_RANGE = (160, 3840)  # narrower leaves no room for the caption; wider than 4K is no screen
HEIGHT_RANGE = (120, 2160)
FRAMES_RANGE = (2, 10_000)
EVERY_RANGE = (1, 1_000_000_000)
DEFAULT_SIZE = (640, 480)
PAIR_GAP = 4  # pixels between the two runs of a --compare animation
DEFAULT_FPS = 10
DEFAULT_FRAMES = 150  # 15 s at 10 frames a second; the run's keyframes are thinned evenly to it


@dataclass(frozen=True)
class AnimationOptions:
    """What to export; see the module docstring. ``kind`` is "gif" or "mp4"."""

    run: str
    out: str
    kind: str = "gif"
    view: str = "filters"
    image: str | None = None
    fps: int = DEFAULT_FPS
    size: tuple[int, int] = DEFAULT_SIZE
    every: int | None = None
    frames: int = DEFAULT_FRAMES
    scale: str | None = None  # None: "run" for the filters, "frame" for the feature maps (see default_scale)
    # The feature maps' input given as pixels instead of ``image`` (the window passes the input it shows):
    # (H, W) in [0, 1] at the model's input size, ink = 1, and the words the caption names it with.
    pixels: object = None
    pixels_label: str = "your input"
    compare: str | None = None  # a second run, shown beside this one at the same point of training


@dataclass(frozen=True)
class ExportResult:
    path: Path
    frames: int
    size: tuple[int, int]
    seconds: float
    bytes: int


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> (640, 480), within :data:`WIDTH_RANGE` x :data:`HEIGHT_RANGE`."""
    parts = str(text).lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise CnnvizError(f"--size must be WIDTHxHEIGHT in pixels, e.g. 640x480; got {text!r}")
    width, height = (int(p) for p in parts)
    (w0, w1), (h0, h1) = WIDTH_RANGE, HEIGHT_RANGE
    if not (w0 <= width <= w1 and h0 <= height <= h1):
        raise CnnvizError(f"--size {width}x{height} is out of range: the width must be {w0} to {w1} pixels and "
                          f"the height {h0} to {h1}")
    return width, height


def check_options(opts: AnimationOptions) -> None:
    """Every option's range and combination; a CnnvizError naming the option for a bad one."""
    if opts.kind not in ("gif", "mp4"):
        raise CnnvizError(f"unknown animation format {opts.kind!r}: gif or mp4")
    if opts.view not in VIEWS:
        raise CnnvizError(f"unknown view {opts.view!r}: one of {', '.join(VIEWS)}")
    for name, value, (lo, hi) in (("--fps", opts.fps, FPS_RANGE), ("--frames", opts.frames, FRAMES_RANGE),
                                  ("--every", opts.every, EVERY_RANGE)):
        if value is not None and not lo <= value <= hi:
            raise CnnvizError(f"{name} must be between {lo:,} and {hi:,}, got {value:,}")
    parse_size(f"{opts.size[0]}x{opts.size[1]}")
    if opts.scale not in (None, "run", "frame"):
        raise CnnvizError(f"--scale must be run or frame, got {opts.scale!r}")
    if opts.compare is not None:
        if opts.view == "window":
            raise CnnvizError("--compare shows two runs' filters, feature maps or curves side by side; the window "
                              "view shows one window (open both with `cnnviz open RUN_A RUN_B` to see them)")
        if opts.size[0] < 2 * WIDTH_RANGE[0] + PAIR_GAP:
            raise CnnvizError(f"--compare needs --size at least {2 * WIDTH_RANGE[0] + PAIR_GAP} pixels wide "
                              f"(two views of {WIDTH_RANGE[0]} or more); got {opts.size[0]}")
    if opts.image is not None and opts.pixels is not None:
        raise CnnvizError("give the feature maps' input either as --image or as pixels, not both")
    if opts.image is not None and opts.view != "feature-maps":
        raise CnnvizError("--image chooses the input of --view feature-maps; it means nothing for the "
                          f"{opts.view} view")


def default_scale(view: str) -> str:
    """The colour scale a view reads best with when --scale is not given.

    Filters: one scale per layer over the run. A conv layer's weights keep about their size while they
    learn, so one scale costs the early frames little, lets a filter that strengthens darken, and stops the
    frames flickering when one weight outgrows the others. Feature maps: one scale per frame, as the window
    shows a step. Activations of the deeper layers grow many times over while the network learns, so one scale
    over the run would leave the first half of the frames nearly blank, and the maps are there to show what
    each layer picks out at that step.
    """
    return "frame" if view == "feature-maps" else "run"


def export_animation(opts: AnimationOptions, progress: Callable[[int, int], None] | None = None,
                     note: Callable[[str], None] | None = None, renderer=None) -> ExportResult:
    """Write the animation `opts` describes; returns what was written.

    Parameters
    ----------
    progress
        Called with (frames done, frames in all) after every frame (and (0, total) before the first); an
        exception it raises (KeyboardInterrupt, for one) cancels the export, leaving no file.
    note
        Told, in one line, of an adjustment the user should know about (an odd MP4 size made even).
    renderer
        ``renderer(timeline, size)`` makes the frame renderer instead of the view's own (the window passes one
        that grabs itself for its whole-window view).

    Raises
    ------
    CnnvizError
        A bad option, run, image or output path; a missing optional dependency; a write that failed.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one image at a time: more threads only wait on each other (10x slower under load)
    try:
        return _export(opts, progress, note, renderer)
    finally:
        torch.set_num_threads(threads)


def _export(opts: AnimationOptions, progress, note, make=None) -> ExportResult:
    from cnnviz.exports.encoders import check_gif_memory, check_output, imageio_ffmpeg_module
    from cnnviz.exports.plan import plan_frames
    from cnnviz.timeline.reader import RunTimeline

    started = time.perf_counter()
    check_options(opts)
    size = opts.size
    if opts.kind == "mp4":
        imageio_ffmpeg_module()  # before any work: says how to install it when it is missing
        if size[0] % 2 or size[1] % 2:
            size = (size[0] - size[0] % 2, size[1] - size[1] % 2)
            if note is not None:
                note(f"MP4 frames need even sides: writing {size[0]}x{size[1]}")
    out = check_output(opts.out, opts.kind)
    timeline = RunTimeline.open(opts.run)
    frames = plan_frames(timeline, opts.every, opts.frames)
    if opts.kind == "gif":
        check_gif_memory(len(frames), size)
    renderer = make(timeline, size) if make is not None else make_renderer(timeline, opts, size)
    try:
        _write(renderer, frames, out, opts, size, progress)
    finally:
        close = getattr(renderer, "close", None)  # the window view's window
        if close is not None:
            close()
    return ExportResult(out, len(frames), size, time.perf_counter() - started, out.stat().st_size)


def _write(renderer, frames, out: Path, opts: AnimationOptions, size: tuple[int, int], progress) -> None:
    """Draw every frame into the writer of ``opts.kind``; the writer's file goes if anything fails."""
    import numpy as np

    from cnnviz.exports.encoders import GifWriter, Mp4Writer

    renderer.prepare(frames)
    rendered: dict[int, np.ndarray] = {}
    if opts.kind == "gif":  # one palette for every frame, from the first, middle and last
        for i in sorted({0, len(frames) // 2, len(frames) - 1}):
            rendered[i] = renderer.render(frames[i])
        writer = GifWriter(out, opts.fps, size, len(frames), list(rendered.values()))
    else:
        writer = Mp4Writer(out, opts.fps, size)
    try:
        if progress is not None:
            progress(0, len(frames))
        for i, frame in enumerate(frames):
            picture = rendered.pop(i, None)
            writer.add(picture if picture is not None else renderer.render(frame))
            if progress is not None:
                progress(i + 1, len(frames))
        writer.finish()
    except BaseException:
        writer.abort()
        raise


def make_renderer(timeline, opts: AnimationOptions, size: tuple[int, int]):
    """The frame renderer of ``opts.view`` (of both runs, side by side, with ``opts.compare``); the window's is
    imported only when asked for (it needs Qt)."""
    from cnnviz.exports.plan import RunFigures

    if opts.view == "window":
        from cnnviz.gui.export_window import WindowFrames

        return WindowFrames(timeline, size, RunFigures(timeline))
    if opts.compare is None:
        return _view_frames(timeline, opts, size, _feature_input(timeline, opts))
    from cnnviz.exports.pair_frames import PairFrames, half_widths
    from cnnviz.timeline.reader import RunTimeline

    other = RunTimeline.open(opts.compare)
    feature_input = _feature_input(timeline, opts)
    if feature_input is not None:  # the same input for both, if B's model takes it
        feature_input = (_given_pixels(other, feature_input[0], "the compared run's model"), feature_input[1])
    left, right = half_widths(size[0])
    return PairFrames(_view_frames(timeline, opts, (left, size[1]), feature_input),
                      _view_frames(other, opts, (right, size[1]), feature_input), timeline, other)


def _view_frames(timeline, opts: AnimationOptions, size: tuple[int, int], feature_input):
    """The renderer of one run's filters, feature maps (of ``feature_input``: pixels, label) or curves."""
    from cnnviz.exports.frames import Chrome, CurvesFrames, FeatureMapsFrames, FiltersFrames
    from cnnviz.exports.plan import RunFigures

    name = timeline.header.get("name") or timeline.header.get("preset") or Path(timeline.path).name
    ends = [e.step for e in timeline.history.epochs if e.step]
    chrome = Chrome(size, RunFigures(timeline), f"{name} · {opts.view}", ends)
    if opts.view == "filters":
        return FiltersFrames(timeline, chrome, opts.scale or default_scale(opts.view))
    if opts.view == "curves":
        return CurvesFrames(timeline, chrome)
    pixels, label = feature_input
    return FeatureMapsFrames(timeline, chrome, pixels, label, opts.scale or default_scale(opts.view))


def _feature_input(timeline, opts: AnimationOptions):
    """(pixels, label) of the feature-map view's input, or None for the other views."""
    if opts.view != "feature-maps":
        return None
    if opts.pixels is not None:
        return _given_pixels(timeline, opts.pixels), opts.pixels_label
    return _input_image(timeline, opts.image or "test:0")


def _given_pixels(timeline, pixels, whose: str = "the run's model") -> np.ndarray:
    """Pixels handed over by the caller, checked against the run's input size."""
    import numpy as np

    anchor = timeline.load_anchor(max(timeline.anchors))
    shape = tuple(int(v) for v in anchor.spec.input_shape[1:])
    array = np.asarray(pixels, np.float32)
    if array.shape != shape:
        raise CnnvizError(f"the input image is {'x'.join(map(str, array.shape))} but {whose} takes "
                          f"{'x'.join(map(str, shape))}; pick a test image of the run's data")
    return np.clip(np.nan_to_num(array), 0.0, 1.0)


def _input_image(timeline, image: str) -> tuple[np.ndarray, str]:
    """The (H, W) [0, 1] input of the feature-map view and how the caption names it."""
    import numpy as np

    anchor = timeline.load_anchor(max(timeline.anchors))
    _, height, width = (int(v) for v in anchor.spec.input_shape)
    if image.startswith("test:"):
        from cnnviz.data.prepare import load_data

        text = image[len("test:"):]
        if not text.strip().isdigit():
            raise CnnvizError(f"--image test:INDEX needs a whole number, e.g. test:0; got {image!r}")
        index = int(text)
        data = load_data(anchor.recipe.data, fallback=False)
        count = len(data.test.labels)
        if index >= count:
            raise CnnvizError(f"--image {image}: the run's test set has {count:,} images, test:0 to test:{count - 1}")
        pixels = np.asarray(data.test.raw[index], np.float32)
        pixels = pixels / 255.0 if data.test.raw.dtype == np.uint8 else pixels
        label = int(data.test.labels[index])
        names = data.class_names
        return pixels, f"test image {index} ({names[label] if label < len(names) else label})"
    from cnnviz.imagefile import read_grayscale
    from cnnviz.inspect.canvas import to_mnist

    gray = read_grayscale(image)
    if gray.mean() > 0.5:  # dark ink on light paper: MNIST is light ink on black (as `cnnviz predict`)
        gray = 1.0 - gray
    pixels = to_mnist(gray, shape=(height, width))
    if pixels is None:
        raise CnnvizError(f"{image}: the image is blank; there is nothing to show")
    return pixels, Path(image).name


class StderrProgress:
    """``export: frame 40/150, ETA 0:03`` on stderr: redrawn in place on a terminal (10 times a second), a
    line every 5 s otherwise; silent for an export that ends within its first second."""

    def __init__(self, stream=None) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = 0.1 if self.tty else 5.0
        self.started = time.monotonic()
        self._last = self.started
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done == 0:
            self.started, self._last = now, now - self.interval  # the first line may come after 1 s
            return
        if now - self.started < 1.0 or (now - self._last < self.interval and done < total):
            return
        self._last = now
        rate = done / max(1e-9, now - self.started)
        eta = format_seconds((total - done) / rate) if rate > 0 else "?"
        line = f"export: frame {done:,}/{total:,}, ETA {eta}"
        if self.tty:
            self.stream.write("\r\x1b[2K" + line + ("\n" if done >= total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._shown = done < total and self.tty

    def finish(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


def describe(result: ExportResult) -> str:
    """One line for the user: where, how many frames, how big, how long."""
    from cnnviz.files import human_size

    return (f"wrote {result.path}: {result.frames:,} frames of {result.size[0]}x{result.size[1]}, "
            f"{human_size(result.bytes)}, in {result.seconds:.1f} s")


__all__ = ["AnimationOptions", "ExportResult", "StderrProgress", "VIEWS", "check_options", "describe",
           "export_animation", "parse_size"]
