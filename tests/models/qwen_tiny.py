"""Tiny random-weight Qwen2.5-VL / Qwen3-VL checkpoints (built from code, saved with the PIL image
processor: no torchvision) for the Qwen vision-tower tests."""

from pathlib import Path

import torch

PATCH, MERGE = 4, 2  # the square view is 16 merge units = 128 px: a 32 x 32 patch grid


def build_tiny_qwen(kind: str, out: Path, seed: int = 0) -> Path:
    import transformers as T
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    torch.manual_seed(seed)
    vision = dict(
        depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=48,
        patch_size=PATCH, spatial_merge_size=MERGE, temporal_patch_size=2,
    )  # fmt: skip
    text = dict(
        hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, vocab_size=256, rope_scaling={"type": "mrope", "mrope_section": [4, 4, 4]},
    )  # fmt: skip
    if kind == "qwen2_5_vl":  # windows of 3 x 3 merge units (the last ones cut); block 1: full attention
        cfg = T.Qwen2_5_VLConfig(
            vision_config=dict(vision, window_size=24, fullatt_block_indexes=[1]), text_config=text
        )
        model = T.Qwen2_5_VLForConditionalGeneration(cfg)
    else:
        cfg = T.Qwen3VLConfig(
            vision_config=dict(vision, num_position_embeddings=64, deepstack_visual_indexes=[0]),
            text_config=dict(
                text, head_dim=24, rope_scaling={"rope_type": "default", "mrope_section": [4, 4, 4]}
            ),
        )
        model = T.Qwen3VLForConditionalGeneration(cfg)
    model.eval().save_pretrained(out)
    Qwen2VLImageProcessorPil(
        patch_size=PATCH, merge_size=MERGE, temporal_patch_size=2, min_pixels=32 * 32, max_pixels=256 * 256
    ).save_pretrained(out)
    return Path(out)
