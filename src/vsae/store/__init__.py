"""The sharded activation store: atomic resumable writers and memory-mapped readers (see docs/store.md).

Names are imported lazily, so that reading a manifest (`vsae store info`) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vsae.lazy import lazy_attributes

_WHERE = {
    "ActivationStore": "vsae.store.reader",
    "SparseActivationStore": "vsae.store.reader",
    "CheckReport": "vsae.store.check",
    "check_store": "vsae.store.check",
    "SparseStoreWriter": "vsae.store.writer",
    "StoreWriter": "vsae.store.writer",
}

__all__ = [
    "ActivationStore",
    "CheckReport",
    "SparseActivationStore",
    "SparseStoreWriter",
    "StoreWriter",
    "check_store",
]

if TYPE_CHECKING:
    from vsae.store.check import CheckReport, check_store
    from vsae.store.reader import ActivationStore, SparseActivationStore
    from vsae.store.writer import SparseStoreWriter, StoreWriter


__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
