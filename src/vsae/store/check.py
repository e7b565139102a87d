"""Verification of a store on disk: checksums, row counts, index ranges, NaN/Inf."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vsae.errors import VsaeError
from vsae.store.columns import check_columns
from vsae.store.reader import ActivationStore
from vsae.store.validate import check_sparse_indices, count_nonfinite_rows, sha256_regular, shard_path


@dataclass
class CheckReport:
    """What `check_store` found: `problems` is empty for a healthy store."""

    rows: int = 0
    shards: int = 0
    nonfinite_rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_store(path: str | Path, chunk_rows: int = 65536) -> CheckReport:
    """Verify every shard's sha256, dtype and shape, the per-row indices (and a sparse store's CSR
    arrays and latent indices), and scan values for NaN/Inf.

    Shard names that leave the store or name non-regular files are problems, never followed.
    """
    store = ActivationStore.open(path)
    rep = CheckReport(rows=len(store), shards=store.n_shards)
    for i, (m, s) in enumerate(store._shards):
        where = f"part {m['part'][0]} shard {s['id']}"
        n_before = len(rep.problems)
        for key, name in s["files"].items():
            try:  # never follow a name out of the store, never read a FIFO or device
                f = shard_path(store.path, name)
            except VsaeError as e:
                rep.problems.append(f"{where}: {e}")
                continue
            if sha256_regular(f) != s["sha256"][key]:
                rep.problems.append(f"{where}: checksum mismatch in {name}")
        if len(rep.problems) > n_before:
            continue
        try:
            for key in s["files"]:
                store._open(i, key)
        except VsaeError as e:
            rep.problems.append(f"{where}: {e}")
            continue
        rows = store._array(i, "rows")
        if rows.shape != (s["rows"], 2):
            rep.problems.append(f"{where}: {rows.shape[0]} rows on disk, manifest says {s['rows']}")
            continue
        lo, hi = s["images"]
        img = np.asarray(rows[:, 0])
        if len(img) and (img.min() < lo or img.max() >= hi or np.any(np.diff(img) < 0)):
            rep.problems.append(f"{where}: image indices outside [{lo}, {hi}) or out of order")
        if m["format"] == "sparse":  # opening checked the CSR lengths; now the latent indices
            try:
                idx = store._array(i, "indices")
                for a in range(0, len(idx), chunk_rows * 64):
                    check_sparse_indices(
                        idx[a : a + chunk_rows * 64], store.d, store.path / s["files"]["indices"]
                    )
            except VsaeError as e:
                rep.problems.append(f"{where}: {e}")
            rep.nonfinite_rows += count_nonfinite_rows(
                store._array(i, "values"), store.dtype_name, chunk_rows
            )
        else:
            acts = store._array(i, "acts")
            if acts.shape != (s["rows"], store.d):
                rep.problems.append(f"{where}: acts shape {acts.shape} != ({s['rows']}, {store.d})")
                continue
            rep.nonfinite_rows += count_nonfinite_rows(acts, store.dtype_name, chunk_rows)
    rep.problems.extend(check_columns(store))  # extra per-row columns (e.g. modality), if any
    if rep.nonfinite_rows:
        rep.problems.append(f"{rep.nonfinite_rows} rows (values, for sparse stores) contain NaN or Inf")
    for m in store.manifests:
        if not m["complete"]:
            rep.problems.append(
                f"part {m['part'][0]} is incomplete (stopped at image {m['next_image']}); re-run the same command to resume"
            )
    return rep
