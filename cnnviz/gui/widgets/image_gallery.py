"""A scrolling grid of test-image thumbnails labelled "predicted (true)", green when right, red when wrong.

Shows at most ``cap`` images (with a "showing 200 of 812" note) so a gallery of a whole test set stays
instant; the thumbnails are the raw digits (28x28 for MNIST, any size) scaled up by a whole factor with
nearest-neighbour so pixels stay crisp, the factor chosen so a thumbnail is about as big as a 28x28 one.
"""
from __future__ import annotations

import time
import weakref
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QLabel, QListView, QListWidget, QListWidgetItem, QStackedWidget, QVBoxLayout, QWidget

INDEX_ROLE = Qt.ItemDataRole.UserRole  # the test-set index of an item
CORRECT_ROLE = Qt.ItemDataRole.UserRole + 1  # True when the prediction is right


def to_qimage(pixels: np.ndarray) -> QImage:
    """A (H, W) grayscale or (H, W, 3) RGB uint8 image as a QImage that owns its pixels."""
    a = np.ascontiguousarray(pixels, dtype=np.uint8)
    h, w = a.shape[:2]
    if a.ndim == 3:
        return QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()  # copy: `a` dies with this call
    return QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


def thumbnail(pixels: np.ndarray, scale: int) -> QPixmap:
    """A (H, W) or (H, W, 3) uint8 image as a pixmap scaled by ``scale`` with nearest-neighbour sampling."""
    img = to_qimage(pixels)
    w, h = img.width(), img.height()
    return QPixmap.fromImage(img.scaled(w * scale, h * scale, Qt.AspectRatioMode.IgnoreAspectRatio,
                                        Qt.TransformationMode.FastTransformation))


class ImageGallery(QWidget):
    """Thumbnails of test images; clicking one (or Enter on it) emits ``image_clicked(test_index)``."""

    image_clicked = Signal(int)

    def __init__(self, empty_text: str = "No images", scale: int = 2, cap: int = 200,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scale = scale
        self.cap = cap
        self._total = 0
        self._indices: list[int] = []
        self._last_click: tuple[int, float] = (-1, 0.0)
        # Thumbnails of the images shown so far, by test index: every epoch's evaluation shows mostly the
        # same images with new labels, and making 200 pixmaps again would cost ~3 ms of the GUI thread.
        self._icons: dict[int, QIcon] = {}
        self._icons_of = None  # weak reference to the image array the cached icons were made from

        self._note = QLabel()
        self._note.setObjectName("galleryNote")
        self._note.setWordWrap(True)
        self._list = QListWidget()
        self._list.setObjectName("galleryList")
        self._list.setViewMode(QListView.ViewMode.IconMode)
        self._list.setMovement(QListView.Movement.Static)  # a gallery, not a desktop: no dragging icons
        self._list.setResizeMode(QListView.ResizeMode.Adjust)
        self._list.setUniformItemSizes(True)
        self._list.setWrapping(True)
        self._list.setSpacing(2)
        self._pixel_scale = 0  # whole factor the current images are scaled by (set by _fit_icons)
        self._fit_icons(28, 28)
        self._list.setToolTip("Click an image to make it the input of the feature maps")
        self._list.itemClicked.connect(self._on_item)
        self._list.itemActivated.connect(self._on_item)  # Enter on the keyboard

        self._empty = QLabel(empty_text)
        self._empty.setObjectName("galleryEmpty")
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setWordWrap(True)
        self._empty.setEnabled(False)  # drawn in the disabled (grey) text colour
        self._stack = QStackedWidget()
        self._stack.addWidget(self._empty)
        self._stack.addWidget(self._list)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self._note)
        layout.addWidget(self._stack, 1)
        self._note.hide()

    # -- content -----------------------------------------------------------------------------------
    def show_images(
        self,
        raw: np.ndarray,
        indices: Sequence[int] | np.ndarray,
        labels: np.ndarray,
        predicted: np.ndarray,
        class_names: Sequence[str],
        probabilities: np.ndarray | None = None,
        note: str = "",
    ) -> None:
        """Show the images ``raw[indices]`` (the first ``cap`` of them), labelled "predicted (true)".

        Parameters
        ----------
        raw : (N, H, W) uint8, or (N, H, W, 3) in colour
            All test images; ``indices`` index into it, and into ``labels``/``predicted``.
        probabilities : (N, C), optional
            When given, each label also shows the confidence in the predicted class ("9 (4) 97%").
        note : str
            Text before the count note, e.g. "Most confident mistakes".
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        self._total = int(idx.size)
        shown = idx[: self.cap]
        self._last_click = (-1, 0.0)
        new_raw = self._icons_of is None or self._icons_of() is not raw
        if new_raw:
            self._icons, self._icons_of = {}, weakref.ref(raw)
            self._fit_icons(*raw.shape[1:3])
        new_indices = [int(i) for i in shown]
        same = not new_raw and new_indices == self._indices and self._list.count() == len(new_indices)
        self._list.setUpdatesEnabled(False)  # one repaint for the whole batch
        if not same:
            self._list.clear()
        self._indices = new_indices
        right, wrong = self.label_color(True), self.label_color(False)
        for row, i in enumerate(self._indices):
            true, pred = int(labels[i]), int(predicted[i])
            text = f"{class_names[pred]} ({class_names[true]})"
            tip = f"Test image #{i}\ntrue {class_names[true]}, predicted {class_names[pred]}"
            if probabilities is not None:
                conf = float(probabilities[i, pred])
                text += f" {conf:.0%}"
                tip += f" ({conf:.1%} sure)"
            if same:  # the same images with new labels: update the items in place
                item = self._list.item(row)
                item.setText(text)
            else:
                icon = self._icons.get(i)
                if icon is None:
                    icon = self._icons[i] = QIcon(thumbnail(raw[i], self._pixel_scale))
                item = QListWidgetItem(icon, text)
                item.setData(INDEX_ROLE, i)
                item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
            item.setData(CORRECT_ROLE, true == pred)
            item.setForeground(QBrush(right if true == pred else wrong))
            item.setToolTip(tip + "\nClick to show its feature maps")
            if not same:
                self._list.addItem(item)
        if len(self._icons) > 4 * self.cap:  # bounded: keep the thumbnails of what is shown
            self._icons = {i: self._icons[i] for i in self._indices if i in self._icons}
        self._list.setUpdatesEnabled(True)
        if not same:
            self._list.scrollToTop()  # new images; the same ones keep the place the user scrolled to
        count = f"showing {len(shown):,} of {self._total:,}" if self._total > len(shown) else f"{self._total:,} images"
        if self._total == 1:
            count = "1 image"
        self._note.setText(f"{note}: {count}" if note else count)
        self._note.show()
        self._stack.setCurrentWidget(self._list if self._indices else self._empty)
        if not self._indices:
            self._empty.setText("No images here")

    def _fit_icons(self, height: int, width: int) -> None:
        """Scale images of this size by the whole factor that makes them about ``28 * scale`` pixels."""
        factor = max(1, round(28 * self.scale / max(height, width, 1)))
        if factor == self._pixel_scale and self._list.iconSize() == QSize(width * factor, height * factor):
            return
        self._pixel_scale = factor
        w, h = width * factor, height * factor
        self._list.setIconSize(QSize(w, h))
        self._list.setGridSize(QSize(max(w + 14, 64), h + 24))

    def clear(self, text: str | None = None) -> None:
        """Remove every image and show ``text`` (or the last empty text)."""
        self._list.clear()
        self._indices, self._total = [], 0
        if text is not None:
            self._empty.setText(text)
        self._note.hide()
        self._stack.setCurrentWidget(self._empty)

    def indices(self) -> list[int]:
        """The test indices shown, in order."""
        return list(self._indices)

    def total(self) -> int:
        """How many images the gallery was given (it shows at most ``cap``)."""
        return self._total

    def note_text(self) -> str:
        return self._note.text() if self._note.isVisibleTo(self) else ""

    def list_widget(self) -> QListWidget:
        return self._list

    def label_color(self, correct: bool) -> QColor:
        """Label colour of a right (green) or wrong (red) prediction, readable on the list's background."""
        dark = self._list.palette().base().color().lightnessF() < 0.5
        if correct:
            return QColor("#66bb6a") if dark else QColor("#1b7f2a")
        return QColor("#ef5350") if dark else QColor("#c62828")

    def _on_item(self, item: QListWidgetItem) -> None:
        # A click can also count as an activation (single-click styles, double clicks): report it once.
        index, now = int(item.data(INDEX_ROLE)), time.monotonic()
        if self._last_click[0] == index and now - self._last_click[1] < 0.4:
            return
        self._last_click = (index, now)
        self.image_clicked.emit(index)
