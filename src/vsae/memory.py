"""Keep a long streaming run's memory flat without paying for it in the kernel.

glibc serves large allocations from its heap once a freed large block has raised its dynamic
mmap threshold; a long extraction then fragments the heap (freed batch buffers pinned below
small live allocations) and its resident memory grows with the number of rows written
(measured: +80 MiB per million rows, bench/RESULTS.md "A store of real size").

A low fixed threshold (1 MiB, the first fix) returns those buffers, but makes every tensor over
1 MiB a fresh mmap: page faults to zero it and munmap on free, on every forward pass (issue 30:
91 of 168 s wall in the kernel). No threshold does both (bench/malloc.py): the buffers that
fragment are megabytes, like the transient tensors that should be reused. So the heap keeps its
large blocks (threshold 32 MiB, glibc's largest: fixed, so it does not depend on history; and a
64 MiB trim threshold, as glibc's dynamic setting pairs them, so that a freed block at the top
of the heap is not given back by brk and faulted in again at the next allocation) and
`release_free_memory` (``malloc_trim(0)``) hands the free pages inside it back to the OS once
per shard written -- memory flat at a cost per shard, not per allocation.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from typing import Any

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed M_MMAP_THRESHOLD on 64-bit (HEAP_MAX_SIZE / 2)


@functools.cache
def _libc() -> Any | None:
    """glibc, or None (not Linux, or another C library such as musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018  (both are glibc's)
    except (OSError, AttributeError):
        return None
    return libc


def limit_heap_growth(threshold_bytes: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold_bytes`` (turning off its dynamic raising), so
    that only blocks of that size or more are mmapped, and its trim threshold at twice that (the
    top of the heap is kept for reuse); pair it with `release_free_memory` at regular points of a
    long run. Respects a user's ``MALLOC_MMAP_THRESHOLD_``. Returns whether the setting took effect."""
    libc = _libc()
    if libc is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    if not libc.mallopt(M_MMAP_THRESHOLD, int(threshold_bytes)):
        return False
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        libc.mallopt(M_TRIM_THRESHOLD, 2 * int(threshold_bytes))
    return True


def release_free_memory() -> bool:
    """Return the free pages inside glibc's heap to the OS (``malloc_trim(0)``): freed buffers
    pinned below live allocations stop counting as resident memory. Cheap once per shard; returns
    whether memory was released."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
