"""The configuration of one SAE (architecture and shape), stored as JSON next to its weights."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from vsae.errors import VsaeError

ARCHS = ("relu", "topk", "batchtopk", "matryoshka", "jumprelu")
# Pach et al. (seed 001/002) Matryoshka BatchTopK group fractions.
DEFAULT_GROUPS = (0.0625, 0.125, 0.25, 0.5625)


@dataclass(frozen=True)
class SAEConfig:
    """Architecture and hyper-parameters of one sparse autoencoder.

    Attributes
    ----------
    arch: one of ``ARCHS``.
    d_in: input (activation) width d.
    d_sae: dictionary size F (= expansion * d_in).
    k: active latents per row (topk / batchtopk / matryoshka); ignored otherwise.
    groups: Matryoshka group fractions of F (sum to 1); prefix m = the first m groups.
    l1_coeff: ReLU SAE: weight of the L1 penalty sum_f |z_f| ||W_dec[f]|| (Anthropic, Apr. 2024).
    l0_coeff: JumpReLU SAE: weight of the L0 penalty (Rajamanoharan et al. 2024).
    jumprelu_bandwidth: JumpReLU straight-through rectangle-kernel width epsilon.
    jumprelu_init_threshold: initial JumpReLU threshold (in normalised input units).
        The three JumpReLU defaults are SAELens's (inputs scaled to E||x||^2 = d).
    aux_k: top-k_aux dead latents used by the auxiliary loss (Gao et al. 2024); 0 = off.
    aux_coeff: weight of the auxiliary-k loss (Pach et al.: 0.03).
    threshold_momentum: BatchTopK: EMA momentum of the inference threshold estimate.
    name: run name (sub-directory of a sweep).
    provenance: where the training activations came from (the store manifest's provenance).
    """

    arch: str
    d_in: int
    d_sae: int
    k: int = 20
    groups: tuple[float, ...] = DEFAULT_GROUPS
    l1_coeff: float = 5.0
    l0_coeff: float = 1.0
    jumprelu_bandwidth: float = 0.05
    jumprelu_init_threshold: float = 0.01
    aux_k: int = 0
    aux_coeff: float = 0.03
    threshold_momentum: float = 0.99
    name: str = "sae"
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise VsaeError(f"unknown SAE architecture {self.arch!r}; use one of {', '.join(ARCHS)}")
        if self.d_in <= 0 or self.d_sae <= 0:
            raise VsaeError(f"SAE widths must be positive (d_in={self.d_in}, d_sae={self.d_sae})")
        if self.arch in ("topk", "batchtopk", "matryoshka") and not 0 < self.k <= self.d_sae:
            raise VsaeError(f"k={self.k} must be in 1..d_sae={self.d_sae}; pass a --k in that range")
        if self.aux_k < 0:
            raise VsaeError(f"--aux-k must be >= 0 (0 = off), got {self.aux_k}")
        for flag, v in (("--aux-coeff", self.aux_coeff), ("--l1", self.l1_coeff), ("--l0", self.l0_coeff)):
            if not (math.isfinite(v) and v >= 0):
                raise VsaeError(f"{flag} must be a number >= 0, got {v}")
        object.__setattr__(self, "groups", tuple(float(g) for g in self.groups))
        if self.arch == "matryoshka":
            if not self.groups or any(g <= 0 for g in self.groups) or abs(sum(self.groups) - 1) > 1e-6:
                raise VsaeError(f"--groups {self.groups} must be positive fractions summing to 1")
            if min(self.group_sizes) <= 0:
                raise VsaeError(f"--groups {self.groups} give an empty group for d_sae={self.d_sae}")

    @property
    def group_sizes(self) -> tuple[int, ...]:
        """Sizes of the Matryoshka groups (the last absorbs rounding); sum = d_sae."""
        sizes = [round(g * self.d_sae) for g in self.groups[:-1]]
        return (*sizes, self.d_sae - sum(sizes))

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["groups"] = list(self.groups)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SAEConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise VsaeError(f"SAE config has unknown keys {sorted(unknown)}; is it from a newer vsae?")
        d = dict(d)
        if "groups" in d:
            d["groups"] = tuple(d["groups"])
        return cls(**d)

    def replace(self, **kw) -> SAEConfig:
        return dataclasses.replace(self, **kw)
