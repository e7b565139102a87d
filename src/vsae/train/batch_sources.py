"""Sources of training batches: an activation store on disk, or tensors in memory (tests, benches).

Both provide ``len``, ``d``, ``provenance`` and ``iter_batches(batch_size, seed=, start_batch=)``
whose batches are a pure function of (seed, batch number), so a resumed run sees the same data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsae.errors import VsaeError


class TensorSource:
    """Rows of an in-memory tensor [N, d], shuffled per epoch by a seeded permutation."""

    def __init__(self, x_Nd: torch.Tensor, provenance: dict[str, Any] | None = None):
        if x_Nd.ndim != 2:
            raise VsaeError(f"training rows must be 2-D [N, d], got shape {tuple(x_Nd.shape)}")
        self.x_Nd = x_Nd.float()
        self.d = x_Nd.shape[1]
        self.provenance = provenance or {"source": "tensor"}

    def __len__(self) -> int:
        return self.x_Nd.shape[0]

    def __getitem__(self, key: slice | np.ndarray | torch.Tensor) -> torch.Tensor:
        return self.x_Nd[key]

    def iter_batches(self, batch_size: int, *, seed: int = 0, start_batch: int = 0) -> Iterator[torch.Tensor]:
        n = len(self)
        if n < batch_size:
            raise VsaeError(f"{n} rows are fewer than one batch of {batch_size}; lower --batch-size")
        per_epoch = n // batch_size
        epoch, b = divmod(start_batch, per_epoch)
        while True:
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
            for i in range(b, per_epoch):
                yield self.x_Nd[perm[i * batch_size : (i + 1) * batch_size]]
            epoch, b = epoch + 1, 0


def open_store_source(path: str | os.PathLike, *, verify: bool = True, allow_incomplete: bool = False) -> Any:
    """An ActivationStore opened for training (dense stores only).

    Refuses an incomplete store (a killed extraction) unless `allow_incomplete`, and checks every
    shard's file, type and shape up front; `verify` also checks each shard's sha256 and refuses
    NaN/Inf rows when the shard is first read (see `ActivationStore`).
    """
    from vsae.store import ActivationStore, SparseActivationStore

    store = ActivationStore.open(Path(path), verify=verify)
    if isinstance(store, SparseActivationStore):
        raise VsaeError(f"{path} is a sparse store of SAE latents; train on a dense activation store")
    if not store.complete and not allow_incomplete:
        done = sum(m["next_image"] - m["image_range"][0] for m in store.manifests)
        raise VsaeError(
            f"store {path} is incomplete (its extraction stopped after {done} images); re-run the same "
            "`vsae extract` command to finish it, or pass --allow-incomplete to train on what is there"
        )
    if len(store) == 0:
        raise VsaeError(f"store {path} has no rows; run `vsae extract` first")
    store.check_layout()
    return store


def provenance_of(source: Any) -> dict[str, Any]:
    """What later stages need to know about where the activations came from."""
    prov = getattr(source, "provenance", None)
    out: dict[str, Any] = dict(prov) if isinstance(prov, dict) else {}
    path = getattr(source, "path", None)
    if path is not None:
        out.setdefault("store", str(Path(path).resolve()))
    out.setdefault("rows", len(source))
    return out


def sample_rows(source: Any, n: int, seed: int) -> torch.Tensor:
    """``n`` rows (or all, if fewer) drawn with the source's own deterministic shuffler."""
    n = min(n, len(source))
    return next(iter(source.iter_batches(n, seed=seed + 7919, start_batch=0))).float()


def first_rows(source: Any, n: int, batch_size: int = 8192) -> Iterator[torch.Tensor]:
    """The first ``n`` rows of a source in order, in chunks (validation)."""
    n = min(n, len(source))
    for a in range(0, n, batch_size):
        yield source[a : min(a + batch_size, n)].float()


def spread_rows(source: Any, n: int, seed: int, batch_size: int = 8192) -> Iterator[torch.Tensor]:
    """``n`` rows drawn without replacement by a seeded sample over the whole source (all rows
    when it has no more), in index order, in chunks: validation rows that span a class-sorted
    store instead of its first classes."""
    N = len(source)
    if n >= N:
        yield from first_rows(source, N, batch_size)
        return
    idx = np.sort(np.random.default_rng([int(seed), 20250]).choice(N, size=n, replace=False))
    for a in range(0, n, batch_size):
        yield source[idx[a : a + batch_size]].float()
