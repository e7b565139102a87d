"""Settings of `vsae eval explain` (torch- and numpy-free: the command's options are generated from
these fields by :mod:`vsae.cli.from_config`)."""

from __future__ import annotations

from dataclasses import dataclass

from vsae.errors import VsaeError

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

    def check(self) -> None:
        """One-line VsaeError for settings no run can use (checked before anything is loaded)."""
        for opt, v in (
            ("--n-top", self.n_top),
            ("--n-contrast", self.n_contrast),
            ("--n-random", self.n_random),
        ):
            if v < 1:
                raise VsaeError(f"{opt} {v}: must be at least 1")
        if self.n_top < 2:
            raise VsaeError(f"--n-top {self.n_top}: need at least 2 top images (one shown, one held out)")
        if self.max_latents is not None and self.max_latents < 1:
            raise VsaeError(f"--max-latents {self.max_latents}: must be at least 1")
        if not 0 <= self.parsimony < 1:
            raise VsaeError(f"--parsimony {self.parsimony}: give a fraction in [0, 1)")
        if self.max_new_tokens < 1:
            raise VsaeError(f"--max-new-tokens {self.max_new_tokens}: must be at least 1")
