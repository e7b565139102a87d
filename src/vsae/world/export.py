"""Write the shapes world as an image-folder tree that the ordinary data path reads.

Layout::

    DIR/taxonomy.json                  {class_name: [family, shape, variant]} (hierarchy eval format)
    DIR/colour_taxonomy.json           {colour: [colour_family, colour]}
    DIR/attributes.csv, attributes.json  every image's attributes and caption, with its path
    DIR/<split>/<class>/<id>.png       (class folders named `class_name` or iNaturalist-style)
    DIR/<split>/taxonomy.json          the same taxonomy, keyed by the class folder names
"""

from __future__ import annotations

import csv
import json
from dataclasses import fields
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from vsae.errors import VsaeError
from vsae.world import taxonomy as tx
from vsae.world.generate import SPLITS, ImageRecord, generate

DEFAULT_COUNTS: dict[str, int] = {
    "train": 2000,
    "val": 500,
    "test": 500,
    "ood_background": 500,
    "ood_combo": 500,
}
FOLDER_STYLES = ("name", "inat")


def class_folder(class_name: str, style: str) -> str:
    return class_name if style == "name" else tx.inat_folder_name(class_name)


def export(
    out_dir: str | Path,
    counts: dict[str, int] | None = None,
    seed: int = 0,
    folder_style: str = "name",
    progress: bool = True,
) -> dict[str, int]:
    """Write ``counts[split]`` images of each split under ``out_dir``; returns the counts written."""
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    bad = sorted(set(counts) - set(SPLITS))
    if bad:
        raise VsaeError(f"unknown world split(s) {bad}; use some of {', '.join(SPLITS)}")
    if folder_style not in FOLDER_STYLES:
        raise VsaeError(f"unknown folder style {folder_style!r}; use 'name' or 'inat'")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise VsaeError(f"{out} exists and is not empty; choose a new --out directory")
    out.mkdir(parents=True, exist_ok=True)
    paths = tx.class_paths()
    by_folder = {class_folder(c, folder_style): p for c, p in paths.items()}
    rows: list[dict] = []
    for split, n in counts.items():
        batch = generate(split, n, seed=seed)
        (out / split).mkdir()
        (out / split / "taxonomy.json").write_text(json.dumps(by_folder, indent=1))
        for c in paths:
            (out / split / class_folder(c, folder_style)).mkdir()
        for img, rec in tqdm(
            zip(batch.images_NHWC, batch.records), total=n, desc=split, disable=not progress
        ):
            rel = f"{split}/{class_folder(rec.class_name, folder_style)}/{rec.id}.png"
            Image.fromarray(img).save(out / rel, optimize=False, compress_level=1)
            rows.append({"path": rel, **rec.to_dict()})
    (out / "taxonomy.json").write_text(json.dumps(paths, indent=1))
    (out / "colour_taxonomy.json").write_text(json.dumps(tx.colour_paths(), indent=1))
    (out / "attributes.json").write_text(json.dumps(rows))
    with open(out / "attributes.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", *(fl.name for fl in fields(ImageRecord))])
        w.writeheader()
        w.writerows(rows)
    return counts
