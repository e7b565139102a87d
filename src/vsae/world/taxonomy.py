"""The shapes world's vocabulary and class taxonomy.

Every image shows one object of a *class* (a shape variant). Classes form a 3-level tree
(shape family -> shape -> variant), colours a 2-level one (colour family -> colour). The
class taxonomy is exported as JSON ``{class_name: [root, ..., leaf]}`` -- the format the
hierarchy evaluation reads (Pach et al., "Sparse autoencoders learn monosemantic features
in vision-language models": LCA depth of the classes of a latent's top images) -- and can
be written as iNaturalist-style folder names ``NNNNN_family_shape_variant``.
"""

from __future__ import annotations

from vsae.eval.class_hierarchy import AttributeTaxonomy, register_attribute_taxonomy

# `vsae eval hierarchy --taxonomy world-colour`: images labelled by their colour (attributes.json).
WORLD_COLOUR = "world-colour"

# shape family -> shape -> variants (words without underscores, so that iNaturalist-style
# folder names split back into the same path).
SHAPE_TREE: dict[str, dict[str, tuple[str, ...]]] = {
    "round": {"ellipse": ("wide", "tall"), "semicircle": ("up", "down")},
    "polygon": {"triangle": ("up", "down"), "square": ("upright", "diamond")},
    "pointed": {"star": ("five", "four"), "cross": ("plus", "saltire")},
}

# colour family -> colour -> RGB. Saturated colours, all far from the grey backgrounds.
COLOUR_TREE: dict[str, dict[str, tuple[int, int, int]]] = {
    "warm": {"red": (230, 30, 30), "orange": (255, 140, 0), "yellow": (245, 230, 20)},
    "cool": {"green": (30, 200, 50), "cyan": (0, 220, 230), "blue": (30, 60, 240)},
    "violet": {"purple": (150, 40, 220), "pink": (255, 105, 200)},
}

SIZES: tuple[str, ...] = ("small", "medium", "large")
# How a variant is said in a caption.
VARIANT_PHRASE: dict[str, str] = {
    "ellipse_wide": "wide ellipse",
    "ellipse_tall": "tall ellipse",
    "semicircle_up": "upward semicircle",
    "semicircle_down": "downward semicircle",
    "triangle_up": "upward triangle",
    "triangle_down": "downward triangle",
    "square_upright": "upright square",
    "square_diamond": "diamond square",
    "star_five": "five pointed star",
    "star_four": "four pointed star",
    "cross_plus": "plus cross",
    "cross_saltire": "diagonal cross",
}

# Radius of the object's bounding circle in pixels, per size, on the 32 px canvas.
SIZE_RADIUS: dict[str, float] = {"small": 6.0, "medium": 8.5, "large": 11.0}

POSITIONS: tuple[str, ...] = ("left", "middle", "right")  # horizontal third holding the centre

# Background textures. The last one is never used by train/val/test: it is the
# out-of-distribution background of the `ood_background` split.
BACKGROUNDS: tuple[str, ...] = ("plain", "striped", "dotted", "checkered", "noisy", "wavy")
IN_DIST_BACKGROUNDS: tuple[str, ...] = BACKGROUNDS[:-1]
OOD_BACKGROUND: str = BACKGROUNDS[-1]

TONES: tuple[str, ...] = ("dark", "light")  # background brightness
OUTLINES: tuple[str, ...] = ("none", "outlined")  # a 1 px contrasting outline around the object

# (shape, colour) pairs never seen in train/val/test; they make the `ood_combo` split.
HELD_OUT_COMBOS: tuple[tuple[str, str], ...] = (
    ("triangle", "green"),
    ("ellipse", "red"),
    ("star", "blue"),
    ("cross", "yellow"),
    ("square", "pink"),
    ("semicircle", "cyan"),
)


def class_paths() -> dict[str, list[str]]:
    """``{class_name: [family, shape, variant]}`` for the 12 classes, in a fixed order."""
    return {
        f"{shape}_{variant}": [family, shape, variant]
        for family, shapes in SHAPE_TREE.items()
        for shape, variants in shapes.items()
        for variant in variants
    }


CLASSES: tuple[str, ...] = tuple(class_paths())
SHAPES: tuple[str, ...] = tuple(s for shapes in SHAPE_TREE.values() for s in shapes)
COLOURS: tuple[str, ...] = tuple(c for cols in COLOUR_TREE.values() for c in cols)
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    c: rgb for cols in COLOUR_TREE.values() for c, rgb in cols.items()
}


def colour_paths() -> dict[str, list[str]]:
    """``{colour: [colour_family, colour]}``."""
    return {c: [fam, c] for fam, cols in COLOUR_TREE.items() for c in cols}


def shape_family(shape: str) -> str:
    return next(f for f, shapes in SHAPE_TREE.items() if shape in shapes)


def colour_family(colour: str) -> str:
    return next(f for f, cols in COLOUR_TREE.items() if colour in cols)


def inat_folder_name(class_name: str) -> str:
    """iNaturalist-style folder name ``NNNNN_family_shape_variant`` (index in `CLASSES`)."""
    path = class_paths()[class_name]
    return f"{CLASSES.index(class_name):05d}_" + "_".join(path)


register_attribute_taxonomy(
    WORLD_COLOUR, AttributeTaxonomy("colour", colour_paths(), "world colour taxonomy")
)
