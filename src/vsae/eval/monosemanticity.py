"""Monosemanticity Score (MS) of Pach et al., "Sparse Autoencoders Learn Monosemantic Features
in Vision-Language Models" (2025), computed exactly and in O(nnz * D) instead of O(N^2 F).

Definition (docs/METRICS.md): with `a[:, f]` the activations of latent f min-max scaled to
[0, 1] over the N images and `s_ij` the cosine similarity of the similarity-encoder embeddings,

    MS[f] = sum_{i<j} a_i a_j s_ij / sum_{i<j} a_i a_j.

Algebra used here. Let `e_i` be the unit-normalised embeddings (a zero embedding stays zero, so
its cosine with anything is 0, as `torch.nn.functional.cosine_similarity` gives) and
`w_i = ||e_i||^2` (1, or 0 for a zero embedding). Then

    sum_{i<j} a_i a_j s_ij = (||sum_i a_i e_i||^2 - sum_i a_i^2 w_i) / 2
    sum_{i<j} a_i a_j      = ((sum_i a_i)^2      - sum_i a_i^2)     / 2.

Min-max scaling is `a = c (A - m)` with `c = 1 / (max - min)`, `m = min`; `c^2` cancels in the
ratio, so MS only needs the shifted activations `b = A - m`. For sparse (CSR) input the
implicit zeros would become `-m`, so sparse chunks accumulate the raw sums
(`P = sum_i A_i e_i`, `sum A`, `sum A^2`, `sum A w`, `sum A^2 w`) and the shift is applied at
the end using `S = sum_i e_i` and `W = sum_i w_i`:

    sum_i b_i e_i = P - m S,     sum b = sum A - N m,
    sum b^2 = sum A^2 - 2 m sum A + N m^2,    sum b^2 w = sum A^2 w - 2 m sum A w + m^2 W.

With `m == 0` (a non-negative SAE latent that is zero somewhere) all corrections vanish, zeros
stay zeros, and the cost is O(nnz * D). Dense chunks are shifted by the exact minimum (known from
the first pass) before accumulation, so no cancellation is introduced for raw neurons. All
accumulation is float64. Two streaming passes: min/max (and non-zero counts), then the sums.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from vsae.errors import VsaeError
from vsae.eval._arrays import ChunkSource, as_chunk, chunks_of, iterate, to_numpy, unit_rows
from vsae.shapes import Array, Float

if TYPE_CHECKING:
    import torch

# A latent whose pair-weight sum is below this fraction of (sum a)^2 is treated as having a
# zero denominator (it fires on a single image): rounding would otherwise give 0/0 noise.
_REL_DEN_EPS = 1e-12


@dataclass(frozen=True)
class MSResult:
    """Per-latent Monosemanticity Scores and what is needed to summarise them.

    Attributes
    ----------
    scores_F : float64 [F]; NaN for dead latents and where the denominator is 0.
    dead_F : bool [F]; max == min over the N images (never varies: counted, not averaged).
    n_images : N, the number of images the scores were computed over.
    """

    scores_F: np.ndarray
    dead_F: np.ndarray
    n_images: int | None
    extra: dict[str, Any] = field(default_factory=dict)


def _column_minmax(
    source: ChunkSource, n_cols: int | None, progress: bool, total: int | None = None
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """First pass: per-column min, max (implicit CSR zeros included) and the row count."""
    lo: np.ndarray | None = None
    hi = nnz = np.zeros(0)
    n_rows = 0
    sparse_seen = dense_seen = False
    bar = tqdm(total=total, desc="MS pass 1/2 (min/max)", unit="img", disable=not progress, leave=False)
    for _, raw in iterate(source):
        chunk = as_chunk(raw, n_cols)
        n, f = chunk.shape
        bar.update(n)
        if lo is None:
            lo = np.full(f, np.inf)
            hi = np.full(f, -np.inf)
            nnz = np.zeros(f, dtype=np.int64)
        elif f != lo.shape[0]:
            raise VsaeError(f"activation chunks have {f} and {lo.shape[0]} columns; all chunks must match")
        n_rows += n
        if n == 0:
            continue
        if sp.issparse(chunk):
            sparse_seen = True
            coo = chunk.tocoo()
            np.minimum.at(lo, coo.col, coo.data.astype(np.float64))
            np.maximum.at(hi, coo.col, coo.data.astype(np.float64))
            nnz += np.bincount(coo.col, minlength=f)
        else:
            dense_seen = True
            c = np.asarray(chunk, dtype=np.float64)
            np.minimum(lo, c.min(axis=0), out=lo)
            np.maximum(hi, c.max(axis=0), out=hi)
            nnz += n
    bar.close()
    if lo is None:
        raise VsaeError("no activations: the activation source yielded no chunks")
    # Columns of a CSR stream that are zero somewhere have 0 among their values.
    has_zero = nnz < n_rows
    lo = np.where(has_zero, np.minimum(lo, 0.0), lo)
    hi = np.where(has_zero, np.maximum(hi, 0.0), hi)
    if sparse_seen and dense_seen:
        raise VsaeError("mixed dense and sparse activation chunks; give one kind")
    return lo, hi, n_rows, sparse_seen


def monosemanticity_score_streaming(
    source: ChunkSource,
    similarity_embeddings: Any,
    *,
    n_cols: int | None = None,
    progress: bool = False,
) -> MSResult:
    """MS of every column of a row-chunked activation matrix, streaming over the images twice.

    Parameters
    ----------
    source : a zero-argument callable returning an iterable of `(row_start, chunk)` (called once
        per pass), each chunk a dense [N, F] array/tensor or a CSR matrix / `(indptr, indices,
        values)` tuple; rows are images in the same order as `similarity_embeddings`.
    similarity_embeddings : [N, D] array-like supporting row slicing (numpy memmap is fine).
    n_cols : F, needed only for `(indptr, indices, values)` chunks.
    """
    if not callable(source):
        raise VsaeError("the streaming MS makes two passes: pass a callable that returns the chunk iterator")
    lo, hi, n_rows, sparse_input = _column_minmax(source, n_cols, progress, similarity_embeddings.shape[0])
    n_emb = similarity_embeddings.shape[0]
    if n_emb != n_rows:
        raise VsaeError(
            f"similarity embeddings have {n_emb} rows but the activations have {n_rows} images; "
            "they must describe the same images in the same order"
        )
    f_dim = lo.shape[0]
    d_dim = similarity_embeddings.shape[1]
    dead = ~(hi > lo)
    # Dense chunks are shifted by the exact min before accumulating; sparse ones by 0.
    shift = np.zeros(f_dim) if sparse_input else np.where(dead, 0.0, lo)

    p_FD = np.zeros((f_dim, d_dim))
    s1 = np.zeros(f_dim)
    s2 = np.zeros(f_dim)
    s1w = np.zeros(f_dim)
    s2w = np.zeros(f_dim)
    e_sum_D = np.zeros(d_dim)
    w_sum = 0.0
    seen = 0
    bar = tqdm(total=n_rows, desc="MS pass 2/2 (sums)", unit="img", disable=not progress, leave=False)
    for start, raw in iterate(source):
        chunk = as_chunk(raw, n_cols)
        n = chunk.shape[0]
        bar.update(n)
        if n == 0:
            continue
        if start != seen:
            raise VsaeError(f"activation chunks must be consecutive: expected row {seen}, got {start}")
        e_ND, w_N = unit_rows(similarity_embeddings[start : start + n])
        seen += n
        e_sum_D += e_ND.sum(axis=0)
        w_sum += float(w_N.sum())
        if sp.issparse(chunk):
            b = chunk.astype(np.float64)
            bt = b.T.tocsr()
            p_FD += bt @ e_ND
            s1 += np.asarray(b.sum(axis=0)).ravel()
            b2 = b.multiply(b).tocsr()
            s2 += np.asarray(b2.sum(axis=0)).ravel()
            s1w += bt @ w_N
            s2w += b2.T.tocsr() @ w_N
        else:
            b = np.asarray(chunk, dtype=np.float64) - shift
            p_FD += b.T @ e_ND
            s1 += b.sum(axis=0)
            b2 = b * b
            s2 += b2.sum(axis=0)
            s1w += b.T @ w_N
            s2w += b2.T @ w_N
    bar.close()
    delta = np.where(dead, 0.0, lo) - shift  # remaining shift to apply (0 for dense input)
    n = float(n_rows)
    proj_FD = p_FD - delta[:, None] * e_sum_D[None, :]
    q = np.einsum("fd,fd->f", proj_FD, proj_FD)
    t1 = s1 - n * delta
    t2 = s2 - 2.0 * delta * s1 + n * delta * delta
    t2w = s2w - 2.0 * delta * s1w + delta * delta * w_sum
    num = q - t2w
    den = t1 * t1 - t2
    ok = (~dead) & (den > _REL_DEN_EPS * t1 * t1) & (den > 0)
    scores = np.full(f_dim, np.nan)
    scores[ok] = num[ok] / den[ok]
    return MSResult(scores_F=scores, dead_F=dead, n_images=n_rows)


def monosemanticity_score(
    latent_acts: Any, similarity_embeddings: Any, chunk_rows: int = 8192
) -> torch.Tensor:
    """Per-latent MS as a float64 torch tensor [F] with NaN for dead latents (Pach et al. 2025).

    `latent_acts` is [N, F] (numpy, torch, or scipy CSR); `similarity_embeddings` is [N, D].
    """
    import torch

    res = monosemanticity_score_streaming(chunks_of(latent_acts, chunk_rows), _as_rows(similarity_embeddings))
    return torch.from_numpy(res.scores_F)


def _as_rows(e: Any) -> Any:
    return to_numpy(e) if hasattr(e, "detach") else e


def embedding_baseline(embeddings_ND: Float[Array, "N D"]) -> float:
    """Mean pairwise cosine similarity of the embeddings over distinct pairs i < j: the MS of a
    unit that fires equally on every image, so the level MS is read against (a zero embedding has
    cosine 0, as in the MS). O(N D): ``(||sum_i e_i||^2 - sum_i w_i) / (N (N - 1))``."""
    e, w = unit_rows(to_numpy(embeddings_ND))
    n = e.shape[0]
    if n < 2:
        return float("nan")
    s = e.sum(axis=0)
    return float((s @ s - w.sum()) / (n * (n - 1)))


def summarize_ms(res: MSResult | Any, top: int = 10) -> dict[str, Any]:
    """The paper's report: mean and std (unbiased, as torch.std in the reference) over scored
    latents, the dead count, the count of other NaNs, and the `top` highest and lowest.

    `res` is an `MSResult`, or the per-latent scores that `monosemanticity_score` returns (a tensor
    or array [F]); these cannot tell dead latents from other NaNs, so every NaN counts as dead and
    `n_images` is None.
    """
    if not isinstance(res, MSResult):
        scores = np.asarray(to_numpy(res), dtype=np.float64).reshape(-1)
        res = MSResult(scores_F=scores, dead_F=np.isnan(scores), n_images=None)
    s = res.scores_F
    valid = ~np.isnan(s)
    idx = np.flatnonzero(valid)
    vals = s[valid]
    order = np.lexsort((idx, -vals))  # descending score, ties by index
    lows = np.lexsort((idx, vals))
    return {
        "n_latents": int(s.shape[0]),
        "n_images": None if res.n_images is None else int(res.n_images),
        "n_scored": int(valid.sum()),
        "n_dead": int(res.dead_F.sum()),
        "n_nan_not_dead": int((~valid & ~res.dead_F).sum()),
        "mean": float(vals.mean()) if vals.size else float("nan"),
        "std": float(vals.std(ddof=1)) if vals.size > 1 else float("nan"),
        "top": [[int(idx[i]), float(vals[i])] for i in order[:top]],
        "bottom": [[int(idx[i]), float(vals[i])] for i in lows[:top]],
    }
