"""CLIP (Radford et al.): the vision and text towers of a `CLIPModel`, and the single-tower
`CLIPVisionModel` / `CLIPTextModel` checkpoints (with or without projection). `embed` is the
projected embedding when there is one, else the pooled output."""

from __future__ import annotations

import copy
from typing import Any

import torch

from vsae.errors import VsaeError
from vsae.models import hf
from vsae.models.family_registry import Family, Layout, LoadRequest, register_family
from vsae.models.loaded import LoadedModel, find_blocks

VISION = Layout("clip", "image", ("self_attn",), ("mlp",), True, hf.IMAGE_EMBED)
TEXT = Layout("clip_text", "text", ("self_attn",), ("mlp",), False, hf.TEXT_EMBED)


def _with_projection(full: Any, tower: str, config: Any) -> Any:
    """A CLIP{Vision,Text}ModelWithProjection view sharing the modules of a full CLIPModel."""
    import transformers as T

    m: Any
    if tower == "vision":
        cfg = copy.deepcopy(config.vision_config)
        cfg.projection_dim = config.projection_dim
        with torch.device("meta"):
            m = T.CLIPVisionModelWithProjection(cfg)
        m.vision_model, m.visual_projection = full.vision_model, full.visual_projection
    else:
        cfg = copy.deepcopy(config.text_config)
        cfg.projection_dim = config.projection_dim
        with torch.device("meta"):
            m = T.CLIPTextModelWithProjection(cfg)
        m.text_model, m.text_projection = full.text_model, full.text_projection
    return m.eval()


def load_clip(req: LoadRequest) -> LoadedModel:
    """A CLIPModel's vision (default) or text tower, or a CLIPVisionModel checkpoint."""
    config = req.config
    if config.model_type != "clip":
        return hf.single_tower_loader("clip", ("vision",))(req)
    tower = hf.choose_tower(req, ("vision", "text"), "clip")
    full = hf.load_weights(req, "CLIPModel")
    vision = tower == "vision"
    return hf.tower_model(
        req,
        full=full,
        model=_with_projection(full, tower, config),
        sub_config=config.vision_config if vision else config.text_config,
        layout=VISION if vision else TEXT,
        tower=tower,
    )


def text_encoder_model(text_encoder: Any, tokenizer: Any, source: str) -> LoadedModel:
    """Wrap a CLIP text encoder already loaded (e.g. a diffusion pipeline's) as a `LoadedModel`
    of the ``clip_text`` family, sharing the module."""
    cfg = text_encoder.config
    blocks = find_blocks(text_encoder, int(cfg.num_hidden_layers))
    if blocks is None:
        raise VsaeError(f"cannot find the transformer blocks of the text encoder of {source}")
    return LoadedModel(
        text_encoder,
        hf.text_preprocessor(tokenizer, int(cfg.max_position_embeddings)),
        family=TEXT.family,
        tower="text",
        modality="text",
        blocks=blocks,
        sublayer_names={"attn": TEXT.attn, "mlp": TEXT.mlp},
        embed_fields=TEXT.embed_fields,
        has_cls=False,
        n_prefix=0,
        provenance={
            "model": source,
            "family": TEXT.family,
            "tower": "text",
            "class": type(text_encoder).__name__,
        },
        dtype=next(text_encoder.parameters()).dtype,
    )


register_family(
    Family(
        "clip",
        load_clip,
        model_types={"clip": "CLIPModel", "clip_vision_model": "CLIPVisionModel"},
        architectures={"clip_vision_model": ("CLIPVisionModel", "CLIPVisionModelWithProjection")},
        layout=VISION,
    )
)
register_family(
    Family(
        "clip_text",
        hf.single_tower_loader("clip_text", ("text",)),
        model_types={"clip_text_model": "CLIPTextModel"},
        architectures={"clip_text_model": ("CLIPTextModel", "CLIPTextModelWithProjection")},
        layout=TEXT,
    )
)
