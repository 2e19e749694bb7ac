"""The confusion matrix as a clickable heatmap: counts in the cells, class names on both axes.

Drawn with QPainter (a 10x10 grid of numbers is text, not an image): right answers (the diagonal) are
shaded blue by the share of their true class, mistakes red by their count relative to the largest
mistake, so the few images that go wrong stand out instead of vanishing next to the diagonal.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

_RIGHT = QColor(33, 102, 172)  # diagonal: a right answer
_WRONG = QColor(214, 47, 39)  # off the diagonal: a mistake
_TITLE_SPACE = 18  # pixels for the "true" / "predicted" axis titles


def _mix(base: QColor, target: QColor, t: float) -> QColor:
    t = float(np.clip(t, 0.0, 1.0))
    return QColor.fromRgbF(
        base.redF() + (target.redF() - base.redF()) * t,
        base.greenF() + (target.greenF() - base.greenF()) * t,
        base.blueF() + (target.blueF() - base.blueF()) * t,
    )


def text_color_on(background: QColor) -> QColor:
    """Black or white, whichever reads better on ``background`` (by perceived luminance)."""
    lum = 0.299 * background.redF() + 0.587 * background.greenF() + 0.114 * background.blueF()
    return QColor(Qt.GlobalColor.black) if lum > 0.55 else QColor(Qt.GlobalColor.white)


def _plural(n: int) -> str:
    return f"{n:,} image" if n == 1 else f"{n:,} images"


class ConfusionView(QWidget):
    """Heatmap of a (C, C) confusion matrix, rows = true class, columns = predicted class.

    Clicking a cell (or pressing Enter on the keyboard-selected one) emits ``cell_clicked(true, predicted)``.
    """

    cell_clicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("confusionMatrixView")
        self.setMouseTracking(True)  # hover outline
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # arrows move the selection, Enter opens it
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setToolTip("Click a cell to see its test images")
        self._matrix: np.ndarray | None = None
        self._names: tuple[str, ...] = ()
        self._colors: list[list[QColor]] = []
        self._hover: tuple[int, int] | None = None
        self._selected: tuple[int, int] | None = None
        self._empty_text = "No evaluation yet"

    # -- data --------------------------------------------------------------------------------------
    def set_matrix(self, matrix: np.ndarray | None, class_names: Sequence[str] = ()) -> None:
        """Show ``matrix`` (C, C) counts; None clears the view. Missing names default to "0".."C-1"."""
        if matrix is None:
            self._matrix, self._names, self._colors = None, (), []
            self._hover = self._selected = None
            self.update()
            return
        m = np.asarray(matrix, dtype=np.int64)
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise ValueError(f"a confusion matrix must be square, got shape {m.shape}")
        n = m.shape[0]
        names = tuple(str(c) for c in class_names)
        self._names = names if len(names) == n else tuple(str(i) for i in range(n))
        if self._matrix is None or self._matrix.shape != m.shape:
            self._selected = self._hover = None
        self._matrix = m.copy()
        self._colors = self._cell_colors(m)
        self.update()

    def matrix(self) -> np.ndarray | None:
        """The counts shown (a copy), or None."""
        return None if self._matrix is None else self._matrix.copy()

    def set_empty_text(self, text: str) -> None:
        self._empty_text = text
        self.update()

    def selected(self) -> tuple[int, int] | None:
        """The highlighted (true, predicted) cell, or None."""
        return self._selected

    def set_selected(self, cell: tuple[int, int] | None) -> None:
        self._selected = cell
        self.update()

    def viewport(self) -> QWidget:
        """The widget that takes the mouse events (the view itself, as for a scroll area's viewport)."""
        return self

    def _cell_colors(self, m: np.ndarray) -> list[list[QColor]]:
        base = self.palette().base().color()
        rows = m.sum(axis=1, keepdims=True).astype(np.float64)
        share = np.divide(m, rows, out=np.zeros(m.shape), where=rows > 0)
        off = m.copy()
        np.fill_diagonal(off, 0)
        worst = max(int(off.max()), 1)
        colors = []
        for t in range(m.shape[0]):
            row = []
            for p in range(m.shape[1]):
                if m[t, p] == 0:
                    row.append(base)
                elif t == p:
                    row.append(_mix(base, _RIGHT, 0.15 + 0.85 * share[t, p]))
                else:
                    # sqrt: one or two mistakes must still be visibly tinted next to the worst cell
                    row.append(_mix(base, _WRONG, 0.12 + 0.88 * np.sqrt(m[t, p] / worst)))
            colors.append(row)
        return colors

    # -- geometry ----------------------------------------------------------------------------------
    def _layout(self) -> tuple[float, float, float]:
        """(left, top, cell size) of the grid in widget pixels."""
        n = self._matrix.shape[0]
        fm = self.fontMetrics()
        label_w = max(fm.horizontalAdvance(name) for name in self._names) + 8
        label_w = min(label_w, 90)
        left_margin = _TITLE_SPACE + label_w
        bottom_margin = fm.height() + 6 + _TITLE_SPACE
        avail_w = self.width() - left_margin - 6
        avail_h = self.height() - bottom_margin - 6
        cell = max(4.0, min(avail_w, avail_h) / n)
        grid = cell * n
        left = left_margin + max(0.0, (avail_w - grid) / 2)
        top = 6 + max(0.0, (avail_h - grid) / 2)
        return left, top, cell

    def cell_rect(self, true: int, predicted: int) -> QRectF:
        """Where cell (true, predicted) is drawn."""
        left, top, cell = self._layout()
        return QRectF(left + predicted * cell, top + true * cell, cell, cell)

    def cell_center(self, true: int, predicted: int) -> QPoint:
        """The centre of a cell, in widget coordinates (for clicks in tests)."""
        return self.cell_rect(true, predicted).center().toPoint()

    def cell_at(self, pos: QPoint | QPointF) -> tuple[int, int] | None:
        """The (true, predicted) cell under ``pos``, or None outside the grid."""
        if self._matrix is None:
            return None
        left, top, cell = self._layout()
        n = self._matrix.shape[0]
        col = int(np.floor((pos.x() - left) / cell))
        row = int(np.floor((pos.y() - top) / cell))
        return (row, col) if 0 <= row < n and 0 <= col < n else None

    def tooltip_text(self, cell: tuple[int, int]) -> str:
        """ "true 4, predicted 9: 12 images", and that count as a share of the true class."""
        t, p = cell
        count = int(self._matrix[t, p])
        total = int(self._matrix[t].sum())
        text = f"true {self._names[t]}, predicted {self._names[p]}: {_plural(count)}"
        if total:
            text += f"\n{100.0 * count / total:.1f}% of the {total:,} test images of class {self._names[t]}"
        return text + "\nClick to see them"

    # -- events ------------------------------------------------------------------------------------
    def event(self, e: QEvent) -> bool:
        if e.type() == QEvent.Type.ToolTip:
            cell = self.cell_at(e.pos())
            if cell is None:
                QToolTip.hideText()
                if self._matrix is None:
                    return True
                QToolTip.showText(e.globalPos(), "Click a cell to see its test images", self)
            else:
                QToolTip.showText(e.globalPos(), self.tooltip_text(cell), self)
            return True
        return super().event(e)

    def mouseMoveEvent(self, e) -> None:
        cell = self.cell_at(e.position())
        if cell != self._hover:
            self._hover = cell
            self.update()
        super().mouseMoveEvent(e)

    def leaveEvent(self, e) -> None:
        self._hover = None
        self.update()
        super().leaveEvent(e)

    def mousePressEvent(self, e) -> None:
        cell = self.cell_at(e.position()) if e.button() == Qt.MouseButton.LeftButton else None
        if cell is None:
            super().mousePressEvent(e)
            return
        self._selected = cell
        self.update()
        self.cell_clicked.emit(*cell)

    def keyPressEvent(self, e) -> None:
        if self._matrix is None:
            super().keyPressEvent(e)
            return
        n = self._matrix.shape[0]
        t, p = self._selected if self._selected is not None else (0, 0)
        moves = {Qt.Key.Key_Up: (-1, 0), Qt.Key.Key_Down: (1, 0), Qt.Key.Key_Left: (0, -1), Qt.Key.Key_Right: (0, 1)}
        if e.key() in moves:
            dt, dp = moves[e.key()] if self._selected is not None else (0, 0)
            self._selected = (int(np.clip(t + dt, 0, n - 1)), int(np.clip(p + dp, 0, n - 1)))
            self.update()
        elif e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space) and self._selected is not None:
            self.cell_clicked.emit(*self._selected)
        else:
            super().keyPressEvent(e)

    def changeEvent(self, e: QEvent) -> None:
        if e.type() == QEvent.Type.PaletteChange and self._matrix is not None:
            self._colors = self._cell_colors(self._matrix)  # the cells blend into the theme's background
        super().changeEvent(e)

    def sizeHint(self) -> QSize:
        return QSize(360, 340)

    def minimumSizeHint(self) -> QSize:
        return QSize(160, 150)

    # -- drawing -----------------------------------------------------------------------------------
    def paintEvent(self, _e) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        pal = self.palette()
        if self._matrix is None:
            painter.setPen(pal.placeholderText().color())
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._empty_text)
            return
        m, n = self._matrix, self._matrix.shape[0]
        left, top, cell = self._layout()
        grid = cell * n
        count_font = QFont(self.font())
        count_font.setPixelSize(int(np.clip(cell * 0.4, 7, 15)))
        fm = QFontMetrics(count_font)
        faint = pal.placeholderText().color()
        for t in range(n):
            for p in range(n):
                rect = QRectF(left + p * cell, top + t * cell, cell, cell)
                color = self._colors[t][p]
                painter.fillRect(rect, color)
                text = f"{int(m[t, p]):,}"
                # Drop a count that cannot fit rather than overlap the neighbours; the tooltip has it.
                if fm.horizontalAdvance(text) <= cell - 2 and fm.height() <= cell:
                    painter.setFont(count_font)
                    painter.setPen(faint if m[t, p] == 0 else text_color_on(color))
                    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        grid_pen = QPen(pal.mid().color())
        grid_pen.setWidthF(0.5)
        painter.setPen(grid_pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(QRectF(left, top, grid, grid))
        for cell_rect, width, color in (
            (self._hover, 1.5, pal.text().color()),
            (self._selected, 2.5, pal.highlight().color()),
        ):
            if cell_rect is not None:
                pen = QPen(color)
                pen.setWidthF(width)
                painter.setPen(pen)
                painter.drawRect(self.cell_rect(*cell_rect).adjusted(1, 1, -1, -1))
        self._paint_labels(painter, left, top, cell)

    def _paint_labels(self, painter: QPainter, left: float, top: float, cell: float) -> None:
        n = self._matrix.shape[0]
        grid = cell * n
        fm = self.fontMetrics()
        painter.setFont(self.font())
        painter.setPen(self.palette().text().color())
        label_w = left - _TITLE_SPACE - 4
        for i, name in enumerate(self._names):
            row_rect = QRectF(_TITLE_SPACE, top + i * cell, label_w, cell)
            painter.drawText(row_rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                             fm.elidedText(name, Qt.TextElideMode.ElideRight, int(label_w)))
            col_rect = QRectF(left + i * cell, top + grid + 2, cell, fm.height() + 4)
            painter.drawText(col_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                             fm.elidedText(name, Qt.TextElideMode.ElideRight, int(max(cell, 8))))
        bold = QFont(self.font())
        bold.setBold(True)
        painter.setFont(bold)
        title_rect = QRectF(left, top + grid + fm.height() + 6, grid, _TITLE_SPACE)
        painter.drawText(title_rect, Qt.AlignmentFlag.AlignCenter, "predicted")
        painter.save()
        painter.translate(0, top + grid / 2)
        painter.rotate(-90)
        painter.drawText(QRectF(-grid / 2, 0, grid, _TITLE_SPACE), Qt.AlignmentFlag.AlignCenter, "true")
        painter.restore()
