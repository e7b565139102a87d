"""JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping Ahead"; Gemma Scope).

z_f = pre_f * H(pre_f - theta_f) with a learned per-latent threshold theta >= 0. H has zero
gradient almost everywhere, so theta learns through straight-through estimators with a
rectangle kernel of width epsilon (the bandwidth). The sparsity penalty is L0:
l0_coeff * sum_f H(pre_f - theta_f). The threshold is a plain parameter (used through ReLU),
not exp(log theta): under Adam a log parameter moves theta by only ~theta * lr per step, which
freezes small thresholds (as SAELens and dictionary_learning found).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vsae.sae.arch_registry import register_arch
from vsae.sae.base import SAE, SAEOutput, mse_sum
from vsae.sae.sae_config import SAEConfig, check_number
from vsae.shapes import Bool, Float, Tensor


@dataclass(frozen=True, kw_only=True)
class JumpReluConfig(SAEConfig):
    """A JumpReLU SAE's settings (and the common fields of :class:`vsae.sae.sae_config.SAEConfig`).

    Attributes
    ----------
    l0_coeff: weight of the L0 penalty (Rajamanoharan et al. 2024).
    jumprelu_bandwidth: straight-through rectangle-kernel width epsilon (SAELens's default).
    jumprelu_init_threshold: initial threshold, in normalised input units (SAELens's default).
    """

    arch: str = "jumprelu"
    l0_coeff: float = field(default=1.0, metadata={"flag": "--l0"})
    jumprelu_bandwidth: float = 0.05
    jumprelu_init_threshold: float = 0.01

    def check(self) -> None:
        super().check()
        check_number("--l0", self.l0_coeff)


def _rect(u: torch.Tensor) -> torch.Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    """pre * H(pre - theta); d/dtheta = -(theta / eps) K((pre - theta) / eps)."""

    @staticmethod
    def forward(ctx: Any, pre_BF: torch.Tensor, theta_F: torch.Tensor, eps: float) -> torch.Tensor:
        ctx.save_for_backward(pre_BF, theta_F)
        ctx.eps = eps
        return pre_BF * (pre_BF > theta_F)

    @staticmethod
    def backward(ctx: Any, g_BF: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        pre, theta = ctx.saved_tensors
        eps = ctx.eps
        g_pre = g_BF * (pre > theta)
        g_theta = (-(theta / eps) * _rect((pre - theta) / eps) * g_BF).sum(0)
        return g_pre, g_theta, None


class _Step(torch.autograd.Function):
    """H(pre - theta); d/dtheta = -(1 / eps) K((pre - theta) / eps); no gradient to pre."""

    @staticmethod
    def forward(ctx: Any, pre_BF: torch.Tensor, theta_F: torch.Tensor, eps: float) -> torch.Tensor:
        ctx.save_for_backward(pre_BF, theta_F)
        ctx.eps = eps
        return (pre_BF > theta_F).to(pre_BF.dtype)

    @staticmethod
    def backward(ctx: Any, g_BF: torch.Tensor) -> tuple[None, torch.Tensor, None]:
        pre, theta = ctx.saved_tensors
        eps = ctx.eps
        g_theta = (-(1.0 / eps) * _rect((pre - theta) / eps) * g_BF).sum(0)
        return None, g_theta, None


@register_arch("jumprelu", saelens="jumprelu")
class JumpReluSAE(SAE):
    """z = pre * H(pre - theta) with a learned threshold per latent; L0 penalty."""

    config_class = JumpReluConfig
    cfg: JumpReluConfig

    def __init__(self, cfg: JumpReluConfig):
        super().__init__(cfg)
        self.threshold_F = nn.Parameter(torch.full((cfg.d_sae,), float(cfg.jumprelu_init_threshold)))

    @torch.no_grad()
    def fold_scale_(self, scale: float) -> None:
        super().fold_scale_(scale)
        self.threshold_F.div_(scale)

    def saelens_tensors(self) -> dict[str, torch.Tensor]:
        return {"threshold": self.threshold_F.detach().relu()}

    @torch.no_grad()
    def load_saelens_threshold(self, threshold: torch.Tensor | None) -> None:
        if threshold is not None:
            self.threshold_F.copy_(threshold)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        super().reset_parameters(generator)
        self.threshold_F.fill_(self.cfg.jumprelu_init_threshold)

    def encode(self, x_Bd: Float[Tensor, "B d"]) -> Float[Tensor, "B F"]:
        pre = self.pre_acts(x_Bd).relu()
        return pre * (pre > self.threshold_F.relu())

    def forward(
        self,
        x_Bd: Float[Tensor, "B d"],
        dead_F: Bool[Tensor, " F"] | None = None,
        sparsity_scale: float = 1.0,
    ) -> SAEOutput:
        pre = self.pre_acts(x_Bd).relu()
        theta = self.threshold_F.relu()
        eps = self.cfg.jumprelu_bandwidth
        z = _JumpReLU.apply(pre, theta, eps)
        x_hat = self.decode(z)
        mse = mse_sum(x_hat, x_Bd)
        l0 = _Step.apply(pre, theta, eps).sum(-1).mean()
        loss = mse + sparsity_scale * self.cfg.l0_coeff * l0
        return SAEOutput(x_hat, {"loss": loss, "mse": mse.detach(), "l0": l0.detach()}, z_dense=z)
