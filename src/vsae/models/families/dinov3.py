"""DINOv3 ViT (Siméoni et al.): CLS, then ``num_register_tokens`` register tokens (Darcet et al.),
then the patches; rotary position embeddings. Each sub-layer is scaled (LayerScale) before it is
added to the residual stream, so attn/mlp hook the LayerScale outputs. The register tokens are
their own token kind: ``--tokens registers`` selects them, ``patches`` / ``mean`` / ``random:K``
never do (``all`` does). `embed` is the pooled output (CLS after the final norm)."""

from __future__ import annotations

from vsae.models import hf
from vsae.models.families.dinov2 import _processor
from vsae.models.family_registry import Family, Layout, register_family

LAYOUT = Layout("dinov3", "image", ("layer_scale1",), ("layer_scale2",), True, hf.IMAGE_EMBED, _processor)

register_family(
    Family(
        "dinov3",
        hf.single_tower_loader("dinov3", ("vision",)),
        model_types={"dinov3_vit": "DINOv3ViTModel"},
        architectures={"dinov3_vit": ("DINOv3ViTModel",)},
        layout=LAYOUT,
    )
)
