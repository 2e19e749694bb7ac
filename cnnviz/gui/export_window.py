"""The frames of `cnnviz export RUN --view window`: the whole window, rendered offscreen at each frame's step.

The window opens the run as File -> Open run does, seeks every frame's stored step as the timeline bar does,
lets the views draw (their coalescing timers are fired at once instead of after their 100-200 ms delays) and is
grabbed. The grab goes under the same caption as the other views' frames (:class:`cnnviz.exports.frames.Chrome`),
scaled to fit when the window cannot be as small as the frame (it needs about 1280 x 800 to lay out, so the
view reads best at ``--size 1280x800`` or larger).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

_SETTLE_SECONDS = 5.0  # the most one frame waits for the views to finish drawing


def _quiet_offscreen(mode, context, message: str) -> None:
    """Qt's messages on stderr, less the offscreen platform's harmless one about size hints."""
    if "does not support propagateSizeHints" not in message:
        sys.stderr.write(message + "\n")


class WindowFrames:
    """Renders frames from a real :class:`~cnnviz.gui.main_window.MainWindow` showing the run: a new one,
    offscreen (the CLI), or the user's own ``window`` (File -> Export -> Run as an animation), which is given
    back at the step it showed."""

    def __init__(self, timeline, size: tuple[int, int], figures, window=None) -> None:
        from cnnviz.exports.frames import Chrome

        name = timeline.header.get("name") or timeline.header.get("preset") or timeline.path.name
        self.chrome = Chrome(size, figures, f"{name} · window", [e.step for e in timeline.history.epochs if e.step])
        self.own = window is None
        if window is not None:
            self.window = window
            self._was_live, self._was_step = window.timeline.live, window.shown_step()
            return
        # Offscreen and without the user's remembered layout when this process has no window yet (the CLI):
        # the export neither shows a window nor depends on, or changes, what the user last arranged.
        from PySide6.QtCore import qInstallMessageHandler
        from PySide6.QtWidgets import QApplication

        if QApplication.instance() is None:
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
            os.environ["CNNVIZ_NO_SETTINGS"] = "1"
            qInstallMessageHandler(_quiet_offscreen)
        from cnnviz.app import create_window

        self.window = create_window([], run=str(timeline.path))
        _, _, width, height = self.chrome.content
        self.window.resize(max(width, 1280), max(height, 800))
        self._settle()

    def prepare(self, frames) -> None:
        pass

    def _settle(self) -> None:
        """Process events until no view's redraw is pending (their single-shot timers are fired at once)."""
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication

        deadline = time.monotonic() + _SETTLE_SECONDS
        while time.monotonic() < deadline:
            QApplication.processEvents()
            pending = [t for t in self.window.findChildren(QTimer) if t.isSingleShot() and t.isActive()
                       and t.remainingTime() <= 1000]
            if not pending:
                break
            for timer in pending:
                timer.start(0)
            QApplication.processEvents()
        QApplication.processEvents()

    def render(self, frame) -> np.ndarray:
        from PIL import Image
        from PySide6.QtGui import QImage

        self.window.seek(frame.stored)
        self._settle()
        grab = self.window.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
        w, h, stride = grab.width(), grab.height(), grab.bytesPerLine()
        pixels = np.frombuffer(grab.constBits(), np.uint8, count=stride * h).reshape(h, stride)[:, :w * 3]
        picture = Image.fromarray(pixels.reshape(h, w, 3).copy())
        c = self.chrome
        x, y, width, height = c.content
        picture.thumbnail((width, height), Image.Resampling.LANCZOS)
        canvas = Image.new("RGB", (c.width, c.height), (255, 255, 255))
        canvas.paste(picture, (x + (width - picture.width) // 2, y + (height - picture.height) // 2))
        c.draw(canvas, frame.step)
        return np.asarray(canvas)

    def close(self) -> None:
        from PySide6.QtWidgets import QApplication

        if not self.own:  # the user's window: back to what it showed
            if self._was_live:
                self.window.timeline.go_live()
            else:
                self.window.seek(self._was_step)
            return
        self.window.close()
        self.window.deleteLater()
        QApplication.processEvents()
