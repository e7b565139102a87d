"""Quick reconstruction metrics of a trained SAE on held-out rows (FVU, MSE, L0, dead fraction).

The full evaluation suite lives in ``vsae.eval``; this is what the trainer logs.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from vsae.sae.base import SAE


@torch.no_grad()
def recon_metrics(sae: SAE, batches: Iterable[torch.Tensor], device: str = "cpu") -> dict[str, float]:
    """FVU = sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over all rows, with inference encode()."""
    was = sae.training
    sae.eval()
    err = 0.0
    n = 0
    s1 = None
    s2 = 0.0
    l0 = 0.0
    fired = None
    for x in batches:
        x = x.to(device)
        z = sae.encode(x)
        x_hat = sae.decode(z)
        err += float((x_hat - x).pow(2).sum())
        s1 = x.sum(0) if s1 is None else s1 + x.sum(0)
        s2 += float(x.pow(2).sum())
        n += x.shape[0]
        nz = z != 0
        l0 += float(nz.sum())
        f = nz.any(0)
        fired = f if fired is None else fired | f
    sae.train(was)
    if n == 0:
        return {}
    var = s2 - float(s1.pow(2).sum()) / n
    return {
        "fvu": err / max(var, 1e-30),
        "mse": err / n,
        "l0": l0 / n,
        "dead_frac": 1.0 - float(fired.float().mean()),
        "rows": n,
    }
