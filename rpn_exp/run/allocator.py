"""How a run's process keeps the memory it frees: for its next step, not back to the system at once.

glibc's ``malloc`` serves a block above its mmap threshold with fresh pages from the kernel and unmaps it when it is
freed, and gives the free memory at the top of its heap back to the kernel once it exceeds the trim threshold. Both
start small (128 KiB) and only the first grows, up to 32 MiB on a 64-bit machine, with the blocks freed (mallopt(3)).
A training step allocates and frees the same tensors every step (a stacked group's batch, gathered from its uint8
pixels and standardized, and the (K, b, features) temporaries of its layers), so with those defaults the pages of
such a tensor are often faulted in afresh, zero-filled by the kernel, page by page, in every step.

:func:`keep_freed_memory` fixes the thresholds once, when a run prepares: blocks up to 256 MiB come from the heap,
and up to 1 GiB of free memory stays in it. The process keeps what it freed for its next step; its peak memory
changes little, since the freed memory was in use a moment before (BENCHMARKS.md "Memory a run keeps",
``python benchmarks/stacked_loop.py --epochs 1 --allocator both``).

Where the C library is not glibc (macOS, musl) nothing changes; neither does it where the user chose thresholds
with glibc's own variables (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``).
"""

from __future__ import annotations

import ctypes
import os
import platform

#: mallopt(3)'s parameter numbers (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: Blocks up to this size come from the heap (glibc refuses more than 32 MiB on some versions: then 32 MiB).
MMAP_THRESHOLD = 256 << 20
MMAP_THRESHOLD_FALLBACK = 32 << 20
#: Free memory up to this size stays in the heap.
TRIM_THRESHOLD = 1 << 30
#: glibc's own variables: a user who set one chose the allocator's behaviour.
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds (see above); whether they were set (False: not glibc, or the user's)."""
    if platform.libc_ver()[0] != "glibc" or any(name in os.environ for name in USER_SETTINGS):
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) or mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_FALLBACK)):
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
