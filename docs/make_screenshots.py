"""Screenshots of every panel during a real training run (docs/screenshots/*.png).

    QT_QPA_PLATFORM=offscreen python docs/make_screenshots.py --data-dir PATH/TO/mnist [--preset gorner-dropout]

Opens the real window, loads the IDX folder, trains the preset, and while it trains grabs each panel:
curves, filters, feature maps, the drawing canvas with a drawn digit and its Grad-CAM, the evaluation
panel with a confusion cell opened, the model table and the convolution playground. When the run ended:
the window at a step of its second epoch (the timeline), the distributions and training health; then ReLU
against sigmoid trained side by side (the compare dock, the overlaid curves).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "screenshots"
# a "2" drawn as a user would, in 280-pixel canvas coordinates
TWO = [(85, 95), (105, 62), (150, 52), (190, 72), (196, 110), (170, 150), (120, 195), (88, 228), (140, 226),
       (200, 226)]


def wait_until(condition, timeout: float = 120.0) -> None:
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        QApplication.processEvents()
        time.sleep(0.01)


def settle(seconds: float = 0.6) -> None:
    """Let queued updates and throttled redraws land before grabbing."""
    from PySide6.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def paused_window(data_dir: str, preset: str, steps: int, epochs: int = 2, size=(1600, 1000)):
    """The real window on full MNIST (the folder's IDX files), `preset` trained `steps` steps, then paused."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["CNNVIZ_NO_SETTINGS"] = "1"
    os.environ["CNNVIZ_DATA_DIR"] = tempfile.mkdtemp(prefix="cnnviz-shots-")

    from cnnviz.app import create_window

    w = create_window([])
    w.confirm = lambda *a: True
    w.resize(*size)
    w.apply_preset(preset)
    wait_until(lambda: not w.loader.busy)
    w.request_dataset("sample", str(Path(data_dir).resolve()))
    wait_until(lambda: not w.loader.busy)
    w.session.set_recipe(w.session.recipe.replace(train__epochs=epochs))
    w.train()
    wait_until(lambda: w.session.history.steps >= steps, timeout=600)
    w.toggle_pause()
    wait_until(lambda: w.session.state == "paused")
    return w


def draw(canvas, points) -> None:
    import numpy as np
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    path = [points[0]]
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        path += [(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t) for t in np.linspace(0, 1, 7)[1:]]
    sq = canvas.square()

    def send(kind, x, y, held):
        pos = QPointF(sq.x() + x / 280 * sq.width(), sq.y() + y / 280 * sq.height())
        button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else Qt.MouseButton.LeftButton
        buttons = Qt.MouseButton.LeftButton if held else Qt.MouseButton.NoButton
        QApplication.sendEvent(canvas, QMouseEvent(kind, pos, canvas.mapToGlobal(pos), button, buttons,
                                                   Qt.KeyboardModifier.NoModifier))

    send(QEvent.Type.MouseButtonPress, *path[0], True)
    for x, y in path[1:]:
        send(QEvent.Type.MouseMove, x, y, True)
    send(QEvent.Type.MouseButtonRelease, *path[-1], False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder with the four MNIST IDX files")
    parser.add_argument("--preset", default="gorner-dropout")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--compare-steps", type=int, default=1200,
                        help="train ReLU and sigmoid side by side for this many steps (0: no comparison shots)")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["CNNVIZ_NO_SETTINGS"] = "1"
    os.environ["CNNVIZ_DATA_DIR"] = tempfile.mkdtemp(prefix="cnnviz-shots-")
    OUT.mkdir(parents=True, exist_ok=True)

    import numpy as np

    from cnnviz.app import create_window

    w = create_window([])
    w.confirm = lambda *a: True
    w.resize(1600, 1000)
    w.apply_preset(args.preset)
    wait_until(lambda: not w.loader.busy)
    w.request_dataset("sample", str(Path(args.data_dir).resolve()))
    wait_until(lambda: not w.loader.busy)
    assert len(w.session.data.train) > 50000, "the folder should hold full MNIST"
    w.session.set_recipe(w.session.recipe.replace(train__epochs=args.epochs))
    w.train()
    wait_until(lambda: len(w.session.history.epochs) >= 1, timeout=600)  # one epoch done and evaluated
    wait_until(lambda: len(w.session.history.step_loss) > len(w.session.history.epochs) * 600 + 150, timeout=300)

    shots = {}

    def grab(name: str, widget) -> None:
        from PySide6.QtWidgets import QToolTip

        settle()
        QToolTip.hideText()
        settle(0.3)
        path = OUT / f"{name}.png"
        widget.grab().save(str(path))
        shots[name] = path
        print("wrote", path, flush=True)

    d = w.docks
    grab("window", w)
    grab("curves", d["curves"])
    d["feature_maps"].raise_()
    w.session.select_test_image(int(np.flatnonzero(w.session.data.test.labels.numpy() == 5)[0]))
    grab("feature_maps", d["feature_maps"])
    d["filters"].raise_()
    grab("filters", d["filters"])
    draw(w.draw.canvas, TWO)
    w.draw.set_overlay("Grad-CAM")
    grab("draw", d["draw"])
    d["evaluation"].raise_()
    ev = w.session.evaluation
    off = ev.confusion.copy()
    np.fill_diagonal(off, 0)
    t, p = np.unravel_index(int(off.argmax()), off.shape)
    w.evaluation.click_cell(int(t), int(p))
    grab("evaluation", d["evaluation"])
    d["model"].raise_()
    grab("model", d["model"])
    d["playground"].raise_()
    w.playground.set_kernel("Sobel x")
    w.playground.set_padding(1)
    grab("convolution", d["playground"])
    grab("experiment", d["experiment"])
    d["curves"].raise_()
    d["feature_maps"].raise_()
    grab("window", w)
    # the timeline: wait for the run to end, then go back to a step of its second epoch
    wait_until(lambda: not w.controller.active, timeout=1800)
    w.timeline.refresh()
    w.timeline_wiring.update_bar()
    ends = [e.step for e in w.session.history.epochs]
    w.seek(ends[0] + (ends[1] - ends[0]) // 3)
    d["filters"].raise_()
    grab("timeline", w)
    d["distributions"].raise_()
    grab("distributions", d["distributions"])
    d["health"].raise_()
    grab("health", d["health"])
    w.timeline.go_live()
    if args.compare_steps:
        # ReLU against sigmoid on the same batches, side by side
        w.reset()
        w.session.set_recipe(w.session.recipe.replace(train__epochs=1000, train__max_steps=args.compare_steps))
        assert w.train_variant("activation", "sigmoid")
        wait_until(lambda: not w.controller.active and not w.compare.controller.active, timeout=3600)
        w.session.select_test_image(int(np.flatnonzero(w.session.data.test.labels.numpy() == 5)[0]))
        d["compare"].raise_()
        w.compare_view.tabs.setCurrentIndex(0)
        grab("compare_filters", d["compare"])
        w.compare_view.tabs.setCurrentIndex(2)
        grab("compare_answers", d["compare"])
        d["curves"].raise_()
        grab("compare_curves", d["curves"])
        d["compare"].raise_()
        w.compare_view.tabs.setCurrentIndex(1)
        grab("compare_window", w)
    w.close()
    print(f"{len(shots)} screenshots in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
