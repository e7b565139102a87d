"""Ground-truth image attributes of a store's images, from an attributes.json (a world export's:
a list of records with ``path`` and string fields such as ``shape``, ``colour``).

One reader for every metric that checks latents against attributes (`vsae eval names`, the
world-colour hierarchy, `vsae eval shared`)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vsae.data import load_table
from vsae.errors import VsaeError, read_json

NOT_ATTRIBUTES = ("path", "id", "split", "caption")


@dataclass(frozen=True)
class AttributeTable:
    """Attributes of the images of a store.

    Attributes
    ----------
    values: attribute -> [N images] object array of values (str; None where the file has no
        record of the image), indexed like the store's images.json.
    file: the attributes.json read.
    """

    values: dict[str, np.ndarray]
    file: str


def _store_dir(store: str | os.PathLike[str]) -> Path:
    p = Path(store)
    return p if p.is_dir() else p.parent


def image_attributes(
    store: str | os.PathLike[str],
    attributes_file: str | os.PathLike[str] | None = None,
    attributes: Sequence[str] | None = None,
    required: bool = False,
) -> AttributeTable | None:
    """The attributes of a store's images (a store directory or its images.json).

    ``attributes_file``: default DATA/attributes.json of the store's data root. ``attributes``:
    the attributes to read; default every string field of the first record less path, id,
    split and caption. None when there is no file and none was asked for (``attributes_file``
    or ``required``)."""
    sdir = _store_dir(store)
    tab = load_table(sdir, need_items=True)
    f = Path(attributes_file) if attributes_file else Path(tab.get("root") or sdir) / "attributes.json"
    if not os.path.lexists(f):  # anything else there (a FIFO ...) is refused by read_json
        if attributes_file or required:
            raise VsaeError(f"attributes file {f} does not exist; give a world export's attributes.json")
        return None
    records = read_json(f, "attributes file", "give a world export's attributes.json")
    try:
        by_path = {r["path"]: r for r in records}
        keys = (
            list(attributes)
            if attributes is not None
            else [k for k, v in records[0].items() if isinstance(v, str) and k not in NOT_ATTRIBUTES]
        )
    except (json.JSONDecodeError, IndexError, KeyError, AttributeError, TypeError) as e:
        raise VsaeError(f"{f} is not an attributes.json (list of records with 'path'): {e}") from None
    base = Path(tab["split"]) if tab.get("split") else Path()
    n = len(tab["items"])
    values: dict[str, np.ndarray] = {}
    for a in keys:
        col = np.full(n, None, dtype=object)
        for i, item in enumerate(tab["items"]):
            rec = by_path.get(str(base / item)) if tab["kind"] == "folder" else None
            if rec is not None and a in rec:
                col[i] = str(rec[a])
        values[a] = col
    if all(v is None for col in values.values() for v in col):
        raise VsaeError(f"{f} has no attribute {keys} for the images of {sdir}; check --attributes")
    return AttributeTable(values, str(f))
