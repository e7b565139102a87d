"""Train the tiny CLIP of the shapes world contrastively on its image-caption pairs.

Radford et al., "Learning transferable visual models from natural language supervision"
(CLIP): a symmetric cross-entropy over image-text cosine similarities with a learned
temperature. Because short captions ("a star") repeat within a batch, the targets are soft:
every pair with the same caption text is a positive (uniform over them).

The result is a plain `transformers.CLIPModel` plus tokenizer and `CLIPImageProcessor`,
written with `save_pretrained`, so `CLIPModel/AutoModel/AutoProcessor.from_pretrained(dir)`
load it exactly as they load `openai/clip-vit-*`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, PreTrainedTokenizerBase

from vsae.store.safe_io import atomic_write_json
from vsae.train.recipe import TrainRecipe
from vsae.world.captions import training_captions
from vsae.world.clip_tokenizer import MAX_LENGTH, build_tokenizer
from vsae.world.clip_zeroshot import zero_shot_eval
from vsae.world.generate import IMAGE_SIZE, generate
from vsae.world.training import (
    WorldTrainConfig,
    decay_groups,
    fit,
    pixel_values,
    seed_everything,
    world_mean_std,
)


@dataclass(frozen=True)
class ClipConfig:
    """Architecture and training of the world's tiny CLIP."""

    recipe: TrainRecipe = TrainRecipe(
        steps=2500, batch_size=128, lr=2e-3, seed=0, warmup=100, weight_decay=0.05
    )
    n_images: int = 20000  # size of the train-split pool the batches are drawn from
    patch_size: int = 4
    vision_hidden: int = 64
    vision_layers: int = 3
    text_hidden: int = 64
    text_layers: int = 2
    heads: int = 4
    projection_dim: int = 64


def clip_model_config(cfg: ClipConfig, vocab_size: int, tokenizer: PreTrainedTokenizerBase) -> CLIPConfig:
    return CLIPConfig(
        text_config=dict(
            vocab_size=vocab_size,
            hidden_size=cfg.text_hidden,
            intermediate_size=4 * cfg.text_hidden,
            num_hidden_layers=cfg.text_layers,
            num_attention_heads=cfg.heads,
            max_position_embeddings=MAX_LENGTH,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        vision_config=dict(
            image_size=IMAGE_SIZE,
            patch_size=cfg.patch_size,
            hidden_size=cfg.vision_hidden,
            intermediate_size=4 * cfg.vision_hidden,
            num_hidden_layers=cfg.vision_layers,
            num_attention_heads=cfg.heads,
        ),
        projection_dim=cfg.projection_dim,
    )


def image_processor() -> CLIPImageProcessor:
    """A 32 px image processor with the world's mean/std (resize/crop are no-ops on world images)."""
    mean, std = world_mean_std()
    return CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=list(mean),
        image_std=list(std),
    )


def contrastive_loss(
    img_BD: torch.Tensor, txt_BD: torch.Tensor, scale: torch.Tensor, caption_ids_B: torch.Tensor
) -> torch.Tensor:
    """Symmetric CLIP loss with soft targets over pairs that share a caption."""
    img = F.normalize(img_BD, dim=-1)
    txt = F.normalize(txt_BD, dim=-1)
    logits_BB = scale * img @ txt.T
    same_BB = (caption_ids_B[:, None] == caption_ids_B[None, :]).float()
    target_BB = same_BB / same_BB.sum(1, keepdim=True)  # symmetric eq. matrix: same for both directions
    loss_i = -(target_BB * logits_BB.log_softmax(1)).sum(1).mean()
    loss_t = -(target_BB * logits_BB.T.log_softmax(1)).sum(1).mean()
    return 0.5 * (loss_i + loss_t)


def train_clip(
    out_dir: str | Path, cfg: ClipConfig = ClipConfig(), progress: bool = True, eval_every: int = 0
) -> dict:
    """Train the tiny CLIP and ``save_pretrained`` model, tokenizer and processor to ``out_dir``.
    Returns a summary (config, final loss, seconds)."""
    t0, c0 = time.time(), time.process_time()
    gen = seed_everything(cfg.recipe.seed)
    rng = np.random.default_rng(cfg.recipe.seed)
    tok = build_tokenizer()
    model = CLIPModel(clip_model_config(cfg, len(tok), tok))
    model.train()
    pool = generate("train", cfg.n_images, seed=cfg.recipe.seed)
    recs = [r.to_dict() for r in pool.records]
    pix_all = pixel_values(pool.images_NHWC)
    val = generate("val", 300, seed=cfg.recipe.seed)
    val_pix = pixel_values(val.images_NHWC)

    def batches() -> Iterator[tuple[torch.Tensor, list[str]]]:
        while True:
            idx = torch.randint(0, len(recs), (cfg.recipe.batch_size,), generator=gen)
            yield idx, training_captions([recs[i] for i in idx.tolist()], rng)

    def loss_fn(step: int, batch: tuple[torch.Tensor, list[str]]) -> torch.Tensor:
        idx, caps = batch
        enc = tok(caps, padding=True, return_tensors="pt")
        _, cap_ids = np.unique(np.array(caps), return_inverse=True)
        img = model.get_image_features(pixel_values=pix_all[idx])
        txt = model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        img = getattr(img, "pooler_output", img)  # transformers 5 may return a model output
        txt = getattr(txt, "pooler_output", txt)
        return contrastive_loss(img, txt, model.logit_scale.exp(), torch.from_numpy(cap_ids.reshape(-1)))

    def after_step(step: int) -> None:
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100.0))
        if eval_every and (step + 1) % eval_every == 0:
            model.eval()
            acc = zero_shot_eval(model, tok, val_pix, val)
            model.train()
            tqdm.write(f"step {step + 1} {time.time() - t0:.0f}s val zero-shot {acc}")

    res = fit(
        decay_groups(model.parameters(), cfg.recipe.weight_decay),  # no weight decay on biases, norms, scale
        batches(),
        loss_fn,
        WorldTrainConfig(cfg.recipe, desc="tiny CLIP"),
        clip=list(model.parameters()),
        after_step=after_step,
        progress=progress,
    )
    model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    CLIPProcessor(image_processor=image_processor(), tokenizer=tok).save_pretrained(out)
    summary = {
        "config": asdict(cfg),
        "final_loss": res.mean_loss(50),
        "seconds": round(time.time() - t0, 1),
        "cpu_seconds": round(time.process_time() - c0, 1),
        "torch_threads": torch.get_num_threads(),
    }
    atomic_write_json(out / "vsae_world_build.json", summary, indent=2)
    return summary
