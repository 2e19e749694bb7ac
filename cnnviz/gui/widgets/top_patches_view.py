"""The test images that excite one filter most, each with the patch its unit sees outlined; shown beside the
enlarged filter in the filters view. A click on one makes it the feature maps' input.

A :class:`~cnnviz.inspect.top_patches.TopPatchTracker` over the test set is kept in the window process, off the
GUI thread (the training process does nothing for it): while training, each weight update runs one slice of
the test set through a copy of the new weights, round-robin, so the whole set is covered every few updates; a
step shown from the timeline, or the weights after training, get a whole pass at once.
"""
from __future__ import annotations

import copy

import numpy as np
from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QLabel, QSizePolicy, QToolTip, QVBoxLayout, QWidget

from cnnviz.gui.visibility import on_screen
from cnnviz.gui.background_job import BackgroundJob
from cnnviz.gui.throttle import Throttle
from cnnviz.inspect.top_patches import DEFAULT_K, TopPatches, TopPatchTracker, conv_layers
from cnnviz.training.messages import RUNNING

_THUMB = 56  # pixels a side of one thumbnail (2x for 28 x 28)
_GAP = 4
_COLS = 4
_TEXT = 14  # the activation under each thumbnail
_OUTLINE = QColor(255, 210, 0)


class PatchStrip(QWidget):
    """Thumbnails of images with one box outlined in each; ``clicked(index)`` gives the image's test index."""

    clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("topPatchStrip")
        self.setMouseTracking(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self._items: list[tuple[int, QImage, tuple[int, int, int, int], float, str]] = []

    def set_items(self, items: list[tuple[int, np.ndarray, tuple[int, int, int, int], float, str]]) -> None:
        """``(test index, raw uint8 image (H, W) or (H, W, 3), box (top, left, bottom, right), activation, tooltip)``
        each."""
        self._items = []
        for index, raw, box, activation, tip in items:
            a = np.ascontiguousarray(raw, dtype=np.uint8)
            h, w = a.shape[:2]
            if a.ndim == 3:  # colour
                image = QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
            else:
                image = QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
            self._items.append((index, image, box, activation, tip))
        self.updateGeometry()
        self.update()

    def indices(self) -> list[int]:
        return [item[0] for item in self._items]

    def sizeHint(self) -> QSize:  # noqa: N802
        rows = max(1, (len(self._items) + _COLS - 1) // _COLS)
        return QSize(_COLS * (_THUMB + _GAP), rows * (_THUMB + _TEXT + _GAP))

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return self.sizeHint()

    def _cell(self, i: int) -> QRect:
        r, c = divmod(i, _COLS)
        return QRect(c * (_THUMB + _GAP), r * (_THUMB + _TEXT + _GAP), _THUMB, _THUMB)

    def item_at(self, pos: QPoint) -> int | None:
        for i in range(len(self._items)):
            cell = self._cell(i)
            if cell.adjusted(0, 0, 0, _TEXT).contains(pos):
                return i
        return None

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        font = p.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        p.setFont(font)
        for i, (_index, image, box, activation, _tip) in enumerate(self._items):
            cell = self._cell(i)
            p.drawImage(cell, image)
            sx, sy = cell.width() / image.width(), cell.height() / image.height()
            top, left, bottom, right = box
            p.setPen(QPen(_OUTLINE, 1.5))
            p.drawRect(cell.x() + left * sx, cell.y() + top * sy, (right - left) * sx - 1, (bottom - top) * sy - 1)
            p.setPen(self.palette().windowText().color())
            p.drawText(QRect(cell.x(), cell.bottom() + 1, cell.width(), _TEXT), Qt.AlignmentFlag.AlignCenter,
                       f"{activation:.2f}")
        p.end()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        i = self.item_at(event.position().toPoint())
        if i is None:
            QToolTip.hideText()
        else:
            QToolTip.showText(event.globalPosition().toPoint(), self._items[i][4], self)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        i = self.item_at(event.position().toPoint())
        if i is not None and event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(self._items[i][0])


class TopPatchesPanel(QWidget):
    """The top ``k`` test patches of the filter :meth:`show_filter` chose, kept up to date as training runs."""

    def __init__(self, session, k: int = DEFAULT_K, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("topPatchesPanel")
        self.session = session
        self.k = k
        self._tracker: TopPatchTracker | None = None
        self._generation = 0
        self._results: dict[str, TopPatches] = {}
        self._result_step: int | None = None
        self._filter: tuple[str, int] | None = None
        self._full = False  # the results on show come from one whole pass
        self._dirty = True
        self.runner = BackgroundJob()  # no parent: see BackgroundJob
        self.runner.done.connect(self._on_done)
        self.runner.failed.connect(self._on_failed)  # not a lambda: one holding `self` would keep the view alive
        self._throttle = Throttle(200, self._request, self)
        self.caption = QLabel("")
        self.caption.setObjectName("topPatchesCaption")
        self.caption.setWordWrap(True)
        self.caption.setToolTip("The test images whose strongest response in this filter is highest (one patch "
                                "per image); the yellow box is the patch of input pixels the unit sees. "
                                "Click one to show its feature maps.")
        self.strip = PatchStrip()
        self.strip.clicked.connect(self.session.select_test_image)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption)
        layout.addWidget(self.strip, 0, Qt.AlignmentFlag.AlignLeft)
        session.weights_changed.connect(self._schedule)
        session.spec_changed.connect(self._reset)
        session.data_changed.connect(self._reset)

    # -- automation surface ----------------------------------------------------------------------------
    def show_filter(self, layer: str | None, index: int = 0) -> None:
        """Show the top patches of filter ``index`` of ``layer`` (None: nothing)."""
        self._filter = None if layer is None else (layer, int(index))
        self._render()
        self._schedule()

    def shown(self) -> tuple[str, int] | None:
        """``(layer, filter)`` whose patches are shown, or None."""
        return self._filter

    def result(self, layer: str) -> TopPatches | None:
        return self._results.get(layer)

    def covered(self) -> bool:
        """True once the patches on show come from the whole test set at the weights on show."""
        return bool(self._results) and self._result_step == self.session.weights_step and \
            self._tracker is not None and self._full

    # -- work ------------------------------------------------------------------------------------------
    def _reset(self, _value=None) -> None:
        self.runner.cancel()
        self._tracker, self._results, self._result_step = None, {}, None
        self._generation += 1
        self._full = False
        self._render()
        self._schedule()

    def _schedule(self, *_args) -> None:
        if not on_screen(self) or self._filter is None:
            self._dirty = True
            return
        self._throttle.request()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._dirty:
            self._dirty = False
            self._schedule()

    def _request(self) -> None:
        data = self.session.data
        if data is None or len(data.test) == 0 or not conv_layers(self.session.model):
            return
        step = self.session.weights_step
        if self._result_step == step and self._full:
            return
        if self._tracker is None:
            self._tracker = TopPatchTracker(self.session.model, len(data.test), None, self.k)
            self._full = False
        tracker, generation, images = self._tracker, self._generation, data.test.images
        model = copy.deepcopy(self.session.model)  # the window's copy is replaced at every snapshot
        whole = self.session.state != RUNNING  # a seek or a paused run: one whole pass at once

        def work(progress, cancel):
            for c in range(tracker.chunks) if whole else [tracker.next_chunk()]:
                if cancel.is_set():
                    break
                tracker.update(model, images, c)
            return generation, step, whole, {layer: tracker.result(layer) for layer in tracker.layers}

        self.runner.submit(work)

    def _on_failed(self, text: str) -> None:
        self.caption.setText(text)

    def _on_done(self, result) -> None:
        generation, step, whole, results = result
        if generation != self._generation:
            return
        self._results, self._result_step, self._full = results, step, whole
        self._render()
        if not whole and self.session.state != RUNNING:
            self._schedule()  # training has stopped meanwhile: finish with a whole pass

    def _render(self) -> None:
        data = self.session.data
        found = None if self._filter is None else self._results.get(self._filter[0])
        if self._filter is None or data is None:
            self.caption.setText("")
            self.strip.set_items([])
            return
        layer, f = self._filter
        if found is None or f >= found.filters:
            self.caption.setText("Finding the test images that excite this filter most…")
            self.strip.set_items([])
            return
        items = []
        shape = tuple(data.test.raw.shape[1:3])
        for j, entry in enumerate(found.entries(f)):
            i = entry["index"]
            true = data.class_names[int(data.test.labels[i])]
            tip = (f"test #{i} (true {true}): activation {entry['activation']:.3g} at ({entry['row']}, "
                   f"{entry['col']}) of {layer}; click to show its feature maps")
            items.append((i, data.test.raw[i], found.box(f, j, shape), entry["activation"], tip))
        self.strip.set_items(items)
        where = "the whole test set" if self._full else "the test set so far (a slice per update while training)"
        self.caption.setText(f"Top {len(items)} test patches of filter {f} over {where}, step "
                             f"{self._result_step:,}:")
