"""ReLU SAE with an L1 penalty weighted by decoder norms (Anthropic, "Towards Monosemanticity"
and the April 2024 update; the ReLU SAEs of Olson et al.)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vsae.sae.arch_registry import register_arch
from vsae.sae.base import SAE, SAEOutput, mse_sum
from vsae.sae.sae_config import SAEConfig, check_number
from vsae.shapes import Bool, Float, Tensor


@dataclass(frozen=True, kw_only=True)
class ReluConfig(SAEConfig):
    """A ReLU SAE's settings (and the common fields of :class:`vsae.sae.sae_config.SAEConfig`).

    Attributes
    ----------
    l1_coeff: weight of the L1 penalty sum_f |z_f| ||W_dec[f]|| (Anthropic, Apr. 2024).
    """

    arch: str = "relu"
    l1_coeff: float = field(default=5.0, metadata={"flag": "--l1"})

    def check(self) -> None:
        super().check()
        check_number("--l1", self.l1_coeff)


@register_arch("relu", saelens="standard")
class ReluSAE(SAE):
    """z = ReLU(W_enc x + b_enc); loss = ||x - x_hat||^2 + l1 * sum_f z_f ||W_dec[f]||."""

    config_class = ReluConfig
    cfg: ReluConfig

    def encode(self, x_Bd: Float[Tensor, "B d"]) -> Float[Tensor, "B F"]:
        return self.pre_acts(x_Bd).relu()

    def forward(
        self,
        x_Bd: Float[Tensor, "B d"],
        dead_F: Bool[Tensor, " F"] | None = None,
        sparsity_scale: float = 1.0,
    ) -> SAEOutput:
        z = self.encode(x_Bd)
        x_hat = self.decode(z)
        mse = mse_sum(x_hat, x_Bd)
        l1 = (z * self.W_dec_Fd.norm(dim=1)).sum(-1).mean()
        loss = mse + sparsity_scale * self.cfg.l1_coeff * l1
        return SAEOutput(x_hat, {"loss": loss, "mse": mse.detach(), "l1": l1.detach()}, z_dense=z)
