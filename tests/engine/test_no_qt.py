"""The engine, the CLI and everything outside the window import no Qt: the headless commands and a plain
script run on a machine without a display or PySide6."""
from __future__ import annotations

import pkgutil
import subprocess
import sys

import cnnviz
from cnnviz.formatting import format_seconds

WINDOW = ("cnnviz.gui", "cnnviz.app")  # the window and its entry point: the only places Qt belongs


def engine_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(cnnviz.__path__, "cnnviz.")]
    return sorted(n for n in names if not n.startswith(WINDOW))


def test_no_module_outside_the_window_imports_qt():
    modules = engine_modules()
    assert "cnnviz.training.child" in modules and "cnnviz.cli" in modules and len(modules) > 30
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "qt = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph'))\n"
            "print(qt)\n"
            "sys.exit(1 if qt else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]


def test_durations_read_as_a_person_reads_them():
    assert [format_seconds(s) for s in (None, float("nan"), -1, 0, 65, 3599.6, 7380)] == \
        ["?", "?", "?", "0:00", "1:05", "1h00", "2h03"]
