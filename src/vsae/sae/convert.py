"""``vsae convert``: any SAE vsae reads, written once as a vsae SAE directory (``sae.safetensors`` +
``config.json``), recording the source format, the source files' SHA-256 and the original config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vsae.errors import VsaeError
from vsae.sae.files import CONFIG, resolve_pretrained
from vsae.sae.importers.registry import find_importer, import_sae, layouts, sha256
from vsae.sae.io import is_vsae_dir, save


def convert(
    source: str | os.PathLike,
    out: str | os.PathLike,
    format: str | None = None,
    revision: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Import ``source`` (a path, a known name or a hub id; ``format``: force an importer) and save it
    as a vsae SAE in ``out``. Returns ``out``. The ``source`` entry of its config.json has
    ``format``, ``path``, ``files`` ({name: sha256}) and ``config`` (the original)."""
    src = resolve_pretrained(source, revision=revision)
    if is_vsae_dir(src if src.is_dir() else src.parent):
        raise VsaeError(f"{source} is already a vsae SAE; nothing to convert")
    if format is None and find_importer(src) is None:
        raise VsaeError(f"{src} is not an SAE vsae can convert; {layouts()}")
    dst = Path(out)
    if (dst / CONFIG).exists() and not overwrite:
        raise VsaeError(f"{dst / CONFIG} exists; pass --overwrite or another --out")
    imp = import_sae(src, format)
    record: dict[str, Any] = {
        "format": imp.format,
        "path": str(source),
        "files": {f.name: sha256(f) for f in imp.files},
        "config": imp.config,
    }
    if revision:
        record["revision"] = revision
    return save(imp.sae, dst, extra={"source": record})
