"""The same images as a folder, an `hf:` dataset saved to disk, the same rows as a streamed Parquet
dataset (`hf_stream:`) and `wds:` tar shards give identical stores (values, token and image indices,
labels, skipped items); a killed extraction from `hf:`, `hf_stream:` or `wds:` resumes to exactly
the store of an uninterrupted run; `--shard I/N` splits sharded sources at shard boundaries."""

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
from vsae.data.fake_images import noise, write_hf, write_hf_parquet, write_wds
from vsae.data.image_sources import folder_source
from vsae.errors import VsaeError
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
    pq = write_hf_parquet(list(src.items), list(src.labels), list(src.classes), root / "pq", per_shard)
    return {
        "folder": (str(root), "train"),
        "hf": (f"hf:{hf}", None),
        "wds": (f"wds:{pattern}", None),
        "hf_stream": (f"hf_stream:{pq}", None),
    }


@pytest.fixture(scope="module")
def forty(tmp_path_factory):
    root = tmp_path_factory.mktemp("forty")
    src = _images(root, 10)
    assert len(src) == 41
    return src, _forms(root, src, per_shard=16)


def _extract(model, data, split, out, **kw):
    return ActivationStore.open(extract(_cfg(model, data, split, out, **kw)))


def _cfg(model, data, split, out, **kw):
    base = dict(batch_size=4, num_workers=0, dtype="float32", rows_per_shard=16, progress=False)
    return ExtractConfig(
        model=str(model), hooks=("resid.1",), data=data, split=split, out=str(out), **base | kw
    )


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
    for name in ("hf", "wds", "hf_stream"):
        _assert_same(stores["folder"], stores[name])
    ref = stores["folder"]
    if "max_images" in kw:  # the same seeded sample, from across the whole source (not the first 23)
        tables = {n: load_table(tmp_path / n) for n in forms}
        assert all(tables[n]["source_index"] == tables["folder"]["source_index"] for n in forms)
        assert max(tables["folder"]["source_index"]) > 30 and len(tables["folder"]["source_index"]) == 23
        assert len(np.unique(ref.image_index)) + len(ref.skipped) == 23
    else:  # every image used, the corrupt one skipped with its reason, labels as in the folder
        assert len(np.unique(ref.image_index)) == 40 and len(ref) == 120
        assert [s["reason"].split(" (")[0] for s in ref.skipped] == ["not an image"]
        assert ref.labels.tolist() == [src.labels[i] for i in ref.image_index]
        items = load_table(tmp_path / "hf_stream")["items"]  # each row named by its stream position
        assert (
            items[:2] == ["train/0/0", "train/0/1"] and items[16] == "train/1/0" and items[-1] == "train/2/8"
        )
    assert stores["hf"].classes == stores["hf_stream"].classes == list(src.classes)  # from the ClassLabel


def test_hf_stream_with_two_workers_reads_every_row(tmp_path, tiny_dirs, forty):
    """DataLoader workers each read the stream themselves (datasets would otherwise hand each worker
    only its share of the shards, and the other rows would be lost)."""
    src, forms = forty
    model = tiny_dirs["clip_vision_proj"]
    ref = _extract(model, *forms["folder"], tmp_path / "ref")
    two = _extract(model, forms["hf_stream"][0], None, tmp_path / "two", num_workers=2)
    _assert_same(ref, two)
    assert len(ref.skipped) == 1


def test_an_iterable_dataset_from_python(tmp_path, tiny_dirs, forty):
    """An IterableDataset built in Python (indexed by one pass over its stream) through
    `prepare(cfg, source)`: the same store as the folder, with the same --max-images sample."""
    import datasets

    from vsae.data.schemes.hf_stream import stream_source
    from vsae.extract import prepare

    src, forms = forty
    model = tiny_dirs["clip_vision_proj"]
    it = datasets.load_from_disk(forms["hf"][0][3:]).to_iterable_dataset(num_shards=4)
    source = stream_source(it, "python:cifar-like", split="train")
    assert source.describe()["indexed_from"] == "stream" and source.describe()["shard_rows"] == [
        11,
        10,
        10,
        10,
    ]
    ref = _extract(model, *forms["folder"], tmp_path / "ref", max_images=23)
    cfg = _cfg(model, "python:cifar-like", None, tmp_path / "py", max_images=23)
    _assert_same(ref, ActivationStore.open(extract(cfg, prepared=prepare(cfg, source))))


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


@pytest.mark.parametrize("form", ["hf", "wds", "hf_stream"])
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


@pytest.mark.parametrize("form", ["wds", "hf_stream"])
@pytest.mark.parametrize("max_images", [None, 23])
def test_shard_parts_split_at_shard_boundaries(tmp_path, tiny_dirs, forty, form, max_images):
    """41 samples in shards of 16, 16 and 9: --shard 0/2 takes shard 0, 1/2 takes shards 1 and 2;
    the merged parts equal the unsharded store; more parts than shards is one line."""
    src, forms = forty
    model, data = tiny_dirs["clip_vision_proj"], forms[form][0]
    kw = {"tokens": "random:2", "max_images": max_images}
    ref = _extract(model, data, None, tmp_path / "ref", **kw)
    for i in range(2):
        extract(_cfg(model, data, None, tmp_path / "parts", shard=(i, 2), **kw))
    ranges = [json.loads((tmp_path / "parts" / f"manifest.part-{i}-of-2.json").read_text()) for i in range(2)]
    if max_images is None:
        assert [m["image_range"] for m in ranges] == [[0, 16], [16, 41]]  # not the even split [0, 20]
    else:  # the sample's items that fall in shard 0, then the rest
        used = load_table(tmp_path / "ref")["source_index"]
        cut = sum(1 for i in used if i < 16)
        assert [m["image_range"] for m in ranges] == [[0, cut], [cut, 23]] and 0 < cut < 23
    _assert_same(ref, ActivationStore.open(tmp_path / "parts"))
    with pytest.raises(VsaeError, match="has 3 shards and is split by shard; use at most 3 parts"):
        extract(_cfg(model, data, None, tmp_path / "four", shard=(3, 4), **kw))
