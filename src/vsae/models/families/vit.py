"""ViT (Dosovitskiy et al.) as transformers' `ViTModel`: CLS first; the MLP's contribution is
the block's `output` module (`mlp` where a variant names it so)."""

from __future__ import annotations

from typing import Any

from vsae.models import hf
from vsae.models.family_registry import Family, Layout, register_family


def _processor(size: int) -> Any:
    import transformers as T

    return T.ViTImageProcessor(size={"height": size, "width": size})


LAYOUT = Layout("vit", "image", ("attention",), ("mlp", "output"), True, hf.IMAGE_EMBED, _processor)

register_family(
    Family(
        "vit",
        hf.single_tower_loader("vit", ("vision",)),
        model_types={"vit": "ViTModel"},
        architectures={"vit": ("ViTModel",)},
        layout=LAYOUT,
    )
)
