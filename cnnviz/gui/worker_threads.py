"""Ending a QObject worker that ran in a QThread without a deadlock between the GIL and Qt's locks."""
from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread


def return_to_gui_thread(worker: QObject) -> None:
    """Hand `worker` back to the GUI thread; call it from the worker's own thread as its last act, and
    delete the worker from the GUI thread once its QThread has finished.

    Deleted in its own thread (the usual `finished -> deleteLater`), a Python worker's destructor takes
    Qt's signal-slot lock and then waits for the GIL (PySide looks for Python overrides). A GUI thread
    that holds the GIL while it connects a signal (a widget starting an animation as it is shown) waits
    for that same lock, and the window hangs for good. Seen once as a hang of the test run (py-spy:
    `~QObject -> Sbk_GetPyOverride -> GilState::acquire` in the loader's thread; the message banner's `show ->
    QPropertyAnimation -> QObject::connectImpl -> QBasicMutex::lockInternal` in the GUI thread).
    """
    app = QCoreApplication.instance()
    if app is not None and worker.thread() is not app.thread():
        worker.moveToThread(app.thread())


def start_worker(worker: QObject, parent: QObject, on_finished) -> QThread:
    """Run `worker.run` in a new QThread (the superqt/napari recipe); `on_finished` is called in the GUI thread
    once the thread has ended. Connect the worker's own signals before calling this.

    The worker must emit `finished` as its last act, after :func:`return_to_gui_thread`; the thread quits
    on it (a direct connection: QThread.quit is thread-safe, and a queued call would wait for a GUI thread
    blocked in wait())."""
    thread = QThread(parent)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    thread.finished.connect(on_finished)
    thread.start()
    return thread


def end_worker(thread: QThread, worker: QObject | None) -> None:
    """After `thread` finished: let it end (microseconds), then delete both from the GUI thread (the worker
    moved itself back here, see :func:`return_to_gui_thread`), never from the worker's own thread."""
    thread.wait()
    thread.deleteLater()
    if worker is not None:
        worker.deleteLater()
