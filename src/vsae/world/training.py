"""The world models' one training loop (`fit`) and its shared pieces: seeding, pixel
normalisation, the learning-rate schedule, parameter groups, the weight EMA.

Every world model (the tiny CLIP, the similarity encoder, the tiny LLaVA, the text-to-image
model) trains the same way: AdamW (Loshchilov & Hutter, "Decoupled weight decay
regularization") with a linear warm-up and cosine decay, gradient-norm clipping, one seeded
batch per step. A trainer supplies only its parameter groups, its batches and its loss.
"""

from __future__ import annotations

import functools
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from vsae.errors import VsaeError
from vsae.train.recipe import TrainRecipe
from vsae.world.generate import generate

B = TypeVar("B")


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
    """Linear warm-up to ``peak`` then cosine decay to 0 (Loshchilov & Hutter, "SGDR")."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


@dataclass(frozen=True)
class ParamGroup:
    """Parameters that share a weight decay and a learning-rate scale.

    Attributes
    ----------
    params: the parameters (in the order the optimizer sees them).
    weight_decay: AdamW's decoupled weight decay for these parameters.
    lr_scale: their learning rate relative to the schedule's (e.g. 0.1 for a fine-tuned tower).
    """

    params: tuple[torch.nn.Parameter, ...]
    weight_decay: float
    lr_scale: float = 1.0


def decay_groups(
    params: Iterable[torch.nn.Parameter], weight_decay: float, lr_scale: float = 1.0
) -> list[ParamGroup]:
    """Weight decay on matrices only: one group for parameters with ``ndim >= 2`` (decayed), one
    for biases, norms and scalars (not decayed); empty groups are left out."""
    ps = list(params)
    groups = [
        ParamGroup(tuple(p for p in ps if p.ndim >= 2), weight_decay, lr_scale),
        ParamGroup(tuple(p for p in ps if p.ndim < 2), 0.0, lr_scale),
    ]
    return [g for g in groups if g.params]


@dataclass(frozen=True)
class WorldTrainConfig:
    """The optimisation of one world model: AdamW, linear warm-up then cosine decay to 0, and
    gradient-norm clipping.

    Attributes
    ----------
    recipe: the model's training recipe: its steps (one batch each), peak lr (reached at the end
        of the warm-up) and warmup (steps of linear warm-up, `cosine_lr`) are used here.
    grad_clip: maximum global gradient norm (0 = no clipping).
    log_every: every this many steps the progress bar shows (and ``log_path`` gets a JSON line
        with) the mean loss of the last ``log_every`` steps.
    desc: the progress bar's label.
    """

    recipe: TrainRecipe
    grad_clip: float = 1.0
    log_every: int = 50
    desc: str = "train"

    def __post_init__(self) -> None:
        if self.log_every < 1:  # the recipe checks its own fields
            raise VsaeError(
                f"world training needs log_every >= 1 (got {self.log_every}); fix the model's config"
            )


@dataclass(frozen=True)
class FitResult:
    """What `fit` did.

    Attributes
    ----------
    losses: the loss of every step, in order.
    seconds: wall time of the loop.
    """

    losses: tuple[float, ...]
    seconds: float

    def mean_loss(self, last: int = 50) -> float:
        """Mean loss of the last ``last`` steps (the build summaries' ``final_loss``)."""
        return float(np.mean(self.losses[-last:]))


def fit(
    groups: Sequence[ParamGroup],
    batches: Iterable[B],
    loss_fn: Callable[[int, B], torch.Tensor],
    cfg: WorldTrainConfig,
    *,
    clip: Sequence[torch.nn.Parameter] | None = None,
    after_step: Callable[[int], None] | None = None,
    log_path: str | Path | None = None,
    progress: bool = True,
) -> FitResult:
    """Train with AdamW over ``groups`` for ``cfg.recipe.steps`` steps.

    Each step sets every group's learning rate to ``lr_scale * cosine_lr(step, ...)``, draws the
    next batch from ``batches``, computes ``loss_fn(step, batch)``, back-propagates, clips the
    global gradient norm of ``clip`` (default: every group's parameters, in order) to
    ``cfg.grad_clip``, steps the optimizer and then calls ``after_step(step)`` (a parameter
    clamp, an EMA update, an evaluation, a checkpoint). Put the model in train mode first.
    """
    opt = torch.optim.AdamW(
        [{"params": list(g.params), "weight_decay": g.weight_decay} for g in groups], lr=cfg.recipe.lr
    )
    scales = [g.lr_scale for g in groups]
    clip_params = list(clip) if clip is not None else [p for g in groups for p in g.params]
    losses: list[float] = []
    t0 = time.time()
    it = iter(batches)
    bar = tqdm(range(cfg.recipe.steps), desc=cfg.desc, disable=not progress)
    for step in bar:
        lr = cosine_lr(step, cfg.recipe.steps, cfg.recipe.warmup, cfg.recipe.lr)
        for g, scale in zip(opt.param_groups, scales):
            g["lr"] = scale * lr
        loss = loss_fn(step, next(it))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(clip_params, cfg.grad_clip)
        opt.step()
        if after_step is not None:
            after_step(step)
        losses.append(loss.item())
        if (step + 1) % cfg.log_every == 0:
            mean = float(np.mean(losses[-cfg.log_every :]))
            bar.set_postfix(loss=f"{mean:.4g}")
            if log_path is not None:
                with open(log_path, "a") as f:
                    row = {"step": step + 1, "loss": mean, "s": round(time.time() - t0, 1)}
                    f.write(json.dumps(row) + "\n")
    bar.close()
    return FitResult(tuple(losses), time.time() - t0)


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    """Move ``ema``'s parameters towards ``model``'s after optimizer step ``step``, with the decay
    warmed up as ``min(decay, (1 + step) / (10 + step))`` (the EMA of the diffusion literature)."""
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), model.parameters()):
            pe.lerp_(p, 1.0 - d)


class WorldSAEConfig(Protocol):
    """What `train_world_sae` reads of a world SAE's config (the steering SAE's, the text SAE's)."""

    @property
    def arch(self) -> str: ...
    @property
    def expansion(self) -> int: ...
    @property
    def k(self) -> int: ...
    @property
    def recipe(self) -> TrainRecipe: ...


def train_world_sae(
    x_Nd: torch.Tensor,
    provenance: dict[str, Any],
    cfg: WorldSAEConfig,
    name: str,
    out_dir: str | Path,
    *,
    progress: bool = False,
    device: str = "cpu",
) -> Path:
    """Train one SAE of a world model (the LLaVA's steering SAE, the diffusion text SAE) with
    `vsae.train` on rows ``x_Nd`` (already in a seeded random order): the first
    ``min(4096, N // 10)`` rows are held out for validation, the rest train. ``cfg`` carries
    ``arch, expansion, k`` and its ``recipe`` (steps, batch_size, lr, seed); returns the saved SAE directory."""
    import vsae.sae
    import vsae.train

    d = x_Nd.shape[1]
    from vsae.sae.sae_config import config_for

    sae_cfg = config_for(  # k, aux_k: the settings the architecture has
        cfg.arch,
        d_in=d,
        d_sae=cfg.expansion * d,
        k=cfg.k,
        aux_k=2 * cfg.k,
        name=name,
        provenance=provenance,
    )
    tcfg = vsae.train.TrainConfig(
        steps=cfg.recipe.steps,
        batch_size=cfg.recipe.batch_size,
        lr=cfg.recipe.lr,
        seed=cfg.recipe.seed,
        val_rows=min(4096, len(x_Nd) // 10),
        ckpt_every=0,
        log_every=max(1, cfg.recipe.steps // 10),
        init_rows=min(8192, len(x_Nd)),
        device=device,
    )
    n_val = tcfg.val_rows
    source = vsae.train.TensorSource(x_Nd[n_val:], provenance)
    val = vsae.train.TensorSource(x_Nd[:n_val], provenance) if n_val else None
    dirs = vsae.train.train(source, [sae_cfg], tcfg, out_dir, val=val, progress=progress)
    return Path(dirs[0])
