"""What the steering experiments do: the MLLM experiment (`vsae.steer.experiment.run_steering`,
`SteerConfig`) and the sampling of a text-to-image pipeline (`SamplerConfig`; the diffusion
experiment's own settings are `vsae.experiments.diffusion_steering.config.DiffusionSteerConfig`).
Free of torch: `vsae steer mllm` and `vsae steer diffusion` generate their options from these
fields (:mod:`vsae.cli.from_config`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from vsae.errors import VsaeError

Op = Literal["clamp", "add", "scale", "ablate"]  # what a latent edit does (vsae.steer.edits.LatentEdit)
TokenSet = Literal["all", "cls", "patches"]  # the named token sets an edit applies to
OPS: tuple[str, ...] = get_args(Op)
TOKEN_SETS: tuple[str, ...] = get_args(TokenSet)

STEERING_QUESTION = "What is shown in this image? Use exactly one word!"


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


def _check_op(op: str) -> None:
    if op not in OPS:
        raise VsaeError(f"unknown latent edit op {op!r}; use one of {', '.join(OPS)}")


def _check_finite(flag: str, v: float, lo: float = -math.inf, hi: float = math.inf) -> None:
    """One line unless `v` is a finite number in [lo, hi] (NaN would run and report NaN scores)."""
    if not (math.isfinite(v) and lo <= v <= hi):
        where = "" if (lo, hi) == (-math.inf, math.inf) else f" in [{lo:g}, {hi:g}]"
        raise VsaeError(f"{flag} must be a finite number{where}, got {v}")


def _check_sampler(steps: int, guidance: float | None, batch_size: int, eta: float | None) -> None:
    if steps < 1 or batch_size < 1:
        raise VsaeError(f"--steps ({steps}) and --batch-size ({batch_size}) must be >= 1")
    if guidance is not None:
        _check_finite("--guidance", guidance, 0.0)
    if eta is not None:  # DDIM's sigma: eta > 1 would take the square root of a negative number
        _check_finite("--eta", eta, 0.0, 1.0)


@dataclass(frozen=True)
class SamplerConfig:
    """Sampling settings of a text-to-image pipeline (`vsae.steer.diffusion_pipeline.generate`).

    Attributes
    ----------
    steps: DDIM steps.
    guidance: classifier-free guidance scale (1 = no guidance, the unconditional pass is skipped)
        [default: the pipeline's own (``sampler_guidance`` in vsae_diffusion.json), else 7.5 as
        Stable Diffusion's pipeline].
    seed: seeds the initial noise (image i's noise depends on seed and i only).
    batch_size: prompts per UNet call (x2 with guidance).
    eta: DDIM's eta: 0 = deterministic DDIM, 1 = DDPM-like ancestral steps that add fresh noise
        each step (Song et al.; seeded per image like the initial noise) [default: the
        pipeline's own (``sampler_eta`` in vsae_diffusion.json), else 0].
    """

    steps: int = 20
    guidance: float | None = None
    seed: int = 0
    batch_size: int = 64
    eta: float | None = None

    def __post_init__(self) -> None:
        _check_sampler(self.steps, self.guidance, self.batch_size, self.eta)
