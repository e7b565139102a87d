"""What the diffusion steering experiment does (Olson et al.): `DiffusionSteerConfig`. Free of
torch: `vsae steer diffusion` generates its options from these fields (:mod:`vsae.cli.from_config`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vsae.steer.steer_config import Op, SamplerConfig, TokenSet, _check_finite, _check_op, _check_sampler


@dataclass(frozen=True)
class DiffusionSteerConfig:
    """Settings of `vsae.experiments.diffusion_steering.diffusion_run.run_diffusion_steering` (Olson et al.).
    The defaults are the demo's diffusion section's (issue 23: `vsae steer diffusion` with no
    options measures what the demo reports).

    Attributes
    ----------
    hook: text-encoder hook, e.g. resid.-1 [default: the SAE's own, from its provenance].
    latents: latents to steer (comma-separated on the command line) [default: up to n_latents
        whose top word is an attribute value].
    n_latents: how many latents to pick when latents is empty.
    op: the edit.
    strength: clamp/add value as a multiple of the latent's largest activation on the caption
        corpus (scale: the factor).
    tokens: "all" prompt tokens, a tuple of token positions, or "word": only the tokens of each
        prompt's own word for the steered latent's attribute (issue 23; latents without an
        attribute and discovery edit all tokens).
    sweep: further strengths whose steering summary is reported too (comma-separated, e.g. 1,2,8).
    prompts: prompts to steer [default: held-out world captions].
    n_prompts: prompts per steered latent.
    n_eval: images for the generation accuracy (0: skip).
    discovery_latents: latents to name (0: all live ones, else a seeded sample).
    discovery_prompts: prompts per named latent.
    min_change: a latent has a ground-truth attribute when the judged rate of a value rises by at
        least this.
    n_captions: captions for the latents' text-side statistics.
    steps: DDIM steps (the demo's 10; `SamplerConfig`'s 20 elsewhere).
    guidance: classifier-free guidance scale [default: the pipeline's own, else 7.5].
    seed: seeds the sampling, the prompts and the discovery sample.
    batch_size: prompts per UNet call (x2 with guidance).
    eta: DDIM's eta (0 deterministic, 1 ancestral) [default: the pipeline's own, else 0].
    force: steer even where the SAE's training rows (hook, token selection in its provenance)
        differ from the splice's, every token at the hook (a warning instead of an error).
    """

    hook: str | None = None
    latents: tuple[int, ...] = ()
    n_latents: int = 6
    op: Op = "clamp"
    strength: float = 4.0
    tokens: TokenSet | Literal["word"] | tuple[int, ...] = "all"
    sweep: tuple[float, ...] = ()
    prompts: tuple[str, ...] = ()
    n_prompts: int = 12
    n_eval: int = 64
    discovery_latents: int = 24
    discovery_prompts: int = 6
    min_change: float = 0.25
    n_captions: int = 2000
    steps: int = 10
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
