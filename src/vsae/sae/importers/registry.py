"""The registry of SAE importers: format name -> :class:`Importer` (how to recognise a
checkpoint of that format and read it). Modelled on the architecture registry
(:mod:`vsae.sae.arch_registry`): the built-in formats are the other modules of this package, one file
per format named after it, imported on first lookup; any other module registers its format with::

    @register_importer("myformat", "what it looks like on disk")
    class MyFormat:
        @staticmethod
        def detect(path: Path) -> bool: ...
        @staticmethod
        def load(path: Path) -> Imported: ...
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from vsae.errors import VsaeError

PACKAGE = "vsae.sae.importers"
_NOT_FORMATS = {"registry", "common"}
T = TypeVar("T")


@dataclass
class Imported:
    """An SAE read from another library's checkpoint.

    Attributes
    ----------
    sae: the vsae SAE (a :class:`vsae.sae.base.SAE`, eval mode; latents equal the library's own).
    format: the importer's name.
    files: the checkpoint files read (hashed by ``vsae convert``).
    config: the original config, as the library wrote it (JSON-able).
    """

    sae: Any
    format: str
    files: list[Path]
    config: dict[str, Any] = field(default_factory=dict)


class _Format(Protocol):
    @staticmethod
    def detect(path: Path) -> bool: ...

    @staticmethod
    def load(path: Path) -> Imported: ...


@dataclass(frozen=True)
class Importer:
    """One registered format: ``name``, a one-line ``layout`` (for error messages and
    ``vsae convert --help``), ``detect(path) -> bool`` (cheap: file names and small JSON only)
    and ``load(path) -> Imported``."""

    name: str
    layout: str
    detect: Callable[[Path], bool]
    load: Callable[[Path], Imported]


_REGISTRY: dict[str, Importer] = {}


def register_importer(name: str, layout: str) -> Callable[[T], T]:
    """Class decorator: register a class with static ``detect`` and ``load`` as format ``name``."""

    def deco(cls: T) -> T:
        fmt: Any = cls
        _REGISTRY[name] = Importer(name, layout, fmt.detect, fmt.load)
        return cls

    return deco


@functools.cache
def _builtin_names() -> tuple[str, ...]:
    pkg = importlib.import_module(PACKAGE)
    return tuple(sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name not in _NOT_FORMATS))


def importer_names() -> tuple[str, ...]:
    """Every format name (the built-in ones first)."""
    return (*_builtin_names(), *sorted(set(_REGISTRY) - set(_builtin_names())))


def _all() -> list[Importer]:
    for name in _builtin_names():
        importlib.import_module(f"{PACKAGE}.{name}")
    return [_REGISTRY[n] for n in importer_names() if n in _REGISTRY]


def find_importer(path: str | Path) -> Importer | None:
    """The importer whose format ``path`` (a directory or file) is in, None if none claims it."""
    p = Path(path)
    return next((imp for imp in _all() if imp.detect(p)), None)


def detect(path: str | Path) -> str | None:
    """The format name of ``path`` (None: no importer recognises it)."""
    imp = find_importer(path)
    return None if imp is None else imp.name


def import_sae(path: str | Path, format: str | None = None) -> Imported:
    """Read ``path`` with the importer of ``format`` (default: the one that recognises it)."""
    p = Path(path)
    if format is not None:
        _all()
        if format not in _REGISTRY:
            raise VsaeError(f"unknown SAE format {format!r}; use one of {', '.join(importer_names())}")
        imp = _REGISTRY[format]
    else:
        found = find_importer(p)
        if found is None:
            raise VsaeError(f"{p} is not a vsae SAE nor one vsae can import; {layouts()}")
        imp = found
    return imp.load(p)


def layouts() -> str:
    """One line: the checkpoint layouts vsae reads."""
    return "expected a vsae run (config.json + sae.safetensors) or one of: " + "; ".join(
        f"{i.name} ({i.layout})" for i in _all()
    )


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file (the source hashes ``vsae convert`` records)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
