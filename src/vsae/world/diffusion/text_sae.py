"""The SAE on the tiny diffusion model's text encoder, through which generation is steered
(Olson et al.: SAEs on a diffusion model's text encoder steer it semantically).

Rows are per-token activations of the text encoder (the ``clip_text`` family) at ``resid.L``
over world captions, padding excluded (`vsae.models.capture` + `select_tokens` with the
attention mask, as `vsae extract` does for text); training is `vsae.train.train`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vsae.steer.diffusion_latents import text_token_rows
from vsae.train.recipe import TrainRecipe
from vsae.world.training import train_world_sae

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class TextSAEConfig:
    """The text-encoder SAE of the tiny diffusion model.

    Attributes
    ----------
    hook: text-encoder hook (``resid.-1``: the last block, which the UNet reads after the final
        layer norm).
    n_captions: world captions (train split, the diffusion model's caption mix) to take tokens from.
    expansion, k, arch: dictionary size d_sae = expansion * d and active latents per token
        (8x, k = 1: close to one latent per word of the world's 60, so that a colour or size
        has a latent of its own to steer with; docs/diffusion.md).
    recipe: training (`vsae.train`: steps, batch_size, lr, seed; the seed also picks the captions).
    """

    hook: str = "resid.-1"
    n_captions: int = 20000
    expansion: int = 8
    k: int = 1
    arch: str = "topk"
    recipe: TrainRecipe = TrainRecipe(steps=2000, batch_size=256, lr=1e-3, seed=0)


def world_captions(n: int, seed: int) -> list[str]:
    """``n`` captions of train-split images in the diffusion model's training mix (canonical or a
    CLIP template; no empty captions)."""
    from vsae.world.diffusion.t2i_train import DiffusionTrainConfig, batch_captions
    from vsae.world.generate import generate

    recs = [r.to_dict() for r in generate("train", n, seed=seed + 104729).records]
    rng = np.random.default_rng(seed)
    return batch_captions(recs, rng, DiffusionTrainConfig(p_empty=0.0))


def train_text_sae(
    pipeline_dir: str | Path,
    out_dir: str | Path,
    cfg: TextSAEConfig = TextSAEConfig(),
    progress: bool = True,
    captions: Sequence[str] | None = None,
    device: str = "cpu",
) -> Path:
    """Train an SAE on the text encoder of the pipeline at ``pipeline_dir`` (the tiny world model
    or a Stable Diffusion directory / hub id) over ``captions`` (default: ``cfg.n_captions`` world
    captions); returns the SAE directory."""
    from vsae.steer.diffusion_pipeline import load_pipe

    pipe = load_pipe(pipeline_dir, device=device)
    caps = list(captions) if captions is not None else world_captions(cfg.n_captions, cfg.recipe.seed)
    x, _, _ = text_token_rows(pipe.text, cfg.hook, caps)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.recipe.seed))
    x = x[perm]
    prov = {
        "model": str(pipeline_dir),
        "tower": "text_encoder",
        "hook": cfg.hook,
        "tokens": "all (padding excluded)",
        "data": f"world:train-captions:{cfg.n_captions}" if captions is None else f"captions:{len(caps)}",
    }
    return train_world_sae(x, prov, cfg, "text_sae", out_dir, progress=progress, device=device)
