"""What the demo's report reads of one unit set's analysis (`vsae.demo.analyse.UnitAnalysis`),
as a Protocol: the report sits below the demo and never imports it."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from vsae.eval.monosemanticity import MSResult
from vsae.eval.topimages import TopImages

T = TypeVar("T")

RunKey = tuple[str, str, int]
"""(hook, arch, expansion) of one SAE; (hook, "raw", 0) for the raw neurons."""


class UnitResults(Protocol):
    """One set of units (an SAE's latents or the raw neurons) measured on the test split."""

    @property
    def ms(self) -> MSResult:
        """The MS of every unit."""
        ...

    @property
    def top(self) -> TopImages:
        """The top images of every unit."""
        ...

    @property
    def purity(self) -> dict[str, Any]:
        """`vsae.eval.purity.top_image_purity` (attribute_F, purity_F per unit)."""
        ...

    @property
    def names(self) -> dict[str, Any] | None:
        """Latent names and their agreement (SAEs only)."""
        ...

    @property
    def roc(self) -> dict[str, Any] | None:
        """Recon-error ROC curve per shifted split (SAEs only)."""
        ...

    @property
    def depth_per_group(self) -> list[dict[str, Any]] | None:
        """Mean LCA depth per Matryoshka group in the class taxonomy (SAEs only)."""
        ...


def need(value: T | None) -> T:
    """``value``, which an SAE's analysis always has (the raw neurons' lacks it)."""
    if value is None:
        raise ValueError("this part of the analysis exists for SAEs only; pass an SAE's analysis")
    return value
