"""Tiny random-weight text-to-image pipelines for tests (no hub access): the world layout
(folded pixels, a CLIP text encoder with the world tokenizer) and the Stable Diffusion layout
(a `StableDiffusionPipeline` with a tiny VAE), both written with ``save_pretrained``."""

from __future__ import annotations

from pathlib import Path

import torch

from vsae.models.hf import safe_from_pretrained
from vsae.models.tiny_models import save_tiny
from vsae.models.tiny_pipelines import tiny_vae

HIDDEN = 32


def build_tiny_text_encoder(out_dir: str | Path, seed: int = 0) -> Path:
    """A random `CLIPTextModel` (hidden 32, 2 layers) with the world tokenizer, saved to ``out_dir``."""
    from transformers import CLIPTextConfig, CLIPTextModel

    from vsae.world.clip_tokenizer import MAX_LENGTH, build_tokenizer

    torch.manual_seed(seed)
    tok = build_tokenizer()
    cfg = CLIPTextConfig(
        vocab_size=len(tok),
        hidden_size=HIDDEN,
        intermediate_size=4 * HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=MAX_LENGTH,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    return save_tiny(out_dir, CLIPTextModel(cfg), tok)


def build_tiny_world_pipeline(out_dir: str | Path, steps: int = 2, seed: int = 0) -> Path:
    """A world-layout pipeline (``vsae_diffusion.json``, no VAE) trained for ``steps`` steps."""
    from vsae.train.recipe import with_recipe
    from vsae.world.diffusion.t2i_model import UNetConfig
    from vsae.world.diffusion.t2i_train import DiffusionTrainConfig, train_diffusion

    out = Path(out_dir)
    text = build_tiny_text_encoder(out / "_text", seed)
    cfg = DiffusionTrainConfig(
        unet=UNetConfig(channels=(16, 32), heads=2, cross_attention_dim=HIDDEN),
        n_images=64,
        checkpoint_every=0,
    )
    cfg = with_recipe(cfg, seed=seed, steps=steps, batch_size=8)
    train_diffusion(out / "pipe", text, cfg, progress=False)
    return out / "pipe"


def build_tiny_sd_pipeline(out_dir: str | Path, seed: int = 0) -> Path:
    """A random `StableDiffusionPipeline` (UNet on 8x8x4 latents, a 2-level VAE -> 16 px images)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    text_dir = build_tiny_text_encoder(Path(out_dir) / "_text", seed)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=HIDDEN,
        attention_head_dim=2,
        norm_num_groups=8,
    )
    vae = tiny_vae(block_out_channels=(16, 32), norm_num_groups=8, sample_size=16)
    from transformers import AutoTokenizer

    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=safe_from_pretrained(CLIPTextModel, text_dir, "the text encoder"),
        tokenizer=AutoTokenizer.from_pretrained(str(text_dir)),
        unet=unet,
        scheduler=DDIMScheduler(
            beta_schedule="scaled_linear",
            beta_start=0.00085,
            beta_end=0.012,
            clip_sample=False,
            steps_offset=1,  # as Stable Diffusion 1.5's scheduler_config.json
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return save_tiny(Path(out_dir) / "sd", pipe)
