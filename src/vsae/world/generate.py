"""A deterministic generator of 32x32 RGB images of one object with ground-truth attributes.

Every image is a pure function of its discrete attributes (class, colour, size, centre,
background texture and phase, tone, outline). Alpha masks of every (class, size) and every
background pattern are drawn once with Pillow (4x supersampled) and cached; rendering a batch
is then numpy slicing and blending, tens of thousands of images per second.

Splits partition the attribute space, so they are disjoint by construction:
- ``train`` / ``val`` / ``test``: a stable hash of the attribute tuple (80 / 10 / 10 %),
  over the in-distribution backgrounds and (shape, colour) pairs;
- ``ood_background``: the unseen background texture `OOD_BACKGROUND`;
- ``ood_combo``: the (shape, colour) pairs in `HELD_OUT_COMBOS`, never seen in train.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from vsae.errors import VsaeError
from vsae.world import taxonomy as tx

IMAGE_SIZE = 32
SPLITS: tuple[str, ...] = ("train", "val", "test", "ood_background", "ood_combo")
_SPLIT_CODE = {s: i for i, s in enumerate(SPLITS)}
_SS = 4  # supersampling factor of the cached masks
_CANVAS = 2 * IMAGE_SIZE  # masks are drawn centred on a canvas twice the image size
_N_PHASES = 4
# Object centres lie on a grid (x % POSITION_STEP == POSITION_OFFSET), aligned with 4 px patches:
# the tiny ViTs then see each (shape, size) as one patch pattern and learn shapes in minutes.
POSITION_STEP = 4
POSITION_OFFSET = 2
# Background grey levels (base, texture) per tone; the outline is white on dark, black on light.
_TONE_LEVELS = {"dark": (40.0, 85.0), "light": (190.0, 145.0)}
_OUTLINE_RGB = {"dark": (255.0, 255.0, 255.0), "light": (0.0, 0.0, 0.0)}

# The attributes that determine an image, with their vocabularies (codes index these).
CATEGORICAL: dict[str, tuple[str, ...]] = {
    "class_name": tx.CLASSES,
    "colour": tx.COLOURS,
    "size": tx.SIZES,
    "background": tx.BACKGROUNDS,
    "tone": tx.TONES,
    "outline": tx.OUTLINES,
}


@dataclass(frozen=True)
class ImageRecord:
    """The ground truth of one image (one row of ``attributes.csv``)."""

    id: str
    split: str
    class_name: str  # taxonomy leaf, e.g. "triangle_up"
    shape_family: str
    shape: str
    variant: str
    colour_family: str
    colour: str
    size: str
    position: str  # horizontal third of the allowed range of the centre
    x: int  # centre pixel column
    y: int  # centre pixel row
    background: str
    tone: str
    outline: str
    bg_phase: int
    caption: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class WorldBatch:
    """Images and their attributes. ``codes`` holds int64 arrays [N] per attribute
    (categorical ones index `CATEGORICAL[name]`; plus ``x``, ``y``, ``bg_phase``, ``position``)."""

    images_NHWC: np.ndarray  # uint8 [N, 32, 32, 3]
    codes: dict[str, np.ndarray]
    split: str
    seed: int

    def __len__(self) -> int:
        return len(self.images_NHWC)

    def labels(self, attribute: str) -> np.ndarray:
        """Integer labels [N] of an attribute; ``shape`` and the families are derived from the class."""
        if attribute in self.codes:
            return self.codes[attribute]
        if attribute in ("shape", "shape_family", "colour_family"):
            vocab = attribute_vocab(attribute)
            names = [getattr(r, attribute) for r in self.records]
            return np.array([vocab.index(n) for n in names], dtype=np.int64)
        raise VsaeError(f"unknown world attribute {attribute!r}; use one of {sorted(attribute_names())}")

    @functools.cached_property
    def records(self) -> list[ImageRecord]:
        return [
            _record(self.split, i, {k: int(v[i]) for k, v in self.codes.items()}) for i in range(len(self))
        ]

    def pil_images(self) -> list[Image.Image]:
        return [Image.fromarray(a) for a in self.images_NHWC]


def attribute_vocab(attribute: str) -> tuple[str, ...]:
    """The possible values of a categorical attribute, in label order."""
    if attribute in CATEGORICAL:
        return CATEGORICAL[attribute]
    return {
        "shape": tx.SHAPES,
        "shape_family": tuple(tx.SHAPE_TREE),
        "colour_family": tuple(tx.COLOUR_TREE),
        "position": tx.POSITIONS,
    }[attribute]


def attribute_names() -> tuple[str, ...]:
    return (*CATEGORICAL, "shape", "shape_family", "colour_family", "position")


def generate(split: str, n: int, seed: int = 0) -> WorldBatch:
    """``n`` images of ``split``, a pure function of (split, n, seed): the first k images of a
    larger n are the same images."""
    if split not in _SPLIT_CODE:
        raise VsaeError(f"unknown world split {split!r}; use one of {', '.join(SPLITS)}")
    if n < 0:
        raise VsaeError(f"number of images must be >= 0, got {n}")
    codes = sample_codes(split, n, seed)
    return WorldBatch(render(codes), codes, split, seed)


def sample_codes(split: str, n: int, seed: int) -> dict[str, np.ndarray]:
    """Attribute codes of ``n`` images of ``split``, by seeded rejection sampling in chunks."""
    rng = np.random.default_rng([seed, _SPLIT_CODE[split], 0x5EA])
    parts: list[dict[str, np.ndarray]] = []
    have = 0
    while have < n:
        c = _sample_chunk(rng, split, 4096)
        c = {k: v[in_split(c, split)] for k, v in c.items()}
        parts.append(c)
        have += len(c["size"])
    if not parts:
        return {k: np.zeros(0, np.int64) for k in (*CATEGORICAL, "x", "y", "bg_phase", "position")}
    return {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0]}


def in_split(codes: dict[str, np.ndarray], split: str) -> np.ndarray:
    """Boolean [N]: which attribute tuples belong to ``split``."""
    bg_ood = codes["background"] == tx.BACKGROUNDS.index(tx.OOD_BACKGROUND)
    combo = _held_out_combo(codes)
    if split == "ood_background":
        return bg_ood & ~combo
    if split == "ood_combo":
        return combo & ~bg_ood
    bucket = _stable_hash(codes) % np.uint64(10)
    want = {"train": bucket < 8, "val": bucket == 8, "test": bucket == 9}[split]
    return want & ~bg_ood & ~combo


def object_alpha(codes: dict[str, np.ndarray]) -> np.ndarray:
    """float32 [N, 32, 32] in [0, 1]: the object's coverage of each pixel (anti-aliased, no
    outline) in the images of the attribute codes."""
    n = len(codes["size"])
    S = IMAGE_SIZE
    alpha = np.empty((n, S, S), np.float32)
    masks = class_masks()
    for i, (c, s, x, y) in enumerate(zip(codes["class_name"], codes["size"], codes["x"], codes["y"])):
        alpha[i] = masks[c, s, S - y : 2 * S - y, S - x : 2 * S - x]
    return alpha


def object_footprint(codes: dict[str, np.ndarray]) -> np.ndarray:
    """float32 [N, 32, 32] of 0/1: the pixels the object touches and their 1 px border (where an
    outline would be), whether or not the image is outlined."""
    return _dilate((object_alpha(codes) > 0).astype(np.float32))


def render(codes: dict[str, np.ndarray]) -> np.ndarray:
    """uint8 [N, 32, 32, 3] images of the attribute codes."""
    alpha = object_alpha(codes)
    pat = _patterns()[codes["background"], codes["bg_phase"]]  # [N, S, S]
    levels = np.array([_TONE_LEVELS[t] for t in tx.TONES], np.float32)[codes["tone"]]  # [N, 2]
    grey = levels[:, 0, None, None] + (levels[:, 1] - levels[:, 0])[:, None, None] * pat
    rgb = np.array([tx.COLOUR_RGB[c] for c in tx.COLOURS], np.float32)[codes["colour"]]  # [N, 3]
    out_rgb = np.array([_OUTLINE_RGB[t] for t in tx.TONES], np.float32)[codes["tone"]]
    outlined = (codes["outline"] == tx.OUTLINES.index("outlined")).astype(np.float32)
    # every pixel touching the object is outline (or object): a crisp 1 px band
    ring = (_dilate((alpha > 0).astype(np.float32)) - alpha) * outlined[:, None, None]  # [N, S, S]
    img = (
        grey[..., None] * (1.0 - alpha - ring)[..., None]
        + ring[..., None] * out_rgb[:, None, None, :]
        + alpha[..., None] * rgb[:, None, None, :]
    )
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# --- sampling internals -------------------------------------------------------------------


def _sample_chunk(rng: np.random.Generator, split: str, m: int) -> dict[str, np.ndarray]:
    c = {k: rng.integers(0, len(v), m) for k, v in CATEGORICAL.items()}
    if split == "ood_background":  # sample the rare value directly instead of rejecting 5/6
        c["background"][:] = tx.BACKGROUNDS.index(tx.OOD_BACKGROUND)
    if split == "ood_combo":
        pick = rng.integers(0, len(tx.HELD_OUT_COMBOS), m)
        shape = np.array([tx.SHAPES.index(s) for s, _ in tx.HELD_OUT_COMBOS])[pick]
        c["colour"] = np.array([tx.COLOURS.index(col) for _, col in tx.HELD_OUT_COMBOS])[pick]
        variant = rng.integers(0, 2, m)
        c["class_name"] = np.array([_class_of_shape(s, v) for s, v in zip(shape, variant)], np.int64)
    lo, hi = _centre_range(c["size"])
    c["x"] = _on_grid(lo, hi, rng.random(m))
    c["y"] = _on_grid(lo, hi, rng.random(m))
    c["bg_phase"] = rng.integers(0, _N_PHASES, m)
    c["bg_phase"][c["background"] == tx.BACKGROUNDS.index("plain")] = 0  # phase is invisible on plain
    third = (hi - lo + 1) / 3.0
    c["position"] = np.minimum(((c["x"] - lo) / third).astype(np.int64), 2)
    return c


def _on_grid(lo: np.ndarray, hi: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A uniform choice among the centres in [lo, hi] that lie on the `POSITION_STEP` grid."""
    first = lo + (POSITION_OFFSET - lo) % POSITION_STEP
    count = (hi - first) // POSITION_STEP + 1
    return first + POSITION_STEP * np.floor(u * count).astype(np.int64)


def _class_of_shape(shape_idx: int, variant: int) -> int:
    shape = tx.SHAPES[shape_idx]
    names = [k for k, p in tx.class_paths().items() if p[1] == shape]
    return tx.CLASSES.index(names[variant])


def _centre_range(size_code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Allowed centre pixel range [lo, hi] so the object (and outline) stays in the image."""
    r = np.array([math.ceil(tx.SIZE_RADIUS[s]) + 1 for s in tx.SIZES])[size_code]
    return r, IMAGE_SIZE - 1 - r


def _held_out_combo(codes: dict[str, np.ndarray]) -> np.ndarray:
    shape_of_class = np.array([tx.SHAPES.index(p[1]) for p in tx.class_paths().values()])
    key = shape_of_class[codes["class_name"]] * len(tx.COLOURS) + codes["colour"]
    held = [tx.SHAPES.index(s) * len(tx.COLOURS) + tx.COLOURS.index(c) for s, c in tx.HELD_OUT_COMBOS]
    return np.isin(key, held)


def _stable_hash(codes: dict[str, np.ndarray]) -> np.ndarray:
    """splitmix64 of the mixed-radix index of the image-determining attributes."""
    key = np.zeros(len(codes["size"]), np.uint64)
    for name, radix in (
        *((k, len(v)) for k, v in CATEGORICAL.items()),
        ("x", 64),
        ("y", 64),
        ("bg_phase", 8),
    ):
        key = key * np.uint64(radix) + codes[name].astype(np.uint64)
    with np.errstate(over="ignore"):
        z = key + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _record(split: str, i: int, c: dict[str, int]) -> ImageRecord:
    from vsae.world.captions import caption

    class_name = tx.CLASSES[c["class_name"]]
    family, shape, variant = tx.class_paths()[class_name]
    colour = tx.COLOURS[c["colour"]]
    rec: dict[str, Any] = dict(
        id=f"{split}_{i:06d}",
        split=split,
        class_name=class_name,
        shape_family=family,
        shape=shape,
        variant=variant,
        colour_family=tx.colour_family(colour),
        colour=colour,
        size=tx.SIZES[c["size"]],
        position=tx.POSITIONS[c["position"]],
        x=c["x"],
        y=c["y"],
        background=tx.BACKGROUNDS[c["background"]],
        tone=tx.TONES[c["tone"]],
        outline=tx.OUTLINES[c["outline"]],
        bg_phase=c["bg_phase"],
    )
    return ImageRecord(**rec, caption=caption(rec))


# --- cached drawing -----------------------------------------------------------------------


def _shape_polygon(class_name: str, r: float) -> list[tuple[float, float]] | None:
    """Vertices (dx, dy) around the centroid, y pointing down; None for ellipses."""

    def ring(k: int, radii: list[float], start: float) -> list[tuple[float, float]]:
        pts = []
        for j in range(k * len(radii)):
            a = start + 2 * math.pi * j / (k * len(radii))
            rr = radii[j % len(radii)]
            pts.append((rr * math.cos(a), rr * math.sin(a)))
        return pts

    up = -math.pi / 2
    if class_name == "triangle_up":
        return ring(3, [r], up)
    if class_name == "triangle_down":
        return ring(3, [r], -up)
    if class_name == "square_upright":
        return ring(4, [r], math.pi / 4)
    if class_name == "square_diamond":
        return ring(4, [r], 0.0)
    if class_name == "star_five":
        return ring(5, [r, 0.45 * r], up)
    if class_name == "star_four":
        return ring(4, [r, 0.4 * r], up)
    if class_name.startswith("cross"):
        w = 0.32 * r
        arm = [(w, -w), (w, -r), (-w, -r), (-w, -w)]  # upper arm, then rotate 4 times
        pts = []
        for q in range(4):
            a = q * math.pi / 2 + (math.pi / 4 if class_name == "cross_saltire" else 0.0)
            ca, sa = math.cos(a), math.sin(a)
            pts += [(px * ca - py * sa, px * sa + py * ca) for px, py in arm]
        return pts
    if class_name.startswith("semicircle"):
        off = 4 * r / (3 * math.pi)  # centroid of a half disc, from its flat edge
        sign = 1.0 if class_name == "semicircle_up" else -1.0  # flat edge below the centre for "up"
        arc = [(r * math.cos(t), -sign * r * math.sin(t)) for t in np.linspace(0, math.pi, 48)]
        return [(px, py + sign * off) for px, py in arc]
    return None


@functools.cache
def class_masks() -> np.ndarray:
    """float32 [classes, sizes, 64, 64]: the alpha of every class and size, centred at pixel
    (32, 32) of a canvas twice the image size (the image of an object at (x, y) is the window
    ``[32 - y : 64 - y, 32 - x : 64 - x]``); drawn once, cached."""
    S, big = _CANVAS, _CANVAS * _SS
    out = np.zeros((len(tx.CLASSES), len(tx.SIZES), S, S), np.float32)
    cx = (IMAGE_SIZE + 0.5) * _SS  # continuous centre of pixel (32, 32), supersampled
    for ci, cname in enumerate(tx.CLASSES):
        for si, size in enumerate(tx.SIZES):
            r = tx.SIZE_RADIUS[size] * _SS
            im = Image.new("L", (big, big), 0)
            d = ImageDraw.Draw(im)
            poly = _shape_polygon(cname, r)
            if poly is None:  # ellipses
                ax, ay = (r, 0.6 * r) if cname == "ellipse_wide" else (0.6 * r, r)
                d.ellipse([cx - ax, cx - ay, cx + ax, cx + ay], fill=255)
            else:
                d.polygon([(cx + px, cx + py) for px, py in poly], fill=255)
            a = np.asarray(im, np.float32).reshape(S, _SS, S, _SS).mean(axis=(1, 3)) / 255.0
            out[ci, si] = a
    return out


def _dilate(a_NHW: np.ndarray) -> np.ndarray:
    """3x3 max filter (the 1 px outline band is dilate(alpha) - alpha)."""
    p = np.pad(a_NHW, ((0, 0), (1, 1), (1, 1)))
    H, W = a_NHW.shape[1:]
    return np.max([p[:, i : i + H, j : j + W] for i in range(3) for j in range(3)], axis=0)


@functools.cache
def _patterns() -> np.ndarray:
    """float32 [backgrounds, phases, 32, 32] texture in [0, 1] (0 = base grey, 1 = texture grey)."""
    S = IMAGE_SIZE
    y, x = np.mgrid[0:S, 0:S]
    out = np.zeros((len(tx.BACKGROUNDS), _N_PHASES, S, S), np.float32)
    for k in range(_N_PHASES):
        pats = {
            "plain": np.zeros((S, S)),
            "striped": ((y + k) // 2) % 2,
            "dotted": ((y + k) % 4 == 0) & ((x + k) % 4 == 0),
            "checkered": ((x + k) // 4 + (y + k) // 4) % 2,
            "noisy": np.random.default_rng(1000 + k).random((S, S)) < 0.3,
            "wavy": (np.floor((x + k + 2.5 * np.sin(2 * np.pi * y / 10)) / 2) % 2),
        }
        for b, name in enumerate(tx.BACKGROUNDS):
            out[b, k] = np.asarray(pats[name], np.float32)
    return out
