"""One registry idiom for every plug-in point of vsae (issue 24).

A `Registry` maps names to objects (SAE architectures, model families, image-source schemes,
attribute taxonomies, ...). Every registry works the same way:

- **register with a decorator**: ``@REG.register("name")`` on a class or function, or
  ``REG.register("name")(obj)`` for a value; a second registration of a name is refused unless
  ``replace=True``;
- **look up** with ``REG.get(name)``: a missing name first imports the built-in module of that name
  (``builtin_package.<name>``, when the registry has one), then the entry points of the registry's
  group (``[project.entry-points."<group>"]`` in another package's pyproject; loading the entry point
  imports a module whose decorator registers the name, or names the object itself,
  ``pkg.mod:obj``); still missing is a one-line `VsaeError`
  that lists the choices;
- **list** with ``REG.names()`` (registered, built-in and entry-point names, nothing imported).

Modelled on SAELens's ``register_sae_class`` and Python's entry points (the same idiom
``importlib.metadata`` plug-ins use everywhere).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from vsae.errors import VsaeError

T = TypeVar("T")
Obj = TypeVar("Obj")


class Registry(Generic[T]):
    """Names -> objects of one kind, with built-in modules and entry-point plug-ins.

    Parameters
    ----------
    kind: what the objects are, for messages ("SAE architecture", "image source scheme").
    group: the entry-point group plug-ins declare (``vsae.sae_archs``).
    builtin_package: a package with one module per built-in name, imported on first lookup (or None).
    """

    def __init__(self, kind: str, group: str, builtin_package: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self.builtin_package = builtin_package
        self._items: dict[str, T] = {}

    # --- registering -------------------------------------------------------------------------
    def register(self, name: str, *, replace: bool = False) -> Callable[[Obj], Obj]:
        """Decorator registering the decorated object as ``name`` (refuses a taken name unless
        ``replace``); returns the object unchanged."""

        def deco(obj: Obj) -> Obj:
            old = self._items.get(name)
            if old is not None and old is not obj and not replace:
                raise VsaeError(
                    f"{self.kind} {name!r} is already registered ({_describe(old)}); "
                    "pick another name or pass replace=True"
                )
            self._items[name] = obj  # type: ignore[assignment]  # Obj is the T of this registry
            return obj

        return deco

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register a toy entry clean up with this)."""
        self._items.pop(name, None)

    # --- looking up --------------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The object registered as ``name``, importing its built-in module or plug-in on first
        use; a one-line `VsaeError` listing the choices when there is none."""
        found = self.find(name)
        if found is None:
            raise VsaeError(f"unknown {self.kind} {name!r}; use one of: {', '.join(self.names()) or 'none'}")
        return found

    def find(self, name: str) -> T | None:
        """Like `get`, but None when ``name`` is unknown."""
        if name not in self._items:
            self._load(name)
        return self._items.get(name)

    def names(self) -> list[str]:
        """Every name: registered, built-in and entry-point ones (none imported), sorted."""
        return sorted(set(self._items) | set(self._builtin_names()) | set(self._entry_points()))

    def registered(self) -> dict[str, T]:
        """The names registered so far and their objects, in registration order (imports nothing)."""
        return dict(self._items)

    def load_all(self) -> dict[str, T]:
        """Import every built-in and plug-in entry, then return `registered()`."""
        for name in self.names():
            self.find(name)
        return self.registered()

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    # --- plug-ins ----------------------------------------------------------------------------
    def _builtin_names(self) -> tuple[str, ...]:
        return _package_modules(self.builtin_package) if self.builtin_package else ()

    def _entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        return _group_entry_points(self.group)

    def _load(self, name: str) -> None:
        if name in self._builtin_names():
            importlib.import_module(f"{self.builtin_package}.{name}")
            return
        ep = self._entry_points().get(name)
        if ep is None:
            return
        try:
            obj = ep.load()
        except Exception as e:  # someone else's package: one line, not a traceback
            raise VsaeError(
                f"{self.kind} plug-in {name!r} ({ep.value}) failed to import: {type(e).__name__}: {e}"
            ) from None
        if name not in self._items and ep.attr:  # `pkg.mod:obj` that does not register itself
            self._items[name] = obj


def _describe(obj: object) -> str:
    return getattr(obj, "__qualname__", None) or type(obj).__qualname__


@functools.cache
def _package_modules(package: str) -> tuple[str, ...]:
    pkg = importlib.import_module(package)
    return tuple(sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")))


def _group_entry_points(group: str) -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=group)}
