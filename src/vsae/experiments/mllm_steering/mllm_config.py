"""What Pach et al.'s MLLM steering experiment does (`vsae steer mllm`, `vsae demo`'s steering
section). Free of torch: `vsae steer mllm` generates its options from these fields
(:mod:`vsae.cli.from_config`)."""

from __future__ import annotations

from dataclasses import dataclass

from vsae.errors import VsaeError
from vsae.steer.steer_config import STEERING_QUESTION, TOKEN_SETS, Op, TokenSet, _check_finite, _check_op

__all__ = ["STEERING_QUESTION", "SteerConfig"]


@dataclass(frozen=True)
class SteerConfig:
    """What the steering experiment does.

    Attributes
    ----------
    hook: vision-tower hook [default: the hidden state LLaVA's projector reads
        (``vision_feature_layer``: ``resid.22`` for llava-1.5, as in the paper)].
    latents: latents to steer (comma-separated on the command line) [default: ``n_latents``
        random latents whose HAI are all active].
    n_latents: how many latents to pick when ``latents`` is empty.
    value: the clamp value (the paper: 100). See docs/steer.md for the scale of the tiny model.
    op: the edit (``clamp`` as in the paper; ``add``, ``scale``, ``ablate`` also work).
    tokens: the tokens edited: ``all`` (the paper), ``cls`` or ``patches``.
    pre_zero: zero every other latent first (the paper's ``pre_zero``).
    question: what the model is asked.
    images: the images steered on: ``world:<split>`` or a folder / list file.
    n_images: how many of them.
    hai_images: the images the latents' highest-activating images (HAI) come from.
    n_hai_images: how many of them are encoded.
    hai_k: HAI per latent (the paper: 16).
    blank_latents: latents for the single-image variant (blank white image); 0 = skip it.
    max_new_tokens: the longest answer generated.
    batch_size: images per forward pass.
    seed: seeds the choice of images and latents.
    force: steer even where the SAE's training rows (hook, token selection in its provenance)
        differ from the splice's, every token at the hook (a warning instead of an error).
    """

    hook: str | None = None
    latents: tuple[int, ...] = ()
    n_latents: int = 8
    value: float = 100.0
    op: Op = "clamp"
    tokens: TokenSet = "all"
    pre_zero: bool = False
    question: str = STEERING_QUESTION
    images: str = "world:test"
    n_images: int = 16
    hai_images: str = "world:train"
    n_hai_images: int = 1000
    hai_k: int = 16
    blank_latents: int = 32
    max_new_tokens: int = 4
    batch_size: int = 32
    seed: int = 0
    force: bool = False

    def __post_init__(self) -> None:
        _check_op(self.op)
        if self.tokens not in TOKEN_SETS:
            raise VsaeError(f"unknown token set {self.tokens!r}; use one of {', '.join(TOKEN_SETS)}")
        if self.n_images < 1 or self.n_hai_images < self.hai_k or self.hai_k < 1:
            raise VsaeError("need n_images >= 1 and n_hai_images >= hai_k >= 1")
        _check_finite("--value", self.value)
        object.__setattr__(self, "latents", tuple(int(f) for f in self.latents))
