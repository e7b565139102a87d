"""Ground truth for the diffusion steering experiment, as plug-ins (issue 24).

A pipeline trained on a world whose images can be read back (the shapes world's tiny model) lets
the experiment score what steering did: generation accuracy, the target attribute's rate, the
preservation of the prompt's other attributes, and discovery against the truth. Everything that
knows the world (its attribute values, captions, held-out prompts, image reader, silhouettes, its
default pipeline, SAE and naming CLIP) is one `DiffusionJudge`, registered in `DIFFUSION_JUDGES`
(group ``vsae.diffusion_judges``; the shapes world's is ``world``, declared by vsae's own
pyproject as ``world = vsae.world.diffusion.judge``). A pipeline without a judge (Stable
Diffusion) is steered and named the same way; its ground-truth numbers are ``null``, and nothing
of a world is imported.

Which judge reads a pipeline: the one named by the caller (``--judge``), else the one its
``vsae_diffusion.json`` names by its kind ``vsae-<name>-diffusion`` (the shapes world's pipeline:
``vsae-world-diffusion`` -> ``world``), else none.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from vsae.registry import Registry

if TYPE_CHECKING:
    from vsae.experiments.diffusion_steering.discovery import VocabWord
    from vsae.steer.diffusion_pipeline import DiffusionPipe
    from vsae.steer.steer_config import SamplerConfig

DEFAULT_JUDGE = "world"
"""The judge whose pipeline and SAE `vsae steer diffusion` steers when none is given."""

_KIND = re.compile(r"^vsae-(?P<name>[A-Za-z0-9_.-]+)-diffusion$")


class AttributeReader(Protocol):
    """Reads attribute values off images (the shapes world: similarity-encoder heads)."""

    def predict(self, images_NHWC: np.ndarray, attributes: tuple[str, ...] = ...) -> dict[str, np.ndarray]:
        """attribute -> value index [N] (indexes ``DiffusionJudge.values(attribute)``) [default:
        every attribute it reads]."""
        ...


class DiffusionJudge(Protocol):
    """What a world with ground truth plugs into the experiment.

    Attributes
    ----------
    judged: the attributes steering is scored on (read reliably by the reader).
    named: the attributes whose values make the naming vocabulary and discovery's truth.
    drawn_iou: silhouette IoU at or above which an image still draws an object.
    """

    judged: tuple[str, ...]
    named: tuple[str, ...]
    drawn_iou: float

    def values(self, attribute: str) -> Sequence[str]:
        """The attribute's values as words (value index -> word)."""
        ...

    def vocabulary(self) -> list[VocabWord]:
        """The naming vocabulary: every value of ``named`` with its CLIP prompts."""
        ...

    def naming_clip(self) -> str:
        """The CLIP that names latents when the caller gives none."""
        ...

    def default_pipeline(self) -> str:
        """The world's shipped pipeline directory."""
        ...

    def default_sae(self) -> str:
        """The shipped SAE on that pipeline's text encoder."""
        ...

    def captions(self, n: int, seed: int) -> list[str]:
        """``n`` training-style captions: the corpus of the latents' text-side statistics."""
        ...

    def heldout(self, n: int, seed: int) -> tuple[list[str], dict[str, np.ndarray]]:
        """(``n`` held-out prompts, ``judged`` attribute -> the prompts' value index [n])."""
        ...

    def reader(self, pipeline: str) -> AttributeReader:
        """The image reader of this pipeline's images."""
        ...

    def generation(
        self, pipe: DiffusionPipe, reader: AttributeReader, n: int, seed: int, sampler: SamplerConfig
    ) -> dict[str, Any]:
        """Generation accuracy on ``n`` held-out prompts: ``generated`` and ``real`` (attribute ->
        agreement) and ``silhouette`` (``generated`` -> shape agreement and mean IoU)."""
        ...

    def silhouette_iou(self, images_NHWC: np.ndarray) -> np.ndarray:
        """float [N]: the best silhouette IoU of each image's object (1 = a clean shape)."""
        ...


DIFFUSION_JUDGES: Registry[DiffusionJudge] = Registry("diffusion judge", "vsae.diffusion_judges")


def judge_name(provenance: dict[str, Any], name: str | None = None) -> str | None:
    """The judge of a pipeline: ``name`` if given, else the one its kind names (registered or
    declared as a plug-in), else None. Imports nothing."""
    if name is not None:
        return name
    m = _KIND.match(str(provenance.get("kind", "")))
    return m["name"] if m and m["name"] in DIFFUSION_JUDGES.names() else None


def find_judge(provenance: dict[str, Any], name: str | None = None) -> DiffusionJudge | None:
    """The `DiffusionJudge` of a pipeline (`judge_name`), imported on first use; None without one."""
    found = judge_name(provenance, name)
    return DIFFUSION_JUDGES.get(found) if found is not None else None
