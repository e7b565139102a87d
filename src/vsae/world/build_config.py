"""What `vsae world build` rebuilds, and with which overrides (torch-free: the command's options are
generated from these fields by :mod:`vsae.cli.from_config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

WorldModel = Literal["clip", "simenc", "llava", "diffusion"]
WORLD_MODELS: tuple[WorldModel, ...] = ("clip", "simenc", "llava", "diffusion")


@dataclass(frozen=True)
class WorldBuildConfig:
    """The world's models to build and the overrides of their training configs (unset: the
    model config's own default: `ClipConfig`, `SimEncConfig`, `LlavaTrainConfig`,
    `SteeringSAEConfig`, `DiffusionTrainConfig`, `TextSAEConfig`).

    Attributes
    ----------
    out_dir: directory for clip/, simenc/, llava/ and diffusion/ [default: the package's shipped
        assets, only for models missing there: shipped models are never overwritten; to update
        them, build elsewhere, compare, and copy deliberately].
    only: build one model only.
    threads: torch CPU threads (the shipped weights were built with 1; results depend on it).
    jobs: train the two models at the same time in this many processes (1 or 2).
    clip_steps: override the tiny CLIP's training steps.
    simenc_steps: override the similarity encoder's training steps.
    llava_steps: override the tiny LLaVA's training steps.
    sae_steps: override the steering SAEs' training steps (the LLaVA's, the text-to-image model's
        text SAE).
    diffusion_steps: override the tiny text-to-image model's training steps.
    diffusion_eval: held-out captions the text-to-image model's quality is measured on.
    judge_images: real images the similarity-encoder heads that judge generated images are fitted on.
    """

    out_dir: str | None = field(default=None, metadata={"flag": "--out"})
    only: WorldModel | None = None
    threads: int = 1
    jobs: int = 2
    clip_steps: int | None = None
    simenc_steps: int | None = None
    llava_steps: int | None = None
    sae_steps: int | None = None
    diffusion_steps: int | None = None
    diffusion_eval: int = 200
    judge_images: int = 6000

    @property
    def models(self) -> tuple[WorldModel, ...]:
        """The models to build, in build order."""
        return (self.only,) if self.only else WORLD_MODELS
