"""What the steering experiments share: the edit ops and token sets (checked by the MLLM experiment's
`vsae.experiments.mllm_steering.mllm_config.SteerConfig` too) and the sampling of a text-to-image
pipeline (`SamplerConfig`; the diffusion experiment's own settings are
`vsae.experiments.diffusion_steering.diffusion_config.DiffusionSteerConfig`). Free of torch: `vsae steer mllm`
and `vsae steer diffusion` generate their options from these fields (:mod:`vsae.cli.from_config`).
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
