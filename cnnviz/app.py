"""The Qt entry point: create the application and the main window on the embedded sample."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from cnnviz.presets import DEFAULT_PRESET


def create_window(argv: list[str] | None = None):
    """Build and show the main window (creating the QApplication if needed) without entering the event loop."""
    import pyqtgraph as pg
    import torch
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setApplicationName("cnnviz")
    app.setOrganizationName("cnnviz")
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="w", foreground="k")
    torch.set_num_threads(1)  # the window's own inference; training runs in a separate process

    from cnnviz.config import DataConfig
    from cnnviz.data.prepare import load_data
    from cnnviz.gui import settings
    from cnnviz.gui.main_window import MainWindow
    from cnnviz.presets import PRESETS

    preset, recipe = settings.load_experiment()
    if preset not in PRESETS:
        preset, recipe = DEFAULT_PRESET, None
    if recipe is not None:  # remembered options, but always start on the embedded sample (offline, instant)
        import dataclasses

        recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, dataset="sample", data_dir=None))
    data_config = recipe.data if recipe is not None else PRESETS[preset].recipe.data
    data = load_data(DataConfig(**{**data_config.__dict__, "dataset": "sample", "data_dir": None}))
    window = MainWindow(data, preset=preset, recipe=recipe)
    window.show()
    notice = settings.take_problems()  # damaged remembered settings (read above and by the window's layout)
    if notice:
        window.show_message("warning", notice)
    return window


def freeze_startup_objects() -> None:
    """Move everything alive after start-up (torch, Qt and the window: ~220,000 tracked objects) out of
    the garbage collector's reach. A full collection otherwise walks them all: ~110 ms during which the
    window does not repaint. Objects made later are collected as usual."""
    import gc

    gc.collect()
    gc.freeze()


def run_app(argv: list[str] | None = None) -> int:
    """Open the window and run the event loop until it closes."""
    from PySide6.QtWidgets import QApplication

    import signal

    from PySide6.QtCore import QTimer

    window = create_window(argv)
    freeze_startup_objects()
    app = QApplication.instance()
    app.aboutToQuit.connect(window.controller.shutdown)
    # Ctrl+C in the terminal closes the window cleanly (Qt's loop would otherwise never let Python see it)
    signal.signal(signal.SIGINT, lambda *_: window.close())
    wake = QTimer(window)
    wake.timeout.connect(lambda: None)
    wake.start(250)
    marker = os.environ.get("CNNVIZ_STARTUP_MARKER")
    if marker:  # bench/bench_startup.py: when the event loop first ran with the window shown
        QTimer.singleShot(0, lambda: Path(marker).write_text(f"{time.time():.6f}\n"))
    return app.exec()
