"""Thousands of worker-thread lifetimes without a crash (in a separate process: a crash would end this one).

Both of the window's worker threads (data loading, training) end with `finished -> deleteLater` on their
worker object; the window used to drop its own reference to that object while the thread was deleting it,
a double delete that crashed the app (segmentation fault or abort) about once in a few hundred loads or
runs. Without the fix, 500 runs crashed 6 times out of 6 and loads within the first 400, every time;
1,000 loads and 500 runs take 3-10 s (machine load); the slow test does 20,000 and 5,000.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.conftest import KNOWN_QT_NOISE, log_counts

ROOT = Path(__file__).resolve().parents[2]


def _stress(tmp_path, loads: int, runs: int) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CNNVIZ_NO_SETTINGS="1", CNNVIZ_DATA_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "tests.reliability.thread_stress", str(loads), str(runs)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[:2] == [f"ok loader {loads}", f"ok controller {runs}"], proc.stdout
    assert [line for line in proc.stderr.splitlines() if line and KNOWN_QT_NOISE not in line] == []
    log_counts("thread_teardown", loader_cycles=loads, controller_cycles=runs, crashes=0)


def test_thousands_of_loads_and_runs_start_and_end_without_a_crash(tmp_path):
    _stress(tmp_path, loads=1000, runs=500)


@pytest.mark.slow
def test_tens_of_thousands_of_loads_and_runs(tmp_path):
    _stress(tmp_path, loads=20_000, runs=5_000)
