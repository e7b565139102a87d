"""SigLIP (Zhai et al.): the vision tower of a `SiglipModel`, or a `SiglipVisionModel`. No CLS
token; `embed` is the pooled (attention-pooling head) output."""

from __future__ import annotations

from typing import Any

from vsae.models import hf
from vsae.models.family_registry import Family, Layout, LoadRequest, register_family
from vsae.models.loaded import LoadedModel


def _processor(size: int) -> Any:
    import transformers as T

    return T.SiglipImageProcessor(size={"height": size, "width": size})


VISION = Layout("siglip", "image", ("self_attn",), ("mlp",), False, hf.IMAGE_EMBED, _processor)


def load_siglip(req: LoadRequest) -> LoadedModel:
    """The vision tower of a SiglipModel, or a SiglipVisionModel checkpoint."""
    if req.config.model_type != "siglip":
        return hf.single_tower_loader("siglip", ("vision",))(req)
    tower = hf.choose_tower(req, ("vision",), "siglip")
    full = hf.load_weights(req, "SiglipModel")
    return hf.tower_model(
        req,
        full=full,
        model=full.vision_model,
        sub_config=req.config.vision_config,
        layout=VISION,
        tower=tower,
    )


register_family(
    Family(
        "siglip",
        load_siglip,
        model_types={"siglip": "SiglipModel", "siglip_vision_model": "SiglipVisionModel"},
        architectures={"siglip_vision_model": ("SiglipVisionModel",)},
        layout=VISION,
    )
)
