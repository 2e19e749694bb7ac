"""The Qt entry point: create the application and the main window on the embedded sample."""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

from cnnviz.presets import DEFAULT_PRESET


def create_window(argv: list[str] | None = None, run: str | None = None, data_dir: str | None = None,
                  follow: bool = False, compare: str | None = None):
    """Build and show the main window (creating the QApplication if needed) without entering the event loop.

    `run`: a saved run to open in it; `data_dir`: a folder of IDX files to open it on instead of the embedded
    sample. Both are checked first, so a bad one is a CnnvizError before any window appears."""
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    from cnnviz.compute_threads import limit_compute_threads
    from cnnviz.data.prepare import load_data

    from cnnviz.gui import settings
    from cnnviz.presets import PRESETS

    checkpoint = None
    if run is not None:
        from cnnviz.training.checkpoint import load_checkpoint

        if follow:  # a run still being written may have no checkpoint yet: its folder must be one
            from cnnviz.timeline.reader import read_header

            if not Path(run).is_dir():
                from cnnviz.errors import CnnvizError

                raise CnnvizError(f"{run}: not a run folder to follow")
            read_header(Path(run))
        else:
            checkpoint = load_checkpoint(run)  # a bad run is a one-line error, not a window with a banner
        if compare is not None:
            load_checkpoint(compare)
    preset, recipe = settings.load_experiment()
    if preset not in PRESETS or recipe is None:
        preset, recipe = (preset if preset in PRESETS else DEFAULT_PRESET), None
    recipe = recipe or PRESETS[preset].recipe
    # remembered options, but on the folder asked for, else always on the embedded sample (offline, instant)
    data_config = dataclasses.replace(recipe.data, dataset="sample", data_dir=data_dir)
    data = load_data(data_config, fallback=False)  # a bad folder is a one-line error too
    recipe = dataclasses.replace(recipe, data=data_config)

    check_display()
    app = QApplication.instance() or QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setApplicationName("cnnviz")
    app.setOrganizationName("cnnviz")
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="w", foreground="k")
    limit_compute_threads(1)  # the window's own inference; training runs in a separate process

    from cnnviz.gui.main_window import MainWindow

    window = MainWindow(data, preset=preset, recipe=recipe)
    window.show()
    notice = settings.take_problems()  # damaged remembered settings (read above and by the window's layout)
    if notice:
        window.show_message("warning", notice)
    if checkpoint is not None or follow:
        window.open_run(str(run), follow=follow)
    if compare is not None:
        window.compare_with(str(compare))
    return window


def check_display() -> None:
    """On Linux with X11, make sure Qt's xcb platform can load before creating the QApplication: Qt aborts
    the process when it cannot ("Could not load the Qt platform plugin xcb"). Says what to install instead."""
    from cnnviz.display_check import missing_display_support

    problem = missing_display_support()
    if problem:
        from cnnviz.errors import CnnvizError

        raise CnnvizError(problem)


def freeze_startup_objects() -> None:
    """Move everything alive after start-up (torch, Qt and the window: ~220,000 tracked objects) out of
    the garbage collector's reach. A full collection otherwise walks them all: ~110 ms during which the
    window does not repaint. Objects made later are collected as usual."""
    import gc

    gc.collect()
    gc.freeze()


def run_app(argv: list[str] | None = None, run: str | None = None, data_dir: str | None = None,
            follow: bool = False, compare: str | None = None) -> int:
    """Open the window (on a saved run, or a folder of data) and run the event loop until it closes."""
    from PySide6.QtWidgets import QApplication

    import signal

    from PySide6.QtCore import QTimer

    window = create_window(argv, run=run, data_dir=data_dir, follow=follow, compare=compare)
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
