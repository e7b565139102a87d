"""Assemble the tiny LLaVA: the shapes-world CLIP vision tower + a projector + a small Llama.

A plain `transformers.LlavaForConditionalGeneration` with a `LlavaProcessor`
(CLIPImageProcessor + word-level tokenizer + llava-1.5 chat template), so it is driven exactly
like ``llava-hf/llava-1.5-7b-hf``. As in llava-1.5 the projector reads the vision tower's
second-to-last hidden state (``vision_feature_layer=-2``) without the CLS token
(``vision_feature_select_strategy="default"``); the processor therefore expands ``<image>``
into (32/8)^2 + 1 - 1 = 16 placeholders (``patch_size=8``, ``num_additional_image_tokens=1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from transformers import (
    CLIPImageProcessor,
    CLIPModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from vsae.errors import VsaeError
from vsae.models.hf import safe_from_pretrained
from vsae.world.llava.chat_tokenizer import CHAT_TEMPLATE, IMAGE, build_llava_tokenizer


@dataclass(frozen=True)
class LlavaArch:
    """Architecture of the tiny LLaVA's language side (the vision tower comes from a CLIP).

    Attributes
    ----------
    hidden: Llama hidden size (also the projector's output width).
    layers: Llama decoder layers.
    heads: attention heads (key/value heads too).
    intermediate: Llama MLP width.
    max_positions: longest sequence (prompt + 16 image tokens + answer).
    vision_feature_layer: hidden state of the vision tower the projector reads (-2 as llava-1.5).
    """

    hidden: int = 128
    layers: int = 2
    heads: int = 4
    intermediate: int = 256
    max_positions: int = 160
    vision_feature_layer: int = -2


def random_clip_vision_config() -> CLIPVisionConfig:
    """A tiny CLIP vision config for world images (32 px, patch 8), used when no trained CLIP is given."""
    return CLIPVisionConfig(
        image_size=32,
        patch_size=8,
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
    )


def load_vision_tower(clip_dir: str | Path | None) -> tuple[CLIPVisionModel, CLIPImageProcessor]:
    """The vision tower and image processor of a CLIP checkpoint, or random ones if ``clip_dir`` is None."""
    if clip_dir is None:
        from vsae.world.training import world_mean_std

        mean, std = world_mean_std()
        proc = CLIPImageProcessor(
            size={"shortest_edge": 32},
            crop_size={"height": 32, "width": 32},
            image_mean=list(mean),
            image_std=list(std),
        )
        return CLIPVisionModel(random_clip_vision_config()), proc
    try:
        full = safe_from_pretrained(CLIPModel, clip_dir, "the CLIP at")
        proc = CLIPImageProcessor.from_pretrained(str(clip_dir))
    except (OSError, ValueError) as e:
        raise VsaeError(
            f"cannot load the CLIP at {clip_dir} ({str(e).splitlines()[0][:120]}); give a CLIPModel directory"
        ) from None
    vision = CLIPVisionModel(cast(CLIPVisionConfig, full.config.vision_config))
    vision.load_state_dict(full.vision_model.state_dict())
    return vision.eval(), proc


def build_llava(
    clip_dir: str | Path | None, arch: LlavaArch = LlavaArch(), seed: int = 0
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """A fresh tiny LLaVA (random projector and language model) around a CLIP's vision tower."""
    torch.manual_seed(seed)
    tok = build_llava_tokenizer()
    vision, image_processor = load_vision_tower(clip_dir)
    vcfg = vision.config
    size, patch = cast(int, vcfg.image_size), cast(int, vcfg.patch_size)
    if size % patch:
        raise VsaeError(f"vision tower image size {size} is not a multiple of its patch size {patch}")
    n_image_tokens = (size // patch) ** 2
    text = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=arch.hidden,
        intermediate_size=arch.intermediate,
        num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads,
        num_key_value_heads=arch.heads,
        max_position_embeddings=arch.max_positions,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    cfg = LlavaConfig(
        vision_config=vcfg.to_dict(),
        text_config=text,
        image_token_index=cast(int, tok.convert_tokens_to_ids(IMAGE)),
        image_seq_length=n_image_tokens,
        vision_feature_layer=arch.vision_feature_layer,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    model = LlavaForConditionalGeneration(cfg)
    model.model.vision_tower.load_state_dict(vision.state_dict())
    gc = model.generation_config
    gc.eos_token_id, gc.pad_token_id, gc.bos_token_id = tok.eos_token_id, tok.pad_token_id, tok.bos_token_id
    gc.max_new_tokens, gc.do_sample = 24, False
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=vcfg.patch_size,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE,
        num_additional_image_tokens=1,  # the CLS token, dropped again by the "default" strategy
    )
    return model, processor


def conversation(question: str) -> list[dict]:
    """A one-turn llava-hf conversation with one image."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
