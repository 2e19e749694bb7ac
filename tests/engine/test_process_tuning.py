"""The training process's malloc tuning: freed per-step buffers stay in the heap instead of going back
to the kernel (glibc Linux only)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from cnnviz.training.process_tuning import tune_malloc_for_training

glibc_linux = pytest.mark.skipif(not sys.platform.startswith("linux") or not tune_malloc_for_training(),
                                 reason="glibc's mallopt is needed")

# Allocate a 20 MB buffer (the size of one basic-cnn activation), touch it, free it; print how much of it
# the process still holds (resident kB after the free minus before the allocation).
PROBE = """
import sys
import numpy as np
from cnnviz.training.process_tuning import tune_malloc_for_training

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

if sys.argv[1] == "tuned":
    assert tune_malloc_for_training()
before = rss_kb()
a = np.ones(5 * 1024 * 1024, np.float32)
del a
print(rss_kb() - before)
"""


def _kept_kb(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60, check=True)
    return int(out.stdout.strip())


@glibc_linux
def test_a_freed_step_buffer_stays_in_the_tuned_heap():
    assert _kept_kb("default") < 5_000  # glibc's default: the 20 MB went back to the kernel
    assert _kept_kb("tuned") > 15_000  # tuned: kept for the next step, no page faults to refill it


def test_tuning_freezes_the_start_up_heap_in_a_training_process():
    probe = ("import gc\nfrom cnnviz.training.process_tuning import tune_for_training\n"
             "tune_for_training()\nprint(gc.get_freeze_count())")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert int(out.stdout) > 1000


def test_cli_train_called_from_python_leaves_the_callers_process_alone(tmp_path):
    import gc

    from cnnviz.cli import main

    frozen = gc.get_freeze_count()
    assert main(["train", "--preset", "cntk-conv", "--epochs", "1", "--subset", "200", "--json",
                 "--out", str(tmp_path / "run")]) == 0
    assert gc.get_freeze_count() == frozen
