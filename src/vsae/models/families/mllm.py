"""Multimodal LLMs: one layout description per model type, one loader for all of them.

A multimodal LLM is a vision tower, a projector and a decoder language model. `vsae` hooks either
tower (``--tower vision``, the default, or ``--tower language``) with the usual hook names; the
vision tower's blocks are laid out by its own family (a CLIP or SigLIP tower) or by the
description here. What differs between model types is written once per type in `MllmLayout`:
where the towers are, how the model's own image processor gives the vision tower one view per
image, how a batch of images is passed to the processor, and which vision hidden state the
projector reads. `vsae extract-mllm` and `vsae steer mllm` read the same descriptions.

Vision-tower extraction feeds each image once, as the *global view* the model itself computes:

- LLaVA-1.5, Gemma 3 (pan-and-scan off, its default), InternVL (``crop_to_patches=False``, the
  thumbnail view): the processor's ``[B, 3, H, W]`` pixels;
- LLaVA-NeXT / LLaVA-OneVision (any-resolution tiles): tile 0 of ``[B, tiles, 3, H, W]``, the
  whole image resized to the base resolution (the tiles of the any-resolution grid follow it);
- Idefics3 / SmolVLM: ``do_image_splitting=False``, the one global image of ``[B, 1, 3, H, W]``.

Steering and ``extract-mllm`` run the whole model on the processor's full output, all tiles
included (a vision-tower SAE edit applies to every tile the tower sees).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from vsae.errors import VsaeError
from vsae.models import hf
from vsae.models.family_registry import Family, Layout, LoadRequest, for_model_type, register_family
from vsae.models.loaded import LoadedModel

LANGUAGE = Layout("llava", "text", ("self_attn",), ("mlp",), False, ())


def conversation(question: str) -> list[dict[str, Any]]:
    """A one-turn chat: one image, then the question (the structure every chat template here reads)."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]


@dataclass(frozen=True)
class MllmLayout:
    """Where the towers of one multimodal model type are and how it takes images.

    Attributes
    ----------
    model_type: the Hugging Face ``config.model_type``.
    cls: the transformers class loaded.
    vision: dotted path of the vision tower in the loaded model.
    language: dotted path of the decoder language model.
    vision_layout: the vision tower's layout (None: the family of ``vision_config.model_type``).
    tile: the tile kept for vision-tower extraction from ``[B, tiles, 3, H, W]`` pixels (None:
        the processor gives ``[B, 3, H, W]``).
    view_kwargs: processor arguments for one view per image (vision-tower extraction).
    feature_layer: the vision hidden state the projector reads (``hidden_states`` index) when the
        config has no ``vision_feature_layer``.
    variable_image_tokens: the number of image tokens depends on the image's size (tiles).
    """

    model_type: str
    cls: str
    vision: str = "model.vision_tower"
    language: str = "model.language_model"
    vision_layout: Layout | None = None
    tile: int | None = None
    view_kwargs: dict[str, Any] = field(default_factory=dict)
    feature_layer: int = -1
    variable_image_tokens: bool = False


IDEFICS3_VISION = Layout("idefics3", "image", ("self_attn",), ("mlp",), False, ())
SMOLVLM_VISION = Layout("smolvlm", "image", ("self_attn",), ("mlp",), False, ())
# InternViT scales each sub-layer by a learnt vector (lambda_1, lambda_2: parameters, not modules)
# before adding it: no module outputs the contribution, so attn.L / mlp.L are not defined.
INTERNVL_VISION = Layout("internvl", "image", (), (), True, ())

LAYOUTS: dict[str, MllmLayout] = {
    m.model_type: m
    for m in (
        MllmLayout("llava", "LlavaForConditionalGeneration", feature_layer=-2),
        MllmLayout(
            "llava_next",
            "LlavaNextForConditionalGeneration",
            tile=0,
            feature_layer=-2,
            variable_image_tokens=True,
        ),
        MllmLayout(
            "llava_onevision", "LlavaOnevisionForConditionalGeneration", tile=0, variable_image_tokens=True
        ),
        MllmLayout("gemma3", "Gemma3ForConditionalGeneration"),
        MllmLayout(
            "idefics3",
            "Idefics3ForConditionalGeneration",
            vision="model.vision_model",
            language="model.text_model",
            vision_layout=IDEFICS3_VISION,
            tile=0,
            view_kwargs={"do_image_splitting": False},
            variable_image_tokens=True,
        ),
        MllmLayout(
            "smolvlm",
            "SmolVLMForConditionalGeneration",
            vision="model.vision_model",
            language="model.text_model",
            vision_layout=SMOLVLM_VISION,
            tile=0,
            view_kwargs={"do_image_splitting": False},
            variable_image_tokens=True,
        ),
        MllmLayout(
            "internvl",
            "InternVLForConditionalGeneration",
            vision_layout=INTERNVL_VISION,
            view_kwargs={"crop_to_patches": False},
            variable_image_tokens=True,
        ),
    )
}


def mllm_layout(model_type: str) -> MllmLayout:
    """The layout of a multimodal model type; VsaeError listing the supported ones otherwise."""
    if model_type not in LAYOUTS:
        raise VsaeError(
            f"{model_type!r} is not a supported multimodal model; supported: {', '.join(LAYOUTS)}"
        )
    return LAYOUTS[model_type]


def is_mllm(family: str) -> bool:
    """Whether a `LoadedModel.family` is one of the multimodal model types here."""
    return family in LAYOUTS


def image_token_id(config: Any) -> int:
    """The id of the placeholder tokens the projected image features replace."""
    for name in ("image_token_id", "image_token_index"):
        v = getattr(config, name, None)
        if isinstance(v, int):
            return v
    raise VsaeError(f"the {config.model_type} config names no image token (image_token_id)")


def processor_images(images: list[Image.Image]) -> list[list[Image.Image]]:
    """A batch of one-image prompts as the processors take it: one list of images per prompt."""
    return [[im] for im in images]


class ViewPreprocessor:
    """PIL images -> {"pixel_values": [B, 3, H, W]}: one view per image from the model's own image
    processor (see the module docstring)."""

    def __init__(self, processor: Any, layout: MllmLayout):
        self.processor = processor
        self.layout = layout

    def __call__(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        out = self.processor(processor_images(images), return_tensors="pt", **self.layout.view_kwargs)
        pv = out["pixel_values"]
        if self.layout.tile is not None:
            pv = pv[:, self.layout.tile]
        return {"pixel_values": pv}


def _image_processor(source: str, local_only: bool) -> Any:
    import transformers as T

    try:
        return T.AutoImageProcessor.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError) as e:
        raise VsaeError(
            f"cannot load the image processor of {source!r} ({str(e).splitlines()[0][:120]}); "
            "save the model's processor next to it"
        ) from None


def load_mllm(req: LoadRequest) -> LoadedModel:
    """The vision tower (default) or the language model of a multimodal LLM."""
    config = req.config
    layout = mllm_layout(config.model_type)
    tower = hf.choose_tower(req, ("vision", "language"), config.model_type)
    full = hf.load_weights(req, layout.cls)
    if tower == "vision":
        sub = config.vision_config
        vl = layout.vision_layout or for_model_type(sub.model_type).layout
        if vl is None:
            raise VsaeError(
                f"{config.model_type} vision tower {sub.model_type!r} has no known layout; use module:<path> hooks"
            )
        model, kwargs = full.get_submodule(layout.vision), None
    else:
        sub, vl = config.text_config, LANGUAGE
        model, kwargs = full.get_submodule(layout.language), {"use_cache": False}
    lm = hf.tower_model(
        req,
        full=full,
        model=model,
        sub_config=sub,
        layout=vl,
        tower=tower,
        family=config.model_type,
        move_full=False,
        forward_kwargs=kwargs,
    )
    if tower == "vision" and config.model_type != "llava":  # LLaVA-1.5's processor is the tower's own
        lm.preprocess = ViewPreprocessor(_image_processor(req.source, req.local_only), layout)
    return lm


for _layout in LAYOUTS.values():
    register_family(
        Family(_layout.model_type, load_mllm, model_types={_layout.model_type: _layout.cls}, layout=None)
    )
