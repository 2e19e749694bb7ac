"""A leading-and-trailing-edge throttle on Qt's timer, for redraws driven by fast input (pen moves, weights).

superqt's QSignalThrottler was considered: its ``flush`` emits only when a call is pending, while the canvas
needs "call now" after a clear or an undo whatever is pending; this class is that and nothing more.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer


class Throttle(QObject):
    """Calls ``callback`` at most once per ``interval_ms``: at once when idle, else once at the end.

    Leading and trailing edge, so the first change is seen without delay and the last is never lost.
    """

    def __init__(self, interval_ms: int, callback, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._callback = callback
        self._pending = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._on_timeout)

    def set_interval(self, interval_ms: int) -> None:
        """Change the interval (from the next call on)."""
        self._timer.setInterval(interval_ms)

    def request(self) -> None:
        if self._timer.isActive():
            self._pending = True  # coalesce: one call when the interval ends
            return
        self._pending = False
        self._timer.start()
        self._callback()

    def flush(self) -> None:
        """Call now (e.g. on pen release) and forget any pending call."""
        self._timer.stop()
        self._pending = False
        self._callback()

    def cancel(self) -> None:
        self._timer.stop()
        self._pending = False

    def _on_timeout(self) -> None:
        if self._pending:
            self._pending = False
            self._timer.start()
            self._callback()

