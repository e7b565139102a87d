"""Folder trees, lists, prompt files and iNaturalist taxonomies."""

import json

import pytest

from vsae.data import Taxonomy, folder_source, inat_path, list_source, load_table, open_source, text_source
from vsae.data.fake_images import noise
from vsae.errors import VsaeError

INAT = [
    "00001_Animalia_Chordata_Aves_Passeriformes_Corvidae_Corvus_corax",
    "00000_Plantae_Tracheophyta_Magnoliopsida_Rosales_Rosaceae_Rosa_canina",
]


def _tree(root, splits=("train", "val"), classes=("b_cls", "a_cls"), n=2):
    for s in splits:
        for c in classes:
            d = (root / s / c) if s else (root / c)
            d.mkdir(parents=True, exist_ok=True)
            for i in reversed(range(n)):
                noise(i).save(d / f"img{i}.png")
            (d / "notes.txt").write_text("ignored")
    return root


def test_folder_tree_with_splits(tmp_path):
    _tree(tmp_path)
    s = folder_source(tmp_path, "val")
    assert s.classes == ("a_cls", "b_cls") and s.labels == (0, 0, 1, 1)
    assert [p.split("/")[-2:] for p in s.items] == [
        ["a_cls", "img0.png"],
        ["a_cls", "img1.png"],
        ["b_cls", "img0.png"],
        ["b_cls", "img1.png"],
    ]
    assert s.describe()["split"] == "val"
    with pytest.raises(VsaeError, match="choose one with --split"):
        folder_source(tmp_path)
    with pytest.raises(VsaeError, match="split 'test' not found .*splits: train, val"):
        folder_source(tmp_path, "test")


def test_folder_without_splits_and_flat(tmp_path):
    _tree(tmp_path / "t", splits=(None,))
    assert folder_source(tmp_path / "t").classes == ("a_cls", "b_cls")
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        noise(i).save(flat / f"{i}.jpg")
    s = folder_source(flat)
    assert len(s) == 3 and s.labels == (-1, -1, -1) and s.classes == ()
    (tmp_path / "empty").mkdir()
    with pytest.raises(VsaeError, match="no images"):
        folder_source(tmp_path / "empty")


def test_inat_taxonomy(tmp_path):
    _tree(tmp_path, splits=("train",), classes=INAT, n=1)
    s = open_source(tmp_path, "train")
    tax = s.taxonomy
    assert tax.depth == 7
    assert tax.path(INAT[0]) == (
        "Animalia",
        "Chordata",
        "Aves",
        "Passeriformes",
        "Corvidae",
        "Corvus",
        "corax",
    )
    tax.save(tmp_path / "tax.json")
    assert Taxonomy.load(tmp_path / "tax.json") == tax
    assert inat_path("n01440764") is None and inat_path("12_a_b") == ("a", "b")
    assert folder_source(_tree(tmp_path / "x", splits=(None,))).taxonomy is None


def test_lists(tmp_path):
    for i in range(3):
        noise(i).save(tmp_path / f"{i}.png")
    (tmp_path / "l.txt").write_text("0.png\tdog\n# comment\n\n1.png\tcat\n2.png\n")
    s = open_source(tmp_path / "l.txt")
    assert s.kind == "list" and s.classes == ("cat", "dog") and s.labels == (1, 0, -1)
    assert s.items[0] == str(tmp_path / "0.png")
    (tmp_path / "l.csv").write_text(f"path,label\n{tmp_path / '2.png'},x\n0.png,y\n")
    c = list_source(tmp_path / "l.csv")
    assert c.items == (str(tmp_path / "2.png"), str(tmp_path / "0.png")) and c.labels == (0, 1)
    (tmp_path / "bad.csv").write_text("file\n0.png\n")
    with pytest.raises(VsaeError, match="'path' column"):
        list_source(tmp_path / "bad.csv")
    with pytest.raises(VsaeError, match="drop --split"):
        open_source(tmp_path / "l.txt", "val")


def test_prompts_and_table(tmp_path):
    (tmp_path / "p.txt").write_text("a red cat\na blue dog\tanimal\n")
    s = text_source(tmp_path / "p.txt")
    assert s.items == ("a red cat", "a blue dog") and s.modality == "text" and s.labels == (-1, 0)
    _tree(tmp_path / "t", splits=("val",))
    t = folder_source(tmp_path / "t", "val").table()
    assert t["items"][0] == "a_cls/img0.png" and t["classes"] == ["a_cls", "b_cls"]
    (tmp_path / "images.json").write_text(json.dumps(t))
    assert load_table(tmp_path) == t


def test_split_typo_lists_every_split_the_tree_has(tmp_path):
    _tree(tmp_path / "w", splits=("train", "test", "ood_background", "ood_combo"), n=1)
    with pytest.raises(
        VsaeError, match="'tset' not found .*splits: ood_background, ood_combo, test, train\\)"
    ):
        folder_source(tmp_path / "w", "tset")
    _tree(tmp_path / "t", splits=(None,), n=1)  # classes only: no split folders to offer
    with pytest.raises(VsaeError, match="has no split folders; drop --split"):
        folder_source(tmp_path / "t", "train")
