"""Row-chunk helpers shared by the metrics: a chunk is a dense [n, F] array or a CSR matrix.

The metrics stream over an iterable of `(row_start, chunk)` pairs so that the number of rows
is never limited by memory. Dense chunks may be numpy arrays or torch tensors; sparse chunks
are `scipy.sparse` CSR matrices (or a `(indptr, indices, values)` tuple with `n_cols` given).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

from vsae.errors import VsaeError
from vsae.shapes import Float, Float64

Chunk = Any  # np.ndarray | sp.csr_matrix | torch.Tensor | (indptr, indices, values)
ChunkSource = Callable[[], Iterable[tuple[int, Chunk]]] | Iterable[tuple[int, Chunk]]


def to_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """A numpy view/copy of a numpy array or torch tensor (moved to CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        x = x.numpy()
    x = np.asarray(x)
    return x if dtype is None else x.astype(dtype, copy=False)


def as_chunk(chunk: Any, n_cols: int | None = None) -> Chunk:
    """Normalise a chunk to a 2-D numpy array or a CSR matrix (float64 values are not forced);
    typed `Chunk` (Any): callers branch on `scipy.sparse.issparse`."""
    if isinstance(chunk, tuple) and len(chunk) == 3:
        indptr, indices, values = (np.asarray(a) for a in chunk)
        if n_cols is None:
            raise VsaeError("a (indptr, indices, values) chunk needs the number of columns; pass n_cols")
        return sp.csr_matrix((values, indices, indptr), shape=(len(indptr) - 1, n_cols))
    if sp.issparse(chunk):
        return chunk.tocsr()
    arr = to_numpy(chunk)
    if arr.ndim != 2:
        raise VsaeError(f"expected a 2-D chunk [rows, columns], got shape {tuple(arr.shape)}")
    return arr


def chunks_of(array: Any, chunk_rows: int = 4096) -> Callable[[], Iterator[tuple[int, Chunk]]]:
    """A re-iterable chunk source over an in-memory (or memory-mapped) 2-D array or CSR matrix."""
    if not sp.issparse(array):
        array = to_numpy(array) if hasattr(array, "detach") else array
    n = array.shape[0]

    def gen() -> Iterator[tuple[int, Chunk]]:
        for a in range(0, n, chunk_rows):
            yield a, array[a : a + chunk_rows]

    return gen


def iterate(source: ChunkSource) -> Iterator[tuple[int, Chunk]]:
    """One pass over a chunk source (a zero-argument callable is called for each pass)."""
    return iter(source()) if callable(source) else iter(source)


def unit_rows(e_ND: Float[np.ndarray, "N D"]) -> tuple[Float64[np.ndarray, "N D"], Float64[np.ndarray, " N"]]:
    """Rows scaled to unit L2 norm in float64; zero rows stay zero. Returns (unit rows, has_norm 0/1)."""
    e = np.asarray(e_ND, dtype=np.float64)
    norm = np.sqrt(np.einsum("nd,nd->n", e, e))
    ok = norm > 0
    inv = np.divide(1.0, norm, out=np.zeros_like(norm), where=ok)
    return e * inv[:, None], ok.astype(np.float64)
