"""What the steering experiments do: the edit ops and token sets (checked by the MLLM experiment's
`vsae.experiments.mllm_steering.mllm_config.SteerConfig` too) and the diffusion experiment
(`vsae.world.diffusion.steering.run_diffusion_steering`, `DiffusionSteerConfig`, sampling by
`SamplerConfig`). Free of torch: `vsae steer mllm` and `vsae steer diffusion` generate their options
from these fields (:mod:`vsae.cli.from_config`).
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


@dataclass(frozen=True)
class DiffusionSteerConfig:
    """Settings of `vsae.world.diffusion.steering.run_diffusion_steering` (Olson et al.).

    Attributes
    ----------
    hook: text-encoder hook, e.g. resid.-1 [default: the SAE's own, from its provenance].
    latents: latents to steer (comma-separated on the command line) [default: up to n_latents
        whose top word is an attribute value].
    n_latents: how many latents to pick when latents is empty.
    op: the edit.
    strength: clamp/add value as a multiple of the latent's largest activation on the caption
        corpus (scale: the factor).
    tokens: "all" prompt tokens, or a tuple of token positions.
    sweep: further strengths whose steering summary is reported too (comma-separated, e.g. 1,2,8).
    prompts: prompts to steer [default: held-out world captions].
    n_prompts: prompts per steered latent.
    n_eval: images for the generation accuracy (0: skip).
    discovery_latents: latents to name (0: all live ones, else a seeded sample).
    discovery_prompts: prompts per named latent.
    min_change: a latent has a ground-truth attribute when the judged rate of a value rises by at
        least this.
    n_captions: captions for the latents' text-side statistics.
    steps: DDIM steps.
    guidance: classifier-free guidance scale [default: the pipeline's own, else 7.5].
    seed: seeds the sampling, the prompts and the discovery sample.
    batch_size: prompts per UNet call (x2 with guidance).
    eta: DDIM's eta (0 deterministic, 1 ancestral) [default: the pipeline's own, else 0].
    force: steer even where the SAE's training rows (hook, token selection in its provenance)
        differ from the splice's, every token at the hook (a warning instead of an error).
    """

    hook: str | None = None
    latents: tuple[int, ...] = ()
    n_latents: int = 8
    op: Op = "clamp"
    strength: float = 4.0
    tokens: TokenSet | tuple[int, ...] = "all"
    sweep: tuple[float, ...] = ()
    prompts: tuple[str, ...] = ()
    n_prompts: int = 16
    n_eval: int = 200
    discovery_latents: int = 0
    discovery_prompts: int = 6
    min_change: float = 0.25
    n_captions: int = 2000
    steps: int = SamplerConfig.steps
    guidance: float | None = SamplerConfig.guidance
    seed: int = SamplerConfig.seed
    batch_size: int = SamplerConfig.batch_size
    eta: float | None = SamplerConfig.eta
    force: bool = False

    def __post_init__(self) -> None:
        _check_op(self.op)
        _check_finite("--strength", self.strength)
        for v in self.sweep:
            _check_finite("--sweep", v)
        _check_finite("--min-change", self.min_change)
        _check_sampler(self.steps, self.guidance, self.batch_size, self.eta)

    @property
    def sampler(self) -> SamplerConfig:
        """The sampling part."""
        return SamplerConfig(self.steps, self.guidance, self.seed, self.batch_size, self.eta)
