"""Ask a multimodal LLM (``llava-hf/llava-1.5-7b-hf``, the world's tiny LLaVA, LLaVA-NeXT, Gemma 3,
Idefics3 ...: `vsae.models.families.mllm`) a question about images, the way their model cards do:
chat template, processor (one image per prompt), greedy ``generate``, decode; the hook its
projector reads (`default_hook`) and an SAE's latents there, pooled per image (`pooled_latents`).
Used by the MLLM steering experiment (`vsae.experiments.mllm_steering`), the browser and the world."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

import vsae.models
from vsae.errors import VsaeError
from vsae.models import LoadedModel
from vsae.models.families.mllm import (  # the family owns its chat format
    LAYOUTS,
    conversation,
    processor_images,
)
from vsae.models.tokens import as_tokens
from vsae.sae import SAE

_WORD = re.compile(r"[^\W\d_]+|\d+")


@torch.no_grad()
def ask(
    model: Any,
    processor: Any,
    images: Sequence[Image.Image],
    question: str,
    max_new_tokens: int = 8,
    batch_size: int = 32,
) -> list[str]:
    """The decoded answer (greedy) of ``model`` to ``question`` for each image."""
    prompt = processor.apply_chat_template(conversation(question), add_generation_prompt=True)
    p = next(model.parameters())
    answers: list[str] = []
    for s in range(0, len(images), batch_size):
        chunk = list(images[s : s + batch_size])
        inputs = processor(images=processor_images(chunk), text=[prompt] * len(chunk), return_tensors="pt")
        inputs = {
            k: v.to(p.device, p.dtype) if v.is_floating_point() else v.to(p.device) for k, v in inputs.items()
        }
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        answers += processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return [a.strip() for a in answers]


def first_word(answer: str) -> str:
    """The first word of an answer, lower-cased ("" if none): what the steering score embeds."""
    m = _WORD.search(answer)
    return m.group(0).lower() if m else ""


@dataclass(frozen=True)
class LatentStats:
    """Per-image latents and the scale of the hooked activations (to choose a clamp value).

    acts_NF: SAE latents mean-pooled over patch tokens, per image (what the HAI come from).
    max_token_F: each latent's largest activation on any single token.
    mean_token_norm: mean L2 norm of the hooked token activations.
    """

    acts_NF: np.ndarray
    max_token_F: np.ndarray
    mean_token_norm: float


@torch.no_grad()
def pooled_latents(
    lm: LoadedModel, hook: str, sae: SAE, images: list[Image.Image], batch_size: int = 32
) -> LatentStats:
    """SAE latents at ``hook`` mean-pooled over patch tokens per image, with scale statistics."""
    p = next(sae.parameters())
    out: list[np.ndarray] = []
    mx: np.ndarray | None = None
    norm_sum, n_tok = 0.0, 0
    for s in range(0, len(images), batch_size):
        with vsae.models.capture(lm, hook) as cap:
            lm.run(lm.preprocess(images[s : s + batch_size]))
        x_BTd = as_tokens(cap.output)  # a [B, C, H, W] feature map as [B, H*W, C], as extraction
        if x_BTd.ndim != 3:
            raise VsaeError(
                f"hook {hook} gives pooled [B, d] activations; steer at a token-level hook (resid.L)"
            )
        x_BTd = x_BTd[:, lm.n_prefix :]
        B, T, d = x_BTd.shape
        x_Nd = x_BTd.reshape(B * T, d).to(p.device, p.dtype)
        z = sae.encode(x_Nd).float()
        out.append(z.reshape(B, T, -1).mean(1).cpu().numpy())
        m = z.amax(0).cpu().numpy()
        mx = m if mx is None else np.maximum(mx, m)
        norm_sum += float(x_Nd.float().norm(dim=-1).sum())
        n_tok += B * T
    if mx is None:
        raise VsaeError("no images to compute latents on; give at least one image")
    return LatentStats(np.concatenate(out), mx, norm_sum / max(n_tok, 1))


def default_hook(lm: LoadedModel) -> str:
    """The vision hidden state the model's projector reads (``vision_feature_layer``, else the
    model type's own: LLaVA -2, Gemma 3 / Idefics3 / SmolVLM the last), as a resid hook."""
    layer = getattr(lm.full_model.config, "vision_feature_layer", None)
    if layer is None:
        layer = LAYOUTS[lm.family].feature_layer if lm.family in LAYOUTS else -2
    if not isinstance(layer, int):
        layer = layer[-1]
    # hidden_states[0] is the embedding output, so hidden_states[i] = output of block i - 1.
    idx = layer % (lm.num_layers + 1)
    if idx == 0:
        raise VsaeError("LLaVA reads the vision embeddings (vision_feature_layer 0); give --hook")
    return f"resid.{idx - 1}"


def hook_width(lm: LoadedModel, hook: str) -> int:
    """Width d of the activations at ``hook`` (from a one-image forward pass)."""
    with vsae.models.capture(lm, hook) as cap:
        lm.run(lm.dummy_inputs())
    return int(as_tokens(cap.output).shape[-1])
