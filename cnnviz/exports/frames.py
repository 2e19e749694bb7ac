"""The frames of an animation, one view each: filters, feature maps, curves. Qt-free.

Each renderer is made once per animation, :meth:`prepare` d with every frame's step (a first pass for the
scales that stay fixed over the run, and the layout), then asked for one (H, W, 3) uint8 RGB frame a step.
Every frame has the same chrome on top (:class:`Chrome`): the step's figures in large type, where they come
from in small type, and a bar that shows how far into the run the step is, with a tick at each epoch end.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from cnnviz.errors import CnnvizError
from cnnviz.exports.drawing import (ACCENT, BACKGROUND, MUTED, Placement, draw_text, fit_text, pack,
                                    text_size, upscale)
from cnnviz.exports.plan import FrameStep, RunFigures, caption_lines
from cnnviz.inspect.colormap import diverging_lut, lut_for, paint_mosaic, paint_rgb
from cnnviz.inspect.mosaic import activation_mosaic, gap_labels

SCALES = ("run", "frame")
# Layers whose output repeats their input in evaluation (what a frame shows): drawn once, not twice.
_SKIPPED_KINDS = ("Flatten", "Dropout", "Dropout2d", "Identity")
_CACHE_BYTES = 256 << 20  # activations kept between the two passes of the feature-map view


class Chrome:
    """The part every frame shares: a header with the figures and a progress bar over the run."""

    def __init__(self, size: tuple[int, int], figures: RunFigures, title: str, epoch_ends: list[int]) -> None:
        self.width, self.height = size
        self.figures, self.title = figures, title
        self.big = max(11, min(44, round(self.height / 26)))
        self.small = max(9, round(self.big * 0.72))
        self.margin = max(4, round(self.big * 0.5))
        self.bar_top = self.margin + self.big + 4 + self.small + self.margin // 2
        self.bar_height = max(3, self.big // 4)
        self.top = self.bar_top + self.bar_height + self.margin
        self.epoch_ends = [s for s in epoch_ends if 0 < s < figures.last_step]
        self._blank: np.ndarray | None = None

    def blank(self) -> np.ndarray:
        """A new frame, all background."""
        if self._blank is None:
            self._blank = np.full((self.height, self.width, 3), BACKGROUND, np.uint8)
        return self._blank.copy()

    @property
    def content(self) -> tuple[int, int, int, int]:
        """(x, y, width, height) left for the view below the header."""
        return self.margin, self.top, self.width - 2 * self.margin, self.height - self.top - self.margin

    def draw(self, image: Image.Image, step: int, note: str = "") -> None:
        """The header of the frame of `step` onto `image` (the frame, white where the header goes)."""
        figures = self.figures.at(step)
        big, where = caption_lines(figures)
        width = self.width - 2 * self.margin
        text, size = fit_text(big, self.big, width)
        draw_text(image, (self.margin, self.margin - 2), text, size)
        small = "  ·  ".join(part for part in (self.title, note, where) if part)
        text, size = fit_text(small, self.small, width)
        draw_text(image, (self.margin, self.margin + self.big + 4), text, size, MUTED)
        d = ImageDraw.Draw(image)
        x0, x1, y0 = self.margin, self.width - self.margin, self.bar_top
        y1 = y0 + self.bar_height - 1
        d.rectangle((x0, y0, x1, y1), fill=(225, 225, 225))
        done = x0 + round((x1 - x0) * min(1.0, step / max(1, figures.last_step)))
        d.rectangle((x0, y0, done, y1), fill=ACCENT)
        for end in self.epoch_ends:  # epoch ends, so the log spacing of the keyframes reads as such
            x = x0 + round((x1 - x0) * end / figures.last_step)
            d.line((x, y0, x, y1), fill=BACKGROUND)


@dataclass
class _Panel:
    title: str
    picture: np.ndarray  # (h, w, 3) uint8 at its natural size


class _PanelFrames:
    """Frames made of titled pictures in a fixed layout (the filter and feature-map views)."""

    def __init__(self, chrome: Chrome) -> None:
        self.chrome = chrome
        self._layout: list[Placement] | None = None

    @property
    def _title_height(self) -> int:
        return text_size("Ag", self.chrome.small)[1] + 3

    def picture_box(self, index: int) -> tuple[int, int, float]:
        """(top, left, zoom) of panel `index`'s picture in the frames drawn so far."""
        at = self._layout[index]
        return at.y + self._title_height, at.x, int(at.zoom) if at.zoom >= 1 else at.zoom

    def _compose(self, panels: list[_Panel], step: int, note: str) -> np.ndarray:
        c = self.chrome
        title_size = c.small
        title_height = self._title_height
        if self._layout is None or len(self._layout) != len(panels):
            widths = [text_size(p.title, title_size)[0] for p in panels]
            self._layout = pack([p.picture.shape[:2] for p in panels], widths, c.content, title_height,
                                gap=max(8, c.margin * 2))
        frame = c.blank()
        for panel, at in zip(panels, self._layout):
            picture = upscale(panel.picture, at.zoom)
            h, w = picture.shape[:2]
            top = at.y + title_height
            h, w = min(h, c.height - top), min(w, c.width - at.x)
            frame[top:top + h, at.x:at.x + w] = picture[:h, :w]
        image = Image.fromarray(frame)
        for panel, at in zip(panels, self._layout):
            draw_text(image, (at.x, at.y), panel.title, title_size)
        c.draw(image, step, note)
        return np.asarray(image)


class _Weights:
    """A run's model, loaded with the stored weights of any step."""

    def __init__(self, timeline) -> None:
        self.timeline = timeline
        anchor = timeline.load_anchor(max(timeline.anchors)) if timeline.anchors else None
        if anchor is None:
            raise CnnvizError(f"{timeline.path}: the run has no full checkpoint to take its model from")
        self.checkpoint = anchor
        self.model = anchor.build_model()
        self._loaded: int | None = None

    def load(self, step: int):
        if step != self._loaded:
            state = self.timeline.weights(step)
            self.model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
            self._loaded = step
        return self.model


class FiltersFrames(_PanelFrames):
    """Every conv layer's filters, coloured as the window colours them: blue < 0 < red, white at 0 (a colour
    model's first layer as RGB tiles).

    With ``scale="run"`` (the default) each layer has one scale for the whole animation, its largest |w| over
    all frames: the colours then mean the same weight in every frame, so a filter that strengthens darkens,
    and the frames do not flicker when one weight outgrows the others. ``"frame"`` scales each frame by its
    own largest |w|, as the window does for the step it shows.
    """

    def __init__(self, timeline, chrome: Chrome, scale: str = "run") -> None:
        super().__init__(chrome)
        from cnnviz.inspect.filters import conv_weights

        self._conv_weights = conv_weights
        self.weights = _Weights(timeline)
        self.scale = scale
        self._cache: dict[int, list[tuple[str, np.ndarray]]] = {}
        self._scales: dict[str, float] = {}
        self._gaps: dict[str, np.ndarray] = {}
        if not conv_weights(self.weights.model):
            raise CnnvizError(f"{timeline.path}: the run's model has no convolution layers, so it has no filters "
                              "to animate; try --view feature-maps or --view curves")

    def prepare(self, frames: list[FrameStep]) -> None:
        for stored in sorted({f.stored for f in frames}):  # conv weights are small: keep every frame's
            self._cache[stored] = self._conv_weights(self.weights.load(stored))
        for layers in self._cache.values():
            for name, w in layers:
                peak = float(np.abs(np.where(np.isfinite(w), w, 0)).max())
                self._scales[name] = max(self._scales.get(name, 0.0), peak)

    def render(self, frame: FrameStep) -> np.ndarray:
        from cnnviz.inspect.filters import filter_mosaic

        from cnnviz.inspect.filters import rgb_filter_mosaic

        layers = self._cache.get(frame.stored) or self._conv_weights(self.weights.load(frame.stored))
        colour_input = int(self.weights.checkpoint.spec.input_shape[0]) == 3
        panels = []
        for position, (name, w) in enumerate(layers):
            scale = self._scales.get(name) if self.scale == "run" else None
            if position == 0 and colour_input and w.shape[1] == 3:  # in colour, as the window draws it
                mosaic, colours = rgb_filter_mosaic(w, scale=scale or None)
                if name not in self._gaps:
                    self._gaps[name] = gap_labels(rgb_filter_mosaic(np.ones(w.shape, np.float32))[0])
                rgb = paint_rgb(colours, self._gaps[name])[..., :3]
            else:
                mosaic = filter_mosaic(w, scale=scale or None)
                if name not in self._gaps:
                    self._gaps[name] = gap_labels(filter_mosaic(np.ones(w.shape, np.float32)))
                rgb = paint_mosaic(mosaic.image, diverging_lut(), (-1.0, 1.0), self._gaps[name])[..., :3]
            shape = "x".join(str(d) for d in w.shape)
            panels.append(_Panel(f"{name} {shape}  ±{mosaic.scale:.2g}", rgb))
        colour = "conv1 in RGB (grey = 0) · " if colour_input and layers and layers[0][1].shape[1] == 3 else ""
        return self._compose(panels, frame.step, _stored_note(frame) + colour + "blue < 0 < red")


class FeatureMapsFrames(_PanelFrames):
    """Every layer's output for one image, as the window's feature-map view shows it, and the prediction.

    Flatten and dropout layers are left out: in evaluation their output is their input again. ``"frame"``
    scales each frame as the window does; with ``scale="run"`` each layer keeps one scale over the animation
    (its largest |value| when it has negative values, else its largest value), so a map that grows brighter is
    one whose activations grew.
    """

    def __init__(self, timeline, chrome: Chrome, pixels: np.ndarray, label: str, scale: str = "frame") -> None:
        super().__init__(chrome)
        from cnnviz.inspect.inference import InferenceModel

        self.weights = _Weights(timeline)
        checkpoint = self.weights.checkpoint
        self.inference = InferenceModel(self.weights.model, checkpoint.normalization, tuple(checkpoint.class_names))
        self.x = self.inference.to_tensor(pixels)
        self.label, self.scale = label, scale
        self._signed: dict[str, bool] = {}
        self._scales: dict[str, float] = {}
        self._gaps: dict[tuple, np.ndarray] = {}
        self._cache: dict[int, tuple] = {}
        self._cached_bytes = 0

    def _run(self, stored: int):
        """(the layers' outputs, the class probabilities) at a stored step; kept from the first pass while
        they fit in :data:`_CACHE_BYTES` (one image's activations are small, the forward passes are not free)."""
        if stored in self._cache:
            return self._cache[stored]
        from cnnviz.inspect.activations import feature_maps, predict_proba

        model = self.weights.load(stored)
        acts = [a for a in feature_maps(model, self.x) if a.kind not in _SKIPPED_KINDS]
        result = acts, np.asarray(predict_proba(model, self.x)).reshape(-1)
        size = sum(a.values.nbytes for a in acts)
        if self._cached_bytes + size <= _CACHE_BYTES:
            self._cache[stored] = result
            self._cached_bytes += size
        return result

    def prepare(self, frames: list[FrameStep]) -> None:
        if self.scale != "run":
            return
        for stored in sorted({f.stored for f in frames}):
            for act in self._run(stored)[0]:
                v = np.where(np.isfinite(act.values), act.values, 0)
                signed = self._signed.get(act.name, False) or bool(v.min() < 0)
                self._signed[act.name] = signed
                self._scales[act.name] = max(self._scales.get(act.name, 0.0),
                                             float(np.abs(v).max() if signed else v.max()))

    def render(self, frame: FrameStep) -> np.ndarray:
        from cnnviz.inspect.activations import LayerActivation

        acts, probs = self._run(frame.stored)
        panels = []
        for act in acts:
            if self.scale == "run" and act.name in self._scales:
                mosaic = activation_mosaic(act, signed=self._signed[act.name], scale=self._scales[act.name] or None)
            else:
                mosaic = activation_mosaic(act)
            if act.shape not in self._gaps:
                ones = LayerActivation(act.name, act.kind, act.shape, np.ones(act.shape, np.float32))
                self._gaps[act.shape] = gap_labels(activation_mosaic(ones))
            lut, levels = lut_for(mosaic.signed)
            rgb = paint_mosaic(mosaic.image, lut, levels, self._gaps[act.shape])[..., :3]
            panels.append(_Panel(f"{act.name} {'x'.join(str(d) for d in act.shape)}", rgb))
        best = int(np.argmax(probs))
        names = self.inference.class_names
        answer = names[best] if best < len(names) else str(best)
        note = f"{self.label}: predicts {answer} ({probs[best] * 100:.0f}%)"
        return self._compose(panels, frame.step, _stored_note(frame) + note)


def _stored_note(frame: FrameStep) -> str:
    return "" if frame.stored == frame.step else f"weights of step {frame.stored:,}  ·  "


# -- curves ----------------------------------------------------------------------------------------------------
_LOSS = (31, 119, 180)  # blue, as the window's loss curve
_TRAIN = (44, 160, 44)  # green
_TEST = (214, 39, 40)  # red markers
_RAW = (190, 208, 228)  # the per-batch values behind the average, pale
_GRID = (232, 232, 232)


@dataclass
class _Plot:
    """Where one plot's data area is, in frame coordinates."""

    x0: int  # first and last pixel column of the data area, in frame coordinates
    x1: int
    y0: int
    y1: int


class CurvesFrames:
    """Loss and accuracy up to the frame's step, on axes that span the whole run, so the curves grow.

    Both plots are drawn once with the whole run (and once empty); a frame shows the full drawing left of its
    step and the empty one right of it, with a line at the step: every frame costs a copy, not a redraw.
    """

    def __init__(self, timeline, chrome: Chrome) -> None:
        self.chrome = chrome
        history = timeline.history
        if history.steps < 2:
            raise CnnvizError(f"{timeline.path}: the run has no per-step metrics to draw curves of")
        self.last = chrome.figures.last_step
        self.loss = history.step_loss.values.copy()
        self.loss_ma = history.moving_average("step_loss").copy()
        self.acc_ma = history.moving_average("step_accuracy").copy() * 100
        tests = sorted((s, float(e["accuracy"])) for s, e in timeline.evaluations.items()
                       if isinstance(e, dict) and isinstance(e.get("accuracy"), (int, float)))
        self.tests = [(s, a * 100) for s, a in tests if math.isfinite(a)]
        self.plots: list[_Plot] = []
        self.empty: np.ndarray | None = None  # both plots' axes alone
        self.full: np.ndarray | None = None  # both plots' axes with the whole run drawn in

    def prepare(self, frames: list[FrameStep]) -> None:
        x, y, width, height = self.chrome.content
        half = (width - self.chrome.margin * 2) // 2
        steps = np.arange(1, len(self.loss) + 1)
        finite = self.loss_ma[np.isfinite(self.loss_ma)]
        raw = self.loss[np.isfinite(self.loss)]
        top = float(max(np.percentile(raw, 99) if raw.size else 1.0, finite.max() if finite.size else 1.0))
        low_acc = [v for v in self.acc_ma[len(self.acc_ma) // 20:] if math.isfinite(v)] + [a for _, a in self.tests]
        bottom = max(0.0, math.floor((min(low_acc) if low_acc else 0.0) / 10) * 10)
        empty = Image.new("RGB", (self.chrome.width, self.chrome.height), BACKGROUND)
        full = empty.copy()
        self.plots = [
            self._draw_plot(empty, full, (x, y, half, height), "loss (per batch, and its moving average)",
                            (0.0, top * 1.05), [(steps, self.loss, _RAW, 1), (steps, self.loss_ma, _LOSS, 2)], []),
            self._draw_plot(empty, full, (x + width - half, y, half, height),
                            "accuracy % (train: moving average; test: dots)", (bottom, 100.0),
                            [(steps, self.acc_ma, _TRAIN, 2)], self.tests),
        ]
        self.empty, self.full = np.asarray(empty), np.asarray(full)

    def _draw_plot(self, empty: Image.Image, full: Image.Image, area, title, y_range, lines, dots) -> _Plot:
        c = self.chrome
        ax, ay, aw, ah = area
        size = c.small
        label_w = text_size("100.0", size)[0] + 6
        x0, x1 = ax + label_w, ax + aw - 4
        y0, y1 = ay + text_size(title, size)[1] + 6, ay + ah - text_size("0", size)[1] - 6
        lo, hi = y_range
        hi = hi if hi > lo else lo + 1

        def px(step):
            return x0 + (np.asarray(step, np.float64) / max(1, self.last)) * (x1 - x0)

        def py(value):
            return y1 - (np.clip(np.asarray(value, np.float64), lo, hi) - lo) / (hi - lo) * (y1 - y0)

        d = ImageDraw.Draw(empty)
        draw_text(empty, (ax, ay), fit_text(title, size, aw)[0], size)
        for value in _ticks(lo, hi, 5):
            y = float(py(value))
            d.line((x0, y, x1, y), fill=_GRID)
            label = f"{value:g}"
            draw_text(empty, (x0 - text_size(label, size)[0] - 4, y - size // 2 - 1), label, size, MUTED)
        for step in _ticks(0, self.last, 6):
            x = float(px(step))
            d.line((x, y0, x, y1), fill=_GRID)
            label = f"{int(step):,}"
            draw_text(empty, (min(x - text_size(label, size)[0] / 2, x1 - text_size(label, size)[0]), y1 + 3),
                      label, size, MUTED)
        d.rectangle((x0, y0, x1, y1), outline=(160, 160, 160))
        full.paste(empty.crop((ax, ay, ax + aw, ay + ah)), (ax, ay))
        d = ImageDraw.Draw(full)
        columns = max(2, x1 - x0)
        for steps, values, colour, width in lines:
            xs, ys = _per_column(px(steps), values, columns, x0)
            if width == 1 and len(steps) <= columns:  # the raw values of a short run: a thin line through them
                points = [(float(x), float(y)) for x, y, v in zip(px(steps), py(values), values) if math.isfinite(v)]
                if len(points) > 1:
                    d.line(points, fill=colour, width=1)
            elif width == 1:  # of a long one: a vertical stroke from each column's least to its largest value
                for col, (vmin, vmax) in enumerate(ys):
                    if math.isfinite(vmin):
                        d.line((x0 + col, float(py(vmin)), x0 + col, float(py(vmax))), fill=colour)
            else:
                points = [(x0 + col, float(py(v))) for col, v in enumerate(xs) if math.isfinite(v)]
                if len(points) > 1:
                    d.line(points, fill=colour, width=width, joint="curve")
        r = max(2, size // 4)
        if dots:
            d.line([(float(px(s)), float(py(a))) for s, a in dots], fill=_TEST, width=1)
        for s, a in dots:
            cx, cy = float(px(s)), float(py(a))
            d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_TEST, outline=BACKGROUND)
        return _Plot(x0, x1, round(y0), round(y1))

    def render(self, frame: FrameStep) -> np.ndarray:
        c = self.chrome
        out = self.empty.copy()
        for plot in self.plots:
            cut = plot.x0 + int(round((plot.x1 - plot.x0) * min(1.0, frame.step / max(1, self.last)))) + 1
            out[:, plot.x0:cut] = self.full[:, plot.x0:cut]
        image = Image.fromarray(out)
        d = ImageDraw.Draw(image)
        for plot in self.plots:
            x = plot.x0 + (plot.x1 - plot.x0) * min(1.0, frame.step / max(1, self.last))
            d.line((x, plot.y0, x, plot.y1), fill=ACCENT, width=2)
        c.draw(image, frame.step, _stored_note(frame).rstrip(" ·") if frame.stored != frame.step else "")
        return np.asarray(image)


def _per_column(xs: np.ndarray, values: np.ndarray, columns: int, x0: int):
    """Per pixel column: the last value in it (for a line) and (least, largest) value (for the raw strokes)."""
    col = np.clip(np.floor(xs - x0).astype(np.int64), 0, columns)
    last = np.full(columns + 1, np.nan)
    spread = [(math.nan, math.nan)] * (columns + 1)
    ok = np.isfinite(values)
    last[col[ok]] = values[ok]  # later steps overwrite earlier ones in a column
    order = np.argsort(col[ok], kind="stable")
    cols, vals = col[ok][order], values[ok][order]
    bounds = np.flatnonzero(np.diff(cols)) + 1
    for chunk_cols, chunk in zip(np.split(cols, bounds), np.split(vals, bounds)):
        if len(chunk):
            spread[int(chunk_cols[0])] = (float(chunk.min()), float(chunk.max()))
    return last, spread


def _ticks(lo: float, hi: float, count: int) -> list[float]:
    """About `count` round values between lo and hi (1, 2 or 5 times a power of ten apart)."""
    span = hi - lo
    if not span > 0:
        return [lo]
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


__all__ = ["Chrome", "CurvesFrames", "FeatureMapsFrames", "FiltersFrames", "SCALES"]
