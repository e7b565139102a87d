"""Writers of the activation store: atomic shards, a manifest updated after each, exact resume.

A shard covers a contiguous range of images and appears only when complete (temporary name,
fsync, rename); the manifest is then rewritten the same way. A run killed at any moment and
started again with the same arguments resumes at `next_image` and ends with exactly the rows of
an uninterrupted run: images after the last committed shard are processed again, rows in a
half-written shard were never visible.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from vsae import __version__
from vsae.errors import VsaeError
from vsae.shapes import Array, Float, Int, Shaped, Tensor
from vsae.store.dtypes import check_dtype, to_storage
from vsae.store.manifest import (
    FORMAT_VERSION,
    HashingFile,
    atomic_write_json,
    fsync_dir,
    manifest_name,
)
from vsae.store.safe_io import atomic_path
from vsae.store.validate import validate_manifest


def _save_npy(path: Path, arr: np.ndarray) -> tuple[str, str]:
    """Save `arr` atomically as .npy; return (file name, sha256 of the file)."""
    with atomic_path(path) as tmp, open(os.open(tmp, os.O_WRONLY | os.O_NOFOLLOW), "wb") as raw:
        f = HashingFile(raw)
        np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False)
    return path.name, f.sha256.hexdigest()


@dataclass
class _Pending:
    """Rows buffered since the last committed shard."""

    arrays: dict[str, list[np.ndarray]] = field(default_factory=dict)
    rows: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)


# Self without typing.Self: beartype (the tests' shape checks) rejects Self outside a decorated class.
_W = TypeVar("_W", bound="StoreWriter")


class StoreWriter:
    """Writes one part of a dense store: rows [N, d] with (image index, token index) per row.

    Use `create_or_resume`, then for each batch of images: `add(...)` the rows, `skip(...)` the
    images that could not be decoded, and `mark_images_done(upto)`; finally `close()`.
    """

    kind = "dense"

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = path
        self.m = manifest
        self._pending = _Pending()
        self._pending_upto = manifest["next_image"]

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def create_or_resume(
        cls: type[_W],
        path: str | os.PathLike,
        *,
        d: int,
        dtype: str = "float32",
        provenance: dict[str, Any] | None = None,
        rows_per_shard: int = 65536,
        part: tuple[int, int] = (0, 1),
        start_image: int = 0,
        end_image: int | None = None,
    ) -> _W:
        """Open the part `part` of the store at `path`, creating it, or resuming it if it exists.

        Resuming checks that width, dtype, provenance and image range are the same as before, and
        raises a one-line VsaeError naming the first difference otherwise.
        """
        path = Path(path)
        check_dtype(dtype)
        i, n = part
        if not (0 <= i < n):
            raise VsaeError(f"invalid part {i}/{n}: need 0 <= I < N")
        wanted = {
            "format": cls.kind,
            "format_version": FORMAT_VERSION,
            "d": int(d),
            "dtype": dtype,
            "provenance": json.loads(json.dumps(provenance or {})),
            "part": [i, n],
            "image_range": [int(start_image), None if end_image is None else int(end_image)],
            "rows_per_shard": int(rows_per_shard),
        }
        mpath = path / manifest_name(part)
        if mpath.exists():
            m = read_own_manifest(mpath)
            for key, want in wanted.items():
                if m.get(key) != want:
                    raise VsaeError(
                        f"store {path} exists with different {key} ({_short(m.get(key))} vs "
                        f"{_short(want)}); use a new --out directory or delete the old store"
                    )
            cls._remove_debris(path, m)
            return cls(path, m)
        if path.exists() and not path.is_dir():
            raise VsaeError(f"{path} is a file, not a store directory; choose another --out")
        path.mkdir(parents=True, exist_ok=True)
        others = [p for p in path.glob("manifest*.json") if not p.name.endswith(f"-of-{n}.json") or n == 1]
        if path.exists() and others:
            raise VsaeError(
                f"store {path} was written with a different --shard split ({others[0].name}); "
                f"use the same split or a new --out directory"
            )
        m = {
            **wanted,
            "vsae_version": __version__,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "shards": [],
            "skipped": [],
            "next_image": int(start_image),
            "rows": 0,
            "complete": False,
        }
        w = cls(path, m)
        w._write_manifest()
        return w

    @staticmethod
    def _remove_debris(path: Path, m: dict[str, Any]) -> None:
        """Delete temporary files and shards of this part that the manifest does not list."""
        listed = {f for s in m["shards"] for f in s["files"].values()}
        prefix = f"shard-{m['part'][0]:05d}-"
        for p in path.iterdir():
            debris = p.name.endswith(".tmp") and p.name.startswith((prefix, "manifest"))
            if debris or (p.name.startswith(prefix) and p.name not in listed):
                p.unlink()

    # -- state -------------------------------------------------------------------------------
    @property
    def next_image(self) -> int:
        """First image index whose rows are not yet committed: where a resumed run starts."""
        return int(self.m["next_image"])

    @property
    def complete(self) -> bool:
        return bool(self.m["complete"])

    @property
    def rows(self) -> int:
        """Rows committed to disk so far."""
        return int(self.m["rows"])

    # -- writing -----------------------------------------------------------------------------
    def add(
        self, rows_Nd: Float[Tensor, "N d"], image_idx: Shaped[Array, " N"], token_idx: Shaped[Array, " N"]
    ) -> None:
        """Buffer rows [N, d] with their image and token indices."""
        if rows_Nd.ndim != 2 or rows_Nd.shape[1] != self.m["d"]:
            raise VsaeError(f"rows of shape {tuple(rows_Nd.shape)} do not fit a store of width {self.m['d']}")
        self._buffer({"acts": to_storage(rows_Nd, self.m["dtype"])}, image_idx, token_idx)

    def _buffer(
        self, arrays: dict[str, np.ndarray], image_idx: Shaped[Array, " N"], token_idx: Shaped[Array, " N"]
    ) -> None:
        n = len(image_idx)
        if len(token_idx) != n:
            raise ValueError("image_idx and token_idx must have one entry per row")
        rows = np.stack([np.asarray(image_idx, np.int64), np.asarray(token_idx, np.int64)], axis=1)
        for k, a in {**arrays, "rows": rows}.items():
            self._pending.arrays.setdefault(k, []).append(a)
        self._pending.rows += n

    def skip(self, image_idx: int, path: str, reason: str) -> None:
        """Record an image that produced no rows (corrupt, unreadable ...) with the reason."""
        self._pending.skipped.append({"image": int(image_idx), "path": str(path), "reason": reason})

    def mark_images_done(self, upto: int) -> None:
        """All images < `upto` are processed; commit a shard when enough rows are buffered."""
        self._pending_upto = int(upto)
        if self._pending.rows >= self.m["rows_per_shard"]:
            self.flush()

    def flush(self) -> None:
        """Commit the buffered rows (of images < the last `mark_images_done`) as one shard."""
        p = self._pending
        upto = self._pending_upto
        if upto <= self.m["next_image"] and not p.rows and not p.skipped:
            return
        sid = len(self.m["shards"])
        stem = f"shard-{self.m['part'][0]:05d}-{sid:05d}"
        files, sums = {}, {}
        if p.rows:
            for k, parts in p.arrays.items():
                name, digest = _save_npy(self.path / f"{stem}.{k}.npy", np.concatenate(parts))
                files[k], sums[k] = name, digest
            fsync_dir(self.path)
            self.m["shards"].append(
                {
                    "id": sid,
                    "rows": p.rows,
                    "images": [self.m["next_image"], upto],
                    "files": files,
                    "sha256": sums,
                }
            )
        self.m["skipped"].extend(p.skipped)
        self.m["rows"] += p.rows
        self.m["next_image"] = upto
        self._write_manifest()
        self._pending = _Pending()

    def close(self, extra: dict[str, Any] | None = None) -> None:
        """Commit what is buffered and mark this part complete."""
        self.flush()
        if extra:
            self.m.update(extra)
        self.m["complete"] = True
        self.m["finished"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        self._write_manifest()

    def _write_manifest(self) -> None:
        atomic_write_json(self.path / manifest_name(tuple(self.m["part"])), self.m)


class SparseStoreWriter(StoreWriter):
    """Writes a sparse store (SAE latents): CSR rows `indptr`, `indices`, `values` per shard.

    `d` is the number of latents F. Rows are added as a dense [N, F] tensor (zeros dropped) or as CSR.
    """

    kind = "sparse"

    def add(
        self, rows_NF: Float[Tensor, "N F"], image_idx: Shaped[Array, " N"], token_idx: Shaped[Array, " N"]
    ) -> None:
        """Buffer latent rows [N, F] (zeros are not stored) with their image and token indices."""
        if rows_NF.ndim != 2 or rows_NF.shape[1] != self.m["d"]:
            raise VsaeError(f"rows of shape {tuple(rows_NF.shape)} do not fit a store of width {self.m['d']}")
        nz = rows_NF.detach().cpu() != 0
        counts = nz.sum(1).numpy()
        r, c = nz.nonzero(as_tuple=True)
        self.add_csr(
            np.concatenate([[0], np.cumsum(counts)]),
            c.numpy(),
            rows_NF.detach().cpu()[r, c],
            image_idx,
            token_idx,
        )

    def add_csr(
        self,
        indptr: Int[Array, " _"],  # [N+1]
        indices: Int[Array, " nnz"],
        values: Float[Array, " nnz"],
        image_idx: Shaped[Array, " N"],
        token_idx: Shaped[Array, " N"],
    ) -> None:
        """Buffer N rows given in CSR form: row r has latents indices[indptr[r]:indptr[r+1]]."""
        indptr = np.asarray(indptr, np.int64)
        if len(indptr) != len(image_idx) + 1:
            raise ValueError("indptr must have one entry more than there are rows")
        p = self._pending.arrays
        offset = sum(len(a) for a in p.get("indices", []))  # entries buffered (a batch may have none)
        arrays = {
            "indptr": (indptr[1:] + offset) if p.get("indptr") else indptr + offset,
            "indices": np.asarray(indices, np.int32),
            "values": to_storage(torch.as_tensor(values).reshape(-1), self.m["dtype"]),
        }
        self._buffer(arrays, image_idx, token_idx)


def read_own_manifest(mpath: Path) -> dict[str, Any]:
    """The manifest of the part being resumed, or a one-line error if it is damaged."""
    if not mpath.is_file():
        raise VsaeError(f"{mpath} is not a regular file; use a new --out directory")
    try:
        with open(mpath) as f:
            m = json.load(f)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
        raise VsaeError(
            f"cannot resume: manifest {mpath} is corrupt ({str(e)[:80]}); delete the store directory "
            "or use a new --out to start over"
        ) from None
    validate_manifest(m, mpath)
    return m


def _short(v: Any) -> str:
    s = json.dumps(v, sort_keys=True)
    return s if len(s) <= 80 else s[:77] + "..."
