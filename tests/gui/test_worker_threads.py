"""Workers that ran in a QThread are deleted in the GUI thread, never in their own (a GIL/Qt-lock deadlock)."""
from __future__ import annotations

import shiboken6
from PySide6.QtCore import QCoreApplication, Qt

from cnnviz.config import DataConfig
from cnnviz.gui.data_loader import DataLoader


def test_the_data_loaders_worker_ends_in_the_gui_thread_and_is_deleted_there(qtbot, tmp_path, monkeypatch):
    import threading

    import sys

    prepare = sys.modules["cnnviz.data.prepare"]  # the module (cnnviz.data also exports a function `prepare`)
    gate = threading.Event()  # the worker waits until the test listens: it must not finish before that
    real_load = prepare.load_data
    monkeypatch.setattr(prepare, "load_data", lambda *args, **kwargs: (gate.wait(30), real_load(*args, **kwargs))[1])
    loader = DataLoader()
    assert loader.load(DataConfig(dataset="mnist", data_dir=str(tmp_path / "missing")))
    worker, gui = loader._worker, QCoreApplication.instance().thread()
    assert worker.thread() is not gui  # it works in its own thread
    seen = []
    worker.finished.connect(lambda: seen.append(worker.thread() is gui), Qt.ConnectionType.DirectConnection)
    gate.set()
    qtbot.waitUntil(lambda: not loader.busy, timeout=30000)
    assert seen == [True]  # handed back before `finished`, so its thread never deletes it
    qtbot.waitUntil(lambda: not shiboken6.isValid(worker), timeout=5000)  # deleted by the GUI thread


def test_the_training_worker_hands_itself_back_to_the_gui_thread(qtbot):
    from PySide6.QtCore import QThread

    from cnnviz.gui import training_worker as tw

    class NoProcess:  # a run that cannot start: the worker reports it and ends
        def __init__(self, job):
            self.finished = False

        def start(self):
            raise OSError("no process today")

        def is_alive(self):
            return False

        def close(self):
            pass

    original, tw.TrainingProcess = tw.TrainingProcess, NoProcess
    try:
        worker, thread = tw.TrainingWorker(job=None), QThread()
        worker.moveToThread(thread)
        gui, seen = QCoreApplication.instance().thread(), []
        worker.finished.connect(lambda: seen.append(worker.thread() is gui), Qt.ConnectionType.DirectConnection)
        worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.started.connect(worker.run)
        thread.start()
        qtbot.waitUntil(lambda: thread.isFinished(), timeout=10000)
        assert seen == [True]
    finally:
        tw.TrainingProcess = original
