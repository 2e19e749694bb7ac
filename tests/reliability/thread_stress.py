"""Start and end the window's two kinds of worker thread thousands of times (test_thread_teardown.py).

Usage: ``python -m tests.reliability.thread_stress LOADS RUNS``. A crash here (segmentation fault, abort)
ends the process, which is why the test runs it apart. Prints ``ok loader LOADS`` and ``ok controller RUNS``.

- DataLoader: loads of a missing folder, which fail at once, so a cycle is little more than the thread.
- TrainingController: runs whose training process is a stand-in that reports a finished run at once.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    cycles, runs = int(sys.argv[1]), int(sys.argv[2])
    import faulthandler

    faulthandler.enable()
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    app = QApplication([])

    def spin_while(busy) -> None:
        while busy():
            app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents, 100)

    from cnnviz.config import DataConfig
    from cnnviz.gui.data_loader import DataLoader

    loader = DataLoader()
    failures = []
    loader.failed.connect(failures.append)
    missing = DataConfig(data_dir=os.path.join(os.sep, "no", "such", "folder"))
    for _ in range(cycles):
        loader.load(missing)
        spin_while(lambda: loader.busy)
    assert len(failures) == cycles, len(failures)
    print(f"ok loader {cycles}", flush=True)

    import cnnviz.gui.training_worker as training_worker
    from cnnviz.gui.session import Session
    from cnnviz.gui.training_controller import TrainingController
    from cnnviz.presets import get_preset
    from cnnviz.training.messages import FINISHED, FitResult

    class InstantProcess:
        """Stands in for TrainingProcess: a run that is over as soon as it starts."""

        def __init__(self, job) -> None:
            self.finished = False

        def start(self) -> None:
            pass

        def poll(self, timeout: float = 0.0) -> list:
            self.finished = True
            return [FitResult(FINISHED, 1, 1, 0.01, 100.0)]

        def is_alive(self) -> bool:
            return False

        def close(self) -> None:
            pass

    training_worker.TrainingProcess = InstantProcess
    preset = get_preset("cntk-conv")
    controller = TrainingController(Session(preset.spec, preset.recipe))
    for _ in range(runs):
        controller.start()
        spin_while(lambda: controller.active)
    assert controller.session.state == FINISHED
    print(f"ok controller {runs}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
