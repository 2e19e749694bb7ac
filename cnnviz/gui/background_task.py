"""Long work off the GUI thread with a progress dialog and a Cancel button: the window's exports.

`run_in_background(window, title, work)` runs ``work(progress, cancel)`` in a worker thread, where
``progress(done, total)`` moves the dialog and ``cancel`` is a threading.Event the work checks; the result (a
sentence) goes to the status bar, a CnnvizError's message to the banner. One task at a time per window.
"""
from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QProgressDialog

from cnnviz.errors import CnnvizError
from cnnviz.gui.worker_threads import end_worker, return_to_gui_thread, start_worker


class _Task(QObject):
    progress = Signal(int, int)
    done = Signal(bool, str)  # ok, the sentence to show
    finished = Signal()

    def __init__(self, work) -> None:
        super().__init__()
        self.work, self.cancel = work, threading.Event()

    @Slot()
    def run(self) -> None:
        try:
            ok, text = True, self.work(self.progress.emit, self.cancel)
        except CnnvizError as exc:
            ok, text = False, str(exc)
        except Exception as exc:  # a bug must not kill the thread silently
            ok, text = False, f"{type(exc).__name__}: {exc}"
        finally:
            return_to_gui_thread(self)
        self.done.emit(ok, text)
        self.finished.emit()


class BackgroundTask(QObject):
    """The window's one background task and its progress dialog."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self._thread = self._task = self._dialog = None

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def start(self, title: str, work) -> bool:
        if self.busy:
            self.window.show_message("warning", "Another export is still running; wait for it or cancel it.")
            return False
        self._task = _Task(work)
        self._dialog = QProgressDialog(title, "Cancel", 0, 0, self.window)
        self._dialog.setWindowTitle(title)
        self._dialog.setWindowModality(Qt.WindowModality.NonModal)
        self._dialog.setMinimumDuration(400)  # a quick export shows no dialog at all
        self._dialog.canceled.connect(self._task.cancel.set)
        self._task.progress.connect(self._on_progress)
        self._task.done.connect(self._on_done)
        self._thread = start_worker(self._task, self, self._on_finished)
        return True

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel.set()

    def wait(self, ms: int = 30000) -> None:
        if self._thread is not None:
            self._thread.wait(ms)
            self._on_finished()

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        if self._dialog is not None:
            self._dialog.setMaximum(max(total, 1))
            self._dialog.setValue(min(done, max(total, 1)))

    @Slot(bool, str)
    def _on_done(self, ok: bool, text: str) -> None:
        if self._dialog is not None:
            self._dialog.reset()
        if ok:
            self.window.statusBar().showMessage(text, 10000)
        elif "cancel" in text.lower():
            self.window.statusBar().showMessage(text, 6000)
        else:
            self.window.show_message("error", text)

    @Slot()
    def _on_finished(self) -> None:
        if self._thread is None:
            return
        thread, task, self._thread, self._task = self._thread, self._task, None, None
        end_worker(thread, task)
        if self._dialog is not None:
            self._dialog.deleteLater()
            self._dialog = None
