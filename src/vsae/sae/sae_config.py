"""The configuration of one SAE (architecture and shape), stored as JSON next to its weights.

The common fields are documented below and each architecture's settings in its config class
(in its file, :mod:`vsae.sae.archs`); ``vsae train``'s options are generated from these fields
(:mod:`vsae.cli.from_config`), so the defaults and help texts there are the only ones.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_origin, get_type_hints

from vsae.errors import VsaeError
from vsae.sae.arch_registry import arch_names, get_arch
from vsae.store.validate import StorageDtype

# Pach et al. (seed 001/002) Matryoshka BatchTopK group fractions.
DEFAULT_GROUPS = (0.0625, 0.125, 0.25, 0.5625)

# The per-architecture keys of the flat config.json that every vsae SAE carried before each
# architecture had its own config class: a key the architecture does not use is dropped on load.
FLAT_LAYOUT_KEYS = frozenset(
    {
        "k",
        "groups",
        "l1_coeff",
        "l0_coeff",
        "jumprelu_bandwidth",
        "jumprelu_init_threshold",
        "aux_k",
        "aux_coeff",
        "threshold_momentum",
    }
)


def default_aux_k(d_in: int) -> int:
    """The aux-k default: d_in / 2 dead latents (Gao et al. 2024, App. B.1; dictionary_learning)."""
    return d_in // 2


def check_number(flag: str, v: float) -> None:
    """A loss weight must be a finite number >= 0 (one-line ``VsaeError`` naming ``flag``)."""
    if not (math.isfinite(v) and v >= 0):
        raise VsaeError(f"{flag} must be a number >= 0, got {v}")


def settings(cls: type) -> tuple[str, ...]:
    """The fields an architecture's config class adds to the common ones of :class:`SAEConfig`."""
    common = {f.name for f in dataclasses.fields(SAEConfig)}
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in common)


@dataclass(frozen=True, kw_only=True)
class SAEConfig:
    """Architecture and shape of one sparse autoencoder: the fields every architecture has.

    Each architecture's own settings (``k``, ``l1_coeff``, ...) are the fields of its config
    class, a subclass declared in the architecture's file beside the SAE class
    (``vsae/sae/archs/topk.py``: ``TopKConfig``; its ``config_class``). ``SAEConfig(arch=name,
    ...)`` builds that class (as SAELens's per-architecture configs, picked by name); a setting
    the architecture does not have is a one-line ``VsaeError``.

    Attributes
    ----------
    arch: the SAE architecture, one of the registered ones (``vsae.sae.arch_names()``).
    d_in: input (activation) width d.
    d_sae: dictionary size F (= expansion * d_in).
    name: run name (sub-directory of a sweep).
    provenance: where the training activations came from (the store manifest's provenance).
    """

    arch: str = "batchtopk"
    d_in: int
    d_sae: int
    name: str = "sae"
    provenance: dict[str, Any] = field(default_factory=dict)

    if TYPE_CHECKING:  # the dataclass's __init__, and the settings of the architecture ``arch``

        def __init__(
            self,
            *,
            arch: str = ...,
            d_in: int,
            d_sae: int,
            name: str = ...,
            provenance: dict[str, Any] = ...,
            **settings: Any,
        ) -> None: ...

    def __new__(cls, *args: Any, **kw: Any) -> SAEConfig:
        if not kw:  # copy / unpickle: the class is already the right one
            return super().__new__(cls)
        arch = kw.get("arch", "batchtopk")
        target = get_arch(arch).config if cls is SAEConfig else cls  # VsaeError naming the archs
        names = {f.name for f in dataclasses.fields(target)}
        wrong = sorted(set(kw) - names)
        if wrong:
            own = ", ".join(settings(target)) or "none"
            raise VsaeError(
                f"{', '.join(wrong)}: not a setting of SAE architecture {arch!r} (its settings: {own})"
            )
        return super().__new__(target)

    def __post_init__(self) -> None:
        spec = get_arch(self.arch)  # VsaeError naming the architectures if unknown
        if not isinstance(self, spec.config):
            raise VsaeError(
                f"a {type(self).__name__} is not the config of SAE architecture {self.arch!r} "
                f"({spec.config.__name__}); build it with SAEConfig(arch={self.arch!r}, ...)"
            )
        if self.d_in <= 0 or self.d_sae <= 0:
            raise VsaeError(f"SAE widths must be positive (d_in={self.d_in}, d_sae={self.d_sae})")
        self.check()
        spec.cls.check_config(self)

    def check(self) -> None:
        """Check (and complete) the architecture's own settings; ``VsaeError`` for a bad one.
        Subclasses call ``super().check()``."""

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
        """The latent groups to report separately: one group of all ``d_sae`` latents, or the
        nested groups of a nested (Matryoshka) architecture."""
        return (self.d_sae,)

    def to_json(self) -> dict[str, Any]:
        """The flat JSON form (``config.json``): common fields and the architecture's settings."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SAEConfig:
        """The config of ``d`` (``to_json``'s form, or the flat layout of older vsae whose
        config.json carried every architecture's settings: those of other architectures are
        dropped)."""
        target = get_arch(d.get("arch", "batchtopk")).config
        names = {f.name for f in dataclasses.fields(target)}
        d = {k: v for k, v in d.items() if k in names or k not in FLAT_LAYOUT_KEYS}
        unknown = set(d) - names
        if unknown:
            raise VsaeError(f"SAE config has unknown keys {sorted(unknown)}; is it from a newer vsae?")
        hints = get_type_hints(target)
        d = {k: tuple(v) if get_origin(hints[k]) is tuple else v for k, v in d.items()}
        return target(**d)

    def replace(self, **kw: Any) -> SAEConfig:
        return dataclasses.replace(self, **kw)


def config_for(arch: str, **kw: Any) -> SAEConfig:
    """The config of ``arch`` from settings meant for several architectures (a sweep or a demo
    over architectures passes ``k`` to all): the settings ``arch`` does not have are dropped.
    ``SAEConfig(arch=..., ...)`` refuses them instead."""
    names = {f.name for f in dataclasses.fields(get_arch(arch).config)}
    return SAEConfig(arch=arch, **{k: v for k, v in kw.items() if k in names})


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


__all__ = [
    "DEFAULT_GROUPS",
    "EncodeConfig",
    "SAEConfig",
    "arch_names",
    "config_for",
    "default_aux_k",
    "settings",
]
