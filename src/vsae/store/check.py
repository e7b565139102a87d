"""Verification of a store on disk: checksums, row counts, index ranges, NaN/Inf."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vsae.store.dtypes import from_storage
from vsae.store.manifest import sha256_file
from vsae.store.reader import ActivationStore


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
    """Verify every shard's sha256 and shape, the per-row indices, and scan values for NaN/Inf."""
    store = ActivationStore.open(path)
    rep = CheckReport(rows=len(store), shards=store.n_shards)
    for i, (m, s) in enumerate(store._shards):
        where = f"part {m['part'][0]} shard {s['id']}"
        for key, name in s["files"].items():
            f = store.path / name
            if not f.exists():
                rep.problems.append(f"{where}: file {name} is missing")
                continue
            if sha256_file(f) != s["sha256"][key]:
                rep.problems.append(f"{where}: checksum mismatch in {name}")
        if any("missing" in p or "checksum" in p for p in rep.problems if p.startswith(where)):
            continue
        rows = store._array(i, "rows")
        if rows.shape != (s["rows"], 2):
            rep.problems.append(f"{where}: {rows.shape[0]} rows on disk, manifest says {s['rows']}")
            continue
        lo, hi = s["images"]
        img = np.asarray(rows[:, 0])
        if len(img) and (img.min() < lo or img.max() >= hi or np.any(np.diff(img) < 0)):
            rep.problems.append(f"{where}: image indices outside [{lo}, {hi}) or out of order")
        if m["format"] == "sparse":
            indptr = np.asarray(store._array(i, "indptr"))
            nnz = len(store._array(i, "indices"))
            if len(indptr) != s["rows"] + 1 or indptr[-1] != nnz or np.any(np.diff(indptr) < 0):
                rep.problems.append(f"{where}: CSR index pointer inconsistent with {nnz} stored values")
            vals = from_storage(store._array(i, "values"), store.dtype)
            rep.nonfinite_rows += int((~vals.isfinite()).sum())
        else:
            acts = store._array(i, "acts")
            if acts.shape != (s["rows"], store.d):
                rep.problems.append(f"{where}: acts shape {acts.shape} != ({s['rows']}, {store.d})")
                continue
            for a in range(0, len(acts), chunk_rows):
                x = from_storage(acts[a : a + chunk_rows], store.dtype)
                rep.nonfinite_rows += int((~x.isfinite()).any(1).sum())
    if rep.nonfinite_rows:
        rep.problems.append(f"{rep.nonfinite_rows} rows (values, for sparse stores) contain NaN or Inf")
    for m in store.manifests:
        if not m["complete"]:
            rep.problems.append(
                f"part {m['part'][0]} is incomplete (stopped at image {m['next_image']}); re-run the same command to resume"
            )
    return rep
