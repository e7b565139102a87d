"""The registry of SAE architectures: name -> :class:`ArchSpec` (its SAE class and what the
rest of vsae needs to know about it). Modelled on SAELens's ``register_sae_class``.

An architecture is one module that defines an :class:`vsae.sae.base.SAE` subclass and
registers it with a decorator::

    @register_arch("topk", uses_k=True, saelens="topk")
    class TopKSAE(SAE): ...

The built-in architectures are the modules of :mod:`vsae.sae.archs`, one file per
architecture named after it: their names are listed from the file names (no torch import,
so ``vsae train --help`` stays fast) and each module is imported on its first lookup. Any
other module registers its architecture when it is imported (``docs/extending.md``); an
installed package can also declare it as an entry point in the group ``vsae.sae_archs``
(``name = "package.module"``), which ``vsae train --arch name`` imports on first use.
This module imports neither torch nor the architectures at import time.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from vsae.errors import VsaeError

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
        scale, ``SAE.fold_scale_``, and its SAELens tensors, ``SAE.saelens_tensors``).
    uses_k: whether it keeps k latents per row (``SAEConfig.k`` is checked and swept, run names
        carry ``-kK``, and the aux-k loss applies: ``SAEConfig.aux_k``).
    saelens: the SAELens inference architecture it exports as ("standard", "topk", "jumprelu"),
        None: no SAELens export.
    saelens_training: SAELens's ``metadata.training_architecture`` name when it differs from
        ``saelens`` (e.g. "batchtopk" saved as "jumprelu"); an import with this training
        architecture comes back as this architecture.
    nested: its dictionary is made of nested groups (``SAEConfig.groups``, Matryoshka), which
        evaluation, the demo and the browser report group by group (``SAEConfig.nested_groups``).
    """

    name: str
    cls: type[Any]  # a vsae.sae.base.SAE subclass (not imported: the registry is below the models)
    uses_k: bool = False
    saelens: str | None = None
    saelens_training: str | None = None
    nested: bool = False


_REGISTRY: dict[str, ArchSpec] = {}


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

    A second registration of a name is an error unless ``replace=True``.
    """

    def deco(cls: S) -> S:
        if not name.isidentifier():
            raise VsaeError(f"SAE architecture name {name!r} must be an identifier (letters, digits, _)")
        mod = cls.__module__
        if mod.startswith(BUILTIN_PACKAGE + ".") and mod.rsplit(".", 1)[1] != name:
            raise VsaeError(
                f"{mod} registers {name!r}; a built-in architecture's file must be named after it"
            )
        old = _REGISTRY.get(name)
        if old is not None and old.cls is not cls and not replace:
            raise VsaeError(
                f"SAE architecture {name!r} is already registered ({old.cls.__qualname__}); "
                "pick another name or pass replace=True"
            )
        _REGISTRY[name] = ArchSpec(name, cls, uses_k, saelens, saelens_training, nested)
        cls.arch = name  # type: ignore[attr-defined]  # SAE.arch (ClassVar[str])
        return cls

    return deco


def unregister_arch(name: str) -> None:
    """Remove a registered architecture (tests that register a toy one clean up with this)."""
    _REGISTRY.pop(name, None)


@functools.cache
def _builtin_names() -> tuple[str, ...]:
    pkg = importlib.import_module(BUILTIN_PACKAGE)
    return tuple(sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")))


@functools.cache
def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINTS)}


def arch_names() -> tuple[str, ...]:
    """Every architecture name: the built-in ones, then the registered and entry-point ones
    (none imported: no torch)."""
    builtin = _builtin_names()
    others = (set(_REGISTRY) | set(_entry_points())) - set(builtin)
    return (*builtin, *sorted(others))


def get_arch(name: str) -> ArchSpec:
    """The spec of architecture ``name`` (importing its module on first use)."""
    if name not in _REGISTRY:
        if name in _builtin_names():
            importlib.import_module(f"{BUILTIN_PACKAGE}.{name}")
        elif name in (eps := _entry_points()):
            eps[name].load()
    spec = _REGISTRY.get(name)
    if spec is None:
        raise VsaeError(f"unknown SAE architecture {name!r}; use one of {', '.join(arch_names())}")
    return spec


def all_archs() -> list[ArchSpec]:
    """The specs of every architecture (imports the built-in ones)."""
    return [get_arch(n) for n in arch_names()]


def uses_k(name: str) -> bool:
    """Whether architecture ``name`` keeps k latents per row (see :class:`ArchSpec`)."""
    return get_arch(name).uses_k
