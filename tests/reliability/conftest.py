"""Shared pieces of the reliability tests: real windows, a local download server, and leak checks.

Leak checks read /proc (Linux): native threads of this process, live child processes, and sockets.
Set CNNVIZ_RELIABILITY_LOG to a file to have the cycle tests append their counts there (one JSON line
per test), which is where the figures in docs/reliability.md come from.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QThread, QTimer

from cnnviz.data.catalog import DATASETS, STANDARD_FILES
from tests.datasets import write_dataset  # noqa: F401 (the reliability tests import it from here)

HERE = Path(__file__).parent
SIX_STATES = {"idle", "running", "paused", "stopped", "finished", "failed"}
KNOWN_QT_NOISE = "This plugin does not support propagateSizeHints"
HELPER_PIDS: set[int] = set()  # processes the tests start on purpose (the download server)


# -- process and thread accounting ----------------------------------------------------------------------
def child_processes(pid: int | None = None) -> list[tuple[int, str]]:
    """Child processes of `pid` (default: this one) as (pid, command line), zombies included.

    multiprocessing's resource tracker (started once per interpreter, by design) and the tests' own
    helper processes are left out.
    """
    pid = os.getpid() if pid is None else pid
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in HELPER_PIDS:
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # ended while we looked
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and "resource_tracker" not in cmd:
            found.append((int(entry), cmd.strip()))
    return found


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def native_threads() -> int:
    """Threads of this process as the kernel counts them (Python, Qt and torch threads alike)."""
    return len(os.listdir("/proc/self/task"))


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def qt_problems(qtlog) -> list[str]:
    """Qt warnings (and worse) captured by pytest-qt, without offscreen's known harmless one."""
    from PySide6.QtCore import QtMsgType

    bad = (QtMsgType.QtWarningMsg, QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg)
    return [r.message for r in qtlog.records if r.type in bad and KNOWN_QT_NOISE not in r.message]


def log_counts(name: str, **counts) -> None:
    """Append one JSON line of counts for docs/reliability.md when CNNVIZ_RELIABILITY_LOG is set."""
    target = os.environ.get("CNNVIZ_RELIABILITY_LOG")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"test": name, **counts}) + "\n")


def pump_until_idle(qtbot, ms: int = 50) -> None:
    """Let the event loop run deferred deletes and queued calls for a moment."""
    qtbot.wait(ms)


def wait_responsive(qtbot, timeout: int = 5000) -> None:
    """The event loop turns: a zero-delay timer fires within `timeout` ms."""
    fired = []
    QTimer.singleShot(0, lambda: fired.append(True))
    qtbot.waitUntil(lambda: bool(fired), timeout=timeout)


def assert_closed_cleanly(window, threads_before: set) -> None:
    """After close: no run, no load, every QThread finished, no new Python thread, no child process."""
    assert not window.controller.active, "the training thread outlived the window"
    assert not window.loader.busy, "the data loading thread outlived the window"
    assert all(t.isFinished() for t in window.findChildren(QThread)), "a QThread is still running"
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert leftover == [], leftover
    assert child_processes() == []
    assert not window.controller.marker_path.exists(), "a clean close must remove the RUNNING marker"


# -- windows --------------------------------------------------------------------------------------------
@pytest.fixture
def app_dirs(tmp_path, monkeypatch):
    """Autosaves and the download cache in tmp (never the user's folders)."""
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(tmp_path / "appdata"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def make_window(qtbot, app_dirs):
    """Factory of real main windows (as `cnnviz` opens them) that answer yes to every question."""
    import weakref

    import shiboken6

    made = []  # weak: a strong reference would keep a deleted window's Python side (data, model) alive

    def make(confirm=True):
        from cnnviz.app import create_window

        window = create_window([])
        window.confirm = (lambda *a: confirm) if isinstance(confirm, bool) else confirm
        made.append(weakref.ref(window))
        return window

    yield make
    for ref in made:
        window = ref()
        if window is not None and shiboken6.isValid(window):
            window.close()
            window.deleteLater()
    qtbot.wait(10)


def short_run(window, **changes) -> None:
    window.session.set_recipe(window.session.recipe.replace(**changes))


# -- a local dataset server -----------------------------------------------------------------------------
@dataclasses.dataclass
class LocalMirror:
    """The four files of a small random dataset, served by slow_server.py on 127.0.0.1."""

    port: int
    folder: Path
    sha256: dict[str, str]
    sizes: dict[str, int]
    pid: int

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}/"

    def serve_as(self, monkeypatch, key: str, mode: str) -> None:
        """Make dataset `key` ("mnist", ...) download from this mirror in `mode` (ok/slow/cut/bad/404)."""
        info = dataclasses.replace(DATASETS[key], mirrors=(self.url(mode),), sha256=dict(self.sha256),
                                   sizes=dict(self.sizes))
        monkeypatch.setitem(DATASETS, key, info)


@pytest.fixture(scope="session")
def local_mirror(tmp_path_factory):
    """A slow-capable HTTP server in its own process (about 1.6 MB: ~4 s in slow mode)."""
    folder = tmp_path_factory.mktemp("mirror")
    write_dataset(folder, n_train=2000, n_test=200)
    files = {name: (folder / name).read_bytes() for name in STANDARD_FILES.values()}
    proc = subprocess.Popen([sys.executable, str(HERE / "slow_server.py"), str(folder)], stdout=subprocess.PIPE,
                            text=True)
    HELPER_PIDS.add(proc.pid)
    try:
        line = proc.stdout.readline().split()
        assert line and line[0] == "PORT", line
        yield LocalMirror(int(line[1]), folder, {n: hashlib.sha256(b).hexdigest() for n, b in files.items()},
                          {n: len(b) for n, b in files.items()}, proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
        HELPER_PIDS.discard(proc.pid)
