"""The configuration of one SAE (architecture and shape), stored as JSON next to its weights.

Every field is documented below; ``vsae train``'s options are generated from these fields
(:mod:`vsae.cli.from_config`), so the defaults and help texts here are the only ones.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from vsae.errors import VsaeError
from vsae.sae.registry import arch_names, get_arch
from vsae.store.validate import StorageDtype

# Pach et al. (seed 001/002) Matryoshka BatchTopK group fractions.
DEFAULT_GROUPS = (0.0625, 0.125, 0.25, 0.5625)


def default_aux_k(d_in: int) -> int:
    """The aux-k default: d_in / 2 dead latents (Gao et al. 2024, App. B.1; dictionary_learning)."""
    return d_in // 2


@dataclass(frozen=True, kw_only=True)
class SAEConfig:
    """Architecture and hyper-parameters of one sparse autoencoder.

    Attributes
    ----------
    arch: the SAE architecture, one of the registered ones (``vsae.sae.arch_names()``).
    d_in: input (activation) width d.
    d_sae: dictionary size F (= expansion * d_in).
    k: active latents per row (architectures that use k: topk, batchtopk, matryoshka).
    groups: Matryoshka group fractions of F (sum to 1); prefix m = the first m groups.
    l1_coeff: ReLU SAE: weight of the L1 penalty sum_f |z_f| ||W_dec[f]|| (Anthropic, Apr. 2024).
    l0_coeff: JumpReLU SAE: weight of the L0 penalty (Rajamanoharan et al. 2024).
    jumprelu_bandwidth: JumpReLU straight-through rectangle-kernel width epsilon (SAELens's default).
    jumprelu_init_threshold: JumpReLU initial threshold, in normalised input units (SAELens's default).
    aux_k: dead latents in the aux-k loss (Gao et al. 2024) of architectures that use k; 0 = off;
        unset: d_in / 2 (Gao et al. App. B.1); always 0 for the others.
    aux_coeff: weight of the aux-k loss (Pach et al.: 0.03).
    threshold_momentum: BatchTopK: EMA momentum of the inference threshold estimate, in [0, 1).
    name: run name (sub-directory of a sweep).
    provenance: where the training activations came from (the store manifest's provenance).
    """

    arch: str = "batchtopk"
    d_in: int
    d_sae: int
    k: int = 20
    groups: tuple[float, ...] = DEFAULT_GROUPS
    l1_coeff: float = field(default=5.0, metadata={"flag": "--l1"})
    l0_coeff: float = field(default=1.0, metadata={"flag": "--l0"})
    jumprelu_bandwidth: float = 0.05
    jumprelu_init_threshold: float = 0.01
    aux_k: int | None = None
    aux_coeff: float = 0.03
    threshold_momentum: float = 0.99
    name: str = "sae"
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec = get_arch(self.arch)  # VsaeError naming the architectures if unknown
        if self.d_in <= 0 or self.d_sae <= 0:
            raise VsaeError(f"SAE widths must be positive (d_in={self.d_in}, d_sae={self.d_sae})")
        if spec.uses_k and not 0 < self.k <= self.d_sae:
            raise VsaeError(f"k={self.k} must be in 1..d_sae={self.d_sae}; pass a --k in that range")
        if self.aux_k is not None and self.aux_k < 0:
            raise VsaeError(f"--aux-k must be >= 0 (0 = off), got {self.aux_k}")
        aux_k = (default_aux_k(self.d_in) if self.aux_k is None else self.aux_k) if spec.uses_k else 0
        object.__setattr__(self, "aux_k", aux_k)
        for flag, v in (("--aux-coeff", self.aux_coeff), ("--l1", self.l1_coeff), ("--l0", self.l0_coeff)):
            if not (math.isfinite(v) and v >= 0):
                raise VsaeError(f"{flag} must be a number >= 0, got {v}")
        m = self.threshold_momentum  # EMA weight of the old threshold: >= 1 never learns or diverges
        if not (math.isfinite(m) and 0 <= m < 1):
            raise VsaeError(f"--threshold-momentum must be a number in [0, 1), got {m}")
        object.__setattr__(self, "groups", tuple(float(g) for g in self.groups))
        spec.cls.check_config(self)

    @property
    def hook_name(self) -> str | None:
        """The hook the SAE was trained on, in vsae's names (``resid.5``; ``provenance['hook']``)."""
        hook = self.provenance.get("hook")
        return None if hook is None else str(hook)

    @property
    def uses_k(self) -> bool:
        """Whether this architecture keeps k latents per row (the registry's ``uses_k``)."""
        return get_arch(self.arch).uses_k

    @property
    def nested_groups(self) -> tuple[int, ...]:
        """The latent groups to report separately: ``group_sizes`` for a nested (Matryoshka)
        architecture, else one group of all ``d_sae`` latents."""
        return self.group_sizes if get_arch(self.arch).nested else (self.d_sae,)

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

    def replace(self, **kw: Any) -> SAEConfig:
        return dataclasses.replace(self, **kw)


@dataclass(frozen=True)
class EncodeConfig:
    """How `vsae encode` (:func:`vsae.sae.encode_store.encode_store`) writes an SAE's latents.

    Attributes
    ----------
    batch_size: rows encoded at once.
    device: torch device of the SAE: cpu, cuda, cuda:N or mps.
    dtype: storage dtype of the latent values.
    """

    batch_size: int = 4096
    device: str = "cpu"
    dtype: StorageDtype = "float32"


__all__ = ["DEFAULT_GROUPS", "EncodeConfig", "SAEConfig", "arch_names", "default_aux_k"]
