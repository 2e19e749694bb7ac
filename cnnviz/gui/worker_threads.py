"""Ending a QObject worker that ran in a QThread without a deadlock between the GIL and Qt's locks."""
from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QObject


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
