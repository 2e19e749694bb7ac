"""Whether a view is really on screen, and telling it when its tab comes to the front.

Qt 6.11 keeps a tabified dock that is not the current tab "visible" (``isVisible()`` stays true) with an empty
visible region, so a view that skips work while hidden must also look at its region; and no ``showEvent``
comes when its tab is raised, only the dock's ``visibilityChanged``.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QDockWidget, QWidget


def on_screen(widget: QWidget) -> bool:
    """True when ``widget`` is shown and not behind another tab."""
    return widget.isVisible() and not widget.visibleRegion().isEmpty()


def catch_up_when_raised(dock: QDockWidget, view: QWidget) -> None:
    """Give ``view`` a show event when its dock's tab comes to the front, so it does the work it skipped."""
    dock.visibilityChanged.connect(_Raised(view).on_visibility)


class _Raised(QObject):
    """The connection's receiver: a child of the view, so it goes (and the connection with it) when the view goes;
    a lambda holding the view would keep a closed window alive."""

    def __init__(self, view: QWidget) -> None:
        super().__init__(view)
        self.view = view

    @Slot(bool)
    def on_visibility(self, visible: bool) -> None:
        if visible:
            QTimer.singleShot(0, self, self._show)

    @Slot()
    def _show(self) -> None:
        self.view.showEvent(QShowEvent())
