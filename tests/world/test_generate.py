import numpy as np
import pytest

from vsae.errors import VsaeError
from vsae.world import SPLITS, class_paths, generate
from vsae.world import taxonomy as tx
from vsae.world.generate import in_split


def test_deterministic_and_prefix_stable():
    a = generate("train", 200, seed=3)
    b = generate("train", 200, seed=3)
    c = generate("train", 50, seed=3)
    d = generate("train", 200, seed=4)
    assert np.array_equal(a.images_NHWC, b.images_NHWC)
    assert a.records == b.records
    assert np.array_equal(a.images_NHWC[:50], c.images_NHWC)
    assert not np.array_equal(a.images_NHWC, d.images_NHWC)
    assert a.images_NHWC.shape == (200, 32, 32, 3) and a.images_NHWC.dtype == np.uint8


def test_centre_pixel_has_the_object_colour():
    for split in SPLITS:
        b = generate(split, 300, seed=0)
        for img, r in zip(b.images_NHWC, b.records):
            assert tuple(int(v) for v in img[r.y, r.x]) == tx.COLOUR_RGB[r.colour], (split, r)


def test_centres_on_the_patch_grid_and_objects_inside():
    from vsae.world.generate import POSITION_OFFSET, POSITION_STEP

    b = generate("train", 500, seed=2)
    for r in b.records:
        assert r.x % POSITION_STEP == POSITION_OFFSET and r.y % POSITION_STEP == POSITION_OFFSET
        m = tx.SIZE_RADIUS[r.size] + 1
        assert m <= r.x <= 31 - m and m <= r.y <= 31 - m
    assert {r.position for r in b.records} == set(tx.POSITIONS)


def test_object_pixels_and_outline_and_background():
    b = generate("test", 300, seed=1)
    for img, r in zip(b.images_NHWC, b.records):
        rgb = np.array(tx.COLOUR_RGB[r.colour])
        n_obj = int((np.abs(img.astype(int) - rgb).sum(-1) == 0).sum())
        r_px = tx.SIZE_RADIUS[r.size]
        assert 0.15 * np.pi * r_px**2 < n_obj < 1.05 * np.pi * r_px**2, r  # object area fits its size
        corner = img[0, 0].astype(int)  # corners are background: grey
        assert corner[0] == corner[1] == corner[2]
        white_or_black = np.all(img == (255 if r.tone == "dark" else 0), axis=-1).sum()
        assert (white_or_black > 0) == (r.outline == "outlined"), r


def test_shapes_differ_in_mask():
    # Same colour/size/position/background, every class: masks are pairwise distinct.
    codes = {
        k: np.zeros(len(tx.CLASSES), np.int64)
        for k in ("colour", "background", "tone", "outline", "bg_phase")
    }
    codes["class_name"] = np.arange(len(tx.CLASSES))
    codes["size"] = np.full(len(tx.CLASSES), 2)
    codes["x"] = codes["y"] = np.full(len(tx.CLASSES), 16)
    from vsae.world.generate import render

    masks = (render(codes) == tx.COLOUR_RGB[tx.COLOURS[0]]).all(-1).reshape(len(tx.CLASSES), -1)
    for i in range(len(masks)):
        for j in range(i):
            assert (masks[i] != masks[j]).sum() > 10, (tx.CLASSES[i], tx.CLASSES[j])


def test_records_consistent_with_taxonomy_and_captions():
    b = generate("val", 200, seed=0)
    paths = class_paths()
    for r in b.records:
        assert paths[r.class_name] == [r.shape_family, r.shape, r.variant]
        assert tx.colour_paths()[r.colour][0] == r.colour_family
        assert r.caption.startswith(f"a {r.size} {r.colour} ")
        assert (
            tx.VARIANT_PHRASE[r.class_name] in r.caption
            and f"{r.tone} {r.background} background" in r.caption
        )
        assert ("with an outline" in r.caption) == (r.outline == "outlined")
    assert np.array_equal(b.labels("shape"), [tx.SHAPES.index(r.shape) for r in b.records])
    assert np.array_equal(b.labels("colour"), [tx.COLOURS.index(r.colour) for r in b.records])


def test_taxonomy_valid():
    paths = class_paths()
    assert len(paths) == 12
    assert {len(p) for p in paths.values()} == {3}
    assert len({tuple(p) for p in paths.values()}) == len(paths)
    for c, p in paths.items():
        name = tx.inat_folder_name(c)
        idx, *parts = name.split("_")
        assert parts == p and int(idx) == tx.CLASSES.index(c)
    # a tree: each node has exactly one parent
    parent = {}
    for p in paths.values():
        for depth in range(1, 3):
            assert parent.setdefault(tuple(p[: depth + 1]), tuple(p[:depth])) == tuple(p[:depth])


def test_splits_disjoint_and_shifted_splits_hold_the_held_out_values():
    bs = {s: generate(s, 1500 if s == "train" else 400, seed=0) for s in SPLITS}
    keys = {s: {img.tobytes() for img in b.images_NHWC} for s, b in bs.items()}
    for s in SPLITS:
        for t in SPLITS:
            if s < t:
                assert not keys[s] & keys[t], (s, t)
    held = set(tx.HELD_OUT_COMBOS)
    for s in ("train", "val", "test"):
        recs = bs[s].records
        assert all(r.background != tx.OOD_BACKGROUND for r in recs)
        assert all((r.shape, r.colour) not in held for r in recs)
        assert {r.shape for r in recs} == set(tx.SHAPES) and {r.colour for r in recs} == set(tx.COLOURS)
    assert all(r.background == tx.OOD_BACKGROUND for r in bs["ood_background"].records)
    combos = {(r.shape, r.colour) for r in bs["ood_combo"].records}
    assert combos == held
    assert all(r.background != tx.OOD_BACKGROUND for r in bs["ood_combo"].records)
    # the split of an image is a function of its attributes
    for s, b in bs.items():
        assert in_split(b.codes, s).all()
        others = [t for t in SPLITS if t != s]
        assert not any(in_split(b.codes, t).any() for t in others)


def test_speed_thousands_per_second():
    import time

    generate("train", 100)  # warm the mask cache
    t = time.perf_counter()
    generate("train", 4000, seed=9)
    assert 4000 / (time.perf_counter() - t) > 1000  # ~25k/s on an idle core


def test_bad_input():
    with pytest.raises(VsaeError):
        generate("nope", 3)
    with pytest.raises(VsaeError):
        generate("train", -1)
    with pytest.raises(VsaeError):
        generate("train", 2).labels("bogus")
    assert len(generate("test", 0)) == 0
