"""How many threads a process computes with: torch's pool and the BLAS/OpenMP pools numpy and SciPy bring.

The window's process gets one (its inference is one image at a time; training has its own process) and the
window's training process gets every core but one. torch's pool alone is not enough: numpy's OpenBLAS starts
a thread per core, and after each call its threads spin for a while waiting for more work. Measured in the
window while training `gorner-dropout` on this project's 2-core machine: the nearest-digit search and the
projector's PCA kept an OpenBLAS thread spinning at 28% of a core, beside the training process's core and the
GUI thread (the window process used 74-78% of a core instead of 46-48%).
"""
from __future__ import annotations


def limit_compute_threads(threads: int) -> None:
    """Compute with ``threads`` threads in this process: torch's intra-op pool and, through threadpoolctl, every
    BLAS and OpenMP pool already loaded (numpy's OpenBLAS included)."""
    import torch

    threads = max(1, int(threads))
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it only torch is limited
        return
    threadpool_limits(limits=threads)  # applied at once and kept (the returned object only restores on exit)
