"""Captions of shapes-world images, and the prompt templates the tiny CLIP is trained on.

The canonical caption names every attribute ("a large red upward triangle with an outline on
the left of a dark striped background"). For contrastive training each image also gets short
captions naming a subset of its attributes, so that zero-shot prompts such as
"a photo of a red shape" or "a photo of a star" (Radford et al., CLIP) are in-distribution.
"""

from __future__ import annotations

import numpy as np

from vsae.world import taxonomy as tx

# Templates over the fields of an ImageRecord dict (`phrase` is the variant phrase), with their
# sampling weights: shape is the hardest attribute to learn, so most templates name it.
TEMPLATES: tuple[tuple[str, float], ...] = (
    ("{canonical}", 2.0),
    ("a photo of a {colour} shape", 1.0),
    ("a photo of a {shape}", 3.0),
    ("a {colour} {shape}", 2.0),
    ("a {size} {colour} {phrase}", 1.0),
    ("a {phrase}", 2.0),
    ("a {size} shape", 0.5),
    ("a {shape} on a {background} background", 1.0),
    ("a {colour} {shape} {where}", 1.0),
    ("a shape {outline_words}", 0.5),
    ("a {tone} {background} background", 0.5),
    ("a {shape_family} {colour_family} shape", 0.5),
)


def _fields(rec: dict) -> dict:
    outlined = rec["outline"] == "outlined"
    return {
        **rec,
        "phrase": tx.VARIANT_PHRASE[rec["class_name"]],
        "outline_words": "with an outline" if outlined else "without an outline",
        "with_outline": " with an outline" if outlined else "",
        "where": {"left": "on the left", "middle": "in the middle", "right": "on the right"}[rec["position"]],
    }


def caption(rec: dict) -> str:
    """The canonical caption of an image's attribute record."""
    f = _fields(rec)
    return ("a {size} {colour} {phrase}{with_outline} {where} of a {tone} {background} background").format(
        **f
    )


def training_captions(recs: list[dict], rng: np.random.Generator) -> list[str]:
    """One caption per record from a random template (seeded by ``rng``)."""
    w = np.array([wt for _, wt in TEMPLATES])
    pick = rng.choice(len(TEMPLATES), size=len(recs), p=w / w.sum())
    out = []
    for rec, t in zip(recs, pick):
        f = _fields(rec)
        f["canonical"] = caption(rec)
        out.append(TEMPLATES[t][0].format(**f))
    return out


def shape_prompts() -> list[str]:
    """Zero-shot prompts for the 6 shapes, in `taxonomy.SHAPES` order."""
    return [f"a photo of a {s}" for s in tx.SHAPES]


def colour_prompts() -> list[str]:
    """Zero-shot prompts for the 8 colours, in `taxonomy.COLOURS` order."""
    return [f"a photo of a {c} shape" for c in tx.COLOURS]


def vocabulary() -> list[str]:
    """Every word any caption or prompt can contain, sorted."""
    words: set[str] = set()
    for t, _ in TEMPLATES:
        words |= {w for w in t.split() if not w.startswith("{")}
    words |= {
        "with",
        "an",
        "outline",
        "without",
        "on",
        "in",
        "the",
        "of",
        "a",
        "photo",
        "shape",
        "background",
    }
    for vocab in (
        tx.SIZES,
        tx.COLOURS,
        tx.SHAPES,
        tx.POSITIONS,
        tx.TONES,
        tx.BACKGROUNDS,
        tuple(tx.SHAPE_TREE),
        tuple(tx.COLOUR_TREE),
    ):
        words |= set(vocab)
    for p in tx.VARIANT_PHRASE.values():
        words |= set(p.split())
    return sorted(words)
