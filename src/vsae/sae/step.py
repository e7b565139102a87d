"""What a training step tells the SAE it trains: the trainer's concerns, set by the trainer
(:mod:`vsae.train.trainer`) around its forward pass, so the SAE classes carry neither.

* :func:`fixed_shapes`: a step without host synchronisation (``TrainConfig.sync_free``): the
  top-k family keeps every tensor shape fixed (BatchTopK's fixed-shape selection and threshold
  update, the fixed-shape aux-k loss, Matryoshka's masked group decodes).
* :func:`global_batch`: the batch is one rank's share of a distributed batch; ``all_reduce_``
  (:func:`vsae.train.dist.all_reduce_`) sums statistics over the ranks (the aux-k loss's residual
  variance).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

import torch

AllReduce = Callable[[torch.Tensor], torch.Tensor]
_FIXED_SHAPES: ContextVar[bool] = ContextVar("vsae_fixed_shapes", default=False)
_ALL_REDUCE: ContextVar[AllReduce | None] = ContextVar("vsae_all_reduce", default=None)


@contextlib.contextmanager
def fixed_shapes(on: bool = True) -> Iterator[None]:
    """Within: training forwards keep every tensor shape fixed (no host synchronisation)."""
    token = _FIXED_SHAPES.set(on)
    try:
        yield
    finally:
        _FIXED_SHAPES.reset(token)


def fixed_shapes_on() -> bool:
    """Whether the caller runs inside :func:`fixed_shapes` (a sync-free training step)."""
    return _FIXED_SHAPES.get()


@contextlib.contextmanager
def global_batch(all_reduce_: AllReduce | None) -> Iterator[None]:
    """Within: batch statistics are summed over the ranks with ``all_reduce_`` (in place); None:
    one process."""
    token = _ALL_REDUCE.set(all_reduce_)
    try:
        yield
    finally:
        _ALL_REDUCE.reset(token)


def in_global_batch() -> bool:
    """Whether the caller runs inside :func:`global_batch` with an all-reduce (several ranks)."""
    return _ALL_REDUCE.get() is not None


def sum_over_ranks_(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed in place over the ranks of :func:`global_batch` (unchanged in one process)."""
    reduce = _ALL_REDUCE.get()
    return t if reduce is None else reduce(t)
