"""Regression: PySide6-Essentials 6.12.0 on Python 3.11 aborts after a few hundred Signal.emit() calls
(Fatal Python error: bool_dealloc). pyproject.toml keeps it below 6.12 there; this proves the installed
binding survives heavy signalling, in a subprocess so an abort cannot take the test run down."""
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QCoreApplication, QObject, Signal

    class Source(QObject):
        fired = Signal(object)
        flag = Signal(bool)

    app = QCoreApplication([])
    source, seen = Source(), []
    source.fired.connect(seen.append)
    source.flag.connect(seen.append)
    for i in range(10_000):
        source.fired.emit(i)
        source.flag.emit(True)
    assert len(seen) == 20_000, len(seen)
    print("ok")
""")


def test_ten_thousand_signal_emits_exit_cleanly():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"
    assert "Fatal Python error" not in proc.stderr
