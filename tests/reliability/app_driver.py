"""Drives the real app in its own process for the end-to-end tests (test_app_process.py).

Usage: ``python -m tests.reliability.app_driver MODE [ARG]``. It starts cnnviz through ``run_app`` (the
entry point of ``python -m cnnviz``), brings the window into MODE, prints one ``REPORT {json}`` line
(the app's child processes and sockets at that moment) and then:

- training / paused / evaluating / downloading: closes the window; the event loop ends and the exit
  code of ``run_app`` becomes the process's.
- crash: waits for the first autosave, reports, and keeps training until the test kills it.

ARG is the IDX folder (evaluating) or a JSON object with the local mirror (downloading).
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"resource_tracker" not in cmd:
            found.append(int(entry))
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _sockets(pids: list[int]) -> dict:
    """Internet sockets (with their TCP state) and listening Unix sockets held by `pids`."""
    inodes = set().union(*(_socket_inodes(p) for p in pids))
    inet = []
    for kind in ("tcp", "tcp6", "udp", "udp6"):
        try:
            rows = Path(f"/proc/net/{kind}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[9] in inodes:
                inet.append({"kind": kind, "local": cols[1], "remote": cols[2], "state": cols[3]})
    unix_listening = []
    for row in Path("/proc/net/unix").read_text().splitlines()[1:]:
        cols = row.split()
        if cols[6] in inodes and int(cols[3], 16) & 0x10000:  # __SO_ACCEPTCON: a listening socket
            unix_listening.append(cols[7] if len(cols) > 7 else "(unnamed)")
    return {"inet": inet, "unix_listening": unix_listening}


def main() -> int:
    mode = sys.argv[1]
    arg = sys.argv[2] if len(sys.argv) > 2 else ""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    QApplication([])
    if mode == "downloading":
        from cnnviz.data.catalog import DATASETS

        mirror = json.loads(arg)
        DATASETS["mnist"] = dataclasses.replace(DATASETS["mnist"], mirrors=(mirror["url"],),
                                                sha256=mirror["sha256"], sizes=mirror["sizes"])
    from cnnviz.app import run_app

    state = {"phase": "start", "progress": 0}

    def window():
        return next(w for w in QApplication.topLevelWidgets() if type(w).__name__ == "MainWindow")

    def report() -> None:
        pids = [os.getpid(), *_children(os.getpid())]
        print("REPORT " + json.dumps({"app": os.getpid(), "children": pids[1:], **_sockets(pids)}), flush=True)

    def start(w) -> None:
        w.confirm = lambda *args: True
        if mode == "downloading":
            w.loader.progress.connect(lambda done, total, text: state.update(progress=done))
            w.request_dataset("mnist", None)
            return
        if mode == "evaluating":
            w.request_dataset("sample", arg)
            state["phase"] = "loading"
            return
        w.session.set_recipe(w.session.recipe.replace(train__epochs=1000))
        w.controls.train_button.click()

    def reached(w) -> bool:
        s = w.session
        if mode == "downloading":
            return state["progress"] > 0 and w.loader.busy
        if mode == "paused":
            if s.state == "running" and s.history.step_loss and w.controls.pause_button.text() == "Pause":
                w.controls.pause_button.click()
            return s.state == "paused" and s.weights_step == len(s.history.step_loss) > 0
        if mode == "evaluating":
            return s.weights_step > 0 and (s.evaluation is None or s.evaluation.step < s.weights_step)
        if mode == "crash":
            return w.controller.last_checkpoint is not None
        return s.state == "running" and len(s.history.step_loss) > 0

    def tick() -> None:
        w = window()
        phase = state["phase"]
        if phase == "start":
            start(w)
            state["phase"] = state["phase"] if state["phase"] != "start" else "wait"
        elif phase == "loading" and not w.loader.busy:
            w.session.set_recipe(w.session.recipe.replace(train__epochs=1000, train__batch_size=100))
            w.controls.train_button.click()
            state["phase"] = "wait"
        elif phase == "wait" and reached(w):
            report()
            state["phase"] = "done"
            if mode != "crash":
                w.close()  # the last window: the event loop ends

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(20)
    code = run_app([])
    timer.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
