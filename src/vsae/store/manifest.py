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
        _check_part_names(path, files)
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
    if len(files) > 1:
        for f, m in zip(files, out):
            if tuple(m["part"]) != _part_of(f):
                raise VsaeError(
                    f"store {path}: {f.name} says it is part {m['part'][0]} of {m['part'][1]}; "
                    "the manifest was copied or renamed: re-extract that part"
                )
    _check_no_overlap(path, files, out)
    return out


def _check_part_names(path: Path, files: list[Path]) -> None:
    """All part manifests name the same N and together parts 0..N-1. Memory stays O(files): a name
    declaring a billion parts is refused without building a billion-element set."""
    parts = [_part_of(p) for p in files]
    n = parts[0][1]
    if any(k != n for _, k in parts):
        other = next(p.name for p, (_, k) in zip(files, parts) if k != n)
        raise VsaeError(
            f"store {path} mixes --shard splits ({files[0].name}, {other}); "
            "keep the parts of one extraction only"
        )
    have = {i for i, _ in parts}
    if max(have) >= n:
        raise VsaeError(f"store {path}: part {max(have)} of {n} does not exist (parts are 0..{n - 1})")
    if len(have) < n:
        first = [i for i in range(min(n, len(have) + 5)) if i not in have][:5]  # the first missing
        more = f" and {n - len(have) - len(first)} more" if n - len(have) > len(first) else ""
        raise VsaeError(
            f"store {path} lacks parts {first}{more} of {n}; run `vsae extract ... --shard I/{n}` for them"
        )


def _check_no_overlap(path: Path, files: list[Path], manifests: list[dict[str, Any]]) -> None:
    """No shard file listed twice and no two shards holding rows of one image (rows counted twice)."""
    seen: dict[str, str] = {}
    for f, m in zip(files, manifests):
        for sh in m["shards"]:
            for name in sh["files"].values():
                if name in seen:
                    raise VsaeError(
                        f"store {path}: shard file {name[:80]} is listed twice ({seen[name]} and {f.name}); "
                        "the manifests overlap: re-extract"
                    )
                seen[name] = f.name
    spans = sorted(  # the images each shard's rows come from, [lo, hi)
        (sh["images"][0], sh["images"][1], f.name)
        for f, m in zip(files, manifests)
        for sh in m["shards"]
        if sh["images"][1] > sh["images"][0]
    )
    for (_, hi0, f0), (lo1, _, f1) in zip(spans, spans[1:]):
        if lo1 < hi0:
            raise VsaeError(
                f"store {path}: shards of {f0} and {f1} both hold rows of image {lo1}; "
                "the manifests overlap (copied?): re-extract"
            )
