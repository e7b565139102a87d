"""Data-dependent initialisation: input scale and decoder bias."""

from __future__ import annotations

import math

import torch


def input_scale(x_Nd: torch.Tensor) -> float:
    """Scale s with E||s x||^2 = d (unit mean square per coordinate; as SAELens / Anthropic)."""
    ms = x_Nd.pow(2).sum(-1).mean().item()
    if not math.isfinite(ms) or ms <= 0:
        return 1.0
    return math.sqrt(x_Nd.shape[1] / ms)


def geometric_median(x_Nd: torch.Tensor, iters: int = 100, tol: float = 1e-6) -> torch.Tensor:
    """Weiszfeld's algorithm: the point minimising the sum of Euclidean distances to the rows.

    Used to initialise the decoder bias (Bricken et al. 2023, "Towards Monosemanticity").
    """
    y = x_Nd.mean(0)
    for _ in range(iters):
        w = 1.0 / (x_Nd - y).norm(dim=1).clamp_min(1e-8)
        y_new = (w[:, None] * x_Nd).sum(0) / w.sum()
        if (y_new - y).norm() <= tol * max(1.0, y.norm().item()):
            return y_new
        y = y_new
    return y


def decoder_bias(x_Nd: torch.Tensor, how: str) -> torch.Tensor:
    if how == "geometric_median":
        return geometric_median(x_Nd)
    if how == "mean":
        return x_Nd.mean(0)
    return x_Nd.new_zeros(x_Nd.shape[1])
