"""The convolution filters of the model, how much each moved during the last epoch, and one enlarged with
the test patches that excite it most (:mod:`top_patches_view`).

Each conv layer is ONE image (:func:`filter_mosaic`), blue for negative weights, white for zero and red
for positive, on one symmetric scale per layer; a colour model's first layer is drawn in colour instead
(:func:`rgb_filter_mosaic`: a filter's red, green and blue weights as its red, green and blue). Under it a bar per filter shows its relative change
over the last epoch. Redraws are coalesced to at most 5 per second and skipped while hidden.
"""
from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QMenu,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from cnnviz.gui.visibility import on_screen
from cnnviz.errors import CnnvizError
from cnnviz.gui.widgets.actmax_view import ActmaxImage
from cnnviz.gui.widgets.colormaps import color_at, diverging_lut, ink_for
from cnnviz.gui.widgets.mosaic_canvas import (
    GAP,
    INNER,
    LayerPanel,
    LayerStack,
    MosaicCanvas,
    gap_labels,
)
from cnnviz.gui.widgets.top_patches_view import TopPatchesPanel
from cnnviz.inspect.filters import conv_weights, filter_change, filter_mosaic, rgb_filter_mosaic
from cnnviz.inspect.mosaic import Mosaic

_DELAY_MS = 200  # weights arrive at ~5 Hz while training: redraw at most 5 times a second
_NUMBERS_MAX = 6  # kernels up to 6 x 6 get their values printed
_NO_CONV = ("This model has no convolution layers, so it has no filters to show.\n"
            "Choose a preset with convolutions (for example “gorner”) or add a conv layer.")
_LEVELS = (-1.0, 1.0)


def weight_title(name: str, w: np.ndarray) -> str:
    """``"conv1  8 x 1 x 5 x 5"``: the layer's name and weight shape."""
    return f"{name}  {' x '.join(str(d) for d in w.shape)}"


class ChangeBars(QWidget):
    """One bar per filter: its relative change over the last epoch (or a message before there is one)."""

    bar_clicked = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setFixedHeight(64)
        self.setMouseTracking(True)
        self._values: np.ndarray | None = None
        self._text = ""
        self.setToolTip("How much each filter changed during the last epoch: ||W_now - W_before|| / ||W_before||")

    def set_values(self, values: np.ndarray | None, text: str) -> None:
        self._values, self._text = values, text
        self.update()

    def _bar_at(self, x: float) -> int | None:
        if self._values is None or not len(self._values):
            return None
        index = int((x - 4) / max(1e-9, self._bar_width()))
        return index if 0 <= index < len(self._values) else None

    def _bar_width(self) -> float:
        return min(24.0, (self.width() - 8) / max(1, len(self._values)))

    def paintEvent(self, ev) -> None:
        p = QPainter(self)
        muted = self.palette().placeholderText().color()
        p.setPen(muted)
        if self._values is None:
            p.drawText(self.rect().adjusted(4, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, self._text)
            return
        width = self._bar_width()
        labelled = width >= 14  # room for the filter numbers under the bars
        top, bottom = 16, self.height() - (13 if labelled else 2)
        peak = float(np.max(self._values)) if len(self._values) else 0.0
        p.drawText(QRectF(4, 0, self.width() - 8, top), Qt.AlignmentFlag.AlignLeft,
                   f"{self._text}  (largest {100 * peak:.2f}%)")
        p.drawLine(4, bottom, int(4 + width * len(self._values)), bottom)
        small = p.font()
        small.setPointSizeF(max(6.0, small.pointSizeF() * 0.8))
        p.setFont(small)
        colour = QColor(214, 96, 77)
        for i, v in enumerate(self._values):
            h = 0.0 if peak <= 0 else (bottom - top - 1) * float(v) / peak
            p.fillRect(QRectF(4 + i * width + 1, bottom - h, max(1.0, width - 2), h), colour)
            if labelled:
                p.drawText(QRectF(4 + i * width, bottom + 1, width, 12), Qt.AlignmentFlag.AlignHCenter, str(i))

    def mouseMoveEvent(self, ev) -> None:
        i = self._bar_at(ev.position().x())
        if i is not None:
            QToolTip.showText(ev.globalPosition().toPoint(), f"filter {i}: {100 * self._values[i]:.3f}%", self)

    def mousePressEvent(self, ev) -> None:
        i = self._bar_at(ev.position().x())
        if i is not None:
            self.bar_clicked.emit(i)


class FiltersView(QWidget):
    """Every conv layer's filters as a mosaic, their change per epoch, and a clicked filter enlarged.

    Right-click a filter while a run trains for surgery: zero, freeze (outlined dashed blue while frozen),
    unfreeze or re-initialise it (``operate_requested``: layer, filter, action; the window sends it to the run).
    """

    operate_requested = Signal(str, int, str)

    def __init__(self, session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("filterView")
        self.session = session
        self._dirty = True
        self._weights: dict[str, np.ndarray] = {}
        self._mosaics: dict[str, Mosaic] = {}
        self._panels: dict[str, LayerPanel] = {}
        self._masks: dict[tuple, np.ndarray] = {}
        self._layout_key: tuple | None = None
        self._selected: tuple[str, int] | None = None
        self._in_channel = 0  # which kernel of the enlarged filter has its numbers shown
        self._baseline: dict[str, np.ndarray] | None = None  # weights at the last epoch end
        self._changes: dict[str, np.ndarray] | None = None
        self._changes_epoch = 0
        self._from_start = True  # the baseline is the untrained start, so "after the first epoch"
        # Set by the window: step -> (epoch, its first step, conv weights at that start) from the run's
        # timeline, so that a step shown from the past has its own epoch's changes
        self.baseline_at = None
        self._shown = None
        self._last_refresh = 0.0  # time.monotonic() of the last redraw
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._refresh)
        self._build_ui()
        s = session
        s.weights_changed.connect(self._on_weights_changed)
        s.spec_changed.connect(self._on_spec_changed)
        s.history_reset.connect(self._on_history_reset)
        s.epoch_ended.connect(self._on_epoch_ended)
        s.state_changed.connect(self._on_state_changed)
        s.surgery_changed.connect(self._on_surgery_changed)  # a bound method: a lambda would keep the view alive
        self._on_history_reset(s.history)

    def _build_ui(self) -> None:
        self._stack = LayerStack()
        bold = self.font()
        bold.setBold(True)
        self._detail_title = QLabel("")
        self._detail_title.setFont(bold)
        self._detail_canvas = MosaicCanvas(max_zoom=40, max_height=240)
        self._detail_canvas.fit_width(240)
        self._detail_canvas.hide()
        self._detail_canvas.tile_clicked.connect(self._select_in_channel)
        self._detail_canvas.describe = lambda i: f"input channel {i} (click to show its numbers)"
        self._detail_info = QLabel("Click a filter to enlarge it and read its weights.")
        self._detail_info.setWordWrap(True)
        self._table = QTableWidget()
        self._table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self._table.horizontalHeader().hide()
        self._table.verticalHeader().hide()
        self._table.setToolTip("The kernel's weights")
        self._table.hide()
        self._detail = detail = QWidget()
        detail.setMinimumWidth(220)
        dl = QVBoxLayout(detail)
        dl.addWidget(self._detail_title)
        dl.addWidget(self._detail_canvas, 0, Qt.AlignmentFlag.AlignHCenter)
        dl.addWidget(self._detail_info)
        dl.addWidget(self._table, 0, Qt.AlignmentFlag.AlignHCenter)
        self.top_patches = TopPatchesPanel(self.session)  # the test images that excite the filter most
        dl.addWidget(self.top_patches)
        self._actmax_title = QLabel("Preferred input")
        self._actmax_title.setFont(bold)
        self._actmax_title.setToolTip("Activation maximisation: the input image that makes this filter fire most")
        self.actmax = ActmaxImage(self.session)
        self.actmax.setObjectName("filterActmax")
        dl.addWidget(self._actmax_title)
        dl.addWidget(self.actmax)
        dl.addStretch(1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self._stack)
        split.addWidget(detail)
        split.setStretchFactor(0, 1)
        split.setSizes([480, 270])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split)

    # -- session signals -------------------------------------------------------------------------------
    def _schedule(self, delay_ms: int) -> None:
        """Redraw soon: at once when the last redraw is at least `delay_ms` old (the first of a burst, e.g. a
        step shown from the timeline, is drawn without waiting), else when it will be."""
        if not on_screen(self):
            self._dirty = True  # hidden: no work; showEvent catches up
            return
        wait = max(0, int(delay_ms - (time.monotonic() - self._last_refresh) * 1000))
        if not self._timer.isActive() or self._timer.remainingTime() > wait:
            # an urgent refresh (a new input, a new model) does not wait behind a throttled one (new weights)
            self._timer.start(wait)

    def _on_surgery_changed(self, operations) -> None:
        self._schedule(0)

    def _on_weights_changed(self, snapshot) -> None:
        self._schedule(_DELAY_MS)

    def _on_spec_changed(self, spec) -> None:
        self._selected = None
        self._on_history_reset(self.session.history)

    def _current(self) -> dict[str, np.ndarray]:
        """The run's newest conv weights (not the shown ones while an earlier step is on show)."""
        latest = self.session.latest
        if not self.session.live and latest is not None:
            return {name: np.asarray(latest.state[f"layers.{name}.weight"]) for name, _ in
                    conv_weights(self.session.model) if f"layers.{name}.weight" in latest.state}
        return dict(conv_weights(self.session.model))

    def _shown_changes(self) -> tuple[str, dict[str, np.ndarray]] | None:
        """While an earlier step is on show: each filter's change from the start of that step's epoch."""
        if self.session.live or self.baseline_at is None:
            return None
        step = self.session.weights_step
        try:
            found = self.baseline_at(step)
        except CnnvizError:
            found = None
        if found is None:
            return None
        epoch, start, baseline = found
        current = dict(conv_weights(self.session.model))
        changes = {name: filter_change(baseline[name], w) for name, w in current.items()
                   if name in baseline and baseline[name].shape == w.shape}
        return f"Change of each filter in epoch {epoch}, from step {start:,} to step {step:,}", changes

    def _on_history_reset(self, history) -> None:
        # Untrained weights are the start of the first epoch; for an opened run the weights of the
        # previous epoch end are unknown, so changes wait for the next epoch end.
        self._from_start = not self.session.trained
        self._baseline = self._current() if self._from_start else None
        self._changes, self._changes_epoch = None, 0
        self._schedule(0)

    def _on_state_changed(self, state: str) -> None:
        if state == "running" and self._baseline is None:
            self._baseline = self._current()

    def _on_epoch_ended(self, metrics) -> None:
        # Needed even while hidden: the weights at this moment are the next epoch's reference.
        current = self._current()
        if self._baseline is not None:
            self._changes = {name: filter_change(self._baseline[name], w) for name, w in current.items()
                             if name in self._baseline and self._baseline[name].shape == w.shape}
            self._changes_epoch = metrics.epoch
        self._baseline = current
        self._schedule(0)

    # -- drawing ---------------------------------------------------------------------------------------
    def _refresh(self, force: bool = False) -> None:
        if not (force or on_screen(self)):
            self._dirty = True
            return
        self._dirty = False
        self._last_refresh = time.monotonic()
        layers = conv_weights(self.session.model)
        key = tuple((name, w.shape) for name, w in layers)
        if key != self._layout_key:
            self._rebuild(layers)
            self._layout_key = key
        lut = diverging_lut()
        self._shown = self._shown_changes()
        frozen = self.session.frozen_filters()
        for position, (name, w) in enumerate(layers):
            panel = self._panels[name]
            if position == 0 and self._colour_input(w):
                mosaic, rgb = rgb_filter_mosaic(w)
                panel.canvas.set_rgb(mosaic, rgb, self._mask(w, rgb=True))
                panel.note.setText(f"RGB: weights on red, green, blue (grey = 0, ±{mosaic.scale:.3g})")
                panel.note.setToolTip(f"In colour: each filter's weights on the red, green and blue inputs as its red, "
                                      f"green and blue (grey = 0, full colour = ±{mosaic.scale:.3g}). Click a filter "
                                      "to see each channel's kernel.")
            else:
                mosaic = filter_mosaic(w)
                panel.canvas.set_mosaic(mosaic, lut, _LEVELS, self._mask(w))
                panel.note.setText(f"scale ±{mosaic.scale:.3g} (blue < 0 < red); click a filter to enlarge it")
            self._weights[name], self._mosaics[name] = w, mosaic
            panel.extra.set_values(*self._change_text(name))
            panel.canvas.mark_tiles([i for layer, i in frozen if layer == name])
        if self._selected is not None:
            self.select_filter(*self._selected)

    def _change_text(self, name: str) -> tuple[np.ndarray | None, str]:
        shown = self._shown
        if shown is not None:
            text, changes = shown
            return (changes[name], text) if name in changes else (None, "No change: the epoch starts here.")
        if self._changes is not None and name in self._changes:
            return self._changes[name], f"Change of each filter during epoch {self._changes_epoch}"
        if self._from_start:
            return None, "Changes appear after the first epoch."
        return None, "Changes appear after the next epoch."

    def _rebuild(self, layers: list[tuple[str, np.ndarray]]) -> None:
        self._stack.clear()
        self._panels, self._weights, self._mosaics = {}, {}, {}
        self._selected = None
        self._show_detail()
        self._stack.show_message(None if layers else _NO_CONV)
        self._detail.setVisible(bool(layers))
        for name, w in layers:
            canvas = MosaicCanvas(max_zoom=24, max_height=320)
            canvas.tile_clicked.connect(lambda i, name=name: self.select_filter(name, i))
            canvas.describe = lambda i, name=name: self._describe(name, i)
            canvas.tile_menu_requested.connect(lambda i, pos, name=name: self._show_filter_menu(name, i, pos))
            bars = ChangeBars()
            bars.bar_clicked.connect(lambda i, name=name: self.select_filter(name, i))
            panel = LayerPanel(weight_title(name, w), canvas, bars)
            panel.title.setToolTip(f"{name}: {w.shape[0]} filters, each {w.shape[1]} input channel(s) of "
                                   f"{w.shape[2]} x {w.shape[3]} weights")
            self._stack.add_panel(panel)
            self._panels[name] = panel

    def _mask(self, w: np.ndarray, rgb: bool = False) -> np.ndarray:
        key = (rgb, w.shape)
        if key not in self._masks:
            ones = np.ones(w.shape, np.float32)
            self._masks[key] = gap_labels(rgb_filter_mosaic(ones)[0] if rgb else filter_mosaic(ones))
        return self._masks[key]

    def _colour_input(self, w: np.ndarray) -> bool:
        """Whether ``w`` (the first conv layer's weights) sees the red, green and blue of a colour image."""
        shape = getattr(self.session.spec, "input_shape", (1,))
        return w.shape[1] == 3 and int(shape[0]) == 3

    def _describe(self, name: str, index: int) -> str:
        w = self._weights[name][index]
        text = f"{name} filter {index}: weights {float(w.min()):.3g} to {float(w.max()):.3g}"
        changes = (self._changes or {}).get(name)
        if changes is not None:
            text += f"; changed {100 * changes[index]:.2f}% in epoch {self._changes_epoch}"
        operation = self._last_operation(name, index)
        if operation is not None:
            text += f"; {operation.describe()}"
        return text + " (right-click: zero, freeze, re-initialise)"

    # -- surgery ---------------------------------------------------------------------------------------
    def _last_operation(self, name: str, index: int):
        """The last operation on this filter in the weights on show (None if none)."""
        s = self.session
        ops = [op for op in s.surgeries
               if op.layer == name and op.index == index and (s.live or op.step < s.weights_step)]
        return ops[-1] if ops else None

    def filter_menu(self, name: str, index: int) -> QMenu:
        """The right-click menu of filter ``index`` of layer ``name``: its operations, enabled while a run of this
        window trains (running or paused) and the newest weights are on show."""
        menu = QMenu(self)
        menu.setObjectName("filterMenu")
        s = self.session
        frozen = (name, index) in s.frozen_filters()
        able = str(s.state) in ("running", "paused") and s.live
        items = [("zero", f"Zero filter {index}", "Set its weights and bias to 0 (and its optimizer state): see "
                  "what the network does without it. Under ReLU a zeroed filter stays silent until re-initialised."),
                 ("unfreeze" if frozen else "freeze", f"Unfreeze filter {index}" if frozen else f"Freeze filter {index}",
                  "Let it learn again" if frozen else "Keep its weights as they are from the next batch on"),
                 ("reinit", f"Re-initialise filter {index}", "Give it fresh random weights (PyTorch's own "
                  "initialisation) and let it learn again")]
        for action, label, tip in items:
            act = menu.addAction(label)
            act.setObjectName(f"filter_{action}")
            act.setToolTip(tip)
            act.setEnabled(able)
            act.triggered.connect(lambda _=False, action=action: self.operate_requested.emit(name, index, action))
        menu.setToolTipsVisible(True)
        if not able:
            menu.addSeparator()
            why = ("Showing an earlier step: press Live (L) to operate" if str(s.state) in ("running", "paused")
                   else "Surgery works while a run trains: press Train, or Pause")
            menu.addAction(why).setEnabled(False)
        return menu

    def _show_filter_menu(self, name: str, index: int, pos) -> None:
        self.select_filter(name, index)
        self.filter_menu(name, index).exec(pos)

    # -- enlarged filter -------------------------------------------------------------------------------
    def select_filter(self, name: str, index: int) -> None:
        """Enlarge filter ``index`` of layer ``name`` in the side panel."""
        if name not in self._weights or not 0 <= index < self._weights[name].shape[0]:
            return
        if self._selected is not None and self._selected[0] in self._panels:
            self._panels[self._selected[0]].canvas.highlight(None)
        if self._selected != (name, index):
            self._in_channel = 0
        self._selected = (name, index)
        self._panels[name].canvas.highlight(index)
        self._show_detail()

    def select_layer(self, name: str) -> bool:
        """Scroll layer `name`'s filters to the top of the view and mark its title (e.g. when a health
        warning about it is clicked); False when the model has no conv layer of that name."""
        if self._dirty:
            self._refresh(force=True)
        if name not in self._panels:
            return False
        for layer, panel in self._panels.items():
            panel.title.setStyleSheet("background: palette(highlight); color: palette(highlighted-text);"
                                      if layer == name else "")
        self._stack.body.layout().activate()  # the panels' positions, also before the view was first shown
        self._stack.verticalScrollBar().setValue(self._panels[name].y())
        return True

    def selected_filter(self) -> tuple[str, int] | None:
        """``(layer, filter)`` shown enlarged, or None."""
        return self._selected

    def detail_image(self) -> np.ndarray | None:
        """The enlarged filter as displayed (``filter_mosaic(w, out_channel=k).image``), or None."""
        return None if self._selected is None else self._detail_canvas.mosaic.image

    def _select_in_channel(self, index: int) -> None:
        self._in_channel = index
        self._show_detail()

    def _show_detail(self) -> None:
        if self._selected is None:
            self._detail_title.setText("")
            self._detail_canvas.hide()
            self._table.hide()
            self._detail_info.setText("Click a filter to enlarge it and read its weights.")
            self.top_patches.show_filter(None)
            self._actmax_title.hide()
            self.actmax.set_target(None, None)
            return
        name, k = self._selected
        w = self._weights[name]
        scale = self._mosaics[name].scale
        mosaic = filter_mosaic(w, out_channel=k, scale=scale)
        gaps = gap_labels(filter_mosaic(np.ones(w.shape, np.float32), out_channel=k))
        gaps[gaps == GAP] = INNER  # the same light grey between kernels as in the overview
        self._detail_canvas.set_mosaic(mosaic, diverging_lut(), _LEVELS, gaps)
        self._detail_canvas.highlight(self._in_channel if w.shape[1] > 1 else None)
        self._detail_canvas.show()
        n_out, n_in, kh, kw = w.shape
        self._detail_title.setText(f"{name}, filter {k}")
        self._actmax_title.show()
        self.actmax.set_target(name, k)
        text = (f"Filter {k} of 0-{n_out - 1}: {n_in} input channel(s) of {kh} x {kw}; "
                f"weights {float(w[k].min()):.3g} to {float(w[k].max()):.3g} (layer scale ±{scale:.3g}).")
        changes = (self._changes or {}).get(name)
        if changes is not None:
            text += f" Changed {100 * changes[k]:.2f}% during epoch {self._changes_epoch}."
        operation = self._last_operation(name, k)
        if operation is not None:
            text += f" {operation.describe()[:1].upper()}{operation.describe()[1:]}."
        show_numbers = kh <= _NUMBERS_MAX and kw <= _NUMBERS_MAX
        if show_numbers and n_in > 1:
            text += f" Numbers: input channel {self._in_channel} (click a kernel to pick another)."
        elif not show_numbers:
            text += " Kernels larger than 6 x 6: hover a tile for its range."
        self._detail_info.setText(text)
        self._table.setVisible(show_numbers)
        if show_numbers:
            self._fill_table(w[k, min(self._in_channel, n_in - 1)], scale)
        if self.top_patches.shown() != (name, k):
            self.top_patches.show_filter(name, k)

    def _fill_table(self, kernel: np.ndarray, scale: float) -> None:
        kh, kw = kernel.shape
        self._table.setRowCount(kh)
        self._table.setColumnCount(kw)
        lut = diverging_lut()
        for r in range(kh):
            for c in range(kw):
                v = float(kernel[r, c])
                item = QTableWidgetItem(f"{v:+.2f}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                rgb = color_at(lut, v / scale if scale > 0 else 0.0, _LEVELS)
                item.setBackground(QColor(*rgb))
                item.setForeground(QColor(*ink_for(rgb)))
                item.setToolTip(f"row {r}, column {c}: {v:.5g}")
                self._table.setItem(r, c, item)
        for c in range(kw):
            self._table.setColumnWidth(c, 44)
        for r in range(kh):
            self._table.setRowHeight(r, 24)
        frame = 2 * self._table.frameWidth()
        self._table.setFixedSize(44 * kw + frame, 24 * kh + frame)

    # -- for tests and the window ----------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        """The conv layers shown, top to bottom."""
        return list(self._panels)

    def mosaic_for(self, layer: str) -> np.ndarray:
        """The mosaic image of ``layer`` as displayed (``filter_mosaic(weight).image``)."""
        return self._mosaics[layer].image

    def changes_for(self, layer: str) -> np.ndarray | None:
        """Relative change of each filter of ``layer`` during the last epoch, or None before there is one."""
        return None if self._changes is None else self._changes.get(layer)

    def canvas_for(self, layer: str) -> MosaicCanvas:
        return self._panels[layer].canvas

    def empty_message(self) -> str | None:
        """The message shown instead of the filters, if any."""
        return self._stack.message.text() if not self._stack.message.isHidden() else None

    def export_png(self, path: str) -> None:
        """Save every layer's filters (the whole scrolled stack) as a PNG."""
        if self._dirty:
            self._refresh(force=True)
        if not self._stack.body.grab().save(str(path), "PNG"):
            raise CnnvizError(f"could not write the filters picture to {path}")

    # -- Qt overrides ----------------------------------------------------------------------------------
    def showEvent(self, ev) -> None:
        super().showEvent(ev)
        if self._dirty:
            self._schedule(0)
