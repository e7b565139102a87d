"""Validation metrics the trainer logs: the evaluation suite's reconstruction metrics
(`vsae.eval.recon`, definitions in METRICS.md) on held-out rows, with inference `encode()`."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from vsae.sae.base import SAE


@torch.no_grad()
def recon_metrics(sae: SAE, batches: Iterable[torch.Tensor], device: str = "cpu") -> dict[str, float]:
    """FVU, MSE, L0 and dead fraction of `sae` over `batches`; {} when there are no rows."""
    from vsae.eval.recon import ReconAccumulator

    was = sae.training
    sae.eval()
    acc = ReconAccumulator()
    for x in batches:
        x = x.to(device)
        z = sae.encode(x)
        acc.update(x, sae.decode(z), z)
    sae.train(was)
    if acc.n == 0:
        return {}
    r = acc.result()
    return {"fvu": r.fvu, "mse": r.mse, "l0": r.l0, "dead_frac": r.dead_fraction, "rows": r.n_rows}
