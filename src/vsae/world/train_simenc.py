"""Train the similarity encoder of the shapes world: a small `transformers.ViTModel`.

The Monosemanticity Score (Pach et al., "Sparse autoencoders learn monosemantic features in
vision-language models") compares images with embeddings from a *different* model than the
one being explained (they score CLIP-L latents with CLIP-B/32 or DINOv2). Here that model is a
ViT trained with another objective: supervised multi-attribute classification (one linear
head per attribute on the pooled output). Only the ViT (with its pooler) and a
`ViTImageProcessor` are saved; its ``pooler_output`` is the embedding the MS uses.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import ViTConfig, ViTImageProcessor, ViTModel

from vsae.models.hf import safe_from_pretrained
from vsae.store.safe_io import atomic_write_json
from vsae.train.recipe import TrainRecipe
from vsae.world.generate import IMAGE_SIZE, attribute_vocab, generate
from vsae.world.training import (
    ParamGroup,
    WorldTrainConfig,
    fit,
    pixel_values,
    seed_everything,
    world_mean_std,
)

# The attributes the heads predict (all image-determining categorical attributes + position).
TARGETS: tuple[str, ...] = ("class_name", "colour", "size", "background", "tone", "outline", "position")


@dataclass(frozen=True)
class SimEncConfig:
    """Architecture and training of the world's similarity encoder."""

    recipe: TrainRecipe = TrainRecipe(
        steps=2000, batch_size=128, lr=2e-3, seed=1, warmup=50, weight_decay=0.05
    )
    n_images: int = 20000  # train-split pool
    patch_size: int = 4
    hidden: int = 64
    layers: int = 3
    heads: int = 4
    class_weight: float = 3.0  # loss weight of the class head (shape is the slowest attribute to learn)


def vit_config(cfg: SimEncConfig) -> ViTConfig:
    return ViTConfig(
        image_size=IMAGE_SIZE,
        patch_size=cfg.patch_size,
        hidden_size=cfg.hidden,
        intermediate_size=4 * cfg.hidden,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
    )


def simenc_image_processor() -> ViTImageProcessor:
    mean, std = world_mean_std()
    return ViTImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=list(mean), image_std=list(std)
    )


def train_simenc(out_dir: str | Path, cfg: SimEncConfig = SimEncConfig(), progress: bool = True) -> dict:
    """Train the ViT with attribute heads; ``save_pretrained`` the ViT and its image processor."""
    t0, c0 = time.time(), time.process_time()
    gen = seed_everything(cfg.recipe.seed)
    model = ViTModel(vit_config(cfg), add_pooling_layer=True)
    heads = torch.nn.ModuleDict({t: torch.nn.Linear(cfg.hidden, len(attribute_vocab(t))) for t in TARGETS})
    pool = generate("train", cfg.n_images, seed=cfg.recipe.seed)
    pix_all = pixel_values(pool.images_NHWC)
    y_all = {t: torch.from_numpy(pool.labels(t)) for t in TARGETS}
    params = tuple(model.parameters()) + tuple(heads.parameters())
    model.train()

    def batches() -> Iterator[torch.Tensor]:
        while True:
            yield torch.randint(0, len(pix_all), (cfg.recipe.batch_size,), generator=gen)

    def loss_fn(step: int, idx: torch.Tensor) -> torch.Tensor:
        emb_BD = model(pixel_values=pix_all[idx]).pooler_output
        losses = [
            (cfg.class_weight if t == "class_name" else 1.0)
            * F.cross_entropy(heads[t](emb_BD), y_all[t][idx])
            for t in TARGETS
        ]
        return sum(losses[1:], losses[0])

    res = fit(
        [ParamGroup(params, cfg.recipe.weight_decay)],  # weight decay on every parameter, the heads' too
        batches(),
        loss_fn,
        WorldTrainConfig(cfg.recipe, desc="similarity encoder"),
        progress=progress,
    )
    model.eval()
    with torch.no_grad():  # held-out accuracy of the heads, for the build summary
        val = generate("val", 500, seed=cfg.recipe.seed)
        emb = model(pixel_values=pixel_values(val.images_NHWC)).pooler_output
        val_acc = {t: float((heads[t](emb).argmax(1).numpy() == val.labels(t)).mean()) for t in TARGETS}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    simenc_image_processor().save_pretrained(out)
    summary = {
        "config": asdict(cfg),
        "final_loss": res.mean_loss(50),
        "val_head_accuracy": val_acc,
        "seconds": round(time.time() - t0, 1),
        "cpu_seconds": round(time.process_time() - c0, 1),
        "torch_threads": torch.get_num_threads(),
    }
    atomic_write_json(out / "vsae_world_build.json", summary, indent=2)
    return summary


@torch.no_grad()
def embed(images: Sequence[Image.Image], model_dir: str | Path, batch_size: int = 256) -> np.ndarray:
    """float32 [N, D] pooled embeddings of PIL images by the similarity encoder in ``model_dir``
    (loaded with AutoModel/AutoImageProcessor)."""
    from transformers import AutoImageProcessor, AutoModel

    model = safe_from_pretrained(AutoModel, model_dir, "the similarity encoder").eval()
    proc = AutoImageProcessor.from_pretrained(str(model_dir))
    out = []
    for i in range(0, len(images), batch_size):
        pix = proc(images=list(images[i : i + batch_size]), return_tensors="pt")["pixel_values"]
        out.append(model(pixel_values=pix).pooler_output.float().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.hidden_size), np.float32)
