"""The steering score's similarity encoder: a CLIP-style model with an image and a text tower.

Pach et al. embed a latent's top images and the first word of LLaVA's answer with the same
encoder family and compare them by cosine. Any checkpoint that `transformers.AutoModel` loads
with ``get_image_features`` and ``get_text_features`` works: the world's tiny CLIP, or
``openai/clip-vit-base-patch32`` for real images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from vsae.errors import VsaeError
from vsae.models.hf import safe_from_pretrained


def _features(out: Any) -> torch.Tensor:
    return getattr(out, "pooler_output", out)  # transformers 5 may wrap features in a model output


class ImageTextEmbedder:
    """Image and text embeddings [N, D] (as the model outputs them, not normalised) of a CLIP-like model."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", batch_size: int = 64):
        from transformers import AutoModel, AutoProcessor

        self.model = safe_from_pretrained(AutoModel, model_dir, "the similarity encoder").eval().to(device)
        try:
            self.processor = AutoProcessor.from_pretrained(str(model_dir))
        except (OSError, ValueError) as e:
            raise VsaeError(
                f"cannot load the similarity encoder {model_dir} ({str(e).splitlines()[0][:120]})"
            ) from None
        if not (hasattr(self.model, "get_image_features") and hasattr(self.model, "get_text_features")):
            raise VsaeError(
                f"similarity encoder {model_dir} has no image and text towers; give a CLIP-like model"
            )
        self.source = str(model_dir)
        self.device = device
        self.batch_size = batch_size
        self._text_cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        out = []
        for s in range(0, len(images), self.batch_size):
            pix = self.processor(images=list(images[s : s + self.batch_size]), return_tensors="pt")[
                "pixel_values"
            ]
            out.append(
                _features(self.model.get_image_features(pixel_values=pix.to(self.device))).float().cpu()
            )
        return torch.cat(out) if out else torch.zeros(0, 0)

    @torch.no_grad()
    def texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Text embeddings, cached per string (answers repeat)."""
        todo = sorted({t for t in texts if t not in self._text_cache})
        for s in range(0, len(todo), self.batch_size):
            chunk = todo[s : s + self.batch_size]
            enc = self.processor(text=chunk, padding=True, truncation=True, return_tensors="pt")
            feats = (
                _features(
                    self.model.get_text_features(
                        input_ids=enc["input_ids"].to(self.device),
                        attention_mask=enc["attention_mask"].to(self.device),
                    )
                )
                .float()
                .cpu()
            )
            self._text_cache.update(zip(chunk, feats))
        if not texts:
            return torch.zeros(0, 0)
        return torch.stack([self._text_cache[t] for t in texts])
