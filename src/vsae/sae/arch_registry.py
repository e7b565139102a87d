"""The registry of SAE architectures: name -> :class:`ArchSpec` (its SAE class, its config class
and what the rest of vsae needs to know about it), on vsae's one registry idiom
(:class:`vsae.registry.Registry`; modelled on SAELens's ``register_sae_class``).

An architecture is one module that defines its config (a :class:`vsae.sae.sae_config.SAEConfig`
subclass with the architecture's own settings) and an :class:`vsae.sae.base.SAE` subclass, and
registers the class with a decorator::

    @register_arch("topk", uses_k=True, saelens="topk")
    class TopKSAE(SAE):
        config_class = TopKConfig

The built-in architectures are the modules of :mod:`vsae.sae.archs`, one file per
architecture named after it: their names are listed from the file names (no torch import) and
each module is imported on its first lookup. Any other module registers its architecture when
it is imported (``docs/extending.md``); an installed package can also declare it as an entry
point in the group ``vsae.sae_archs`` (``name = "package.module"``), which ``vsae train --arch
name`` imports on first use. This module imports neither torch nor the architectures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from vsae.errors import VsaeError
from vsae.registry import Registry

BUILTIN_PACKAGE = "vsae.sae.archs"
ENTRY_POINTS = "vsae.sae_archs"
S = TypeVar("S", bound=type)


@dataclass(frozen=True)
class ArchSpec:
    """What vsae knows about one SAE architecture.

    Attributes
    ----------
    name: the architecture's name (``SAEConfig.arch``, ``vsae train --arch``).
    cls: its :class:`vsae.sae.base.SAE` subclass (the class also defines how it folds the input
        scale, ``SAE.fold_scale_``, and its SAELens tensors, ``SAE.saelens_tensors``); its
        ``config_class`` holds the architecture's settings.
    uses_k: whether it keeps k latents per row (its config has ``k``, which is swept, run names
        carry ``-kK``, and the aux-k loss applies: ``aux_k``).
    saelens: the SAELens inference architecture it exports as ("standard", "topk", "jumprelu"),
        None: no SAELens export.
    saelens_training: SAELens's ``metadata.training_architecture`` name when it differs from
        ``saelens`` (e.g. "batchtopk" saved as "jumprelu"); an import with this training
        architecture comes back as this architecture.
    nested: its dictionary is made of nested groups (``groups``, Matryoshka), which evaluation,
        the demo and the browser report group by group (``SAEConfig.nested_groups``).
    """

    name: str
    cls: type[Any]  # a vsae.sae.base.SAE subclass (not imported: the registry is below the models)
    uses_k: bool = False
    saelens: str | None = None
    saelens_training: str | None = None
    nested: bool = False

    @property
    def config(self) -> type[Any]:
        """The architecture's config class (a :class:`vsae.sae.sae_config.SAEConfig` subclass)."""
        return self.cls.config_class


ARCHS: Registry[ArchSpec] = Registry("SAE architecture", ENTRY_POINTS, BUILTIN_PACKAGE)


def register_arch(
    name: str,
    *,
    uses_k: bool = False,
    saelens: str | None = None,
    saelens_training: str | None = None,
    nested: bool = False,
    replace: bool = False,
) -> Callable[[S], S]:
    """Class decorator: register an SAE subclass as architecture ``name`` (see :class:`ArchSpec`).

    A second registration of a name (by another class) is an error unless ``replace=True``.
    """

    def deco(cls: S) -> S:
        if not name.isidentifier():
            raise VsaeError(f"SAE architecture name {name!r} must be an identifier (letters, digits, _)")
        mod = cls.__module__
        if mod.startswith(BUILTIN_PACKAGE + ".") and mod.rsplit(".", 1)[1] != name:
            raise VsaeError(
                f"{mod} registers {name!r}; a built-in architecture's file must be named after it"
            )
        old = ARCHS.registered().get(name)
        same = old is not None and old.cls is cls  # a module imported again: the same class
        ARCHS.register(name, replace=replace or same)(
            ArchSpec(name, cls, uses_k, saelens, saelens_training, nested)
        )
        cls.arch = name  # type: ignore[attr-defined]  # SAE.arch (ClassVar[str])
        return cls

    return deco


def unregister_arch(name: str) -> None:
    """Remove a registered architecture (tests that register a toy one clean up with this)."""
    ARCHS.unregister(name)


def arch_names() -> tuple[str, ...]:
    """Every architecture name: built-in, registered and entry-point ones (none imported: no torch)."""
    return tuple(ARCHS.names())


def get_arch(name: str) -> ArchSpec:
    """The spec of architecture ``name`` (importing its module on first use); a one-line
    ``VsaeError`` listing the architectures when there is none."""
    return ARCHS.get(name)


def all_archs() -> list[ArchSpec]:
    """The specs of every architecture (imports the built-in ones)."""
    return [get_arch(n) for n in arch_names()]


def uses_k(name: str) -> bool:
    """Whether architecture ``name`` keeps k latents per row (see :class:`ArchSpec`)."""
    return get_arch(name).uses_k
