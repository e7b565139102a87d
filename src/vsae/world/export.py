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
import io
import json
from dataclasses import fields
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from vsae.data.image_sources import INCOMPLETE_MARKER
from vsae.errors import VsaeError
from vsae.store.safe_io import LOCK_NAME, atomic_write, atomic_write_json, output_lock
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
MAX_IMAGES = 1_000_000  # per split: checked before anything is allocated (32x32 RGB: ~3 GB of pixels)


def class_folder(class_name: str, style: str) -> str:
    return class_name if style == "name" else tx.inat_folder_name(class_name)


def export(
    out_dir: str | Path,
    counts: dict[str, int] | None = None,
    seed: int = 0,
    folder_style: str = "name",
    progress: bool = True,
) -> dict[str, int]:
    """Write ``counts[split]`` images of each split under ``out_dir``; returns the counts written.

    While it runs, ``out_dir`` holds ``INCOMPLETE_MARKER`` (removed last), so a killed export is
    refused by ``vsae extract`` rather than read as a smaller world; a second export into the
    same directory is refused by the output lock."""
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    bad = sorted(set(counts) - set(SPLITS))
    if bad:
        raise VsaeError(f"unknown world split(s) {bad}; use some of {', '.join(SPLITS)}")
    for split, n in counts.items():
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_IMAGES:
            raise VsaeError(f"--n {split}={n}: must be an integer from 0 to {MAX_IMAGES:,}; export less")
    if folder_style not in FOLDER_STYLES:
        raise VsaeError(f"unknown folder style {folder_style!r}; use 'name' or 'inat'")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise VsaeError(f"{out} exists and is not a directory; choose a new --out directory")
    with output_lock(out):  # first: a second export into the same directory names the first one
        if any(p.name != LOCK_NAME for p in out.iterdir()):
            raise VsaeError(f"{out} exists and is not empty; choose a new --out directory")
        atomic_write_json(out / INCOMPLETE_MARKER, {"command": "vsae world export", "counts": counts})
        _write(out, counts, seed, folder_style, progress)
        (out / INCOMPLETE_MARKER).unlink()
    return counts


def _write(out: Path, counts: dict[str, int], seed: int, folder_style: str, progress: bool) -> None:
    """The export itself, into the locked, empty directory ``out``."""
    paths = tx.class_paths()
    by_folder = {class_folder(c, folder_style): p for c, p in paths.items()}
    rows: list[dict] = []
    for split, n in counts.items():
        batch = generate(split, n, seed=seed)
        (out / split).mkdir()
        atomic_write_json(out / split / "taxonomy.json", by_folder)
        for c in paths:
            (out / split / class_folder(c, folder_style)).mkdir()
        for img, rec in tqdm(
            zip(batch.images_NHWC, batch.records), total=n, desc=split, disable=not progress
        ):
            rel = f"{split}/{class_folder(rec.class_name, folder_style)}/{rec.id}.png"
            # a new file in a folder this run created (mkdir above): exclusive create, no link to follow
            with open(out / rel, "xb") as fh:
                Image.fromarray(img).save(fh, format="PNG", optimize=False, compress_level=1)
            rows.append({"path": rel, **rec.to_dict()})
    atomic_write_json(out / "taxonomy.json", paths)
    atomic_write_json(out / "colour_taxonomy.json", tx.colour_paths())
    atomic_write(out / "attributes.json", json.dumps(rows))
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=["path", *(fl.name for fl in fields(ImageRecord))])
    w.writeheader()
    w.writerows(rows)
    atomic_write(out / "attributes.csv", buf.getvalue())
