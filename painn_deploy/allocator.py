"""The C allocator settings under which model evaluations run at full speed (Linux, glibc).

PyTorch's CPU tensors come from ``malloc``.  glibc serves a block above its *mmap threshold*
(128 kB at start, raised adaptively up to 32 MB) with a fresh ``mmap`` and returns it to the system
on ``free``; blocks at the top of the heap are returned once more than the *trim threshold* is free.
A force evaluation allocates and frees the same tensors every step, so both paths make the process
fault the same pages in again every step (benchmarks/results/md_speed.md and scaling.md measure what
the settings below save).  The model keeps each pair tensor of a large system below 16 MB (pairs in chunks) so
that, with a fixed 32 MB mmap threshold, every tensor of a step is reused from the heap.

For a plain OpenMM script, the same settings come from the environment before Python starts::

    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 python run.py
"""

import ctypes
import ctypes.util

MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's largest allowed value; blocks above it are still mmap'ed
TRIM_THRESHOLD_BYTES = 2**30  # free heap kept for the next step before it is returned to the system
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_tuned = False


def tune_malloc() -> bool:
    """Set glibc's mmap and trim thresholds for this process (once); returns whether they are set.
    Does nothing (False) where the C library is not glibc."""
    global _tuned
    if _tuned:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    return _tuned
