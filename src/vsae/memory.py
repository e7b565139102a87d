"""Keep a long streaming run's memory flat.

glibc serves large allocations from its heap once a freed large block has raised its dynamic
mmap threshold; a long extraction then fragments the heap (freed batch buffers pinned below
small live allocations) and its resident memory grows with the number of rows written
(measured: +80 MiB per million rows, bench/RESULTS.md "A store of real size").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def limit_heap_growth(threshold_bytes: int = 1 << 20) -> bool:
    """Serve allocations of ``threshold_bytes`` or more with mmap, returned to the OS when freed
    (glibc only; a fixed threshold also turns off its dynamic raising). Respects a user's
    ``MALLOC_MMAP_THRESHOLD_``. Returns whether the setting took effect."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, int(threshold_bytes)))
