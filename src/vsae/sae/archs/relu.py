"""ReLU SAE with an L1 penalty weighted by decoder norms (Anthropic, "Towards Monosemanticity"
and the April 2024 update; the ReLU SAEs of Olson et al.)."""

from __future__ import annotations

import torch

from vsae.sae.base import SAE, SAEOutput, mse_sum
from vsae.sae.registry import register_arch


@register_arch("relu", saelens="standard")
class ReluSAE(SAE):
    """z = ReLU(W_enc x + b_enc); loss = ||x - x_hat||^2 + l1 * sum_f z_f ||W_dec[f]||."""

    def encode(self, x_Bd: torch.Tensor) -> torch.Tensor:
        return self.pre_acts(x_Bd).relu()

    def forward(
        self, x_Bd: torch.Tensor, dead_F: torch.Tensor | None = None, sparsity_scale: float = 1.0
    ) -> SAEOutput:
        z = self.encode(x_Bd)
        x_hat = self.decode(z)
        mse = mse_sum(x_hat, x_Bd)
        l1 = (z * self.W_dec_Fd.norm(dim=1)).sum(-1).mean()
        loss = mse + sparsity_scale * self.cfg.l1_coeff * l1
        return SAEOutput(x_hat, {"loss": loss, "mse": mse.detach(), "l1": l1.detach()}, z_dense=z)
