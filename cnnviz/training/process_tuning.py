"""Set up a process that only trains: malloc keeps the per-step buffers, the collector skips start-up.

Malloc: keep glibc's malloc from handing training's big buffers back to the kernel after every step.

A CPU training step allocates and frees the same large activation and gradient buffers every batch
(basic-cnn at batch 128: 11-19 MB each). With glibc's defaults the freed top of the heap is trimmed
(returned to the kernel) and the next step faults the pages back in and zeroes them again; measured on
this project's 2-core machine that is ~20% of basic-cnn's step time, and how much varies from run to
run with the heap's layout (plain loop: 108-116 ms a step by default, 92-93 ms with this tuning).
Raising the mmap threshold to its maximum (32 MB on 64-bit) and the trim threshold well above one
step's working set keeps those buffers in the heap.

Garbage collector: every training step makes Python objects (tensors), so collections run all the
time, and a full one walks everything imported at start-up (~290,000 objects with torch); a profile of
a cntk-conv run put the collector at 3% of the time. Freezing what exists once the model and data are
built takes those objects out of every collection (measured: 1-2% faster steps).

Only processes that do nothing but train call :func:`tune_for_training`: the training child and the
CLI's ``train``; the window and library users are left alone.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 512 * 1024 * 1024


def tune_malloc_for_training() -> bool:
    """Set glibc's mmap and trim thresholds for training; True when applied (glibc Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def tune_for_training() -> None:
    """Malloc tuning and a frozen start-up heap; call once the model and the data are built."""
    tune_malloc_for_training()
    gc.collect()
    gc.freeze()


WINDOW_TRAINING_NICENESS = 10  # the window's training process gives way to the window (and the user's other apps)


def lower_cpu_priority(niceness: int = WINDOW_TRAINING_NICENESS) -> bool:
    """Make this process (every thread it has now, and those it starts later) ``niceness`` nicer; True when done.

    The window's training process takes every core but one, but two runs compared side by side, an export or
    another program can leave the window's GUI thread sharing a core with training; at equal priority the
    scheduler lets a busy trainer hold that core for whole time slices, and the window stutters (measured with
    two runs training on 2 cores: event-loop lateness p99 116 ms). A nicer trainer loses nothing when a core is
    free and yields at once when the window needs it. Linux keeps a niceness per thread, so each thread is set.
    """
    import os

    if not hasattr(os, "setpriority"):
        return False  # Windows: left as it is
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]
    done = False
    for tid in tids:
        try:
            now = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, now + niceness))
            done = True
        except OSError:
            pass
    return done
