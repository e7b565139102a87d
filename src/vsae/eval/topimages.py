"""Highest-activating images (HAI) per latent and their uniqueness — Pach et al. (2025).

`HAI_k(f)`: the k rows with the largest activation of latent f (ties: the smaller row index
wins), streamed over any number of rows; the k-th ("worst") value decides exclusion: a latent
whose worst value is 0 is excluded from uniqueness and hierarchy analyses.
Uniqueness: the Jaccard index of the HAI sets of every pair of non-excluded latents, reported as
how many pairs exceed 0.1, 0.2, ..., 0.9.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from vsae.errors import VsaeError
from vsae.eval._arrays import ChunkSource, as_chunk, chunks_of, iterate
from vsae.eval.eval_config import TopImagesConfig

JACCARD_THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(1, 10))


@dataclass(frozen=True)
class TopImages:
    """HAI of every latent.

    Attributes
    ----------
    indices_Fk : int64 [F, k] row indices, best first; -1 pads a sparse column with fewer than k
        explicit values (those rows are images with activation 0).
    values_Fk : float64 [F, k] the activations (0 for padding).
    n_rows : rows streamed.
    """

    indices_Fk: np.ndarray
    values_Fk: np.ndarray
    n_rows: int

    @property
    def worst_F(self) -> np.ndarray:
        """The k-th largest value per latent."""
        return self.values_Fk[:, -1]

    @property
    def excluded_F(self) -> np.ndarray:
        """Latents whose worst value is 0 (METRICS.md); padding (fewer than k rows) counts as 0."""
        return (self.worst_F == 0) | (self.indices_Fk[:, -1] < 0)


class TopKAccumulator:
    """Streaming top-k per column: keeps [F, k] candidates, merges each chunk by one lexsort."""

    def __init__(self, n_cols: int, k: int):
        if k < 1:
            raise VsaeError(f"top-k needs k >= 1, got {k}")
        self.k = k
        self.f = n_cols
        self.col = np.empty(0, dtype=np.int64)
        self.row = np.empty(0, dtype=np.int64)
        self.val = np.empty(0, dtype=np.float64)
        self.worst = np.full(n_cols, -np.inf)
        self.full = np.zeros(n_cols, dtype=bool)
        self.n_rows = 0

    def update(self, start: int, chunk: Any) -> None:
        c = as_chunk(chunk, self.f)
        n, f = c.shape
        if f != self.f:
            raise VsaeError(f"activation chunk has {f} columns, expected {self.f}")
        self.n_rows += n
        if n == 0:
            return
        if sp.issparse(c):
            coo = c.tocoo()
            rows, cols, vals = coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.float64)
        else:
            a = np.asarray(c, dtype=np.float64)
            kk = min(self.k, n)
            # k-th largest value of the chunk per column: every entry >= it is a candidate
            # (so ties at the boundary are all kept and resolved by row index below).
            kth = -np.partition(-a, kk - 1, axis=0)[kk - 1]
            rows, cols = np.nonzero(a >= kth[None, :])
            vals = a[rows, cols]
            rows = rows.astype(np.int64)
            cols = cols.astype(np.int64)
        # A full column keeps its list unless a later row is strictly larger (later rows lose ties).
        keep = ~self.full[cols] | (vals > self.worst[cols])
        rows, cols, vals = rows[keep] + start, cols[keep], vals[keep]
        if rows.size == 0:
            return
        col = np.concatenate([self.col, cols])
        row = np.concatenate([self.row, rows])
        val = np.concatenate([self.val, vals])
        order = np.lexsort((row, -val, col))
        col, row, val = col[order], row[order], val[order]
        first = np.searchsorted(col, np.arange(self.f))
        rank = np.arange(col.size) - first[col]
        sel = rank < self.k
        self.col, self.row, self.val = col[sel], row[sel], val[sel]
        counts = np.bincount(self.col, minlength=self.f)
        self.full = counts >= self.k
        last = np.searchsorted(self.col, np.arange(self.f), side="right") - 1
        self.worst = np.where(
            self.full, self.val[np.clip(last, 0, None)] if self.val.size else -np.inf, -np.inf
        )

    def result(self) -> TopImages:
        idx = np.full((self.f, self.k), -1, dtype=np.int64)
        val = np.zeros((self.f, self.k))
        first = np.searchsorted(self.col, np.arange(self.f))
        rank = np.arange(self.col.size) - first[self.col]
        idx[self.col, rank] = self.row
        val[self.col, rank] = self.val
        return TopImages(indices_Fk=idx, values_Fk=val, n_rows=self.n_rows)


def top_images_streaming(
    source: ChunkSource, k: int = TopImagesConfig.k, n_cols: int | None = None, progress: bool = False
) -> TopImages:
    """HAI_k of every column over a stream of `(row_start, chunk)` (dense or CSR)."""
    acc = None
    for start, chunk in tqdm(iterate(source), desc="top images", disable=not progress, leave=False):
        c = as_chunk(chunk, n_cols)
        if acc is None:
            acc = TopKAccumulator(c.shape[1], k)
        acc.update(start, c)
    if acc is None:
        raise VsaeError("no activations: the activation source yielded no chunks")
    return acc.result()


def top_images(acts_NF: Any, k: int = TopImagesConfig.k) -> TopImages:
    """HAI_k of every column of an in-memory [N, F] matrix (dense or CSR)."""
    return top_images_streaming(chunks_of(acts_NF, 8192), k=k)


def jaccard_pair_counts(top: TopImages, thresholds: Sequence[float] = JACCARD_THRESHOLDS) -> dict[str, Any]:
    """Uniqueness: over pairs of non-excluded latents, how many have Jaccard(HAI_f, HAI_g) > t.

    Pairs that share no image have Jaccard 0; only co-occurring pairs are enumerated, via the
    sparse product of the latent x image incidence matrix with itself.
    """
    keep = np.flatnonzero(~top.excluded_F)
    idx = top.indices_Fk[keep]
    valid = idx >= 0
    rows = np.repeat(np.arange(keep.size), valid.sum(axis=1))
    cols = idx[valid]
    n_img = int(cols.max()) + 1 if cols.size else 1
    m = sp.csr_matrix((np.ones(cols.size), (rows, cols)), shape=(keep.size, n_img))
    m.sum_duplicates()
    m.data[:] = 1.0
    sizes = np.asarray(m.sum(axis=1)).ravel()
    inter = sp.triu(m @ m.T, k=1).tocoo()
    jac = inter.data / (sizes[inter.row] + sizes[inter.col] - inter.data)
    n_pairs = keep.size * (keep.size - 1) // 2
    return {
        "n_latents": int(keep.size),
        "n_excluded": int(top.excluded_F.sum()),
        "n_pairs": int(n_pairs),
        "pairs_above": {f"{t:.1f}": int((jac > t).sum()) for t in thresholds},
        "max_jaccard": float(jac.max()) if jac.size else 0.0,
    }
