"""CLIP zero-shot classification accuracy from image and class-prompt embeddings (Radford et al. 2021).

The splice test that uses it (reconstruction spliced into the model) is `vsae.steer.reconstruction`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from vsae.errors import VsaeError
from vsae.shapes import Array, Float, Int


def zero_shot_accuracy(
    image_embeds_ND: Float[Array, "N D"],
    class_text_embeds_CD: Float[Array, "C D"],
    labels_N: Int[Array, " N"] | Sequence[int],
) -> float:
    """CLIP zero-shot accuracy: predict the class whose prompt embedding has the highest cosine
    with the image embedding (Radford et al. 2021)."""
    img = torch.nn.functional.normalize(
        torch.as_tensor(np.asarray(image_embeds_ND), dtype=torch.float64), dim=1
    )
    txt = torch.nn.functional.normalize(
        torch.as_tensor(np.asarray(class_text_embeds_CD), dtype=torch.float64), dim=1
    )
    if img.shape[1] != txt.shape[1]:
        raise VsaeError(
            f"image embeddings have width {img.shape[1]} but class prompts {txt.shape[1]}; use the same CLIP"
        )
    labels = np.asarray(labels_N)
    if labels.shape[0] != img.shape[0]:
        raise VsaeError(f"{img.shape[0]} images but {labels.shape[0]} labels; give one label per image")
    pred = (img @ txt.T).argmax(dim=1).numpy()
    return float((pred == labels).mean())
