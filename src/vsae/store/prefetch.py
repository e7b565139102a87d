"""Background prefetch of training batches: a reader thread keeps a bounded queue full.

The reader thread pulls batches from ``source.iter_batches`` (an activation store reads them in
its storage dtype, e.g. float16: half the bytes of float32 to copy and transfer), and on CUDA
copies each into a pinned host buffer and on to the device on its own stream, so the training
step finds its batch already on the device and converts it there (``Trainer.prepare``). The
batch order is the source's, unchanged: a pure function of (seed, batch number), so resuming
stays exact. File reads and copies release the GIL, so they overlap the training step.
"""

from __future__ import annotations

import inspect
import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any

import torch

_DONE = object()


def _source_batches(source: Any, batch_size: int, seed: int, start_batch: int) -> Iterator[torch.Tensor]:
    kw = {"seed": seed, "start_batch": start_batch}
    if "raw" in inspect.signature(source.iter_batches).parameters:
        kw["raw"] = True  # storage dtype; converted on the device
    return iter(source.iter_batches(batch_size, **kw))


class _CudaStager:
    """Pinned host buffers (a ring) and a side stream for host->device copies."""

    def __init__(self, device: torch.device, slots: int):
        self.device, self.slots = device, slots
        self.stream = torch.cuda.Stream(device=device)
        self.pinned: list[torch.Tensor | None] = [None] * slots
        self.events: list[torch.cuda.Event | None] = [None] * slots
        self.i = 0

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.Event]:
        s = self.i % self.slots
        self.i += 1
        ev = self.events[s]
        if ev is not None:
            ev.synchronize()  # this thread waits until the slot's copy is done
        buf = self.pinned[s]
        if buf is None or buf.shape != x.shape or buf.dtype != x.dtype:
            buf = self.pinned[s] = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
        buf.copy_(x)
        with torch.cuda.stream(self.stream):
            out = buf.to(self.device, non_blocking=True)
            ev = torch.cuda.Event()
            ev.record(self.stream)
        self.events[s] = ev
        return out, ev


def prefetch_batches(
    source: Any,
    batch_size: int,
    *,
    seed: int = 0,
    start_batch: int = 0,
    device: str | torch.device = "cpu",
    depth: int = 4,
    rows: tuple[int, int] | None = None,
    to_float: bool = False,
) -> Generator[torch.Tensor, None, None]:
    """Batches of ``source`` in its order, read ``depth`` ahead by a background thread.

    On CUDA the batches come back on ``device`` (in the storage dtype); elsewhere on the host,
    converted to float32 by the thread if ``to_float``. ``rows`` = (lo, hi) keeps only those rows
    of each batch (this process's part of a distributed batch). Closing the generator (or
    leaving the loop) stops the thread.
    """
    device = torch.device(device)
    it = _source_batches(source, batch_size, seed, start_batch)
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    stager = _CudaStager(device, depth + 2) if device.type == "cuda" else None

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            if stager is not None:
                torch.cuda.set_device(device)
            for x in it:
                if rows is not None:
                    x = x[rows[0] : rows[1]]
                if to_float and stager is None:
                    x = x.float()
                if not put(stager(x) if stager is not None else (x, None)):
                    return
        except BaseException as e:  # handed to the consumer, raised there
            put(e)
            return
        put(_DONE)

    t = threading.Thread(target=work, daemon=True, name="vsae-prefetch")
    t.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            x, ev = item
            if ev is not None:  # the consumer's stream waits for the copy; the host does not
                cur = torch.cuda.current_stream(device)
                cur.wait_event(ev)
                x.record_stream(cur)
            yield x
    finally:
        stop.set()
        t.join()  # never leave the reader inside torch at interpreter exit
