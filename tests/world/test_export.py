import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from vsae.cli.world import world
from vsae.errors import VsaeError
from vsae.world import class_paths, export, generate, inat_folder_name


def test_export_tree_layout(tmp_path):
    out = tmp_path / "w"
    counts = export(out, {"train": 30, "test": 10, "ood_combo": 5}, seed=2, progress=False)
    assert counts == {"train": 30, "test": 10, "ood_combo": 5}
    tax = json.loads((out / "taxonomy.json").read_text())
    assert tax == class_paths()
    assert set((out / "train").iterdir()) >= {out / "train" / c for c in tax}
    with open(out / "attributes.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 45 == len(json.loads((out / "attributes.json").read_text()))
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert pngs == sorted(r["path"] for r in rows)
    ref = generate("train", 30, seed=2)
    for r in rows[:30]:
        split, cls, name = r["path"].split("/")
        assert split == r["split"] == "train" and cls == r["class_name"] and name == r["id"] + ".png"
        i = int(r["id"].split("_")[-1])
        assert np.array_equal(np.asarray(Image.open(out / r["path"])), ref.images_NHWC[i])  # lossless
        assert r["caption"] == ref.records[i].caption


def test_export_inat_style(tmp_path):
    out = tmp_path / "w"
    export(out, {"val": 12}, folder_style="inat", progress=False)
    per_split = json.loads((out / "val" / "taxonomy.json").read_text())
    for c, path in class_paths().items():
        folder = inat_folder_name(c)
        assert (out / "val" / folder).is_dir()
        assert per_split[folder] == path == folder.split("_")[1:]


def test_export_refuses_non_empty_and_bad_split(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    with pytest.raises(VsaeError):
        export(tmp_path / "x", {"train": 1}, progress=False)
    with pytest.raises(VsaeError):
        export(tmp_path / "y", {"bogus": 1}, progress=False)


def test_cli_export(tmp_path):
    r = CliRunner().invoke(
        world,
        [
            "export",
            "--out",
            str(tmp_path / "d"),
            "--n",
            "train=4",
            "--n",
            "val=0",
            "--n",
            "test=2",
            "--n",
            "ood_background=0",
            "--n",
            "ood_combo=0",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "wrote 6 images" in r.output
    assert len(list((tmp_path / "d").rglob("*.png"))) == 6
    r = CliRunner().invoke(world, ["export", "--out", str(tmp_path / "e"), "--n", "train=x"])
    assert isinstance(r.exception, VsaeError)
