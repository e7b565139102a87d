"""Data: image sources (class-folder trees, lists), prompt files, safe decoding, taxonomies."""

from vsae.data.decode import DecodeError, load_image, to_rgb
from vsae.data.loader import Batch, grid_batches, iter_batches
from vsae.data.sources import Source, folder_source, list_source, load_table, open_source, text_source
from vsae.data.taxonomy import Taxonomy, inat_path, taxonomy_from_classes

__all__ = [
    "Batch",
    "DecodeError",
    "Source",
    "Taxonomy",
    "folder_source",
    "grid_batches",
    "inat_path",
    "iter_batches",
    "list_source",
    "load_image",
    "load_table",
    "open_source",
    "taxonomy_from_classes",
    "text_source",
    "to_rgb",
]
