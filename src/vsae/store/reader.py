"""Readers of the activation store: memory-mapped random access, shuffled and sequential batches.

Nothing here loads the whole store: shards are memory-mapped, shuffled batches come from a
bounded buffer of randomly chosen contiguous blocks, and the order is a pure function of
(seed, batch number), so a resumed trainer continues with exactly the batches it would have seen.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsae.errors import VsaeError
from vsae.store.dtypes import from_storage
from vsae.store.manifest import PART_GLOB

_PART_RE = re.compile(r"manifest\.part-(\d+)-of-(\d+)\.json$")


def read_manifests(path: Path) -> list[dict[str, Any]]:
    """The manifests of all parts of the store at `path`, in part order (one for a 1-process store)."""
    if not path.is_dir():
        raise VsaeError(f"{path} is not an activation store (no such directory); check the path")
    single = path / "manifest.json"
    if single.exists():
        files = [single]
    else:
        files = sorted(path.glob(PART_GLOB), key=lambda p: int(_PART_RE.search(p.name).group(1)))
        if not files:
            raise VsaeError(f"{path} is not an activation store (no manifest.json); check the path")
        n = int(_PART_RE.search(files[0].name).group(2))
        have = {int(_PART_RE.search(p.name).group(1)) for p in files}
        missing = sorted(set(range(n)) - have)
        if missing:
            raise VsaeError(
                f"store {path} lacks parts {missing} of {n}; run `vsae extract ... --shard I/{n}` for them"
            )
    out = []
    for f in files:
        try:
            with open(f) as fh:
                m = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise VsaeError(
                f"manifest {f} is corrupt ({e.msg if hasattr(e, 'msg') else e}); re-run the extraction"
            ) from None
        if "format" not in m or "shards" not in m:
            raise VsaeError(f"{f} is not a vsae store manifest; check the path")
        out.append(m)
    return out


class ActivationStore:
    """A dense activation store opened read-only: rows [N, d] plus image and token index per row.

    `ActivationStore.open(path)` returns a `SparseActivationStore` for stores of SAE latents.
    """

    def __init__(self, path: Path, manifests: list[dict[str, Any]]):
        self.path = path
        self.manifests = manifests
        m0 = manifests[0]
        self.d: int = int(m0["d"])
        self.dtype: str = m0["dtype"]
        self._shards = [(m, s) for m in manifests for s in m["shards"]]
        counts = [s["rows"] for _, s in self._shards]
        self._offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
        self._maps: dict[tuple[int, str], np.ndarray] = {}

    @classmethod
    def open(cls, path: str | Path) -> ActivationStore:
        path = Path(path)
        ms = read_manifests(path)
        if ms[0]["format"] == "sparse":
            return SparseActivationStore(path, ms)
        return ActivationStore(path, ms)

    # -- metadata ----------------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest (of part 0 for multi-part stores; see `.manifests` for all)."""
        return self.manifests[0]

    @property
    def provenance(self) -> dict[str, Any]:
        return self.manifest.get("provenance", {})

    @property
    def complete(self) -> bool:
        return all(m["complete"] for m in self.manifests)

    @property
    def skipped(self) -> list[dict[str, Any]]:
        return [s for m in self.manifests for s in m["skipped"]]

    @property
    def n_shards(self) -> int:
        return len(self._shards)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, rows={len(self)}, d={self.d}, dtype={self.dtype})"

    # -- raw shard access --------------------------------------------------------------------
    def _array(self, shard: int, key: str) -> np.ndarray:
        ck = (shard, key)
        if ck not in self._maps:
            _, s = self._shards[shard]
            f = self.path / s["files"][key]
            try:
                self._maps[ck] = np.load(f, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as e:
                raise VsaeError(
                    f"shard file {f} is unreadable ({e}); run `vsae store check {self.path}`"
                ) from None
        return self._maps[ck]

    def _row_table(self, col: int) -> np.ndarray:
        if not self._shards:
            return np.zeros(0, np.int64)
        return np.concatenate([np.asarray(self._array(i, "rows")[:, col]) for i in range(self.n_shards)])

    @cached_property
    def image_index(self) -> np.ndarray:
        """int64 [N]: the image (position in the data source) each row comes from."""
        return self._row_table(0)

    @cached_property
    def token_index(self) -> np.ndarray:
        """int64 [N]: the token position within the image (-1 for pooled rows such as `mean`)."""
        return self._row_table(1)

    # -- reads -------------------------------------------------------------------------------
    def _locate(self, start: int, stop: int) -> Iterator[tuple[int, int, int]]:
        """(shard, local start, local stop) pieces covering global rows [start, stop)."""
        first = int(np.searchsorted(self._offsets, start, side="right")) - 1
        i = max(first, 0)
        while start < stop and i < self.n_shards:
            lo, hi = int(self._offsets[i]), int(self._offsets[i + 1])
            a, b = max(start, lo), min(stop, hi)
            if a < b:
                yield i, a - lo, b - lo
            start = max(start, hi)
            i += 1

    def _read_range(self, start: int, stop: int) -> torch.Tensor:
        parts = [
            from_storage(self._array(i, "acts")[a:b], self.dtype) for i, a, b in self._locate(start, stop)
        ]
        if not parts:
            return torch.zeros(0, self.d)
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def __getitem__(self, key) -> torch.Tensor:
        """Rows as a float32 tensor: `store[i]` -> [d], `store[i:j]` -> [n, d], `store[ids]` -> [n, d]."""
        n = len(self)
        if isinstance(key, int | np.integer):
            i = int(key) + (n if key < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"row {key} out of range for a store of {n} rows")
            return self._read_range(i, i + 1)[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step != 1:
                return self[np.arange(start, stop, step)]
            return self._read_range(start, max(start, stop))
        ids = np.asarray(key, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < -n or ids.max() >= n):
            raise IndexError(f"row index out of range for a store of {n} rows")
        ids = np.where(ids < 0, ids + n, ids)
        return self._gather(ids)

    def _gather(self, ids: np.ndarray) -> torch.Tensor:
        out = torch.empty(len(ids), self.d)
        shard_of = np.searchsorted(self._offsets, ids, side="right") - 1
        for s in np.unique(shard_of):
            sel = np.nonzero(shard_of == s)[0]
            local = ids[sel] - self._offsets[s]
            order = np.argsort(local, kind="stable")
            rows = from_storage(self._array(int(s), "acts")[local[order]], self.dtype)
            out[torch.from_numpy(sel[order])] = rows
        return out

    def iter_sequential(
        self, batch_size: int, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """(first row, rows [b, d]) in store order, for evaluation."""
        stop = len(self) if stop is None else min(stop, len(self))
        for a in range(start, stop, batch_size):
            yield a, self[a : min(a + batch_size, stop)]

    def iter_batches(
        self,
        batch_size: int,
        *,
        seed: int = 0,
        start_batch: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        buffer_rows: int | None = None,
        block_rows: int = 1024,
    ) -> Iterator[torch.Tensor]:
        """Batches [B, d] for training, deterministic in (seed, batch number).

        With `shuffle`, each epoch visits every row once: the store is cut into blocks of
        `block_rows` contiguous rows, blocks are permuted, consecutive groups of blocks fill a
        buffer of about `buffer_rows` rows (default max(65536, 8 * B)) whose rows are permuted.
        Epochs repeat forever with fresh permutations. `start_batch` skips directly to that batch
        (reading only its buffer), which is how training resumes. Without `shuffle`, one pass in
        store order.
        """
        n = len(self)
        if n == 0:
            return
        if batch_size <= 0:
            raise VsaeError(f"batch size must be positive, got {batch_size}")
        if not shuffle:
            for b, (_, x) in enumerate(self.iter_sequential(batch_size)):
                if b >= start_batch and (len(x) == batch_size or not drop_last):
                    yield x
            return
        if drop_last and n < batch_size:
            raise VsaeError(f"store has {n} rows, fewer than one batch of {batch_size}; lower --batch-size")
        buffer_rows = buffer_rows or max(65536, 8 * batch_size)
        per_epoch = n // batch_size if drop_last else math.ceil(n / batch_size)
        epoch, b_in_epoch = divmod(start_batch, per_epoch)
        while True:
            yield from self._epoch_batches(
                epoch, b_in_epoch, batch_size, seed, per_epoch, buffer_rows, block_rows
            )
            epoch, b_in_epoch = epoch + 1, 0

    def _epoch_batches(self, epoch, first_batch, bs, seed, per_epoch, buffer_rows, block_rows):
        n = len(self)
        g = np.random.default_rng([seed, epoch])
        n_blocks = math.ceil(n / block_rows)
        blocks = g.permutation(n_blocks)
        per_window = max(1, buffer_rows // block_rows)
        windows = [blocks[i : i + per_window] for i in range(0, n_blocks, per_window)]
        sizes = np.array([sum(min(block_rows, n - b * block_rows) for b in w) for w in windows])
        ends = np.cumsum(sizes)
        pos = first_batch * bs
        w = int(np.searchsorted(ends, pos, side="right"))
        carry: torch.Tensor | None = None
        b = first_batch
        while b < per_epoch and w < len(windows):
            rows = self._window(windows[w], block_rows)
            # Permutations of each window come from their own stream so any window can be rebuilt alone.
            perm = torch.from_numpy(np.random.default_rng([seed, epoch, w, 1]).permutation(len(rows)))
            i = pos - (int(ends[w - 1]) if w else 0) if carry is None else 0
            if carry is not None and len(carry):
                i = bs - len(carry)
                if len(rows) < i:  # a small last window: keep collecting
                    carry, w = torch.cat([carry, rows[perm]]), w + 1
                    continue
                yield torch.cat([carry, rows[perm[:i]]])
                b += 1
            while i + bs <= len(rows) and b < per_epoch:
                yield rows[perm[i : i + bs]]
                i += bs
                b += 1
            carry = rows[perm[i:]]
            del rows
            w += 1
        if b < per_epoch and carry is not None and len(carry):  # last, partial batch (drop_last=False)
            yield carry

    def _window(self, blocks: np.ndarray, block_rows: int) -> torch.Tensor:
        n = len(self)
        ranges = [(int(b) * block_rows, min((int(b) + 1) * block_rows, n)) for b in blocks]
        out = torch.empty(sum(c - a for a, c in ranges), self.d)
        r = 0
        for a, c in ranges:
            out[r : r + c - a] = self._read_range(a, c)
            r += c - a
        return out


class SparseActivationStore(ActivationStore):
    """A store of sparse rows (SAE latents, F = `d` columns) in CSR shards."""

    def _read_range(self, start: int, stop: int) -> torch.Tensor:
        out = torch.zeros(stop - start, self.d)
        row = 0
        for i, a, b in self._locate(start, stop):
            indptr, idx, val = self._csr_piece(i, a, b)
            r = np.repeat(np.arange(b - a), np.diff(indptr))
            out[torch.from_numpy(r + row), torch.from_numpy(idx.astype(np.int64))] = val
            row += b - a
        return out

    def _gather(self, ids: np.ndarray) -> torch.Tensor:
        return (
            torch.stack([self._read_range(int(i), int(i) + 1)[0] for i in ids])
            if len(ids)
            else torch.zeros(0, self.d)
        )

    def _csr_piece(self, shard: int, a: int, b: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        indptr = np.asarray(self._array(shard, "indptr")[a : b + 1], np.int64)
        lo, hi = int(indptr[0]), int(indptr[-1])
        idx = np.asarray(self._array(shard, "indices")[lo:hi])
        val = from_storage(self._array(shard, "values")[lo:hi], self.dtype)
        return indptr - lo, idx, val

    def csr(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows [start, stop) as CSR numpy arrays (indptr [n+1], indices int32, values float32)."""
        stop = len(self) if stop is None else min(stop, len(self))
        ptrs, idxs, vals, base = [np.zeros(1, np.int64)], [], [], 0
        for i, a, b in self._locate(start, stop):
            indptr, idx, val = self._csr_piece(i, a, b)
            ptrs.append(indptr[1:] + base)
            base += int(indptr[-1])
            idxs.append(idx)
            vals.append(val.numpy())
        if not idxs:
            return ptrs[0], np.zeros(0, np.int32), np.zeros(0, np.float32)
        return np.concatenate(ptrs), np.concatenate(idxs), np.concatenate(vals)

    def iter_csr(self, batch_size: int) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """(first row, CSR of rows [first, first + b)) in store order, for sparse-aware metrics."""
        for a in range(0, len(self), batch_size):
            yield a, self.csr(a, a + batch_size)
