"""SigLIP 2 (Tschannen et al.), NaFlex checkpoints (``model_type`` siglip2; the fixed-resolution
SigLIP 2 checkpoints are ``siglip`` models and load with that family). No CLS token; `embed` is
the attention-pooling head's output.

NaFlex keeps each image's aspect ratio: the processor resizes it to an ``h x w`` grid of patches
with ``h * w <= max_num_patches`` and pads the sequence to ``max_num_patches``. Token ``t`` of an
image is the patch in row ``t // w``, column ``t % w`` of its own grid (``spatial_shapes[b] =
(h, w)``); tokens ``t >= h * w`` are padding (``pixel_attention_mask`` 0) and are never selected:
``patches`` / ``all`` / ``random:K`` / ``mean`` read the real patches only, and a store's
token_index is ``t``, so ``(t // w, t % w)`` recovers the position (``w`` per image from the
processor on the same image).
"""

from __future__ import annotations

from typing import Any

from vsae.models import hf
from vsae.models.family_registry import Family, Layout, LoadRequest, register_family
from vsae.models.loaded import LoadedModel

NAFLEX_INPUTS = ("pixel_values", "pixel_attention_mask", "spatial_shapes")


def _processor(size: int) -> Any:
    """The NaFlex default (patch 16, at most 256 patches) for a checkpoint without a processor."""
    import transformers as T

    return T.Siglip2ImageProcessor()


VISION = Layout(
    "siglip2",
    "image",
    ("self_attn",),
    ("mlp",),
    False,
    hf.IMAGE_EMBED,
    _processor,
    image_inputs=NAFLEX_INPUTS,
    token_mask="pixel_attention_mask",
)


def load_siglip2(req: LoadRequest) -> LoadedModel:
    """The vision tower of a Siglip2Model, or a Siglip2VisionModel checkpoint."""
    if req.config.model_type != "siglip2":
        return hf.single_tower_loader("siglip2", ("vision",))(req)
    tower = hf.choose_tower(req, ("vision",), "siglip2")
    full = hf.load_weights(req, "Siglip2Model")
    return hf.tower_model(
        req,
        full=full,
        model=full.vision_model,  # a Siglip2VisionModel
        sub_config=req.config.vision_config,
        layout=VISION,
        tower=tower,
    )


register_family(
    Family(
        "siglip2",
        load_siglip2,
        model_types={"siglip2": "Siglip2Model", "siglip2_vision_model": "Siglip2VisionModel"},
        architectures={"siglip2_vision_model": ("Siglip2VisionModel",)},
        layout=VISION,
    )
)
