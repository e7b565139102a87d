"""Readers of the activation store: memory-mapped random access, shuffled and sequential batches.

Nothing here loads the whole store: shards are memory-mapped, shuffled batches come from a
bounded buffer of randomly chosen contiguous blocks, and the order is a pure function of
(seed, batch number), so a resumed trainer continues with exactly the batches it would have seen.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsae.data.image_sources import load_table
from vsae.errors import VsaeError
from vsae.shapes import Float32, Int32, Int64, Tensor
from vsae.store.dtypes import from_storage, numpy_dtype, raw_storage
from vsae.store.manifest import read_manifests
from vsae.store.validate import (
    check_header,
    check_sparse_indices,
    check_sparse_lengths,
    check_sparse_values,
    count_nonfinite_rows,
    sha256_regular,
    shard_path,
)

_CSR = ("indptr", "indices", "values")
_TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


class ActivationStore:
    """A dense activation store opened read-only: rows [N, d] plus image and token index per row.

    `ActivationStore.open(path)` returns a `SparseActivationStore` for stores of SAE latents.
    Every shard file is checked when first opened: it must be a regular file inside the store whose
    shape agrees with the manifest. With `verify=True` the first open of a shard also checks the
    sha256 of all its files and refuses NaN/Inf values (one pass over the shard, once).
    """

    def __init__(self, path: Path, manifests: list[dict[str, Any]], verify: bool = False):
        self.path = path
        self.verify = verify
        self._verified: set[int] = set()
        self.manifests = manifests
        m0 = manifests[0]
        self.d: int = int(m0["d"])
        self.dtype_name: str = m0["dtype"]  # storage dtype: "float16" | "bfloat16" | "float32"
        self._shards = [(m, s) for m in manifests for s in m["shards"]]
        counts = [s["rows"] for _, s in self._shards]
        self._offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
        self._maps: dict[tuple[int, str], np.ndarray] = {}

    @classmethod
    def open(cls, path: str | Path, verify: bool = False) -> ActivationStore:
        """Open the store at `path` (see the class docstring for what `verify` adds)."""
        path = Path(path)
        ms = read_manifests(path)
        if ms[0]["format"] == "sparse":
            return SparseActivationStore(path, ms, verify)
        return ActivationStore(path, ms, verify)

    # -- metadata ----------------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest (of part 0 for multi-part stores; see `.manifests` for all)."""
        return self.manifests[0]

    @property
    def dtype(self) -> torch.dtype:
        """The storage dtype as a torch dtype (rows are read as float32); `.dtype_name` is its name."""
        return _TORCH_DTYPES[self.dtype_name]

    @property
    def np_dtype(self) -> np.dtype:
        """The numpy dtype of the shard arrays on disk (bfloat16 is stored as its uint16 bit patterns)."""
        return numpy_dtype(self.dtype_name)

    @cached_property
    def classes(self) -> list[str]:
        """Class names of the images (from the `images.json` table extraction writes)."""
        return [str(c) for c in self._image_table().get("classes") or []]

    @cached_property
    def labels(self) -> Int64[np.ndarray, " N"]:
        """int64 [N]: the class index (into `.classes`) of each row's image; -1 where unlabelled."""
        t = self._image_table()
        lab = np.asarray(t.get("labels") or [], dtype=np.int64)
        img = self.image_index
        if img.size and (lab.size == 0 or img.max() >= lab.size):
            raise VsaeError(
                f"store {self.path}: its images.json labels {lab.size} images; re-run the extraction"
            )
        return lab[img] if img.size else np.zeros(0, np.int64)

    def _image_table(self) -> dict[str, Any]:
        if not (self.path / "images.json").is_file():
            raise VsaeError(
                f"store {self.path} has no images.json (not written by `vsae extract`); no labels"
            )
        return load_table(self.path)

    @property
    def provenance(self) -> dict[str, Any]:
        return self.manifest.get("provenance", {})

    @property
    def complete(self) -> bool:
        return all(m["complete"] for m in self.manifests)

    @property
    def skipped(self) -> list[dict[str, Any]]:
        return [s for m in self.manifests for s in m["skipped"]]

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the store's width, dtype and shard checksums: its identity by content, not path."""
        ident = {"d": self.d, "dtype": self.dtype_name, "shards": [s["sha256"] for _, s in self._shards]}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()

    @property
    def n_shards(self) -> int:
        return len(self._shards)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, rows={len(self)}, d={self.d}, dtype={self.dtype_name})"

    # -- raw shard access --------------------------------------------------------------------
    def _array(self, shard: int, key: str) -> np.ndarray:
        a = self._open(shard, key)
        if self.verify and shard not in self._verified:
            self._verify_shard(shard)
        return a

    def _open(self, shard: int, key: str) -> np.ndarray:
        """Memory-map one shard file after checking it is a regular file inside the store of the
        shape the manifest promises (no checksum: see `_verify_shard`)."""
        ck = (shard, key)
        if ck not in self._maps:
            _, s = self._shards[shard]
            f = shard_path(self.path, s["files"][key])
            try:
                a = np.load(f, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as e:
                why = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
                raise VsaeError(
                    f"shard file {f} is unreadable ({why}); run `vsae store check {self.path}`"
                ) from None
            check_header(a, f, key, int(s["rows"]), self.d, self.dtype_name)
            self._maps[ck] = a
        return self._maps[ck]

    def _verify_shard(self, shard: int) -> None:
        """Check the sha256 of every file of `shard` and that its values are finite (once)."""
        m, s = self._shards[shard]
        for key, name in s["files"].items():
            self._open(shard, key)
            f = self.path / name
            if sha256_regular(f) != s["sha256"][key]:
                raise VsaeError(
                    f"checksum mismatch in {f}: the shard changed after it was written; "
                    f"run `vsae store check {self.path}` and re-extract (or train with --no-verify)"
                )
        if m["format"] == "sparse":
            check_sparse_indices(self._open(shard, "indices"), self.d, self.path / s["files"]["indices"])
        key = "values" if m["format"] == "sparse" else "acts"
        bad = count_nonfinite_rows(self._open(shard, key), self.dtype_name)
        if bad:
            raise VsaeError(
                f"store {self.path} shard {s['id']} holds {bad} rows with NaN or Inf; the model produced "
                "non-finite activations: re-extract (e.g. in float32) or run `vsae store check`"
            )
        self._verified.add(shard)

    def check_layout(self) -> None:
        """Open every shard file once: all regular files inside the store with the promised shapes."""
        for i, (_, s) in enumerate(self._shards):
            for key in s["files"]:
                self._open(i, key)

    def _row_table(self, col: int) -> np.ndarray:
        if not self._shards:
            return np.zeros(0, np.int64)
        return np.concatenate([np.asarray(self._array(i, "rows")[:, col]) for i in range(self.n_shards)])

    @cached_property
    def image_index(self) -> Int64[np.ndarray, " N"]:
        """int64 [N]: the image (position in the data source) each row comes from; a negative id
        (a damaged or edited `rows.npy`) is a one-line error, never a silent wrong image."""
        ids = self._row_table(0)
        if ids.size and int(ids.min()) < 0:
            raise VsaeError(
                f"store {self.path}: rows.npy holds image id {int(ids.min())}; image ids are positions in the "
                "data source (>= 0): the store is damaged, re-extract or re-encode it"
            )
        return ids

    @cached_property
    def token_index(self) -> Int64[np.ndarray, " N"]:
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

    def _read_range(self, start: int, stop: int, raw: bool = False) -> torch.Tensor:
        conv = raw_storage if raw else from_storage
        parts = [conv(self._array(i, "acts")[a:b], self.dtype_name) for i, a, b in self._locate(start, stop)]
        if not parts:
            return torch.zeros(0, self.d)
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def __getitem__(self, key: int | np.integer | slice | np.ndarray | list[int]) -> Float32[Tensor, "*N d"]:
        """Rows as a float32 tensor: `store[i]` -> [d], `store[i:j]` -> [N, d], `store[ids]` -> [N, d]."""
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
            rows = from_storage(self._array(int(s), "acts")[local[order]], self.dtype_name)
            out[torch.from_numpy(sel[order])] = rows
        return out

    def iter_sequential(
        self, batch_size: int, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """(first row, rows [B, d]) in store order, for evaluation."""
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
        raw: bool = False,
    ) -> Iterator[torch.Tensor]:
        """Batches [B, d] for training, deterministic in (seed, batch number).

        With `shuffle`, each epoch visits every row once: the store is cut into blocks of
        `block_rows` contiguous rows, blocks are permuted, consecutive groups of blocks fill a
        buffer of about `buffer_rows` rows (default max(65536, 8 * B)) whose rows are permuted.
        Epochs repeat forever with fresh permutations. `start_batch` skips directly to that batch
        (reading only its buffer), which is how training resumes. Without `shuffle`, one pass in
        store order. `raw`: batches in the storage dtype (float16/bfloat16/float32), for
        conversion on the device (shuffled batches only; see vsae.store.prefetch).
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
                epoch, b_in_epoch, batch_size, seed, per_epoch, buffer_rows, block_rows, raw
            )
            epoch, b_in_epoch = epoch + 1, 0

    def _epoch_batches(
        self,
        epoch: int,
        first_batch: int,
        bs: int,
        seed: int,
        per_epoch: int,
        buffer_rows: int,
        block_rows: int,
        raw: bool = False,
    ) -> Iterator[torch.Tensor]:
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
        buf: torch.Tensor | None = None  # the window buffer, reused: batches are copies out of it
        carry: torch.Tensor | None = None  # index_select: a row copy per index, 6x advanced indexing
        b = first_batch
        while b < per_epoch and w < len(windows):
            rows = self._window(windows[w], block_rows, raw, buf)
            buf = rows if buf is None or len(rows) > len(buf) else buf
            # Permutations of each window come from their own stream so any window can be rebuilt alone.
            perm = torch.from_numpy(np.random.default_rng([seed, epoch, w, 1]).permutation(len(rows)))
            i = pos - (int(ends[w - 1]) if w else 0) if carry is None else 0
            if carry is not None and len(carry):
                i = bs - len(carry)
                if len(rows) < i:  # a small last window: keep collecting
                    carry, w = torch.cat([carry, rows.index_select(0, perm)]), w + 1
                    continue
                yield torch.cat([carry, rows.index_select(0, perm[:i])])
                b += 1
            while i + bs <= len(rows) and b < per_epoch:
                yield rows.index_select(0, perm[i : i + bs])
                i += bs
                b += 1
            carry = rows.index_select(0, perm[i:])
            del rows
            w += 1
        if b < per_epoch and carry is not None and len(carry):  # last, partial batch (drop_last=False)
            yield carry

    def _window(
        self, blocks: np.ndarray, block_rows: int, raw: bool = False, buf: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The rows of `blocks`, in order, written into `buf` when it is large enough (no fresh pages)."""
        n = len(self)
        ranges = [(int(b) * block_rows, min((int(b) + 1) * block_rows, n)) for b in blocks]
        size, dtype = sum(c - a for a, c in ranges), self.dtype if raw else torch.float32
        if buf is not None and buf.dtype == dtype and len(buf) >= size:
            out = buf[:size]
        else:
            out = torch.empty(size, self.d, dtype=dtype)
        # raw: one copy, straight from the memory-mapped shard into the window
        out_np = (out.view(torch.int16) if out.dtype == torch.bfloat16 else out).numpy().view(self.np_dtype)
        r = 0
        for a, c in ranges:
            if raw:
                for i, la, lb in self._locate(a, c):
                    np.copyto(out_np[r : r + lb - la], self._array(i, "acts")[la:lb])
                    r += lb - la
            else:
                out[r : r + c - a] = self._read_range(a, c, raw)
                r += c - a
        return out


class SparseActivationStore(ActivationStore):
    """A store of sparse rows (SAE latents, F = `d` columns) in CSR shards.

    Opening a shard's CSR arrays checks that the index pointer, indices and values agree in
    length; each read checks that its latent indices are < d and its values finite (the one check
    of sparse rows: readers such as `vsae.eval.readers` add none of their own).
    """

    def __init__(self, path: Path, manifests: list[dict[str, Any]], verify: bool = False):
        super().__init__(path, manifests, verify)
        self._csr_checked: set[int] = set()

    def _open(self, shard: int, key: str) -> np.ndarray:
        a = super()._open(shard, key)
        if key != "rows" and shard not in self._csr_checked:
            indptr, idx, val = (super(SparseActivationStore, self)._open(shard, k) for k in _CSR)
            f = self.path / self._shards[shard][1]["files"]["indptr"]
            check_sparse_lengths(np.asarray(indptr), len(idx), len(val), f)
            self._csr_checked.add(shard)
        return a

    def _read_range(self, start: int, stop: int, raw: bool = False) -> torch.Tensor:
        """Rows [start, stop) as a dense float32 tensor (`raw` is ignored: values are float32)."""
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
        check_sparse_indices(idx, self.d, self.path / self._shards[shard][1]["files"]["indices"])
        val = from_storage(self._array(shard, "values")[lo:hi], self.dtype_name)
        check_sparse_values(val.numpy(), self.path / self._shards[shard][1]["files"]["values"])
        return indptr - lo, idx, val

    def csr(
        self, start: int = 0, stop: int | None = None
    ) -> tuple[Int64[np.ndarray, " _"], Int32[np.ndarray, " nnz"], Float32[np.ndarray, " nnz"]]:
        """Rows [start, stop) as CSR numpy arrays (indptr [N+1], indices int32, values float32)."""
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
