"""AIMv2 (Fini et al.): the vision tower of an `Aimv2Model`, or an `Aimv2VisionModel`. Pre-norm
blocks with RMSNorm and a SwiGLU MLP (``ffn``); no CLS token; `embed` is the attention-pooling
head's output where the checkpoint has one (``use_head``), else undefined."""

from __future__ import annotations

from typing import Any

from vsae.models import hf
from vsae.models.family_registry import Family, Layout, LoadRequest, register_family
from vsae.models.loaded import LoadedModel


def _processor(size: int) -> Any:
    """CLIP's resize, crop and normalisation (what the AIMv2 checkpoints ship)."""
    return hf.clip_processor(size)


VISION = Layout("aimv2", "image", ("attention",), ("ffn",), False, ("pooler_output",), _processor)
VISION_NO_HEAD = Layout("aimv2", "image", ("attention",), ("ffn",), False, (), _processor)


def load_aimv2(req: LoadRequest) -> LoadedModel:
    """The vision tower of an Aimv2Model, or an Aimv2VisionModel checkpoint."""
    tower = hf.choose_tower(req, ("vision",), "aimv2")
    if req.config.model_type == "aimv2":
        full = hf.load_weights(req, "Aimv2Model")
        model, sub = full.vision_model, req.config.vision_config  # an Aimv2VisionModel
    else:
        full = hf.load_weights(req, "Aimv2VisionModel")
        model, sub = full, req.config
    layout = VISION if getattr(sub, "use_head", False) else VISION_NO_HEAD
    return hf.tower_model(req, full=full, model=model, sub_config=sub, layout=layout, tower=tower)


register_family(
    Family(
        "aimv2",
        load_aimv2,
        model_types={"aimv2": "Aimv2Model", "aimv2_vision_model": "Aimv2VisionModel"},
        layout=VISION,
    )
)
