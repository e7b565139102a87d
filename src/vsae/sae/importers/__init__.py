"""Importers: the SAE checkpoint formats of other libraries, read into vsae SAEs.

One file per format, each registering itself with :func:`register_importer` (the registry,
:mod:`vsae.sae.importers.registry`); ``vsae.sae.load`` / ``SAE.from_pretrained`` and every CLI
``--sae`` try them on anything that is not a vsae checkpoint, and ``vsae convert`` writes the
result as one (:func:`vsae.sae.convert.convert`). Built-in formats:

    dictionary_learning  ae.pt + config.json (AutoEncoder, TopK, BatchTopK, Matryoshka, JumpReLU)
    saelens              cfg.json + sae_weights.safetensors (:mod:`vsae.sae.saelens`)
    sparsify             cfg.json + sae.safetensors (one folder per hook)
    saev                 one file: a JSON line, then a torch state dict (``saev.nn.dump``)
    overcomplete         a state dict + overcomplete.json (the small config the user writes)
    prisma               ViT-Prisma: weights.pt (or *.pt) + config.json

``.pt`` files are read with ``torch.load(weights_only=True)`` here and nowhere else in vsae.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vsae.lazy import lazy_attributes

if TYPE_CHECKING:
    from vsae.sae.importers.registry import (
        Imported,
        Importer,
        detect,
        find_importer,
        import_sae,
        importer_names,
        register_importer,
    )

_API = {
    name: "vsae.sae.importers.registry"
    for name in (
        "Imported",
        "Importer",
        "detect",
        "find_importer",
        "import_sae",
        "importer_names",
        "register_importer",
    )
}
__all__ = [
    "Imported",
    "Importer",
    "detect",
    "find_importer",
    "import_sae",
    "importer_names",
    "register_importer",
]
__getattr__, __dir__ = lazy_attributes(__name__, _API)
