"""The same images as a folder, an `hf:` dataset saved to disk and `wds:` tar shards give identical
stores (values, token and image indices, labels, skipped items); a killed extraction from `hf:` or
`wds:` resumes to exactly the store of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from vsae.cli import main as cli_main
from vsae.data import load_table
from vsae.data.fake_images import noise, write_hf, write_wds
from vsae.data.image_sources import folder_source
from vsae.extract import ExtractConfig, extract
from vsae.store import ActivationStore

pytest.importorskip("datasets")  # the `data` extra (scripts/setup.sh installs it)


def _images(root, n_per_class, classes=("a", "b", "c", "d")):
    for ci, c in enumerate(classes):
        (root / "train" / c).mkdir(parents=True)
        for i in range(n_per_class):
            noise(100 * ci + i, (36, 36)).save(root / "train" / c / f"{i:03d}.png")
    (root / "train" / "b" / "005x.png").write_text("not an image")  # a corrupt one, mid-order
    return folder_source(root, "train")


def _forms(root, src, per_shard):
    hf = write_hf(list(src.items), list(src.labels), list(src.classes), root / "hf")
    pattern = write_wds(list(src.items), list(src.labels), root / "wds", per_shard)
    return {"folder": (str(root), "train"), "hf": (f"hf:{hf}", None), "wds": (f"wds:{pattern}", None)}


@pytest.fixture(scope="module")
def forty(tmp_path_factory):
    root = tmp_path_factory.mktemp("forty")
    src = _images(root, 10)
    assert len(src) == 41
    return src, _forms(root, src, per_shard=16)


def _extract(model, data, split, out, **kw):
    cfg = ExtractConfig(
        model=str(model),
        hooks=("resid.1",),
        data=data,
        split=split,
        out=str(out),
        batch_size=4,
        num_workers=0,
        dtype="float32",
        rows_per_shard=16,
        progress=False,
        **kw,
    )
    return ActivationStore.open(extract(cfg))


def _assert_same(a, b):
    assert a.complete and b.complete and len(a) == len(b) > 0
    assert torch.equal(a[0 : len(a)], b[0 : len(b)])
    assert np.array_equal(a.image_index, b.image_index) and np.array_equal(a.token_index, b.token_index)
    assert np.array_equal(a.labels, b.labels)
    assert [(s["image"], s["reason"]) for s in a.skipped] == [(s["image"], s["reason"]) for s in b.skipped]


@pytest.mark.parametrize("kw", [{"tokens": "random:3"}, {"tokens": "cls", "max_images": 23}])
def test_folder_hf_and_wds_give_identical_stores(tmp_path, tiny_dirs, forty, kw):
    src, forms = forty
    model = tiny_dirs["clip_vision_proj"]
    stores = {
        name: _extract(model, data, split, tmp_path / name, **kw) for name, (data, split) in forms.items()
    }
    for name in ("hf", "wds"):
        _assert_same(stores["folder"], stores[name])
    ref = stores["folder"]
    if "max_images" in kw:  # the same seeded sample, from across the whole source (not the first 23)
        tables = {n: load_table(tmp_path / n) for n in forms}
        assert (
            tables["folder"]["source_index"] == tables["hf"]["source_index"] == tables["wds"]["source_index"]
        )
        assert max(tables["folder"]["source_index"]) > 30 and len(tables["folder"]["source_index"]) == 23
        assert len(np.unique(ref.image_index)) + len(ref.skipped) == 23
    else:  # every image used, the corrupt one skipped with its reason, labels as in the folder
        assert len(np.unique(ref.image_index)) == 40 and len(ref) == 120
        assert [s["reason"].split(" (")[0] for s in ref.skipped] == ["not an image"]
        assert ref.labels.tolist() == [src.labels[i] for i in ref.image_index]
    assert stores["hf"].classes == list(src.classes)  # from the ClassLabel


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    root = tmp_path_factory.mktemp("many")
    src = _images(root, 40)
    return _forms(root, src, per_shard=25)


def _args(model, data, out):
    return [
        "extract", "--model", str(model), "--data", data, "--hook", "resid.1", "--tokens", "random:2",
        "--out", str(out), "--batch-size", "2", "--num-workers", "1", "--dtype", "float32",
        "--rows-per-shard", "8", "--max-images", "150", "--quiet",
    ]  # fmt: skip


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.mark.parametrize("form", ["hf", "wds"])
def test_killed_extraction_resumes_exactly(tmp_path, tiny_dirs, many, form):
    model, data = tiny_dirs["clip_vision_proj"], many[form][0]
    out = tmp_path / "killed"
    p = subprocess.Popen(
        [sys.executable, "-m", "vsae.cli", *_args(model, data, out)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    manifest, t0 = out / "manifest.json", time.time()
    while time.time() - t0 < 180 and p.poll() is None:
        try:
            if json.loads(manifest.read_text())["shards"]:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL, p.stderr.read().decode()[-2000:]
    m = json.loads(manifest.read_text())
    assert not m["complete"] and 0 < m["next_image"] < 150, "the run was not killed mid-way"
    try:
        cli_main(_args(model, data, out))  # the same command again resumes
    except SystemExit as e:
        assert e.code in (0, None), e.code
    try:
        cli_main(_args(model, data, tmp_path / "ref"))  # uninterrupted
    except SystemExit as e:
        assert e.code in (0, None), e.code
    a, b = ActivationStore.open(out), ActivationStore.open(tmp_path / "ref")
    _assert_same(a, b)
    assert len(np.unique(a.image_index)) + len(a.skipped) == 150
