"""TopK SAE (Makhzani & Frey 2013; Gao et al. 2024, "Scaling and evaluating sparse autoencoders").

Exactly k latents per row: the k largest pre-activations, then ReLU. Decoding is sparse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from vsae.errors import VsaeError
from vsae.sae.arch_registry import register_arch
from vsae.sae.base import SAE, SAEOutput
from vsae.sae.sae_config import SAEConfig, check_number, default_aux_k
from vsae.shapes import Bool, Float, Int, Tensor


@dataclass(frozen=True, kw_only=True)
class TopKConfig(SAEConfig):
    """The settings of an SAE that keeps k latents per row (TopK, and BatchTopK and Matryoshka,
    whose configs extend this one).

    Attributes
    ----------
    k: active latents per row.
    aux_k: dead latents in the aux-k loss (Gao et al. 2024); 0 = off; unset: d_in / 2
        (Gao et al. App. B.1).
    aux_coeff: weight of the aux-k loss (Pach et al.: 0.03).
    """

    arch: str = "topk"
    k: int = field(default=20, metadata={"sweep": True})
    aux_k: int | None = None
    aux_coeff: float = 0.03

    def check(self) -> None:
        super().check()
        if not 0 < self.k <= self.d_sae:
            raise VsaeError(f"k={self.k} must be in 1..d_sae={self.d_sae}; pass a --k in that range")
        if self.aux_k is not None and self.aux_k < 0:
            raise VsaeError(f"--aux-k must be >= 0 (0 = off), got {self.aux_k}")
        if self.aux_k is None:
            object.__setattr__(self, "aux_k", default_aux_k(self.d_in))
        check_number("--aux-coeff", self.aux_coeff)


def row_topk_entries(pre_BF: Float[Tensor, "B F"], k: int) -> tuple[Int[Tensor, " N"], Int[Tensor, " N"]]:
    """(row_N, col_N) of the k largest entries of each row, row-major (CSR order)."""
    B = pre_BF.shape[0]
    _, col_Bk = pre_BF.topk(k, dim=-1, sorted=False)
    row_N = torch.arange(B, device=pre_BF.device).repeat_interleave(k)
    return row_N, col_Bk.reshape(-1)


@register_arch("topk", uses_k=True, saelens="topk")
class TopKSAE(SAE):
    """z = ReLU of the k largest pre-activations of each row (the others 0)."""

    sparse_codes = True
    config_class = TopKConfig
    cfg: TopKConfig

    def encode(self, x_Bd: Float[Tensor, "B d"]) -> Float[Tensor, "B F"]:
        pre = self.pre_acts(x_Bd)
        val, col = pre.topk(self.cfg.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, col, val.relu())

    def forward(
        self,
        x_Bd: Float[Tensor, "B d"],
        dead_F: Bool[Tensor, " F"] | None = None,
        sparsity_scale: float = 1.0,
    ) -> SAEOutput:
        pre = self._pre_acts_nograd(x_Bd)
        row, col = row_topk_entries(pre, self.cfg.k)
        codes, x_hat = self._sparse_forward(x_Bd, pre, row, col)
        return SAEOutput(x_hat, self._topk_losses(x_Bd, x_hat, pre, dead_F), codes=codes)
