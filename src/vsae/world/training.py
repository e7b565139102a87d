"""Shared pieces of the world models' trainers: seeding, pixel normalisation, LR schedule."""

from __future__ import annotations

import functools
import math
import random

import numpy as np
import torch

from vsae.world.generate import generate


def seed_everything(seed: int) -> torch.Generator:
    """Seed python/numpy/torch, turn on deterministic algorithms; returns a torch generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


@functools.cache
def world_mean_std() -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std of train images in [0, 1] (4096 images, seed 0), 4 decimals.
    These are the image processors' ``image_mean``/``image_std``."""
    x = generate("train", 4096, seed=0).images_NHWC.reshape(-1, 3).astype(np.float64) / 255.0
    mean = tuple(round(float(v), 4) for v in x.mean(0))
    std = tuple(round(float(v), 4) for v in x.std(0))
    return mean, std  # type: ignore[return-value]


def pixel_values(images_NHWC: np.ndarray) -> torch.Tensor:
    """float32 [N, 3, H, W] exactly as the shipped image processors make them from 32 px images
    (rescale by 1/255, normalise by `world_mean_std`)."""
    mean, std = world_mean_std()
    x = torch.from_numpy(images_NHWC).permute(0, 3, 1, 2).float() / 255.0
    m = torch.tensor(mean, dtype=torch.float32)[None, :, None, None]
    s = torch.tensor(std, dtype=torch.float32)[None, :, None, None]
    return (x - m) / s


def cosine_lr(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to ``peak`` then cosine decay to 0."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def train_world_sae(
    x_Nd: torch.Tensor,
    provenance: dict,
    cfg,
    name: str,
    out_dir,
    *,
    progress: bool = False,
    device: str = "cpu",
):
    """Train one SAE of a world model (the LLaVA's steering SAE, the diffusion text SAE) with
    `vsae.train` on rows ``x_Nd`` (already in a seeded random order): the first
    ``min(4096, N // 10)`` rows are held out for validation, the rest train. ``cfg`` carries
    ``arch, expansion, k, steps, batch_size, lr, seed``; returns the saved SAE directory."""
    from pathlib import Path

    import vsae.sae
    import vsae.train

    d = x_Nd.shape[1]
    sae_cfg = vsae.sae.SAEConfig(
        arch=cfg.arch,
        d_in=d,
        d_sae=cfg.expansion * d,
        k=cfg.k,
        aux_k=2 * cfg.k,
        name=name,
        provenance=provenance,
    )
    tcfg = vsae.train.TrainConfig(
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=cfg.seed,
        val_rows=min(4096, len(x_Nd) // 10),
        ckpt_every=0,
        log_every=max(1, cfg.steps // 10),
        init_rows=min(8192, len(x_Nd)),
        device=device,
    )
    n_val = tcfg.val_rows
    source = vsae.train.TensorSource(x_Nd[n_val:], provenance)
    val = vsae.train.TensorSource(x_Nd[:n_val], provenance) if n_val else None
    dirs = vsae.train.train(source, [sae_cfg], tcfg, out_dir, val=val, progress=progress)
    return Path(dirs[0])
