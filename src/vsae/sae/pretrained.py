"""The directory of known public vision SAEs (``pretrained.json`` beside this module, versioned):
``vsae sae list`` prints it and ``SAE.from_pretrained("release/name")`` / ``--sae release/name``
resolve a name to its hub repo, subfolder and revision (like SAELens's pretrained directory).
Each entry says which fields were checked against a public source (``verified``); the others
are read from the repository name and may be wrong. Torch-free."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from vsae.errors import VsaeError

FILE = Path(__file__).with_name("pretrained.json")
VERSION = 1


@dataclass(frozen=True)
class KnownSAE:
    """One published SAE: where it is (``repo_id``, ``subfolder``, ``revision``), its ``format``
    (a :mod:`vsae.sae.importers` name), the ``model``, ``layer`` and ``hook`` (vsae's name), ``arch``,
    ``width`` (d_sae), ``k``, and which of these were ``verified``."""

    name: str
    repo_id: str
    format: str
    subfolder: str | None = None
    revision: str | None = None
    model: str | None = None
    layer: int | None = None
    hook: str | None = None
    arch: str | None = None
    width: int | None = None
    k: int | None = None
    paper: str | None = None
    verified: tuple[str, ...] = ()
    verified_by: str | None = None


@cache
def directory() -> dict[str, KnownSAE]:
    """Every known SAE by name (``release/name``)."""
    data: dict[str, Any] = json.loads(FILE.read_text())
    if data.get("version", 0) > VERSION:
        raise VsaeError(f"{FILE} is version {data['version']}; this vsae reads {VERSION}")
    fields = set(KnownSAE.__dataclass_fields__)
    out = {}
    for name, e in data["saes"].items():
        kw = {k: v for k, v in e.items() if k in fields}
        kw["verified"] = tuple(kw.get("verified", ()))
        out[name] = KnownSAE(name=name, **kw)
    return out


def find(name: str) -> KnownSAE | None:
    """The known SAE called ``name``, which may end in ``@revision`` (None: not a known name)."""
    return directory().get(name.partition("@")[0])
