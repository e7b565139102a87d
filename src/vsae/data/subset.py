"""A subset of a source's items: a seeded sample spread over its classes, or explicitly its first N.

Folder trees list their items class by class, so "the first N" of one is its first few
classes; `--max-images N` therefore draws a seeded sample stratified by class instead
(`stratified_indices`), and the first N only when asked for (`order="first"`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from vsae.data.image_sources import Source
from vsae.data.orders import ORDERS as ORDERS  # re-exported: the one list
from vsae.errors import VsaeError


def stratified_indices(labels: np.ndarray | list[int], n: int, seed: int) -> np.ndarray:
    """``n`` item indices (sorted) spread evenly over the classes of ``labels``.

    Each class (unlabelled items, -1, form one more group) is shuffled with a generator seeded
    by ``seed``; the classes, in a seeded random order, then give one item each per round until
    ``n`` are taken. Every class gets floor(n / C) or one more item (all of its items when it has
    fewer, the rest going to the larger classes).
    """
    labels = np.asarray(labels, dtype=np.int64)
    N = len(labels)
    if n >= N:
        return np.arange(N, dtype=np.int64)
    rng = np.random.default_rng([int(seed), 31337])
    groups = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    order = rng.permutation(len(groups))
    longest = max(len(g) for g in groups)
    # rank r of every class (in `order`) before rank r + 1 of any: a round-robin over classes
    table = np.full((longest, len(groups)), -1, dtype=np.int64)
    for j, gi in enumerate(order):
        table[: len(groups[gi]), j] = groups[gi]
    flat = table.reshape(-1)
    return np.sort(flat[flat >= 0][:n])


def first_indices(n_items: int, n: int) -> np.ndarray:
    """The first ``n`` indices (only when the user asks for them explicitly)."""
    return np.arange(min(n, n_items), dtype=np.int64)


def subset(source: Source, indices: np.ndarray) -> Source:
    """The items of ``source`` at ``indices`` (in that order), with the same class names."""
    return source.pick([int(i) for i in indices])


def choose(
    source: Source, max_items: int | None, order: str, seed: int
) -> tuple[Source, dict[str, Any] | None, np.ndarray | None]:
    """(the source to use, how it was chosen, the chosen items' indices in ``source``); the last
    two are None when every item is used."""
    if order not in ORDERS:
        raise VsaeError(f"--max-images-order {order!r}: use one of {', '.join(ORDERS)}")
    if max_items is None:
        return source, None, None
    if max_items < 1:
        raise VsaeError(f"--max-images {max_items}: must be at least 1")
    if order == "first":
        idx = first_indices(len(source), max_items)
    else:
        idx = stratified_indices(list(source.labels), max_items, seed)
    info = {
        "order": order,  # "sample": seeded, stratified by class; "first": the first N items
        "seed": None if order == "first" else int(seed),
        "n": len(idx),
        "of": len(source),
        "n_classes": len({source.labels[int(i)] for i in idx} - {-1}),
        "source_index_sha256": hashlib.sha256(idx.astype("<i8").tobytes()).hexdigest(),
    }
    return subset(source, idx), info, idx
