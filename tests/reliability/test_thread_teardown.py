"""Thousands of worker-thread lifetimes without a crash (in a separate process: a crash would end this one).

Both of the window's worker threads (data loading, training) end with `finished -> deleteLater` on their
worker object; the window used to drop its own reference to that object while the thread was deleting it,
a double delete that crashed the app (segmentation fault or abort) about once in a few hundred loads or
runs. 2,000 loads and 1,000 runs take about 8 s; without the fix either crashed within them every time.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.reliability.conftest import KNOWN_QT_NOISE, log_counts

ROOT = Path(__file__).resolve().parents[2]
LOADS, RUNS = 2000, 1000


def test_thousands_of_loads_and_runs_start_and_end_without_a_crash(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CNNVIZ_NO_SETTINGS="1", CNNVIZ_DATA_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "tests.reliability.thread_stress", str(LOADS), str(RUNS)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[:2] == [f"ok loader {LOADS}", f"ok controller {RUNS}"], proc.stdout
    assert [line for line in proc.stderr.splitlines() if line and KNOWN_QT_NOISE not in line] == []
    log_counts("thread_teardown", loader_cycles=LOADS, controller_cycles=RUNS, crashes=0)
