"""The ``world:<split>[:<n>]`` image source: ``n`` images of a shapes-world split, generated in
memory (seeded), with their class labels and attribute records. Registered with
``@vsae.data.source_scheme("world")`` when this module is imported; the entry point
``world = vsae.world.source`` of the group ``vsae.image_sources`` (pyproject.toml) imports it on the
first ``world:`` spec, so that core code and the CLI open it with `vsae.data.open_source` without
importing the world."""

from __future__ import annotations

from vsae.data.image_sources import Source, source_scheme
from vsae.errors import VsaeError
from vsae.world.generate import generate
from vsae.world.taxonomy import CLASSES


@source_scheme("world")
def open_world(rest: str, n: int | None, seed: int) -> Source:
    """``<split>[:<n>]`` -> a Source of generated images (the n in the spec wins over `n`)."""
    split, _, count = rest.partition(":")
    if count:
        try:
            n = int(count)
        except ValueError:
            raise VsaeError(f"world:{rest}: expected world:<split>:<number of images>") from None
    if n is None:
        raise VsaeError(f"world:{rest} needs a number of images: world:{split}:<n>")
    batch = generate(split, n, seed=seed)
    records = tuple(r.to_dict() for r in batch.records)
    return Source(
        kind="world",
        root=f"world:{split}:{n}" + (f" (seed {seed})" if seed else ""),
        split=split,
        items=tuple(str(r["id"]) for r in records),
        labels=tuple(CLASSES.index(r["class_name"]) for r in records),
        classes=CLASSES,
        images=tuple(batch.pil_images()),
        records=records,
    )
