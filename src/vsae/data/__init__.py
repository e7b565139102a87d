"""Data: image sources (class-folder trees, lists), prompt files, safe decoding, taxonomies.

Names are imported lazily, so that opening a source (`vsae extract` checks --data/--split before
anything else) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vsae.lazy import lazy_attributes

_WHERE = {
    "Batch": "vsae.data.loader",
    "DecodeError": "vsae.data.decode",
    "SOURCE_SCHEMES": "vsae.data.image_sources",
    "Source": "vsae.data.image_sources",
    "SourceScheme": "vsae.data.image_sources",
    "Taxonomy": "vsae.data.class_taxonomy",
    "folder_source": "vsae.data.image_sources",
    "grid_batches": "vsae.data.loader",
    "inat_path": "vsae.data.class_taxonomy",
    "iter_batches": "vsae.data.loader",
    "list_source": "vsae.data.image_sources",
    "load_image": "vsae.data.decode",
    "load_table": "vsae.data.image_sources",
    "open_source": "vsae.data.image_sources",
    "register_source_scheme": "vsae.data.image_sources",
    "source_scheme": "vsae.data.image_sources",
    "taxonomy_from_classes": "vsae.data.class_taxonomy",
    "text_source": "vsae.data.image_sources",
    "to_rgb": "vsae.data.decode",
}

__all__ = [
    "Batch",
    "DecodeError",
    "SOURCE_SCHEMES",
    "Source",
    "SourceScheme",
    "Taxonomy",
    "folder_source",
    "grid_batches",
    "inat_path",
    "iter_batches",
    "list_source",
    "load_image",
    "load_table",
    "open_source",
    "register_source_scheme",
    "source_scheme",
    "taxonomy_from_classes",
    "text_source",
    "to_rgb",
]

if TYPE_CHECKING:
    from vsae.data.class_taxonomy import Taxonomy, inat_path, taxonomy_from_classes
    from vsae.data.decode import DecodeError, load_image, to_rgb
    from vsae.data.image_sources import (
        SOURCE_SCHEMES,
        Source,
        SourceScheme,
        folder_source,
        list_source,
        load_table,
        open_source,
        register_source_scheme,
        source_scheme,
        text_source,
    )
    from vsae.data.loader import Batch, grid_batches, iter_batches


__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
