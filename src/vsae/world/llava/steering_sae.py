"""The SAE the tiny LLaVA is steered with, trained as Pach et al. train theirs: on ``random:2``
patch tokens per image of the vision encoder's residual stream at the layer LLaVA reads
(their CLIP ViT-L/14-336 layer 22, expansion 64, k = 20; here a 64-wide tower, so a smaller
dictionary). Activations come from `vsae.models.capture` + `select_tokens`, training from
`vsae.train.train` -- the same code paths as `vsae extract` + `vsae train`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vsae.train.recipe import TrainRecipe
from vsae.world.training import train_world_sae

if TYPE_CHECKING:
    from vsae.models.loaded import LoadedModel


@dataclass(frozen=True)
class SteeringSAEConfig:
    """The steering SAE of the tiny LLaVA.

    Attributes
    ----------
    hook: vision-tower hook; None = the layer the projector reads (`default_hook`).
    tokens: token selection per image (the paper: 2 random patch tokens).
    n_images: train-split world images activations are taken from.
    expansion, k, arch: dictionary size d_sae = expansion * d and active latents per token.
    recipe: training (`vsae.train`: steps, batch_size, lr); its seed also seeds token sampling.
    """

    hook: str | None = None
    tokens: str = "random:2"
    n_images: int = 10000
    expansion: int = 8
    k: int = 8
    arch: str = "topk"
    recipe: TrainRecipe = TrainRecipe(steps=1500, batch_size=256, lr=1e-3, seed=0)


@torch.no_grad()
def token_rows(
    lm: LoadedModel, hook: str, tokens: str, images_NHWC: np.ndarray, seed: int, batch_size: int = 256
) -> torch.Tensor:
    """[n, d] activations at ``hook`` of the selected tokens of every image."""
    from PIL import Image

    import vsae.models

    rows = []
    for s in range(0, len(images_NHWC), batch_size):
        pil = [Image.fromarray(a) for a in images_NHWC[s : s + batch_size]]
        with vsae.models.capture(lm, hook) as cap:
            lm.run(lm.preprocess(pil))
        ids = np.arange(s, s + len(pil), dtype=np.int64)
        r, _, _ = vsae.models.select_tokens(
            cap.output, tokens, lm.has_cls, ids, seed=seed, n_prefix=lm.n_prefix
        )
        rows.append(r.float().clone())
    return torch.cat(rows)


def train_steering_sae(
    llava_dir: str | Path,
    out_dir: str | Path,
    cfg: SteeringSAEConfig = SteeringSAEConfig(),
    progress: bool = True,
) -> Path:
    """Train the steering SAE of the LLaVA at ``llava_dir``; returns the saved SAE directory."""
    import vsae.models
    from vsae.steer.mllm import default_hook
    from vsae.world import generate

    lm = vsae.models.load(str(llava_dir))
    hook = cfg.hook or default_hook(lm)
    x = token_rows(
        lm,
        hook,
        cfg.tokens,
        generate("train", cfg.n_images, seed=cfg.recipe.seed).images_NHWC,
        cfg.recipe.seed,
    )
    prov = {
        "model": str(llava_dir),
        "hook": hook,
        "tokens": cfg.tokens,
        "data": f"world:train:{cfg.n_images}",
    }
    return train_world_sae(x, prov, cfg, "steering_sae", out_dir, progress=progress)
