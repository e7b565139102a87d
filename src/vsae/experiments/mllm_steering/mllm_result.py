"""Typed results of the MLLM steering experiment (`vsae.experiments.mllm_steering.mllm_run.run_steering`).

`SteeringResult.to_json()` is exactly what results.json holds (docs/steer.md lists its keys);
the report and the demo read that JSON form."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from vsae.experiments.mllm_steering.mllm_config import SteerConfig
from vsae.steer.score import SteeringScore


@dataclass(frozen=True)
class SteeredLatent:
    """One steered latent on the test images.

    Attributes
    ----------
    latent: the latent's index in the SAE.
    name: its name from the ground truth of its top world images ("star 88% / red 50%"; "" otherwise).
    top_images: display ids of its top (HAI) images, best first.
    top_values: its mean-pooled activation on each of its top images.
    max_pooled_activation: its largest mean-pooled activation on any HAI image.
    max_token_activation: its largest activation on any single token.
    answers_steered: the model's answer on each test image with the latent edited.
    answers_baseline: the unsteered answer on each test image.
    score_steered: cos(h_f, t) of the steered answers, mean over images.
    score_baseline: the same for the unsteered answers.
    """

    latent: int
    name: str
    top_images: tuple[str, ...]
    top_values: tuple[float, ...]
    max_pooled_activation: float
    max_token_activation: float
    answers_steered: tuple[str, ...]
    answers_baseline: tuple[str, ...]
    score_steered: float
    score_baseline: float

    def to_json(self) -> dict[str, Any]:
        """The latent's row of results.json["latents"]."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class BlankLatent:
    """One latent of the single-image variant.

    Attributes
    ----------
    latent: the latent's index in the SAE.
    name: its name from its top world images ("" for non-world images).
    answer: the model's answer on the blank image with the latent edited.
    """

    latent: int
    name: str
    answer: str


@dataclass(frozen=True)
class BlankImageResult:
    """The single-image variant: one blank white image, many latents.

    Attributes
    ----------
    score: the steering score over these latents on the one image.
    baseline_answer: the unsteered answer on the blank image.
    latents: the steered latents and their answers.
    """

    score: SteeringScore
    baseline_answer: str
    latents: tuple[BlankLatent, ...]

    def to_json(self) -> dict[str, Any]:
        """results.json["blank_image"]."""
        return {
            "score": self.score.to_json(),
            "baseline_answer": self.baseline_answer,
            "latents": [asdict(x) for x in self.latents],
        }


@dataclass(frozen=True)
class SteeringScale:
    """The scale of the hooked activations, to judge the edit value.

    Attributes
    ----------
    mean_token_norm: mean L2 norm of the hooked token activations on the HAI images.
    median_max_token_activation: median over the steered latents of their largest token activation.
    value: the edit value used.
    """

    mean_token_norm: float
    median_max_token_activation: float
    value: float


@dataclass(frozen=True)
class SteeringResult:
    """What `run_steering` measured (Pach et al.'s MLLM steering).

    Attributes
    ----------
    config: the experiment's configuration.
    hook: the hook steered at (the config's, or the one the LLaVA's projector reads).
    llava: the LLaVA's provenance (model id or directory, revision, ...).
    sae: the SAE directory.
    similarity_encoder: the image/text encoder that embeds h_f and the answers.
    scale: the scale of the hooked activations.
    score: the steering score on the test images with its unsteered baseline.
    latents: per steered latent, its answers and scores.
    test_images: display ids of the test images.
    blank_image: the single-image variant, or None when it was skipped.
    """

    METHOD: ClassVar[str] = (
        "Pach et al. MLLM steering: clamp an SAE latent at every token of the vision encoder's "
        "hooked layer (SAE error term kept); score = cos(h_f, t) (METRICS.md)"
    )
    HAI_POOLING: ClassVar[str] = "mean over patch tokens"

    config: SteerConfig
    hook: str
    llava: dict[str, Any]
    sae: str
    similarity_encoder: str
    scale: SteeringScale
    score: SteeringScore
    latents: tuple[SteeredLatent, ...]
    test_images: tuple[str, ...]
    blank_image: BlankImageResult | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON written to results.json (and embedded in the demo's results.json)."""
        out: dict[str, Any] = {
            "method": self.METHOD,
            "config": asdict(self.config) | {"hook": self.hook},
            "llava": self.llava,
            "sae": self.sae,
            "similarity_encoder": self.similarity_encoder,
            "hai_pooling": self.HAI_POOLING,
            "scale": asdict(self.scale),
            "score": self.score.to_json(),
            "latents": [x.to_json() for x in self.latents],
            "test_images": list(self.test_images),
        }
        if self.blank_image is not None:
            out["blank_image"] = self.blank_image.to_json()
        return out

    def summary_line(self) -> str:
        """The score in one line, as `vsae steer mllm` prints it."""
        s = self.score
        return (
            f"steering score {s.steered:.4f} vs unsteered {s.baseline:.4f} "
            f"(moved toward {100 * s.moved_toward:.1f}%, away {100 * s.moved_away:.1f}%)"
        )
