"""Fixtures of the trainer tests: write tensors as an activation store."""

from pathlib import Path

import numpy as np
import pytest
import torch

from vsae.store import StoreWriter


def write_store(
    path: Path, x_Nd: torch.Tensor, rows_per_image: int = 4, provenance: dict | None = None
) -> Path:
    prov = provenance or {"model": "planted", "hook": "resid.0", "tokens": "all"}
    w = StoreWriter.create_or_resume(
        path, d=x_Nd.shape[1], dtype="float32", provenance=prov, rows_per_shard=4096
    )
    n = x_Nd.shape[0]
    img = np.arange(n, dtype=np.int64) // rows_per_image
    tok = np.arange(n, dtype=np.int64) % rows_per_image
    for a in range(0, n, 1000):
        b = min(a + 1000, n)
        w.add(x_Nd[a:b], img[a:b], tok[a:b])
        w.mark_images_done(int(img[b - 1]) + 1 if b == n else int(img[b]))
    w.close()
    return path


@pytest.fixture
def make_store():
    return write_store
