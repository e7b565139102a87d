"""The frozen, typed result of the diffusion steering experiment; ``to_json()`` gives the
``results.json`` that `vsae steer diffusion` writes (fields a run could not measure are ``null``,
per-latent fields it could not measure are left out)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

RATE_SUMMARY_KEYS: tuple[tuple[str, str], ...] = (
    ("steered", "target_steered"),
    ("baseline", "target_baseline"),
    ("preserved", "preserved"),
    ("preserved_baseline", "preserved_baseline"),
    ("steered_drawn", "target_steered_drawn"),
    ("baseline_drawn", "target_baseline_drawn"),
    ("kept_all", "kept_all"),
    ("kept_all_baseline", "kept_all_baseline"),
)
"""(summary key, per-latent `SteeringRates` field) of the means over latents."""


def _present(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


@dataclass(frozen=True)
class SteeringRates:
    """One latent's rates at one strength (`scoring.steering_rates`): the fraction of steered /
    unsteered images judged the target value, of (image, other attribute) pairs preserved, and,
    where silhouettes are known, the target rates counting only images that draw an object and
    the fractions that do."""

    target_steered: float
    target_baseline: float
    preserved: float
    preserved_baseline: float
    target_steered_drawn: float | None = None
    target_baseline_drawn: float | None = None
    drawn_steered: float | None = None
    drawn_baseline: float | None = None
    kept_all: float | None = None
    kept_all_baseline: float | None = None
    preserved_by_attribute: dict[str, float] | None = None
    preserved_by_attribute_baseline: dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return _present(asdict(self))


@dataclass(frozen=True)
class Reference:
    """The same prompts and noise edited another way, judged against the same truth (issue 23):
    a random live latent clamped the same way (``latent`` set: the damage any clamp does) or the
    prompt's own attribute word replaced by the target value (``latent`` None: the edit a
    steering method should approach). ``target``: fraction judged the target value; ``kept_all``:
    fraction of images keeping every other judged attribute; ``preserved``: fraction of (image,
    other attribute) pairs kept."""

    target: float
    kept_all: float
    preserved: float
    latent: int | None = None


@dataclass(frozen=True)
class LatentSteering:
    """One steered latent: its text-side word, share and largest activation, the attribute it
    targets (None without ground truth), the mean silhouette IoU unsteered / steered and its rates;
    without a judge, ``image_change``: the mean absolute pixel difference of its steered and
    unsteered images (0-1 scale; exactly 0 when the images are bit-identical)."""

    latent: int
    word: str
    word_share: float
    max_act: float
    attribute: str | None
    n_prompts: int
    iou_baseline: float | None = None
    iou_steered: float | None = None
    rates: SteeringRates | None = None
    random_latent: Reference | None = None
    prompt_edit: Reference | None = None
    image_change: float | None = None

    def to_json(self) -> dict[str, Any]:
        head = {
            k: getattr(self, k) for k in ("latent", "word", "word_share", "max_act", "attribute", "n_prompts")
        }
        ious = _present(
            {
                "iou_baseline": self.iou_baseline,
                "iou_steered": self.iou_steered,
                "image_change": self.image_change,
            }
        )
        refs: dict[str, Any] = {}
        if self.random_latent is not None:
            c = self.random_latent
            refs |= {"control_latent": c.latent, "control_target": c.target, "control_kept_all": c.kept_all}
        if self.prompt_edit is not None:
            e = self.prompt_edit
            refs |= {"prompt_edit_target": e.target, "prompt_edit_kept_all": e.kept_all}
        return head | ious | (self.rates.to_json() if self.rates else {}) | refs


@dataclass(frozen=True)
class RateSummary:
    """Means over the scored latents (None where a latent lacks the rate), keys `RATE_SUMMARY_KEYS`."""

    steered: float | None
    baseline: float | None
    preserved: float | None
    preserved_baseline: float | None
    steered_drawn: float | None
    baseline_drawn: float | None
    kept_all: float | None = None
    kept_all_baseline: float | None = None


SPECIFICITY = 0.8
"""Steering is specific when the images keep every other judged attribute at >= this fraction of
the unsteered rate (issue 23)."""


@dataclass(frozen=True)
class Specificity:
    """Does steering change the target attribute only (issue 23)? Means over the scored latents:
    images keeping every other judged attribute steered / unsteered, the criterion (``holds``:
    steered >= `SPECIFICITY` x unsteered), preservation per attribute, and the two references on
    the same prompts and noise: a random live latent clamped the same way, and the prompt edit."""

    kept_all: float
    kept_all_baseline: float
    preserved_by_attribute: dict[str, dict[str, float]]
    random_latent: Reference | None
    prompt_edit: Reference | None
    criterion: float = SPECIFICITY

    @property
    def holds(self) -> bool:
        return self.kept_all >= self.criterion * self.kept_all_baseline

    def to_json(self) -> dict[str, Any]:
        def ref(r: Reference | None) -> dict[str, float] | None:
            return (
                None if r is None else {"target": r.target, "kept_all": r.kept_all, "preserved": r.preserved}
            )

        return {
            "criterion": self.criterion,
            "kept_all": self.kept_all,
            "kept_all_baseline": self.kept_all_baseline,
            "holds": self.holds,
            "preserved_by_attribute": self.preserved_by_attribute,
            "random_latent": ref(self.random_latent),
            "prompt_edit": ref(self.prompt_edit),
        }


@dataclass(frozen=True)
class SteeringResult:
    """The steering step: edit, strength, per-latent rows, their means and a strength sweep."""

    op: str
    strength: float
    latents: tuple[LatentSteering, ...]
    summary: RateSummary
    drawn_iou: float | None
    n_meeting_target: int
    sweep: tuple[tuple[float, RateSummary], ...] = ()
    specificity: Specificity | None = None

    def to_json(self) -> dict[str, Any]:
        s = self.summary
        return {
            "op": self.op,
            "strength": self.strength,
            "n_latents": len(self.latents),
            "target_rate": {
                "steered": s.steered,
                "baseline": s.baseline,
                "steered_drawn": s.steered_drawn,
                "baseline_drawn": s.baseline_drawn,
            },
            "preserved_rate": s.preserved,
            "preserved_rate_baseline": s.preserved_baseline,
            "drawn_iou": self.drawn_iou,
            "n_meeting_target": self.n_meeting_target,
            "latents": [r.to_json() for r in self.latents],
            "sweep": [{"strength": st, **asdict(sm)} for st, sm in self.sweep],  # the trade-off curve
            "specificity": self.specificity.to_json() if self.specificity is not None else None,
        }


@dataclass(frozen=True)
class DiscoveredLatent:
    """One named latent: its text-side word, the discovered name and its CLIP similarity rise,
    and the value whose judged rate rose most (None without ground truth or below the threshold)."""

    latent: int
    text_word: str
    name: str
    rise: float
    truth: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DiscoveryResult:
    """The discovery step. ``ran``: a naming CLIP was there (else only the null agreements);
    ``judged``: a judge gave the truth (``n_with_truth`` is then set)."""

    ran: bool = False
    latents: tuple[DiscoveredLatent, ...] = ()
    agreement: float | None = None
    random_agreement: float | None = None
    n_with_truth: int | None = None
    vocabulary: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "agreement": self.agreement,
            "random_agreement": self.random_agreement,
            "latents": [d.to_json() for d in self.latents],
        }
        if not self.ran:
            return out
        if self.n_with_truth is not None:
            out["n_with_truth"] = self.n_with_truth
        return out | {"n_latents": len(self.latents), "vocabulary": list(self.vocabulary)}


@dataclass(frozen=True)
class GenerationResult:
    """Generation accuracy on held-out prompts (None without ground truth): attribute -> agreement
    of the generated images, of the judge on the real images, and the silhouette reading."""

    n: int
    accuracy: dict[str, float | None]
    judge_accuracy_on_real: dict[str, float] | None = None
    silhouette: dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Example:
    """The PNG of one latent's first prompts, unsteered (top row) and steered (bottom row)."""

    latent: int
    label: str
    prompts: tuple[str, ...]
    png: str

    def to_json(self) -> dict[str, Any]:
        return {"latent": self.latent, "label": self.label, "prompts": list(self.prompts), "png": self.png}


@dataclass(frozen=True)
class DiffusionSteeringResult:
    """Everything one run measured (`runner.run_diffusion_steering`)."""

    config: dict[str, Any]
    provenance: dict[str, Any]
    d_sae: int
    live: int
    sampler: dict[str, Any]
    generation: GenerationResult
    steering: SteeringResult
    discovery: DiscoveryResult
    examples: tuple[Example, ...] = ()
    seconds: float = field(default=0.0, compare=False)
    skipped: dict[str, str] = field(default_factory=dict)
    """Part of the run -> why it was not measured (written only when some part was skipped)."""

    def to_json(self) -> dict[str, Any]:
        """The ``results.json`` of the run."""
        js = {
            "config": self.config,
            "provenance": self.provenance,
            "latents": {"d_sae": self.d_sae, "live": self.live},
            "sampler": self.sampler,
            "generation": self.generation.to_json(),
            "steering": self.steering.to_json(),
            "discovery": self.discovery.to_json(),
            "examples": [e.to_json() for e in self.examples],
            "seconds": self.seconds,
        }
        return js | ({"skipped": dict(self.skipped)} if self.skipped else {})

    def summary(self) -> str:
        """One line: target rate steered vs unsteered, preserved, discovery vs random words."""

        def pct(v: float | None) -> str:
            return "n/a" if v is None else f"{100 * v:.1f}%"

        s, d = self.steering.summary, self.discovery
        changes = [r.image_change for r in self.steering.latents if r.image_change is not None]
        if "steering_rates" in self.skipped:  # no judge: what was measured instead
            mean = f"{sum(changes) / len(changes):.4f}" if changes else "n/a"
            named = f"{len(d.latents)} latents named" if d.ran else "no naming"
            return f"image change {mean} steered vs unsteered over {len(changes)} latents (no judge); {named}"
        return (
            f"target rate {pct(s.steered)} steered vs {pct(s.baseline)} unsteered, "
            f"preserved {pct(s.preserved)}; discovery agreement {pct(d.agreement)} "
            f"(random {pct(d.random_agreement)})"
        )
