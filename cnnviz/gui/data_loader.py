"""Loading (and downloading) a dataset off the GUI thread, with progress and cancel."""
from __future__ import annotations

import threading

from PySide6.QtCore import QObject, QThread, Signal, Slot

from cnnviz.config import DataConfig
from cnnviz.errors import CnnvizError
from cnnviz.gui.worker_threads import end_worker, return_to_gui_thread, start_worker


class _LoadWorker(QObject):
    progress = Signal(int, int, str)  # done bytes, total bytes (0 = unknown), message
    loaded = Signal(object)  # PreparedData
    failed = Signal(str)
    finished = Signal()

    def __init__(self, config: DataConfig, cancel: threading.Event) -> None:
        super().__init__()
        self.config, self.cancel = config, cancel

    @Slot()
    def run(self) -> None:
        from cnnviz.data.prepare import load_data

        try:
            data = load_data(self.config, progress=self._progress, cancel=self.cancel, fallback=True)
            self.loaded.emit(data)
        except CnnvizError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug must not kill the thread silently
            self.failed.emit(f"could not load the data: {type(exc).__name__}: {exc}")
        finally:
            return_to_gui_thread(self)  # deleted there, never in this thread (see worker_threads.py)
            self.finished.emit()

    def _progress(self, done: int, total: int | None, message: str = "") -> None:
        self.progress.emit(int(done), int(total or 0), message)


class DataLoader(QObject):
    """Loads one DataConfig at a time in a QThread. `cancel()` stops a download promptly."""

    progress = Signal(int, int, str)
    loaded = Signal(object, object)  # PreparedData, the DataConfig asked for
    failed = Signal(str)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: QThread | None = None
        self._worker: _LoadWorker | None = None
        self._cancel = threading.Event()
        self._config: DataConfig | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def load(self, config: DataConfig) -> bool:
        """Start loading; False if a load is already running."""
        if self.busy:
            return False
        self._config = config
        self._cancel = threading.Event()
        self._worker = _LoadWorker(config, self._cancel)
        self._worker.progress.connect(self._on_progress)
        self._worker.loaded.connect(self._on_loaded)
        self._worker.failed.connect(self._on_failed)
        self._thread = start_worker(self._worker, self, self._on_thread_finished)
        self.busy_changed.emit(True)
        return True

    def cancel(self) -> None:
        self._cancel.set()

    def shutdown(self, timeout_ms: int = 15000) -> bool:
        """Cancel and wait for the thread (bounded)."""
        self.cancel()
        if self._thread is None:
            return True
        ended = self._thread.wait(timeout_ms)
        if ended:
            self._on_thread_finished()
        return ended

    @Slot(int, int, str)
    def _on_progress(self, done: int, total: int, message: str) -> None:
        self.progress.emit(done, total, message)

    @Slot(object)
    def _on_loaded(self, data) -> None:
        self.loaded.emit(data, self._config)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.failed.emit(message)

    @Slot()
    def _on_thread_finished(self) -> None:
        if self._thread is None:
            return
        thread, worker, self._thread, self._worker = self._thread, self._worker, None, None
        end_worker(thread, worker)
        self.busy_changed.emit(False)
