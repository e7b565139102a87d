"""The store's JSON manifest: atomic writes, part naming, and file checksums.

A store written by one process has `manifest.json`; a store written by N processes
(`--shard I/N`) has one `manifest.part-I-of-N.json` per process, and readers merge them.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, BinaryIO

from vsae.errors import VsaeError
from vsae.store.safe_io import atomic_write_json, fsync_dir
from vsae.store.validate import validate_manifest

__all__ = ["atomic_write_json", "fsync_dir", "manifest_name", "read_manifests"]

FORMAT_VERSION = 1
PART_GLOB = "manifest.part-*-of-*.json"


def manifest_name(part: tuple[int, int]) -> str:
    i, n = part
    return "manifest.json" if n == 1 else f"manifest.part-{i}-of-{n}.json"


class HashingFile:
    """A write-only file wrapper that hashes what passes through it (np.save writes via .write)."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self.sha256 = hashlib.sha256()

    def write(self, b: bytes) -> int:
        self.sha256.update(b)
        return self._f.write(b)

    def flush(self) -> None:
        self._f.flush()


_PART_RE = re.compile(r"manifest\.part-(\d+)-of-(\d+)\.json$")


def _part_of(p: Path) -> tuple[int, int]:
    """(part, number of parts) of a ``manifest.part-I-of-N.json`` name."""
    m = _PART_RE.search(p.name)
    if m is None:
        raise VsaeError(f"{p}: not a manifest part name (manifest.part-I-of-N.json)")
    return int(m.group(1)), int(m.group(2))


def read_manifests(path: Path) -> list[dict[str, Any]]:
    """The manifests of all parts of the store at `path`, in part order (one for a 1-process store)."""
    if not path.is_dir():
        raise VsaeError(f"{path} is not an activation store (no such directory); check the path")
    single = path / "manifest.json"
    if single.exists():
        files = [single]
    else:
        files = sorted(path.glob(PART_GLOB), key=lambda p: _part_of(p)[0])
        if not files:
            raise VsaeError(f"{path} is not an activation store (no manifest.json); check the path")
        n = _part_of(files[0])[1]
        have = {_part_of(p)[0] for p in files}
        missing = sorted(set(range(n)) - have)
        if missing:
            raise VsaeError(
                f"store {path} lacks parts {missing} of {n}; run `vsae extract ... --shard I/{n}` for them"
            )
    out = []
    for f in files:
        if not f.is_file():  # a FIFO or device named manifest.json would block the read forever
            raise VsaeError(f"manifest {f} is not a regular file; the store is damaged: re-extract")
        try:
            with open(f) as fh:
                m = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise VsaeError(
                f"manifest {f} is corrupt ({e.msg if hasattr(e, 'msg') else e}); re-run the extraction"
            ) from None
        validate_manifest(m, f)
        out.append(m)
    for f, m in zip(files[1:], out[1:]):
        for key in ("format", "d", "dtype"):
            if m[key] != out[0][key]:
                raise VsaeError(
                    f"store {path}: {f.name} has {key}={m[key]!r} but part 0 has {out[0][key]!r}; "
                    "the parts come from different extractions"
                )
    return out
