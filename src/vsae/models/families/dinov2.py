"""DINOv2 (Oquab et al.), with or without registers (Darcet et al.): CLS, then the register
tokens, then the patches. Each sub-layer is scaled (LayerScale) before it is added to the
residual stream, so attn/mlp hook the LayerScale outputs."""

from __future__ import annotations

from typing import Any

from vsae.models import hf
from vsae.models.family_registry import Family, Layout, register_family


def _processor(size: int) -> Any:
    """Resize the shortest edge, centre-crop, normalise with the ImageNet statistics."""
    return hf.clip_processor(size, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])


LAYOUT = Layout("dinov2", "image", ("layer_scale1",), ("layer_scale2",), True, hf.IMAGE_EMBED, _processor)

register_family(
    Family(
        "dinov2",
        hf.single_tower_loader("dinov2", ("vision",)),
        model_types={"dinov2": "Dinov2Model", "dinov2_with_registers": "Dinov2WithRegistersModel"},
        architectures={
            "dinov2": ("Dinov2Model",),
            "dinov2_with_registers": ("Dinov2WithRegistersModel",),
        },
        layout=LAYOUT,
    )
)
