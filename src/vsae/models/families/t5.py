"""T5 encoders (Raffel et al.), as the T5-XXL text encoder of SD3 and FLUX: ``T5EncoderModel``.
Pre-norm blocks (``encoder.block``); each block's self-attention and feed-forward sub-layers add
``layer.0.SelfAttention`` and ``layer.1.DenseReluDense`` to the residual stream (their outputs are
the contributions; dropout is off in eval). transformers reports the last hidden state after the
final norm, so ``resid.-1`` is the last block's output before it. No pooled output: `embed` is
not defined."""

from __future__ import annotations

from typing import Any

from vsae.errors import VsaeError
from vsae.models import hf
from vsae.models.family_registry import Family, Layout, register_family
from vsae.models.loaded import LoadedModel, find_blocks

TEXT = Layout("t5_text", "text", ("layer.0.SelfAttention",), ("layer.1.DenseReluDense",), False, ())


def t5_encoder_model(encoder: Any, tokenizer: Any, source: str) -> LoadedModel:
    """Wrap a T5 encoder already loaded (e.g. a diffusion pipeline's) as a ``t5_text`` LoadedModel."""
    cfg = encoder.config
    blocks = find_blocks(encoder, int(cfg.num_layers))
    if blocks is None:
        raise VsaeError(f"cannot find the transformer blocks of the T5 encoder of {source}")
    return LoadedModel(
        encoder,
        hf.text_preprocessor(tokenizer, 512),  # T5 has relative positions: 512 as its tokenizers
        family=TEXT.family,
        tower="text",
        modality="text",
        blocks=blocks,
        sublayer_names={"attn": TEXT.attn, "mlp": TEXT.mlp},
        embed_fields=(),
        has_cls=False,
        n_prefix=0,
        provenance={"model": source, "family": TEXT.family, "tower": "text", "class": type(encoder).__name__},
        dtype=next(encoder.parameters()).dtype,
    )


register_family(
    Family(
        "t5_text",
        hf.single_tower_loader("t5_text", ("text",)),
        model_types={"t5": "T5EncoderModel"},
        layout=TEXT,
    )
)
