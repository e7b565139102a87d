"""Sources of training batches: an activation store on disk, or tensors in memory (tests, benches).

Both provide ``len``, ``d``, ``provenance`` and ``iter_batches(batch_size, seed=, start_batch=)``
whose batches are a pure function of (seed, batch number), so a resumed run sees the same data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import torch

from vsae.errors import VsaeError


class BatchSource(Protocol):
    d: int

    def __len__(self) -> int: ...

    def iter_batches(
        self, batch_size: int, *, seed: int = 0, start_batch: int = 0
    ) -> Iterator[torch.Tensor]: ...


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

    def __getitem__(self, key) -> torch.Tensor:
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


def open_source(path: str | os.PathLike) -> Any:
    """An ActivationStore opened for training (dense stores only)."""
    from vsae.store import ActivationStore, SparseActivationStore

    store = ActivationStore.open(path)
    if isinstance(store, SparseActivationStore):
        raise VsaeError(f"{path} is a sparse store of SAE latents; train on a dense activation store")
    if len(store) == 0:
        raise VsaeError(f"store {path} has no rows; run `vsae extract` first")
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


def prefetch(it: Iterator[torch.Tensor], depth: int = 2) -> Iterator[torch.Tensor]:
    """Yield from ``it`` while a background thread reads the next ``depth`` batches (same order).

    Store reads (memory-mapped numpy copies) release the GIL, so I/O overlaps the training step.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def work():
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as e:  # handed to the consumer
            q.put(e)
            return
        q.put(done)

    t = threading.Thread(target=work, daemon=True, name="vsae-prefetch")
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join()  # never leave the reader inside torch at interpreter exit
