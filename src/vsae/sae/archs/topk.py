"""TopK SAE (Makhzani & Frey 2013; Gao et al. 2024, "Scaling and evaluating sparse autoencoders").

Exactly k latents per row: the k largest pre-activations, then ReLU. Decoding is sparse.
"""

from __future__ import annotations

import torch

from vsae.sae.base import SAE, SAEOutput
from vsae.sae.registry import register_arch


def row_topk_entries(pre_BF: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(row_N, col_N) of the k largest entries of each row, row-major (CSR order)."""
    B = pre_BF.shape[0]
    _, col_Bk = pre_BF.topk(k, dim=-1, sorted=False)
    row_N = torch.arange(B, device=pre_BF.device).repeat_interleave(k)
    return row_N, col_Bk.reshape(-1)


@register_arch("topk", uses_k=True, saelens="topk")
class TopKSAE(SAE):
    """z = ReLU of the k largest pre-activations of each row (the others 0)."""

    sparse_codes = True

    def encode(self, x_Bd: torch.Tensor) -> torch.Tensor:
        pre = self.pre_acts(x_Bd)
        val, col = pre.topk(self.cfg.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, col, val.relu())

    def forward(
        self, x_Bd: torch.Tensor, dead_F: torch.Tensor | None = None, sparsity_scale: float = 1.0
    ) -> SAEOutput:
        pre = self._pre_acts_nograd(x_Bd)
        row, col = row_topk_entries(pre, self.cfg.k)
        codes, x_hat = self._sparse_forward(x_Bd, pre, row, col)
        return SAEOutput(x_hat, self._topk_losses(x_Bd, x_hat, pre, dead_F), codes=codes)
