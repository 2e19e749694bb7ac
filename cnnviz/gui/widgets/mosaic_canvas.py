"""Mosaic images enlarged by whole screen pixels, with clickable tiles, stacked one per layer.

Shared by the filter and feature-map views: each layer is one :class:`MosaicCanvas` holding ONE
``ImageItem``, so a layer of 256 maps costs one ``setImage``. The widget is sized to exactly
``zoom`` x the image, so every image pixel becomes a crisp ``zoom`` x ``zoom`` block.
:class:`LayerStack` scrolls the layers' :class:`LayerPanel` s vertically and refits them on resize.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGraphicsRectItem,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from cnnviz.gui.widgets.colormaps import TILE_BACKGROUND
from cnnviz.inspect.colormap import paint_mosaic, paint_rgb
from cnnviz.inspect.mosaic import DATA, GAP, INNER, Mosaic, gap_labels  # noqa: F401 (the views import them here)


class MosaicCanvas(pg.GraphicsView):
    """A mosaic at integer zoom with its gaps greyed out; emits the clicked tile.

    The image is coloured here (a 256-entry table lookup) and shown as RGBA, so that gaps get colours
    of their own instead of the colour of value 0.
    """

    tile_clicked = Signal(int)
    tile_menu_requested = Signal(int, QPoint)  # a right-click on a tile: its index and the global position

    def __init__(self, parent=None, max_zoom: int = 24, max_height: int = 320) -> None:
        super().__init__(parent, background=pg.mkColor(*TILE_BACKGROUND))
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.max_zoom, self.max_height = max_zoom, max_height
        self.describe: Callable[[int], str] | None = None  # hover text of a tile
        self._box = pg.ViewBox(lockAspect=True, enableMouse=False, invertY=True, enableMenu=False,
                               defaultPadding=0.0)
        self.setCentralItem(self._box)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self._box.addItem(self.image_item)
        # Selection outline: a black and a white rectangle, visible on any colour of either map.
        self._marks = []
        for colour, width in (((0, 0, 0), 4), ((255, 255, 255), 2)):
            mark = QGraphicsRectItem(self.image_item)
            pen = pg.mkPen(colour, width=width)
            pen.setCosmetic(True)
            mark.setPen(pen)
            mark.hide()
            self._marks.append(mark)
        self._pins: list[QGraphicsRectItem] = []  # the outlines of tiles marked by `mark_tiles`
        self._mosaic: Mosaic | None = None
        self._zoom = 1
        self._available = 400
        self._hovered: int | None = None

    # -- content ---------------------------------------------------------------------------------------
    @property
    def mosaic(self) -> Mosaic | None:
        return self._mosaic

    def set_mosaic(self, mosaic: Mosaic, lut: np.ndarray, levels: tuple[float, float],
                   gaps: np.ndarray | None = None) -> None:
        """Show ``mosaic.image`` coloured by ``lut`` over ``levels``; ``gaps`` from :func:`gap_labels`."""
        rgba = paint_mosaic(mosaic.image, lut, levels, gaps)
        resized = self._mosaic is None or self._mosaic.image.shape != mosaic.image.shape
        self._mosaic = mosaic
        self.image_item.setImage(rgba, autoLevels=False, levels=None)
        if resized:
            self._apply_zoom()

    def set_rgb(self, mosaic: Mosaic, rgb: np.ndarray, gaps: np.ndarray | None = None) -> None:
        """Show the (H, W, 3) colour image ``rgb`` in [0, 1] laid out as ``mosaic``, its padding near black
        (grey means 0 in an RGB filter, so a grey gap would melt into the tiles)."""
        rgba = paint_rgb(rgb, gaps)
        resized = self._mosaic is None or self._mosaic.image.shape != mosaic.image.shape
        self._mosaic = mosaic
        self.image_item.setImage(rgba, autoLevels=False, levels=None)
        if resized:
            self._apply_zoom()

    def displayed_image(self) -> np.ndarray | None:
        """The (H, W, 4) RGBA array the ImageItem shows."""
        return self.image_item.image

    # -- size ------------------------------------------------------------------------------------------
    def fit_width(self, available: int) -> None:
        """Pick the largest zoom that fits ``available`` pixels wide (and about ``max_height`` tall)."""
        self._available = max(1, int(available))
        self._apply_zoom()

    @property
    def zoom(self) -> int:
        return self._zoom

    def _apply_zoom(self) -> None:
        if self._mosaic is None:
            return
        h, w = self._mosaic.image.shape
        by_width = self._available // w
        by_height = max(2, self.max_height // h)  # big layers may grow past max_height rather than blur
        zoom = max(1, min(self.max_zoom, by_width, by_height))
        self._zoom = zoom
        self.setFixedSize(w * zoom, h * zoom)
        self._box.setRange(xRange=(0, w), yRange=(0, h), padding=0.0)

    # -- tiles -----------------------------------------------------------------------------------------
    def tile_at(self, pos: QPointF | QPoint) -> int | None:
        """The tile under widget position ``pos``; None on padding or with no mosaic."""
        if self._mosaic is None:
            return None
        point = pos.toPoint() if isinstance(pos, QPointF) else pos
        local = self.image_item.mapFromScene(self.mapToScene(point))
        return self._mosaic.tile_at(local.y(), local.x())

    def tile_center(self, index: int) -> QPoint:
        """Widget position of the centre of tile ``index`` (e.g. to click it)."""
        top, left, h, w = self._mosaic.tile_rect(index)
        scene = self.image_item.mapToScene(QPointF(left + w / 2, top + h / 2))
        return self.mapFromScene(scene)

    def highlight(self, index: int | None) -> None:
        """Outline tile ``index`` (None: no outline)."""
        if index is None or self._mosaic is None or not 0 <= index < self._mosaic.count:
            for mark in self._marks:
                mark.hide()
            return
        top, left, h, w = self._mosaic.tile_rect(index)
        for mark in self._marks:
            mark.setRect(QRectF(left, top, w, h))
            mark.show()

    def mark_tiles(self, indices, colour: tuple[int, int, int] = (0, 170, 255)) -> None:
        """Outline tiles ``indices`` with a dashed line of ``colour`` (e.g. the frozen filters); () clears."""
        for item in self._pins:
            item.setParentItem(None)
            if item.scene() is not None:
                item.scene().removeItem(item)
        self._pins = []
        if self._mosaic is None:
            return
        for index in indices:
            if 0 <= index < self._mosaic.count:
                top, left, h, w = self._mosaic.tile_rect(index)
                item = QGraphicsRectItem(QRectF(left + 0.15, top + 0.15, w - 0.3, h - 0.3), self.image_item)
                pen = pg.mkPen(colour, width=2, style=Qt.PenStyle.DashLine)
                pen.setCosmetic(True)
                item.setPen(pen)
                self._pins.append(item)

    @property
    def marked_tiles(self) -> list[int]:
        """The tiles `mark_tiles` outlined, in order (for tests)."""
        return [self._mosaic.tile_at(i.rect().center().y(), i.rect().center().x()) for i in self._pins]

    # -- mouse (Qt overrides) --------------------------------------------------------------------------
    def mousePressEvent(self, ev) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            tile = self.tile_at(ev.position())
            if tile is not None:
                self.tile_clicked.emit(tile)
                ev.accept()
                return
        if ev.button() == Qt.MouseButton.RightButton:
            tile = self.tile_at(ev.position())
            if tile is not None:
                self.tile_menu_requested.emit(tile, ev.globalPosition().toPoint())
                ev.accept()
                return
        super().mousePressEvent(ev)

    def mouseMoveEvent(self, ev) -> None:
        super().mouseMoveEvent(ev)
        if self.describe is None:
            return
        tile = self.tile_at(ev.position())
        if tile != self._hovered:
            self._hovered = tile
            if tile is None:
                QToolTip.hideText()
            else:
                QToolTip.showText(ev.globalPosition().toPoint(), self.describe(tile), self)

    def leaveEvent(self, ev) -> None:
        self._hovered = None
        super().leaveEvent(ev)


class ElidedLabel(QLabel):
    """A one-line label whose width does not follow its text: text too long for it ends in "…", the whole of it
    in the tooltip. ``text()`` is the whole text.

    A layer's note changes at every weight update; a label whose width followed the text re-laid out the whole
    scrolling stack and repainted its scroll bar each time (~4 ms a frame while playing)."""

    def __init__(self, text: str = "", parent=None) -> None:
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        self._full = text
        self._elide()

    def text(self) -> str:
        return self._full

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight,
                                              max(0, self.contentsRect().width()))
        if shown != super().text():
            super().setText(shown)
        self.setToolTip(self._full if shown != self._full else "")


class LayerPanel(QWidget):
    """One layer: a bold title, a grey note line, its canvas and optionally a widget below it."""

    def __init__(self, title: str, canvas: MosaicCanvas, extra: QWidget | None = None, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 10)
        layout.setSpacing(3)
        self.title = QLabel(title)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.note = ElidedLabel("")  # changes at every weight update: see ElidedLabel
        self.note.setStyleSheet("color: palette(placeholder-text);")
        self.canvas = canvas
        self.extra = extra
        layout.addWidget(self.title)
        layout.addWidget(self.note)
        layout.addWidget(canvas, 0, Qt.AlignmentFlag.AlignLeft)
        if extra is not None:
            layout.addWidget(extra)


class LayerStack(QScrollArea):
    """A vertical, scrolling stack of :class:`LayerPanel` s, or a message when there is nothing to show."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.body = QWidget()
        self._layout = QVBoxLayout(self.body)
        self._layout.setContentsMargins(8, 8, 8, 8)
        self.message = QLabel("")
        self.message.setObjectName("emptyMessage")
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setMinimumHeight(120)
        self.message.hide()
        self._layout.addWidget(self.message)
        self._layout.addStretch(1)
        self.setWidget(self.body)
        self._panels: list[LayerPanel] = []

    @property
    def panels(self) -> list[LayerPanel]:
        return list(self._panels)

    def clear(self) -> None:
        for panel in self._panels:
            self._layout.removeWidget(panel)
            panel.deleteLater()
        self._panels = []

    def add_panel(self, panel: LayerPanel) -> None:
        self._layout.insertWidget(self._layout.count() - 1, panel)
        self._panels.append(panel)
        panel.canvas.fit_width(self.available_width())

    def show_message(self, text: str | None) -> None:
        """Show ``text`` instead of the layers (None: hide it)."""
        self.message.setText(text or "")
        self.message.setVisible(bool(text))

    def available_width(self) -> int:
        # Width left once the vertical scroll bar is counted in whether or not it shows, so that a
        # refit never makes the scroll bar appear and disappear in turn.
        margins = self._layout.contentsMargins()
        bar = self.verticalScrollBar().sizeHint().width()
        return max(40, self.width() - bar - margins.left() - margins.right() - 2)

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        width = self.available_width()
        for panel in self._panels:
            panel.canvas.fit_width(width)
