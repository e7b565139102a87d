"""The sharded activation store: atomic resumable writers and memory-mapped readers (see docs/store.md)."""

from vsae.store.check import CheckReport, check_store
from vsae.store.reader import ActivationStore, SparseActivationStore
from vsae.store.writer import SparseStoreWriter, StoreWriter

__all__ = [
    "ActivationStore",
    "CheckReport",
    "SparseActivationStore",
    "SparseStoreWriter",
    "StoreWriter",
    "check_store",
]
