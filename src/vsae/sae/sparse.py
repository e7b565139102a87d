"""Sparse encode/decode for the top-k family: cost grows with k, not with the dictionary size.

A batch of sparse codes is held as CSR over rows: ``indptr_B1`` (row offsets), ``col_N``
(latent ids) and ``val_N`` (values), N = number of active (row, latent) pairs.

* :class:`SparseDecode` computes ``x_hat_Bd = Z_BF @ W_dec_Fd`` with
  ``torch.nn.functional.embedding_bag(per_sample_weights=...)`` (a CSR SpMM) in the forward,
  and in the backward the gradient of the values (a gathered dot product, O(N d)) and of the
  decoder (``Z^T @ g``: the same embedding_bag over the column-sorted (CSC) order, O(N d)).
* :class:`SparseEncodeValues` returns the pre-activations at the selected positions with
  gradients for the encoder that are again O(N d) (``g_Z^T @ x``), instead of the dense
  O(B d F) gradient autograd would compute through the dense pre-activation matmul.

Both are checked against the dense computation in ``tests/sae/test_sparse.py``.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F

_CHUNK = 2048  # rows of (N, d) temporaries materialised at once in the fallback value gradient


def csr_from_rows(row_N: torch.Tensor, n_rows: int) -> torch.Tensor:
    """Row offsets (int64, [n_rows + 1]) of entries sorted by row.

    A binary search (no host sync, unlike ``bincount`` on CUDA, which reads the maximum back).
    """
    bounds = torch.arange(n_rows + 1, dtype=row_N.dtype, device=row_N.device)
    return torch.searchsorted(row_N, bounds).to(torch.long)


class Pattern:
    """The positions of a batch of sparse codes: entries sorted by row (CSR).

    The column-sorted (CSC) view needed by the transposed products is computed once and shared
    by the encoder and decoder backward passes.
    """

    def __init__(self, row_N: torch.Tensor, col_N: torch.Tensor, n_rows: int, n_cols: int):
        self.row_N, self.col_N, self.n_rows, self.n_cols = row_N, col_N, n_rows, n_cols
        self.indptr_B1 = csr_from_rows(row_N, n_rows)

    @cached_property
    def csc(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(permutation to column order, column offsets [F + 1], rows in column order)."""
        order = torch.argsort(self.col_N, stable=True)
        offsets = csr_from_rows(self.col_N.index_select(0, order), self.n_cols)
        return order, offsets, self.row_N.index_select(0, order)


def _bag(
    idx_N: torch.Tensor, table_Td: torch.Tensor, offsets: torch.Tensor, weights_N: torch.Tensor
) -> torch.Tensor:
    """Sum over bags of weights * table[idx]; bags given by CSR offsets (include_last_offset)."""
    if idx_N.numel() == 0:
        return table_Td.new_zeros(offsets.numel() - 1, table_Td.shape[1])
    return F.embedding_bag(
        idx_N, table_Td, offsets, mode="sum", per_sample_weights=weights_N, include_last_offset=True
    )


def _transpose_spmm(pat: Pattern, val_N: torch.Tensor, dense_Bd: torch.Tensor) -> torch.Tensor:
    """``Z^T @ dense`` for Z [B, F] with values ``val_N`` at ``pat``: [F, d]."""
    order, offsets, rows = pat.csc
    return _bag(rows, dense_Bd, offsets, val_N.index_select(0, order))


def _gathered_dot(pat: Pattern, a_Bd: torch.Tensor, b_Fd: torch.Tensor) -> torch.Tensor:
    """``(a[row] * b[col]).sum(-1)``: [N].

    This is exactly the per-sample-weight gradient of ``embedding_bag``, for which ATen has a
    fused kernel (no [N, d] temporary); a chunked gather + bmm is the fallback.
    """
    row_N, col_N = pat.row_N, pat.col_N
    if row_N.numel() == 0:
        return a_Bd.new_zeros(0)
    try:
        return torch.ops.aten._embedding_bag_per_sample_weights_backward(
            a_Bd, b_Fd, col_N, pat.indptr_B1[:-1], row_N, 0, -1
        )
    except (AttributeError, RuntimeError, NotImplementedError):  # pragma: no cover - other torch builds
        out = a_Bd.new_empty(row_N.numel())
        for s in range(0, row_N.numel(), _CHUNK):
            r, c = row_N[s : s + _CHUNK], col_N[s : s + _CHUNK]
            out[s : s + _CHUNK] = torch.bmm(
                a_Bd.index_select(0, r).unsqueeze(1), b_Fd.index_select(0, c).unsqueeze(2)
            ).view(-1)
        return out


class SparseDecode(torch.autograd.Function):
    """x_hat_Bd = sum_n val[n] * W_dec[col[n]] into row[n]."""

    @staticmethod
    def forward(ctx: Any, val_N: torch.Tensor, W_dec_Fd: torch.Tensor, pat: Pattern) -> torch.Tensor:
        ctx.save_for_backward(val_N, W_dec_Fd)
        ctx.pat = pat
        return _bag(pat.col_N, W_dec_Fd, pat.indptr_B1, val_N)

    @staticmethod
    def backward(ctx: Any, g_Bd: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        val_N, W_dec_Fd = ctx.saved_tensors
        g_Bd = g_Bd.contiguous()
        g_val = _gathered_dot(ctx.pat, g_Bd, W_dec_Fd) if ctx.needs_input_grad[0] else None
        g_W = _transpose_spmm(ctx.pat, val_N, g_Bd) if ctx.needs_input_grad[1] else None
        return g_val, g_W, None


class SparseEncodeValues(torch.autograd.Function):
    """pre[row, col] = x[row] . W_enc[col] + b_enc[col] at the selected entries only.

    ``pre_N`` are the values already computed by the (no-grad) dense encoder matmul; the
    function only attaches the sparse gradient to W_enc_Fd, b_enc_F (and x_Bd if needed).
    """

    @staticmethod
    def forward(
        ctx: Any,
        pre_N: torch.Tensor,
        x_Bd: torch.Tensor,
        W_enc_Fd: torch.Tensor,
        b_enc_F: torch.Tensor,
        pat: Pattern,
    ) -> torch.Tensor:
        ctx.save_for_backward(x_Bd, W_enc_Fd)
        ctx.pat = pat
        return pre_N.clone()

    @staticmethod
    def backward(
        ctx: Any, g_N: torch.Tensor
    ) -> tuple[None, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, None]:
        x_Bd, W_enc_Fd = ctx.saved_tensors
        pat = ctx.pat
        g_N = g_N.contiguous()
        g_x = _bag(pat.col_N, W_enc_Fd, pat.indptr_B1, g_N) if ctx.needs_input_grad[1] else None
        g_W = _transpose_spmm(pat, g_N, x_Bd) if ctx.needs_input_grad[2] else None
        g_b = None
        if ctx.needs_input_grad[3]:
            g_b = torch.zeros(pat.n_cols, dtype=g_N.dtype, device=g_N.device).index_add_(0, pat.col_N, g_N)
        return None, g_x, g_W, g_b, None


def sparse_decode(val_N: torch.Tensor, W_dec_Fd: torch.Tensor, pat: Pattern) -> torch.Tensor:
    """Decode sparse codes without the decoder bias: [B, d]."""
    return SparseDecode.apply(val_N, W_dec_Fd, pat)


def sparse_encode_values(
    pre_N: torch.Tensor, x_Bd: torch.Tensor, W_enc_Fd: torch.Tensor, b_enc_F: torch.Tensor, pat: Pattern
) -> torch.Tensor:
    """Selected pre-activations with sparse encoder gradients: [N]."""
    return SparseEncodeValues.apply(pre_N, x_Bd, W_enc_Fd, b_enc_F, pat)
