"""Zero-shot classification of world images by a CLIP loaded with `from_pretrained`
(Radford et al., CLIP: pick the prompt whose text embedding is most similar to the image's)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vsae.models.hf import safe_from_pretrained
from vsae.world.captions import colour_prompts, shape_prompts
from vsae.world.generate import WorldBatch, attribute_vocab, generate

if TYPE_CHECKING:
    from transformers import CLIPModel, PreTrainedTokenizerBase


def _features(out: Any) -> torch.Tensor:
    return getattr(out, "pooler_output", out)  # transformers 5 may wrap features in a model output


@torch.no_grad()
def zero_shot_accuracy(
    model_dir: str | Path, split: str = "test", n: int = 300, seed: int = 0
) -> dict[str, float]:
    """Accuracy of shape and colour prediction from the prompts "a photo of a {shape}" and
    "a photo of a {colour} shape" on ``n`` images of ``split``. Loads via AutoModel/AutoProcessor."""
    from transformers import AutoModel, AutoProcessor

    model = safe_from_pretrained(AutoModel, model_dir, "the CLIP").eval()
    proc = AutoProcessor.from_pretrained(str(model_dir))
    batch = generate(split, n, seed=seed)
    pix = proc(images=batch.pil_images(), return_tensors="pt")["pixel_values"]
    return zero_shot_eval(model, proc.tokenizer, pix, batch)


@torch.no_grad()
def zero_shot_eval(
    model: CLIPModel, tokenizer: PreTrainedTokenizerBase, pixel_values_N3HW: torch.Tensor, batch: WorldBatch
) -> dict[str, float]:
    """Shape and colour zero-shot accuracy of an in-memory CLIPModel on a `WorldBatch`."""
    img = torch.nn.functional.normalize(
        _features(model.get_image_features(pixel_values=pixel_values_N3HW)), dim=-1
    )
    acc = {}
    for name, prompts, truth in (
        ("shape", shape_prompts(), batch.labels("shape")),
        ("colour", colour_prompts(), batch.labels("colour")),
    ):
        assert len(prompts) == len(attribute_vocab(name))
        enc = tokenizer(prompts, padding=True, return_tensors="pt")
        txt = _features(
            model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        )
        pred = (img @ torch.nn.functional.normalize(txt, dim=-1).T).argmax(1).numpy()
        acc[name] = float(np.mean(pred == truth))
    return acc
