"""A black square to draw digits on with the mouse, a pen or a finger, stored as resolution-free strokes.

Strokes are kept in canvas-normalised coordinates (0..1 on both axes), so resizing the widget keeps
the drawing, and handed out in the 280 x 280 pixel frame that
:func:`cnnviz.inspect.canvas.render_strokes` rasterises. White ink on black is what MNIST looks like.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QInputDevice,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QTabletEvent,
    QTouchEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from cnnviz.gui.throttle import Throttle

CANVAS_PIXELS = 280  # the frame strokes are reported in (what render_strokes expects)
DEFAULT_STROKE_WIDTH = 18.0  # in CANVAS_PIXELS units: close to the thickness of MNIST strokes
_MIN_STEP = 1.0 / CANVAS_PIXELS  # ignore moves shorter than one canvas pixel (no new ink, no update)
_GUIDE_BOX = 200 / CANVAS_PIXELS  # MNIST digits fit 20 x 20 of 28 x 28: the guide shows that box


class DrawCanvas(QWidget):
    """Square drawing surface; white anti-aliased round-capped strokes on black.

    Signals
    -------
    strokes_changed()
        While drawing (at most about once per 16 ms) and after a stroke ends, ``clear`` or ``undo``.
    """

    strokes_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("drawCanvas")
        self.setAttribute(Qt.WidgetAttribute.WA_AcceptTouchEvents, True)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)  # we paint every pixel
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.CrossCursor)
        policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.setMinimumSize(140, 140)
        self.setToolTip("Draw a digit with the mouse, a pen or a finger.\n"
                        "Ctrl+Z or a right click undoes the last stroke; Delete clears.")
        self._strokes: list[list[tuple[float, float]]] = []  # normalised 0..1 coordinates
        self._drawing = False
        self._width = DEFAULT_STROKE_WIDTH
        self._show_guide = True
        self._throttle = Throttle(16, self.strokes_changed.emit, self)
        self._picture: np.ndarray | None = None  # an image put on the canvas (a counterfactual), under the strokes
        self._picture_image: QImage | None = None

    # -- public API ------------------------------------------------------------------------------------
    def strokes(self) -> list[list[tuple[float, float]]]:
        """The strokes as polylines in 280 x 280 canvas pixels (x right, y down)."""
        s = CANVAS_PIXELS
        return [[(x * s, y * s) for x, y in stroke] for stroke in self._strokes]

    def is_empty(self) -> bool:
        """True when nothing is drawn and no picture is on the canvas."""
        return not self._strokes and self._picture is None

    def picture(self) -> np.ndarray | None:
        """The H x W [0, 1] image put on the canvas with :meth:`set_picture` (strokes are drawn over it)."""
        return None if self._picture is None else self._picture.copy()

    def set_picture(self, pixels: np.ndarray | None) -> None:
        """Replace the drawing with an image (H x W in [0, 1], ink = 1), shown under any new strokes."""
        self._drawing = False
        self._strokes = []
        if pixels is None:
            self._picture = self._picture_image = None
        else:
            self._picture = np.clip(np.asarray(pixels, np.float32), 0, 1)
            data = np.ascontiguousarray((self._picture * 255 + 0.5).astype(np.uint8))
            h, w = data.shape
            self._picture_image = QImage(data.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
        self.update()
        self._throttle.flush()

    def is_drawing(self) -> bool:
        """True between pen/mouse press and release."""
        return self._drawing

    def clear(self) -> None:
        """Remove every stroke."""
        self._drawing = False
        had = bool(self._strokes) or self._picture is not None
        self._strokes = []
        self._picture = self._picture_image = None
        self.update()
        if had:
            self._throttle.flush()

    def undo(self) -> None:
        """Remove the last stroke (the one being drawn, if any)."""
        if not self._strokes:
            return
        self._drawing = False
        self._strokes.pop()
        self.update()
        self._throttle.flush()

    def stroke_width(self) -> float:
        """Pen width in 280-pixel canvas units."""
        return self._width

    def set_stroke_width(self, width: float) -> None:
        width = float(min(max(width, 2.0), 60.0))
        if width != self._width:
            self._width = width
            self.update()
            if self._strokes:
                self._throttle.flush()

    def show_guide(self) -> bool:
        """Whether the 20 x 20 guide box is shown."""
        return self._show_guide

    def set_show_guide(self, show: bool) -> None:
        """Show the faint 20 x 20 box and centre cross (where MNIST digits sit)."""
        self._show_guide = bool(show)
        self.update()

    # -- geometry --------------------------------------------------------------------------------------
    def hasHeightForWidth(self) -> bool:  # noqa: N802 (Qt override)
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        return width

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(CANVAS_PIXELS, CANVAS_PIXELS)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        # Never taller than wide: the layout gives the spare height to whatever sits below the square.
        self.setMaximumHeight(max(self.minimumHeight(), self.width()))

    def square(self) -> QRectF:
        """The drawing square in widget coordinates: as large as fits, at the top, centred across."""
        side = float(max(1, min(self.width(), self.height())))
        return QRectF((self.width() - side) / 2, 0.0, side, side)

    def _normalise(self, pos: QPointF) -> tuple[float, float]:
        sq = self.square()
        # Clamped: a stroke that leaves the canvas runs along its edge instead of failing.
        x = min(max((pos.x() - sq.x()) / sq.width(), 0.0), 1.0)
        y = min(max((pos.y() - sq.y()) / sq.height(), 0.0), 1.0)
        return x, y

    # -- drawing ---------------------------------------------------------------------------------------
    def _begin(self, pos: QPointF) -> None:
        self._drawing = True
        self._strokes.append([self._normalise(pos)])
        self.update()
        self._changed()

    def _extend(self, pos: QPointF) -> None:
        if not self._drawing or not self._strokes:
            return
        point = self._normalise(pos)
        last = self._strokes[-1][-1]
        if abs(point[0] - last[0]) < _MIN_STEP and abs(point[1] - last[1]) < _MIN_STEP:
            return
        self._strokes[-1].append(point)
        self.update()
        self._changed()

    def _end(self, pos: QPointF | None) -> None:
        if not self._drawing:
            return
        if pos is not None:
            self._extend(pos)
        self._drawing = False
        self._throttle.flush()

    def _changed(self) -> None:
        self._throttle.request()

    # -- Qt events -------------------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._begin(event.position())
            event.accept()
        elif event.button() == Qt.MouseButton.RightButton and not self._drawing:
            self.undo()  # right click: a quick undo while drawing with the mouse
            event.accept()
        else:
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._drawing and event.buttons() & Qt.MouseButton.LeftButton:
            self._extend(event.position())
            event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._end(event.position())
            event.accept()

    def tabletEvent(self, event: QTabletEvent) -> None:  # noqa: N802
        # Accepting stops Qt from also sending the synthesised mouse events.
        kind = event.type()
        if kind == QTabletEvent.Type.TabletPress:
            self._begin(event.position())
        elif kind == QTabletEvent.Type.TabletMove:
            self._extend(event.position())
        elif kind == QTabletEvent.Type.TabletRelease:
            self._end(event.position())
        event.accept()

    def event(self, event) -> bool:  # noqa: A003
        kind = event.type()
        touch = (QTouchEvent.Type.TouchBegin, QTouchEvent.Type.TouchUpdate,
                 QTouchEvent.Type.TouchEnd, QTouchEvent.Type.TouchCancel)
        if kind in touch and isinstance(event, QTouchEvent):
            device = event.device()
            # A touchpad moves the pointer; only a touch screen draws directly.
            if device is not None and device.type() != QInputDevice.DeviceType.TouchScreen:
                return super().event(event)
            points = event.points()
            pos = points[0].position() if points else None
            if kind == QTouchEvent.Type.TouchBegin and pos is not None:
                self._begin(pos)
            elif kind == QTouchEvent.Type.TouchUpdate and pos is not None:
                self._extend(pos)
            else:
                self._end(pos if kind == QTouchEvent.Type.TouchEnd else None)
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        # Only reached when no window-level shortcut owns the key (the canvas used on its own).
        if event.matches(QKeySequence.StandardKey.Undo):
            self.undo()
        elif event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.clear()
        else:
            super().keyPressEvent(event)

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window())
        sq = self.square()
        p.fillRect(sq, QColor(0, 0, 0))
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        side = sq.width()
        if self._show_guide:
            self._paint_guide(p, sq)
        if self._picture_image is not None:
            p.drawImage(sq, self._picture_image)
        elif not self._strokes:
            p.setPen(QColor(120, 120, 120))
            hint = QRectF(sq.x(), sq.center().y() + side * 0.06, side, side * 0.1)  # below the cross
            p.drawText(hint, Qt.AlignmentFlag.AlignCenter, "Draw a digit here")
        pen = QPen(QColor(255, 255, 255), self._width * side / CANVAS_PIXELS)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        p.setPen(pen)
        p.setClipRect(sq)
        for stroke in self._strokes:
            pts = [QPointF(sq.x() + x * side, sq.y() + y * side) for x, y in stroke]
            if len(pts) == 1:
                p.drawPoint(pts[0])  # a round-capped point is a dot of the pen's width
                continue
            path = QPainterPath(pts[0])
            for pt in pts[1:]:
                path.lineTo(pt)
            p.drawPath(path)
        p.end()

    def _paint_guide(self, p: QPainter, sq: QRectF) -> None:
        side = sq.width()
        pen = QPen(QColor(70, 70, 70), 1, Qt.PenStyle.DashLine)
        p.setPen(pen)
        margin = (1 - _GUIDE_BOX) / 2 * side
        p.drawRect(sq.adjusted(margin, margin, -margin, -margin))
        c = sq.center()
        arm = side * 0.03
        p.setPen(QPen(QColor(70, 70, 70), 1))
        p.drawLine(QPointF(c.x() - arm, c.y()), QPointF(c.x() + arm, c.y()))
        p.drawLine(QPointF(c.x(), c.y() - arm), QPointF(c.x(), c.y() + arm))
