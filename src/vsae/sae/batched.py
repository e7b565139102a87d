"""Encode many rows with an SAE in batches, without gradients: the one loop every stage uses.

``rows`` may be a torch tensor, a numpy array, a scipy sparse matrix or an activation store
(anything with ``iter_sequential(batch_size)``); each batch is computed in the SAE's dtype
and on its device.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from vsae.shapes import Float

if TYPE_CHECKING:
    from vsae.sae.base import SAE


@dataclass(frozen=True)
class EncodedBatch:
    """One batch: rows ``start : start + len(x)`` of the input.

    Attributes
    ----------
    start: index of the batch's first row in the input.
    x: the input rows [b, d], in the SAE's dtype and on its device.
    z: their latents [b, F] (inference semantics: ``sae.encode``).
    x_hat: ``sae.decode(z)`` [b, d] when asked for (``decode=True``), else None.
    """

    start: int
    x: torch.Tensor
    z: torch.Tensor
    x_hat: torch.Tensor | None = None


def n_rows(rows: Any) -> int:
    """Number of rows of a tensor, array, sparse matrix or store."""
    return len(rows) if hasattr(rows, "iter_sequential") else int(rows.shape[0])


def _batches(rows: Any, batch_size: int) -> Iterator[tuple[int, Any]]:
    if hasattr(rows, "iter_sequential"):
        yield from rows.iter_sequential(batch_size)
        return
    for a in range(0, rows.shape[0], batch_size):
        yield a, rows[a : a + batch_size]


def _as_tensor(x: Any, like: torch.Tensor) -> torch.Tensor:
    if hasattr(x, "toarray"):  # scipy sparse
        x = x.toarray()
    t = x if torch.is_tensor(x) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(like.device, like.dtype)


def iter_encode(
    sae: SAE,
    rows: Any,
    batch_size: int = 4096,
    *,
    decode: bool = False,
    progress: bool = False,
    desc: str = "encode",
) -> Iterator[EncodedBatch]:
    """:class:`EncodedBatch` after batch of ``rows`` encoded by ``sae`` under ``torch.no_grad``."""
    if batch_size < 1:
        from vsae.errors import VsaeError

        raise VsaeError(f"--batch-size {batch_size}: must be at least 1")
    p = sae.W_enc_Fd
    n = n_rows(rows)
    bar = tqdm(total=-(-n // batch_size), disable=not progress, desc=desc, leave=False)
    try:
        for a, x in _batches(rows, batch_size):
            with torch.no_grad():
                xb = _as_tensor(x, p)
                z = sae.encode(xb)
                yield EncodedBatch(a, xb, z, sae.decode(z) if decode else None)
            bar.update(1)
    finally:
        bar.close()


def encode_batched(
    sae: SAE, rows: Any, batch_size: int = 4096, *, progress: bool = False
) -> Float[np.ndarray, "N F"]:
    """float32 latents [N, F] of every row of ``rows`` (see :func:`iter_encode`)."""
    out = np.zeros((n_rows(rows), sae.cfg.d_sae), np.float32)
    for b in iter_encode(sae, rows, batch_size, progress=progress):
        out[b.start : b.start + len(b.z)] = b.z.float().cpu().numpy()
    return out
