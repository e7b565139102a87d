"""The embedded default: the shapes world and the tiny models trained on it.

- `generate(split, n, seed)` -> `WorldBatch` (uint8 images [N, 32, 32, 3] + `ImageRecord`s);
  splits `SPLITS` = train / val / test / ood_background / ood_combo.
- `class_paths()`: the class taxonomy ``{class_name: [family, shape, variant]}``.
- `export(dir, ...)`: the image-folder tree ``DIR/<split>/<class>/<id>.png`` + attributes.
- `shipped_clip_dir()`, `shipped_simenc_dir()`: the shipped tiny CLIP and similarity encoder,
  directories that `from_pretrained` (and `vsae.models.load`) read like any hub model.
- `build(...)`: retrain both models (`vsae world build`).

Importing this package is cheap (numpy and Pillow only); torch loads on first use of a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vsae.world import source as _source  # noqa: F401  (registers the world:<split> image source)
from vsae.world.export import export
from vsae.world.generate import SPLITS, ImageRecord, WorldBatch, attribute_vocab, generate
from vsae.world.taxonomy import CLASSES, COLOURS, SHAPES, class_paths, colour_paths, inat_folder_name


def shipped_clip_dir() -> Path:
    """Directory of the shipped tiny CLIP (CLIPModel + tokenizer + CLIPImageProcessor)."""
    from vsae.world.assets import shipped_dir

    return shipped_dir("clip")


def shipped_simenc_dir() -> Path:
    """Directory of the shipped similarity encoder (ViTModel + ViTImageProcessor; MS uses pooler_output)."""
    from vsae.world.assets import shipped_dir

    return shipped_dir("simenc")


def build(*args: Any, **kwargs: Any) -> dict[str, dict[str, Any]]:
    """See `vsae.world.builder.build`."""
    from vsae.world.builder import build as _build

    return _build(*args, **kwargs)


__all__ = [
    "CLASSES",
    "COLOURS",
    "SHAPES",
    "SPLITS",
    "ImageRecord",
    "WorldBatch",
    "attribute_vocab",
    "build",
    "class_paths",
    "colour_paths",
    "export",
    "generate",
    "inat_folder_name",
    "shipped_clip_dir",
    "shipped_simenc_dir",
]
