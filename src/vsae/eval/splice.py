"""The downstream test of reconstruction quality: splice an SAE's reconstruction into a model,
x -> decode(encode(x)) at a hook point (through `vsae.steer.intervene`), and compare its outputs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from vsae.errors import VsaeError


@contextmanager
def splice_reconstruction(lm: Any, hook: str, sae: Any) -> Iterator[None]:
    """Within the block, the output of `hook` is replaced by `sae.decode(sae.encode(x))` on every
    forward pass of `lm.model` (`vsae.steer.intervene` without edits and without the error term)."""
    from vsae.steer.intervene import intervene

    with intervene(lm, hook, sae, keep_error=False):
        yield


@torch.no_grad()
def final_embeddings(lm: Any, inputs: Any) -> torch.Tensor:
    """The model's final embedding (hook `embed`) for one batch of preprocessed inputs."""
    from vsae.models import capture

    with capture(lm, "embed") as cap:
        lm.run(inputs)
        return cap.output.float().reshape(cap.output.shape[0], -1).clone()


@torch.no_grad()
def splice_effect(
    lm: Any, hook: str, sae: Any, batches: Sequence[Any] | Iterator[Any]
) -> dict[str, np.ndarray]:
    """Final embeddings with and without the splice, and their per-image cosine similarity."""
    orig, spliced = [], []
    for inputs in batches:
        orig.append(final_embeddings(lm, inputs))
        with splice_reconstruction(lm, hook, sae):
            spliced.append(final_embeddings(lm, inputs))
    if not orig:
        raise VsaeError("no images for the splice evaluation; give --images")
    e0, e1 = torch.cat(orig), torch.cat(spliced)
    cos = torch.nn.functional.cosine_similarity(e0.double(), e1.double(), dim=1)
    return {"original": e0.numpy(), "spliced": e1.numpy(), "cosine": cos.numpy()}


def zero_shot_accuracy(image_embeds_ND: Any, class_text_embeds_CD: Any, labels_N: Any) -> float:
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
