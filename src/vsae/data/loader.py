"""Decode and preprocess items in DataLoader workers, in a fixed order, in fixed batches.

Batches are aligned to a grid of `batch_size` images counted from the start of the range, so a
run resumed at an image index on the grid feeds the model exactly the batches of an
uninterrupted run (same rows, bit for bit). Undecodable images come back in `Batch.skipped`.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vsae.data.decode import DecodeError, decode_bytes, load_image
from vsae.data.image_sources import Source

Inputs = dict[str, torch.Tensor] | torch.Tensor


@dataclass
class Batch:
    """One batch: `ids` [b] global indices of the usable items, their model `inputs` (None if
    none is usable), and `skipped` (index, path, reason) for the rest; `end` is one past the last
    index the batch covers."""

    ids: np.ndarray
    inputs: Inputs | None
    skipped: list[tuple[int, str, str]]
    end: int


class ItemDataset(Dataset):
    """Item i -> (i, preprocessed image | prompt | None, reason | None)."""

    def __init__(self, source: Source, preprocess: Callable[[list], Inputs], max_pixels: int | None = None):
        self.source = source
        self.preprocess = preprocess
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[int, Any, str | None]:
        item = self.source.items[i]
        if self.source.modality == "text":
            return i, item, None
        try:
            if self.source.images is not None:
                img = self.source.images[i]
            elif self.source.reader is not None:
                img = decode_bytes(self.source.reader(item), self.max_pixels)
            else:
                img = load_image(item, self.max_pixels)
        except DecodeError as e:
            return i, None, str(e)
        try:
            return i, self.preprocess([img]), None
        except Exception as e:  # e.g. a 1x1 image the processor cannot resize
            return i, None, f"preprocessing failed ({type(e).__name__}: {e})"


def _cat(parts: list[Inputs]) -> Inputs:
    first = parts[0]
    if isinstance(first, dict):
        return {k: torch.cat([p[k] for p in parts if isinstance(p, dict)]) for k in first}
    return torch.cat([p for p in parts if isinstance(p, torch.Tensor)])


class Collate:
    """Stack the usable items of a batch; tokenise prompts (padding to the batch's longest)."""

    def __init__(self, source: Source, preprocess: Callable[[list], Inputs], end_of: dict[int, int]):
        self.source = source
        self.preprocess = preprocess
        self.end_of = end_of

    def __call__(self, items: list[tuple[int, Any, str | None]]) -> Batch:
        ok = [(i, x) for i, x, r in items if r is None]
        skipped = [(i, self.source.items[i], r) for i, _, r in items if r is not None]
        ids = np.array([i for i, _ in ok], dtype=np.int64)
        inputs: Inputs | None
        if not ok:
            inputs = None
        elif self.source.modality == "text":
            inputs = self.preprocess([x for _, x in ok])
        else:
            inputs = _cat([x for _, x in ok])
        return Batch(ids, inputs, skipped, self.end_of[items[0][0]])


class QuietWhenOrphaned:
    """The stderr of a DataLoader worker: silent once the main process is gone.

    After `kill -9` of the main process its workers see their pipes reset and would print a
    ConnectionResetError traceback nobody asked for; an orphaned worker has no one to report to.
    Output while the main process lives passes through, except the traceback of a lost connection.
    """

    def __init__(self, stream: TextIO, parent_pid: int):
        self._stream = stream
        self._parent = parent_pid

    def _muted(self) -> bool:
        lost = isinstance(sys.exc_info()[1], ConnectionError | EOFError)
        return lost or os.getppid() != self._parent

    def write(self, s: str) -> int:
        return len(s) if self._muted() else self._stream.write(s)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _connection_lost_hook(
    default: Callable[[threading.ExceptHookArgs], Any],
) -> Callable[[threading.ExceptHookArgs], None]:
    def hook(
        args: threading.ExceptHookArgs,
    ) -> None:  # threads of the worker (queue feeder, fd sharing) that lost the main process
        if isinstance(args.exc_value, ConnectionError | EOFError):
            return
        default(args)

    return hook


def quiet_worker_init(_worker_id: int) -> None:
    """`worker_init_fn`: workers exit quietly when the main process dies (see QuietWhenOrphaned)."""
    sys.stderr = QuietWhenOrphaned(sys.stderr, os.getppid())
    threading.excepthook = _connection_lost_hook(threading.excepthook)


def grid_batches(start: int, stop: int, batch_size: int, origin: int) -> list[list[int]]:
    """Index batches covering [start, stop), cut at origin + k * batch_size."""
    out, i = [], start
    while i < stop:
        nxt = min(stop, origin + ((i - origin) // batch_size + 1) * batch_size)
        out.append(list(range(i, nxt)))
        i = nxt
    return out


def iter_batches(
    source: Source,
    preprocess: Callable[[list], Inputs],
    start: int,
    stop: int,
    batch_size: int,
    origin: int | None = None,
    num_workers: int = 0,
    max_pixels: int | None = None,
    pin_memory: bool = False,
) -> Iterator[Batch]:
    """Batches of items [start, stop) in order, decoded and preprocessed by `num_workers` workers."""
    batches = grid_batches(start, stop, batch_size, start if origin is None else origin)
    if not batches:
        return iter(())
    end_of = {b[0]: b[-1] + 1 for b in batches}
    loader = DataLoader(
        ItemDataset(source, preprocess, max_pixels),
        batch_sampler=batches,
        collate_fn=Collate(source, preprocess, end_of),
        num_workers=num_workers,
        worker_init_fn=quiet_worker_init if num_workers > 0 else None,
        prefetch_factor=4 if num_workers > 0 else None,
        pin_memory=pin_memory,
    )
    return iter(loader)
