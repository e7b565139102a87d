"""Class taxonomies: class name -> path from the root (as the hierarchy evaluation reads them).

iNaturalist folder names `NNNNN_Kingdom_Phylum_Class_Order_Family_Genus_species` give a
7-level path [Kingdom, ..., Genus, species] (Pach et al. compare the LCA depth of the classes of
a latent's top images on this taxonomy). The JSON form is `{class_name: [root, ..., leaf]}`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vsae.errors import VsaeError, read_json

_INAT_RE = re.compile(r"^\d+_(.+)$")


@dataclass(frozen=True)
class Taxonomy:
    """Class name -> path from the root (a tuple of level names, root first)."""

    paths: dict[str, tuple[str, ...]]

    @property
    def depth(self) -> int:
        return max((len(p) for p in self.paths.values()), default=0)

    def path(self, cls: str) -> tuple[str, ...]:
        return self.paths[cls]

    def to_json(self) -> dict[str, list[str]]:
        return {c: list(p) for c, p in self.paths.items()}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Taxonomy:
        obj = read_json(path, "taxonomy", "give a JSON file {class: [root, ..., leaf]}")
        if not isinstance(obj, dict) or not all(isinstance(v, list) for v in obj.values()):
            raise VsaeError(f"{path} is not a taxonomy; expected JSON {{class: [root, ..., leaf]}}")
        if not all(isinstance(x, str) for v in obj.values() for x in v):
            raise VsaeError(
                f"taxonomy {path}: every path level must be a string; expected {{class: [root, ..., leaf]}}"
            )
        return cls({str(k): tuple(v) for k, v in obj.items()})


def inat_path(folder_name: str) -> tuple[str, ...] | None:
    """The taxonomy path in an iNaturalist-style folder name, or None if it is not one."""
    m = _INAT_RE.match(folder_name)
    if not m:
        return None
    parts = tuple(p for p in m.group(1).split("_") if p)
    return parts if len(parts) >= 2 else None


def taxonomy_from_classes(classes: Iterable[str]) -> Taxonomy | None:
    """A Taxonomy when every class name is iNaturalist-style (NNNNN_level_..._leaf), else None."""
    paths = {}
    for c in classes:
        p = inat_path(c)
        if p is None:
            return None
        paths[c] = p
    return Taxonomy(paths) if paths else None
