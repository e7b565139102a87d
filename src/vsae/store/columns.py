"""Extra per-row columns of a dense store (e.g. the modality of each row of a mixed image/text store).

A column is one more ``.npy`` file per shard (``col-PPPPP-SSSSS.<name>.npy``) holding one value per
row. The shard's manifest entry lists them apart from its ``files`` (which stay exactly
``acts``/``rows``, so every store reader and checker is unchanged):
``"columns": {name: {"file": ..., "sha256": ...}}``. The provenance declares what each column
means (``"columns": {name: description}``). A column file is written (temporary name, fsync,
rename) before the manifest that lists it, so a killed run never lists a missing one; a file of a
shard that was never listed is overwritten when that shard is written again.

```python
w = ColumnStoreWriter.create_or_resume(path, d=128, provenance={..., "columns": {"modality": "..."}})
w.add_columns(rows_Nd, image_idx, token_idx, {"modality": np.int8 array [N]})
modality = read_column(ActivationStore.open(path), "modality")      # [N], in store row order
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vsae.errors import VsaeError
from vsae.shapes import Array, Float, Shaped, Tensor
from vsae.store.dtypes import to_storage
from vsae.store.validate import sha256_regular, shard_path
from vsae.store.writer import StoreWriter, _save_npy


class ColumnStoreWriter(StoreWriter):
    """A dense `StoreWriter` whose rows also carry named per-row columns (one .npy per shard each)."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        super().__init__(path, manifest)
        self._cols: dict[str, list[np.ndarray]] = {}
        self._col_entry: tuple[int, dict[str, Any]] | None = None

    def add_columns(
        self,
        rows_Nd: Float[Tensor, "N d"],
        image_idx: Shaped[Array, " N"],
        token_idx: Shaped[Array, " N"],
        columns: dict[str, np.ndarray],
    ) -> None:
        """Buffer rows [N, d] with their image and token indices and a value per row of each column."""
        if rows_Nd.ndim != 2 or rows_Nd.shape[1] != self.m["d"]:
            raise VsaeError(f"rows of shape {tuple(rows_Nd.shape)} do not fit a store of width {self.m['d']}")
        n = len(image_idx)
        if self._cols and set(columns) != set(self._cols):
            raise ValueError(f"columns {sorted(columns)} differ from the buffered {sorted(self._cols)}")
        for name, col in columns.items():
            if not name.isidentifier() or np.asarray(col).shape != (n,):
                raise ValueError(f"column {name!r} needs an identifier name and one value per row ({n})")
        self._buffer({"acts": to_storage(rows_Nd, self.m["dtype"])}, image_idx, token_idx)
        for name, col in columns.items():
            self._cols.setdefault(name, []).append(np.asarray(col))

    def flush(self) -> None:
        """Write the buffered columns of the shard about to be committed, then commit it."""
        if self._pending.rows and self._cols:
            sid = len(self.m["shards"])
            entry = {}
            for name, parts in self._cols.items():
                stem = f"col-{self.m['part'][0]:05d}-{sid:05d}.{name}.npy"
                fname, digest = _save_npy(self.path / stem, np.concatenate(parts))
                entry[name] = {"file": fname, "sha256": digest}
            self._col_entry = (sid, entry)
        self._cols = {}
        super().flush()

    def _write_manifest(self) -> None:
        if self._col_entry is not None:
            sid, entry = self._col_entry
            if self.m["shards"] and self.m["shards"][-1]["id"] == sid:
                self.m["shards"][-1]["columns"] = entry
                self._col_entry = None
        super()._write_manifest()


def has_column(store: Any, name: str) -> bool:
    """Whether every shard of `store` (an opened ActivationStore) has the column `name`."""
    shards = [s for m in store.manifests for s in m["shards"]]
    return bool(shards) and all(name in s.get("columns", {}) for s in shards)


def read_column(store: Any, name: str) -> Shaped[np.ndarray, " N"]:
    """The column `name` of every row of an opened ActivationStore, in store row order."""
    parts = []
    for m in store.manifests:
        for s in m["shards"]:
            if name not in s.get("columns", {}):
                raise VsaeError(
                    f"store {store.path} has no per-row column {name!r} (part {m['part'][0]} shard {s['id']}); "
                    f"it was not written by an extraction that records it"
                )
            f = shard_path(store.path, str(s["columns"][name].get("file", "")))
            try:
                a = np.load(f, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as e:
                raise VsaeError(
                    f"column file {f} is unreadable ({e}); run `vsae store check {store.path}`"
                ) from None
            if a.shape != (s["rows"],):
                raise VsaeError(
                    f"column file {f} holds {a.shape} values for {s['rows']} rows; re-run the extraction"
                )
            parts.append(np.asarray(a))
    if not parts:
        raise VsaeError(f"store {store.path} has no rows, so no column {name!r}")
    return np.concatenate(parts)


def check_columns(store: Any) -> list[str]:
    """Problems with the extra columns of `store` (missing file, checksum or length mismatch); [] if none."""
    problems = []
    for m in store.manifests:
        for s in m["shards"]:
            for name, c in s.get("columns", {}).items():
                where = f"part {m['part'][0]} shard {s['id']} column {name}"
                try:
                    f = shard_path(store.path, str(c.get("file", "")))
                except VsaeError as e:
                    problems.append(f"{where}: {e}")
                    continue
                if sha256_regular(f) != c.get("sha256"):
                    problems.append(f"{where}: checksum mismatch in {f.name}")
                elif np.load(f, mmap_mode="r", allow_pickle=False).shape != (s["rows"],):
                    problems.append(f"{where}: {f.name} does not hold one value per row")
    return problems
