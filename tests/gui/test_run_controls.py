"""The run controls' progress bar: updated 10 times a second while training, painted with the window."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject

from cnnviz.gui.widgets.run_controls import RunControls
from cnnviz.training.messages import StepMetrics


class PaintCounter(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.paints = 0

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.Paint:
            self.paints += 1
        return False


def metrics(step: int) -> StepMetrics:
    return StepMetrics(step, 2, 10, step - 100, 100, 0.5, 0.9, 0.1, 1000.0, 12.0, 3.0)


def test_progress_is_painted_later_and_once_not_inside_the_update(qtbot):
    controls = RunControls()
    qtbot.addWidget(controls)
    controls.resize(900, 40)
    controls.show()
    qtbot.waitExposed(controls)
    counter = PaintCounter()
    controls.progress.installEventFilter(counter)
    qtbot.wait(50)
    counter.paints = 0

    controls.set_progress(metrics(150))
    assert counter.paints == 0  # QProgressBar.setValue alone would have painted synchronously here
    assert controls.progress.value() == 150 and controls.progress.text().startswith("epoch 2/10  batch 50/100")
    assert controls.eta_label.text() == "ETA 0:12"
    qtbot.waitUntil(lambda: counter.paints >= 1, timeout=2000)
    qtbot.wait(50)
    assert counter.paints == 1
