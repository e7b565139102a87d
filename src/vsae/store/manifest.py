"""The store's JSON manifest: atomic writes, part naming, and file checksums.

A store written by one process has `manifest.json`; a store written by N processes
(`--shard I/N`) has one `manifest.part-I-of-N.json` per process, and readers merge them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
PART_GLOB = "manifest.part-*-of-*.json"


def manifest_name(part: tuple[int, int]) -> str:
    i, n = part
    return "manifest.json" if n == 1 else f"manifest.part-{i}-of-{n}.json"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write JSON to a temporary name, fsync, rename: readers see the old or the new file, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class HashingFile:
    """A write-only file wrapper that hashes what passes through it (np.save writes via .write)."""

    def __init__(self, f):
        self._f = f
        self.sha256 = hashlib.sha256()

    def write(self, b) -> int:
        self.sha256.update(b)
        return self._f.write(b)

    def flush(self) -> None:
        self._f.flush()


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()
