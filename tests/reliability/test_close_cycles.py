"""Closing the real window while it trains, is paused, evaluates or downloads: clean, every time.

Each cycle builds a fresh main window, brings it into the state, closes it as the user would
(the window's close button or Ctrl+Q) and checks: no run or load thread left, every QThread finished,
no new Python thread, no child process, the RUNNING marker gone, and no Qt warning (pytest-qt fails
the test on any, see pyproject.toml). After all cycles the native thread count must be back to what it
was after the first one. A live training child costs ~3-5 s to start (spawn + torch import), so the
default run does two or three cycles per state and the 100-cycle runs are marked slow.
"""
from __future__ import annotations

import gc
import threading
import time

import pytest
import shiboken6

from tests.reliability.conftest import (assert_closed_cleanly, log_counts, native_threads, qt_problems, rss_mb,
                                        short_run, write_dataset)

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

DEFAULT_CYCLES = {"training": 2, "paused": 2, "evaluating": 2, "downloading": 3}
SLOW_CYCLES = 100


@pytest.fixture(scope="module")
def eval_folder(tmp_path_factory):
    """One training batch per epoch and 16,000 test images: the run spends ~1 s of every epoch evaluating."""
    folder = tmp_path_factory.mktemp("evaluating")
    write_dataset(folder, n_train=100, n_test=16_000, gz=False)
    return folder


def _bring_into(scenario: str, window, qtbot, eval_folder) -> bool:
    """Put a fresh window into `scenario`; returns whether the state was reached for certain."""
    qtbot.wait(10)  # the window's first event-loop turn, as before any click
    if scenario == "downloading":
        progress = []
        window.loader.progress.connect(lambda done, total, message: progress.append(done))
        window.request_dataset("mnist", None)
        qtbot.waitUntil(lambda: any(d > 0 for d in progress), timeout=30000)
        return window.loader.busy
    if scenario == "evaluating":
        window.request_dataset("sample", str(eval_folder))
        qtbot.waitUntil(lambda: not window.loader.busy and len(window.session.data.test) == 16_000, timeout=30000)
        short_run(window, train__epochs=1000, train__batch_size=100)
    else:
        short_run(window, train__epochs=1000)
    window.train()
    assert window.trainer_state() == "running"
    if scenario == "evaluating":
        # one batch per epoch: the weights of step k arrive as the child starts evaluating epoch k (~1 s);
        # that epoch's step metrics and evaluation come together when it is done
        qtbot.waitUntil(lambda: window.session.weights_step > 0, timeout=60000)
        evaluation = window.session.evaluation
        return evaluation is None or evaluation.step < window.session.weights_step
    qtbot.waitUntil(lambda: len(window.session.history.step_loss) > 0, timeout=60000)
    history = window.session.history
    if scenario == "paused":
        window.toggle_pause()
        # paused for real: the child parked and sent the weights it stopped on
        qtbot.waitUntil(lambda: window.trainer_state() == "paused"
                        and window.session.weights_step == len(history.step_loss), timeout=30000)
        return True
    return window.trainer_state() == "running"


def _close_cycles(scenario: str, cycles: int, make_window, qtbot, qtlog, eval_folder) -> dict:
    threads_before = set(threading.enumerate())
    baseline_threads = None
    reached = 0
    close_seconds = []
    rss_start = None
    for cycle in range(cycles):
        window = make_window()
        reached += _bring_into(scenario, window, qtbot, eval_folder)
        started = time.monotonic()
        if cycle % 2:
            window.actions_by_name["quit"].trigger()  # Ctrl+Q
        else:
            window.close()  # the title bar's close button
        close_seconds.append(time.monotonic() - started)
        assert_closed_cleanly(window, threads_before)
        assert window.trainer_state() in ("stopped", "idle")
        window.deleteLater()
        qtbot.waitUntil(lambda w=window: not shiboken6.isValid(w), timeout=5000)
        del window
        gc.collect()  # a deleted window's Python side is cyclic garbage: collect it, so RSS shows what is kept
        if baseline_threads is None:
            baseline_threads, rss_start = native_threads(), rss_mb()
    assert native_threads() <= baseline_threads, (native_threads(), baseline_threads)
    assert qt_problems(qtlog) == []
    counts = dict(scenario=scenario, cycles=cycles, state_reached=reached, max_close_s=round(max(close_seconds), 2),
                  native_threads=native_threads(), rss_growth_mb=round(rss_mb() - rss_start, 1), crashes=0)
    log_counts(f"close_while_{scenario}", **counts)
    return counts


def _prepare(scenario, local_mirror, monkeypatch) -> None:
    if scenario == "downloading":
        local_mirror.serve_as(monkeypatch, "mnist", "slow")


@pytest.mark.parametrize("scenario", list(DEFAULT_CYCLES))
def test_close_while(scenario, make_window, qtbot, qtlog, eval_folder, local_mirror, monkeypatch, app_dirs):
    _prepare(scenario, local_mirror, monkeypatch)
    counts = _close_cycles(scenario, DEFAULT_CYCLES[scenario], make_window, qtbot, qtlog, eval_folder)
    assert counts["state_reached"] >= DEFAULT_CYCLES[scenario] - 1
    if scenario == "downloading":  # a download cut short leaves no file behind, not even a temporary one
        folder = app_dirs / "cache" / "cnnviz" / "datasets" / "mnist"
        assert not folder.exists() or list(folder.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(DEFAULT_CYCLES))
def test_close_while_100_cycles(scenario, make_window, qtbot, qtlog, eval_folder, local_mirror, monkeypatch):
    _prepare(scenario, local_mirror, monkeypatch)
    counts = _close_cycles(scenario, SLOW_CYCLES, make_window, qtbot, qtlog, eval_folder)
    assert counts["state_reached"] >= SLOW_CYCLES * 0.9
