"""The whole app in its own process (python -m tests.reliability.app_driver): closed while training or
downloading (the slow test adds paused and evaluating) it exits with code 0, writes nothing but offscreen's
known notice on stderr, and leaves no process behind; it never listens on a socket; killed with SIGKILL
after an autosave, the next start offers the run back.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import KNOWN_QT_NOISE, alive, log_counts, write_dataset

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CNNVIZ_NO_SETTINGS="1",
               CNNVIZ_DATA_DIR=str(tmp_path / "appdata"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("CNNVIZ_RELIABILITY_LOG", None)
    return env


def _start(mode: str, tmp_path: Path, arg: str = "") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.reliability.app_driver", mode, *([arg] if arg else [])],
                            cwd=ROOT, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _report(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("REPORT ")]
    assert len(lines) == 1, stdout
    return json.loads(lines[0][len("REPORT "):])


def _stderr_problems(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and KNOWN_QT_NOISE not in line]


@pytest.fixture(scope="module")
def eval_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluating-e2e")
    write_dataset(folder, n_train=100, n_test=16_000, gz=False)
    return folder


def test_closing_the_app_while_training_or_downloading_exits_cleanly(tmp_path, eval_folder, local_mirror):
    _close_apps(["training", "downloading"], tmp_path, eval_folder, local_mirror)


@pytest.mark.slow
def test_closing_the_app_in_every_state_exits_cleanly(tmp_path, eval_folder, local_mirror):
    _close_apps(["training", "paused", "evaluating", "downloading"], tmp_path, eval_folder, local_mirror)


def _close_apps(modes, tmp_path, eval_folder, local_mirror):
    """The apps run in parallel: each is mostly waiting for its training process to start."""
    mirror = json.dumps({"url": local_mirror.url("slow"), "sha256": local_mirror.sha256, "sizes": local_mirror.sizes})
    args = {"evaluating": str(eval_folder), "downloading": mirror}
    procs = {mode: _start(mode, tmp_path / mode, args.get(mode, "")) for mode in modes}
    results = {}
    try:
        for mode, proc in procs.items():
            out, err = proc.communicate(timeout=240)
            results[mode] = (proc.returncode, out, err)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    for mode, (code, out, err) in results.items():
        assert code == 0, (mode, code, err[-3000:])
        assert _stderr_problems(err) == [], (mode, err[-3000:])
        report = _report(out)
        if mode != "downloading":
            assert len(report["children"]) == 1, (mode, report)  # the training process was live
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in report["children"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in report["children"]), (mode, report)
        # no network listeners, ever; while training not even an outgoing connection
        assert not [s for s in report["inet"] if s["state"] == "0A" or s["kind"].startswith("udp")], report
        assert report["unix_listening"] == [], report
        if mode == "downloading":  # the scan does see sockets: the download's own connection
            assert any(s["kind"] == "tcp" and s["state"] == "01" for s in report["inet"]), report
        else:
            assert report["inet"] == [], report
    log_counts("app_process_close", modes=modes, exit_codes=[r[0] for r in results.values()], crashes=0)


def test_a_killed_app_leaves_no_training_process_and_its_run_is_offered_back(tmp_path, make_window, qtbot,
                                                                             monkeypatch):
    """SIGKILL the app after its first autosave, as a crash or power loss would; then start it again."""
    proc = _start("crash", tmp_path)
    try:
        line = ""
        deadline = time.monotonic() + 120
        while not line.startswith("REPORT ") and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()[-3000:]
        report = json.loads(line[len("REPORT "):])
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    (child,) = report["children"]
    deadline = time.monotonic() + 30  # the orphaned training process notices its parent is gone and ends
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
    appdata = tmp_path / "appdata"
    (slot,) = (appdata / "autosave").glob("window-*")  # the killed window's own autosave folder
    assert slot.name.startswith(f"window-{proc.pid}-")
    assert (slot / "RUNNING").exists() and (slot / "checkpoint.safetensors").exists()

    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(appdata))
    asked = []
    window = make_window(confirm=lambda title, text: asked.append(title) or True)
    qtbot.waitUntil(lambda: window.trainer_state() == "stopped", timeout=10000)
    assert asked == ["Reopen the interrupted run?"]
    history = window.session.history
    assert len(history.epochs) >= 1 and len(history.step_loss) >= 40  # at least the first epoch of 40 batches
    assert window.session.trained and window.controller.resume_from is not None
    assert not (slot / "RUNNING").exists()
