"""Tiny random-weight SDXL, SD3 and FLUX pipelines built from configs and saved with
`save_pretrained` (safetensors) for tests: CLIP text encoders (hidden 32, 2 layers), T5 encoders
(d_model 64, 2 layers), word-level tokenizers of 16 tokens, 32 px images.

```python
from vsae.models.tiny_pipelines import build_tiny_pipeline
path = build_tiny_pipeline("flux", tmp_path / "flux")
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vsae.models.tiny_models import LAYERS, _vocab_size, save_tiny, tiny_tokenizer

PIPELINE_KINDS = ("sdxl", "sd3", "flux")
MAX_TOKENS = 16


def _tokenizer() -> Any:
    tok = tiny_tokenizer()
    tok.model_max_length = MAX_TOKENS
    return tok


def _clip(projection: bool) -> Any:
    import transformers as T

    cfg = T.CLIPTextConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        vocab_size=_vocab_size(),
        max_position_embeddings=MAX_TOKENS,
        projection_dim=32,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    return (T.CLIPTextModelWithProjection if projection else T.CLIPTextModel)(cfg)


def _t5() -> Any:
    import transformers as T

    cfg = T.T5Config(
        vocab_size=_vocab_size(),
        d_model=64,
        d_kv=16,
        d_ff=128,
        num_layers=LAYERS,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=3,
    )
    return T.T5EncoderModel(cfg)


def tiny_vae(**kw: Any) -> Any:
    """A random-weight two-block `AutoencoderKL` (RGB, 4 latent channels); `kw` overrides the config."""
    from diffusers import AutoencoderKL

    args: dict[str, Any] = dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
    )
    return AutoencoderKL(**{**args, **kw})


def build_tiny_pipeline(kind: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Build the tiny pipeline `kind` (one of PIPELINE_KINDS) and save it to `out_dir`."""
    import diffusers as D

    torch.manual_seed(seed)
    pipe: Any
    tr: Any
    if kind == "sdxl":
        unet = D.UNet2DConditionModel(
            sample_size=16,
            in_channels=4,
            out_channels=4,
            block_out_channels=(16, 32),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + 32,  # 6 time ids + the pooled text_embeds
            cross_attention_dim=64,  # both encoders' hidden states, concatenated
            norm_num_groups=4,
        )
        pipe = D.StableDiffusionXLPipeline(
            vae=tiny_vae(),
            text_encoder=_clip(False),
            text_encoder_2=_clip(True),
            tokenizer=_tokenizer(),
            tokenizer_2=_tokenizer(),
            unet=unet,
            scheduler=D.EulerDiscreteScheduler(),
        )
    elif kind == "sd3":
        tr = D.SD3Transformer2DModel(
            sample_size=16,
            patch_size=1,
            in_channels=4,
            out_channels=4,
            num_layers=1,
            attention_head_dim=8,
            num_attention_heads=4,
            caption_projection_dim=32,
            joint_attention_dim=64,  # the T5 width (the CLIP states are padded to it)
            pooled_projection_dim=64,  # both CLIP projections, concatenated
        )
        pipe = D.StableDiffusion3Pipeline(
            transformer=tr,
            vae=tiny_vae(shift_factor=0.0, scaling_factor=1.0),
            text_encoder=_clip(True),
            text_encoder_2=_clip(True),
            text_encoder_3=_t5(),
            tokenizer=_tokenizer(),
            tokenizer_2=_tokenizer(),
            tokenizer_3=_tokenizer(),
            scheduler=D.FlowMatchEulerDiscreteScheduler(),
        )
    elif kind == "flux":
        tr = D.FluxTransformer2DModel(
            patch_size=1,
            in_channels=16,  # 4 latent channels packed 2 x 2
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=64,  # the T5 width
            pooled_projection_dim=32,  # CLIP's pooled output
            axes_dims_rope=(4, 4, 8),
        )
        pipe = D.FluxPipeline(
            transformer=tr,
            vae=tiny_vae(shift_factor=0.0, scaling_factor=1.0),
            text_encoder=_clip(False),
            text_encoder_2=_t5(),
            tokenizer=_tokenizer(),
            tokenizer_2=_tokenizer(),
            scheduler=D.FlowMatchEulerDiscreteScheduler(),
        )
    else:
        raise ValueError(f"unknown tiny pipeline kind {kind!r}; valid: {', '.join(PIPELINE_KINDS)}")
    return save_tiny(out_dir, pipe)
