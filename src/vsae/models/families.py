"""The registry of model families: how to find a family's blocks, sub-layers and tokens.

A family is detected from the Hugging Face config's `model_type`. Each entry says which
transformers class to load, where the attention / MLP sub-layer outputs of a block are (the
tensors each adds to the residual stream), how many prefix tokens (CLS, registers) precede the
patch tokens, and what the `embed` hook reads from the model output.
"""

from __future__ import annotations

from dataclasses import dataclass

from vsae.errors import VsaeError


@dataclass(frozen=True)
class FamilySpec:
    """How one model family is laid out.

    Attributes
    ----------
    name: family name recorded in provenance ("clip", "clip_text", "siglip", "dinov2", "vit", "llava").
    modality: "image" (pixel_values in) or "text" (input_ids + attention_mask in).
    attn: candidate names, inside a block, of the module whose output is the attention
        sub-layer's contribution to the residual stream (first that exists wins).
    mlp: the same for the MLP sub-layer.
    has_cls: whether token 0 is a CLS token.
    embed_fields: model-output fields read by the `embed` hook, first present wins
        (projected embedding before pooled output).
    """

    name: str
    modality: str
    attn: tuple[str, ...]
    mlp: tuple[str, ...]
    has_cls: bool
    embed_fields: tuple[str, ...]


_IMG_EMBED = ("image_embeds", "pooler_output")
_TXT_EMBED = ("text_embeds", "pooler_output")

FAMILIES: dict[str, FamilySpec] = {
    "clip": FamilySpec("clip", "image", ("self_attn",), ("mlp",), True, _IMG_EMBED),
    "clip_text": FamilySpec("clip_text", "text", ("self_attn",), ("mlp",), False, _TXT_EMBED),
    "siglip": FamilySpec("siglip", "image", ("self_attn",), ("mlp",), False, _IMG_EMBED),
    # DINOv2 scales each sub-layer (LayerScale) before adding it to the residual stream.
    "dinov2": FamilySpec("dinov2", "image", ("layer_scale1",), ("layer_scale2",), True, _IMG_EMBED),
    "vit": FamilySpec("vit", "image", ("attention",), ("mlp", "output"), True, _IMG_EMBED),
    # LLaVA's language model (a decoder LM such as Llama / Mistral / Qwen2) run on text.
    "llava_lm": FamilySpec("llava", "text", ("self_attn",), ("mlp",), False, ()),
}

# config.model_type -> (family key, default transformers class name for that model_type)
MODEL_TYPES: dict[str, tuple[str, str]] = {
    "clip": ("clip", "CLIPModel"),
    "clip_vision_model": ("clip", "CLIPVisionModel"),
    "clip_text_model": ("clip_text", "CLIPTextModel"),
    "siglip": ("siglip", "SiglipModel"),
    "siglip_vision_model": ("siglip", "SiglipVisionModel"),
    "dinov2": ("dinov2", "Dinov2Model"),
    "dinov2_with_registers": ("dinov2", "Dinov2WithRegistersModel"),
    "vit": ("vit", "ViTModel"),
    "llava": ("clip", "LlavaForConditionalGeneration"),  # family of the vision tower, set at load
}

# Classes that may be named in config.architectures and are loaded as such.
ALLOWED_ARCHITECTURES: dict[str, tuple[str, ...]] = {
    "clip_vision_model": ("CLIPVisionModel", "CLIPVisionModelWithProjection"),
    "clip_text_model": ("CLIPTextModel", "CLIPTextModelWithProjection"),
    "siglip_vision_model": ("SiglipVisionModel",),
    "dinov2": ("Dinov2Model",),
    "dinov2_with_registers": ("Dinov2WithRegistersModel",),
    "vit": ("ViTModel",),
}


def family_for_model_type(model_type: str) -> tuple[str, str]:
    """(family key, transformers class name) for a config's model_type; VsaeError if unsupported."""
    if model_type not in MODEL_TYPES:
        raise VsaeError(
            f"unsupported model_type {model_type!r}; supported: {', '.join(sorted(MODEL_TYPES))} "
            f"(or pass any torch.nn.Module through the Python API: vsae.models.from_module)"
        )
    return MODEL_TYPES[model_type]
