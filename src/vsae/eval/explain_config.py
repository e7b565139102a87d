"""Settings of `vsae eval explain` (torch- and numpy-free: the command's options are generated from
these fields by :mod:`vsae.cli.from_config`)."""

from __future__ import annotations

from dataclasses import dataclass

# Candidate phrases of the `vocab` explainer: each slot ({shape}, {colour} ...) is filled with the
# words of that slot of the vocabulary; `{word}` takes every word of every slot. Templates whose
# slots the vocabulary lacks are skipped.
TEMPLATES: tuple[str, ...] = (
    "{word}",
    "a photo of a {word}",
    "a photo of a {colour} shape",
    "a {colour} {shape}",
    "a {size} {shape}",
    "a {size} {colour} {shape}",
    "a {size} shape",
    "a {shape} on a {background} background",
    "a {colour} shape on a {background} background",
)


@dataclass(frozen=True)
class ExplainConfig:
    """`vsae eval explain`: latents explained in words, scored by a judge (detection AUROC).

    Attributes
    ----------
    explainer: who writes the phrases: `vocab` (the candidate phrase whose judge text embedding
        best separates a latent's top images from contrast images; model-free) or `mllm` (a
        multimodal LLM's answers about the top vs the contrast images); plug-ins: entry points
        `vsae.explainers`.
    n_top: top-activating images per latent; every other one (ranks 1, 3, 5 ...) is shown to the
        explainer, the rest are held out for the detection score.
    n_contrast: random images (outside the latent's top images) shown to the explainer as contrast.
    n_random: other random images (outside the top images and the contrast) the detection score
        separates the held-out top images from.
    templates: candidate-phrase templates of the `vocab` explainer (Python only; the CLI uses these).
    parsimony: the `vocab` explainer's price of each vocabulary word beyond the first, as a
        fraction of the separation (0: always the best-separating phrase, however long).
    question: what the `mllm` explainer asks about each image.
    max_new_tokens: longest `mllm` answer.
    max_latents: explain only the first N live latents (default all).
    seed: seed of the contrast / random samples and of the shuffled control.
    """

    explainer: str = "vocab"
    n_top: int = 16
    n_contrast: int = 64
    n_random: int = 64
    templates: tuple[str, ...] = TEMPLATES
    parsimony: float = 0.1
    question: str = "Describe this image."
    max_new_tokens: int = 16
    max_latents: int | None = None
    seed: int = 0
