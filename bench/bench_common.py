"""Helpers shared by the bench scripts (not a bench itself): environment, load, statistics, the window.

Import this before anything imports Qt: :func:`setup_env` sets the offscreen platform, disables the
user's saved settings and points the app's data folder (autosaves) at a temporary folder.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def setup_env() -> str:
    """Offscreen Qt, no saved settings, a throwaway data folder; returns that folder."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["CNNVIZ_NO_SETTINGS"] = "1"
    if "CNNVIZ_DATA_DIR" not in os.environ:
        os.environ["CNNVIZ_DATA_DIR"] = tempfile.mkdtemp(prefix="cnnviz-bench-")
    return os.environ["CNNVIZ_DATA_DIR"]


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def load_note(before: tuple[float, float, float], after: tuple[float, float, float] | None = None) -> str:
    """One line on how busy the machine was (1-minute load averages), flagging a busy machine."""
    after = after or load_average()
    worst = max(before[0], after[0])
    note = f"load average (1 min) {before[0]:.2f} before, {after[0]:.2f} after ({os.cpu_count()} cores)"
    if worst >= 1.5:
        note += " -- BUSY machine: other work competed for the cores, figures are pessimistic"
    return note


def wait_for_quiet(max_load: float, max_wait: float) -> tuple[float, float, float]:
    """Sleep until the 1-minute load average is below `max_load` (at most `max_wait` s)."""
    deadline = time.monotonic() + max_wait
    load = load_average()
    while load[0] >= max_load and time.monotonic() < deadline:
        print(f"  waiting for a quiet machine: load {load[0]:.2f} >= {max_load}", flush=True)
        time.sleep(min(30.0, max(1.0, deadline - time.monotonic())))
        load = load_average()
    return load


def pct(values, q: float) -> float:
    """The q-th percentile (0-100), nearest-rank; NaN for no values."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(0, min(len(v) - 1, int(round(q / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def median(values) -> float:
    return statistics.median(values) if values else float("nan")


def ok(value: float, target: float, below: bool = True) -> str:
    good = value <= target if below else value >= target
    return "ok" if good else "MISS"


# ---- Qt --------------------------------------------------------------------------------------------
def qapp():
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication([sys.argv[0]])


def spin(seconds: float) -> None:
    """Run the event loop for `seconds` (a nested loop, as the app's own exec() would)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def spin_until(predicate, timeout: float, step: float = 0.02) -> bool:
    """Run the event loop until `predicate()` is true (checked every `step` s) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        spin(step)
    return True


LIVE_DOCKS = ("curves", "draw", "filters", "feature_maps", "evaluation")


def show_every_live_view(window, size=(1920, 1200)) -> str:
    """Lay the docks out so curves, draw, filters, feature maps and evaluation are all visible at once.

    Returns a sentence saying how (for the report). The model editor and the convolution playground
    (no live training data) stay tabbed behind the evaluation and filters docks.
    """
    from PySide6.QtCore import Qt

    d = window.docks
    window.resize(*size)
    h, v = Qt.Orientation.Horizontal, Qt.Orientation.Vertical
    for dock in d.values():
        window.removeDockWidget(dock)
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, d["experiment"])
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, d["curves"])
    window.splitDockWidget(d["curves"], d["draw"], h)
    window.splitDockWidget(d["curves"], d["feature_maps"], v)
    window.splitDockWidget(d["curves"], d["evaluation"], h)
    window.splitDockWidget(d["feature_maps"], d["filters"], h)
    window.tabifyDockWidget(d["evaluation"], d["model"])
    window.tabifyDockWidget(d["filters"], d["playground"])
    window.tabifyDockWidget(d["evaluation"], d["distributions"])
    window.tabifyDockWidget(d["filters"], d["health"])
    if "projector" in d:
        window.tabifyDockWidget(d["filters"], d["projector"])
    for name, dock in d.items():
        if name != "compare":  # shown by the window when a run is compared (bench_compare.py)
            dock.show()
    d["compare"].hide()
    for name in LIVE_DOCKS:
        d[name].raise_()
    window.resizeDocks([d["experiment"], d["curves"], d["evaluation"], d["draw"]], [300, 560, 420, 460], h)
    window.resizeDocks([d["curves"], d["feature_maps"]], [520, 560], v)
    spin(0.3)
    hidden = [n for n in LIVE_DOCKS if not getattr(window, n).isVisible() or getattr(window, n).visibleRegion().isEmpty()]
    if hidden:
        raise RuntimeError(f"live views not visible: {hidden}")
    sizes = ", ".join(f"{n} {getattr(window, n).width()}x{getattr(window, n).height()}" for n in LIVE_DOCKS)
    return (f"window {size[0]}x{size[1]}, docks re-laid out (removeDockWidget / addDockWidget / splitDockWidget): "
            f"curves | evaluation | draw on top, feature maps | filters below, model editor, convolution "
            f"playground, distributions, training health and projector tabbed behind evaluation and filters, compare "
            f"hidden until a run is compared; live view sizes {sizes}")


def mouse(widget, kind: str, x: float, y: float) -> None:
    """Send one synthetic left-button mouse event (press/move/release) to `widget`."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    types = {"press": QEvent.Type.MouseButtonPress, "move": QEvent.Type.MouseMove,
             "release": QEvent.Type.MouseButtonRelease}
    left = Qt.MouseButton.LeftButton
    button = Qt.MouseButton.NoButton if kind == "move" else left
    buttons = Qt.MouseButton.NoButton if kind == "release" else left
    local = QPointF(x, y)
    event = QMouseEvent(types[kind], local, widget.mapToGlobal(local), button, buttons,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def digit_path(widget, n: int = 60) -> list[tuple[float, float]]:
    """Points of a '2'-like stroke across the canvas square, `n` of them."""
    import math

    sq = widget.square()
    pts = []
    for i in range(n):
        t = i / max(1, n - 1)
        if t < 0.5:  # the arc at the top
            a = math.pi * (1.0 + 2.0 * t)
            px, py = 0.5 + 0.22 * math.cos(a), 0.35 + 0.18 * math.sin(a)
        elif t < 0.8:  # the diagonal down to the left
            u = (t - 0.5) / 0.3
            px, py = 0.72 - 0.45 * u, 0.35 + 0.45 * u
        else:  # the base
            u = (t - 0.8) / 0.2
            px, py = 0.27 + 0.48 * u, 0.8
        pts.append((sq.x() + px * sq.width(), sq.y() + py * sq.height()))
    return pts


def draw_digit(canvas) -> None:
    """Draw one whole stroke on the canvas at once."""
    pts = digit_path(canvas)
    mouse(canvas, "press", *pts[0])
    for p in pts[1:]:
        mouse(canvas, "move", *p)
    mouse(canvas, "release", *pts[-1])


def rss_mb(pid: int | None = None) -> float:
    """Resident set size of a process in MB (psutil if installed, else /proc)."""
    pid = os.getpid() if pid is None else pid
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 1e6
    except ImportError:
        pass
    except Exception:
        return float("nan")
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return float("nan")


def child_pids(pid: int | None = None, skip: str = "resource_tracker") -> list[int]:
    """Direct children of a process (Linux /proc; psutil when installed), except those whose command
    line contains `skip` (multiprocessing's resource tracker)."""
    pid = os.getpid() if pid is None else pid
    try:
        import psutil

        return [c.pid for c in psutil.Process(pid).children() if skip not in " ".join(c.cmdline())]
    except ImportError:
        pass
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and skip not in (entry / "cmdline").read_text():
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def training_child(pid: int | None = None) -> int | None:
    """The newest child of this process started by multiprocessing (the training process)."""
    pid = os.getpid() if pid is None else pid
    found = None
    for child in child_pids(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found = child if found is None else max(found, child)
        except OSError:
            continue
    return found


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) a process used so far; NaN when unknown."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")
