"""SAELens (decoderesearch/SAELens): ``cfg.json`` + ``sae_weights.safetensors``; the reader is
:func:`vsae.sae.saelens.load_saelens` (which also writes the format: ``vsae.sae.saelens.export_saelens``)."""

from __future__ import annotations

from pathlib import Path

from vsae.sae.importers.common import json_or_none
from vsae.sae.importers.registry import Imported, register_importer
from vsae.sae.saelens import CFG, WEIGHTS, is_saelens_dir, load_saelens


def _dir(path: Path) -> Path:
    return path.parent if path.is_file() else path


@register_importer("saelens", f"{CFG} + {WEIGHTS}")
class SaeLens:
    @staticmethod
    def detect(path: Path) -> bool:
        return is_saelens_dir(_dir(path))

    @staticmethod
    def load(path: Path) -> Imported:
        d = _dir(path)
        return Imported(load_saelens(d), "saelens", [d / CFG, d / WEIGHTS], json_or_none(d / CFG) or {})
