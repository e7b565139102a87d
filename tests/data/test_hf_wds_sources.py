"""The built-in `hf:` and `wds:` sources and the `vsae.image_sources` plugin group: columns and
labels found, every sample an item (no image -> a reason), one-line errors for what is wrong."""

import importlib.metadata
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from vsae.data import image_sources as S
from vsae.data import open_source
from vsae.data.decode import DecodeError, decode_bytes
from vsae.data.fake_images import noise
from vsae.errors import VsaeError

datasets = pytest.importorskip("datasets")


def _png(seed):
    buf = io.BytesIO()
    noise(seed, (12, 12)).save(buf, "PNG")
    return buf.getvalue()


def _tar(path, members):
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_wds_samples_labels_and_a_sample_without_image(tmp_path):
    _tar(
        tmp_path / "s-0.tar",
        [
            ("x/k0.png", _png(0)),
            ("x/k0.json", json.dumps({"label": "cat"}).encode()),
            ("x/k1.webp.txt", b"caption only"),  # no image: still an item, with its reason
            ("x/k2.jpg", _png(2)),  # a PNG named .jpg: decoded by content
            ("x/k2.png", _png(3)),  # jpg is preferred over png
            ("x/k2.cls", b"dog"),
        ],
    )
    _tar(tmp_path / "s-1.tar", [("k3.png", _png(4)), ("k3.json", json.dumps({"cls": "cat"}).encode())])
    src = open_source(f"wds:{tmp_path}/s-{{0..1}}.tar")
    assert [i.rpartition("#")[2] for i in src.items] == ["x/k0", "x/k1", "x/k2", "k3"]
    assert src.classes == ("cat", "dog") and src.labels == (0, -1, 1, 0)
    assert np.array_equal(np.asarray(decode_bytes(src.reader(src.items[2]))), np.asarray(noise(2, (12, 12))))
    with pytest.raises(DecodeError, match=r"no image \(jpg/png/webp\).*webp.txt"):
        src.reader(src.items[1])
    assert src.describe()["n_shards"] == 2 and len(src.describe()["index_sha256"]) == 64
    sub = src.pick([3, 0])  # a sample keeps its reader: items name their shard and key
    assert np.array_equal(np.asarray(decode_bytes(sub.reader(sub.items[0]))), np.asarray(noise(4, (12, 12))))


def test_wds_errors(tmp_path):
    with pytest.raises(VsaeError, match="does not exist"):
        open_source(f"wds:{tmp_path}/none-{{0..1}}.tar")
    (tmp_path / "bad.tar").write_text("not a tar at all" * 100)
    with pytest.raises(VsaeError, match="not a readable tar"):
        open_source(f"wds:{tmp_path}/bad.tar")
    _tar(tmp_path / "ok.tar", [("a.png", _png(0))])
    with pytest.raises(VsaeError, match="--split applies to folder trees"):
        open_source(f"wds:{tmp_path}/ok.tar", split="train")
    with pytest.raises(VsaeError, match="--image-column applies to hf: datasets"):
        open_source(f"wds:{tmp_path}/ok.tar", image_column="img")


def test_hf_columns_splits_and_labels(tmp_path):
    feats = {
        "img": datasets.Image(),
        "y": datasets.ClassLabel(names=["n01", "n02"]),
        "other": datasets.Value("int64"),
    }
    rows = {
        "img": [{"bytes": _png(i), "path": None} for i in range(3)] + [None],
        "y": [1, 0, 1, 0],
        "other": [5, 6, 7, 5],
    }
    ds = datasets.Dataset.from_dict(rows, features=datasets.Features(feats))
    datasets.DatasetDict({"train": ds, "validation": ds.select([0, 1])}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(VsaeError, match="has splits train, validation; choose one with --split"):
        open_source(f"hf:{tmp_path / 'dd'}")
    src = open_source(f"hf:{tmp_path / 'dd'}", split="train")
    assert src.items == ("train/0", "train/1", "train/2", "train/3") and src.classes == ("n01", "n02")
    assert src.labels == (1, 0, 1, 0)
    assert np.array_equal(np.asarray(decode_bytes(src.reader("train/1"))), np.asarray(noise(1, (12, 12))))
    with pytest.raises(DecodeError, match="no image in this row"):
        src.reader("train/3")
    by_other = open_source(f"hf:{tmp_path / 'dd'}", split="train", label_column="other")
    assert by_other.labels == (5, 6, 7, 5) and by_other.classes == tuple(str(i) for i in range(8))
    with pytest.raises(VsaeError, match="--label-column nope: .* has columns img, y, other"):
        open_source(f"hf:{tmp_path / 'dd'}", split="train", label_column="nope")


def test_hf_errors(tmp_path):
    two = datasets.Features({"a": datasets.Image(), "b": datasets.Image()})
    cell = {"bytes": _png(0), "path": None}
    datasets.Dataset.from_dict({"a": [cell], "b": [cell]}, features=two).save_to_disk(str(tmp_path / "two"))
    with pytest.raises(VsaeError, match="several Image columns .*--image-column"):
        open_source(f"hf:{tmp_path / 'two'}")
    assert len(open_source(f"hf:{tmp_path / 'two'}", image_column="b")) == 1
    datasets.Dataset.from_dict({"t": ["x"]}).save_to_disk(str(tmp_path / "text"))
    with pytest.raises(VsaeError, match="no Image column"):
        open_source(f"hf:{tmp_path / 'text'}")
    with pytest.raises(VsaeError, match="single dataset without splits; drop --split"):
        open_source(f"hf:{tmp_path / 'two'}", split="train")
    with pytest.raises(VsaeError, match="cannot load the dataset"):
        open_source(f"hf:{tmp_path / 'missing'}")


def test_hf_stream_shards_positions_labels_and_reader(tmp_path):
    """An IterableDataset (Python API) and a streamed Parquet directory: every row an item named by
    (shard, offset), labels from the ClassLabel, rows read forward and backward, no image -> reason."""
    from vsae.data.schemes.hf_stream import stream_source

    feats = datasets.Features({"img": datasets.Image(), "y": datasets.ClassLabel(names=["n01", "n02"])})
    rows = {"img": [{"bytes": _png(i), "path": None} for i in range(6)] + [None], "y": [1, 0, 1, 0, 1, 1, 0]}
    ds = datasets.Dataset.from_dict(rows, features=feats)
    src = stream_source(ds.to_iterable_dataset(num_shards=3), "py", split="train")
    assert src.describe()["shard_rows"] == [3, 2, 2] and src.classes == ("n01", "n02")
    assert src.items[:4] == ("train/0/0", "train/0/1", "train/0/2", "train/1/0")
    assert src.labels == (1, 0, 1, 0, 1, 1, 0)
    for i in (4, 0, 5, 2, 1):  # forward, then behind the open iterator: the shard is reopened
        assert np.array_equal(
            np.asarray(decode_bytes(src.reader(src.items[i]))), np.asarray(noise(i, (12, 12)))
        )
    with pytest.raises(DecodeError, match="no image in this row"):
        src.reader(src.items[6])
    src.reader.close()
    ds.select(range(4)).to_parquet(str(tmp_path / "pq" / "a.parquet"))
    ds.select(range(4, 7)).to_parquet(str(tmp_path / "pq" / "b.parquet"))
    pq = open_source(f"hf_stream:{tmp_path / 'pq'}")
    assert pq.describe()["shard_rows"] == [4, 3] and pq.labels == src.labels and pq.items[4] == "train/1/0"
    assert pq.describe()["indexed_from"] == "parquet" and src.describe()["indexed_from"] == "stream"
    assert np.array_equal(np.asarray(decode_bytes(pq.reader(pq.items[5]))), np.asarray(noise(5, (12, 12))))
    pq.reader.close()
    ds.save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(VsaeError, match="is a saved dataset; read it with hf:"):
        open_source(f"hf_stream:{tmp_path / 'saved'}")
    with pytest.raises(VsaeError, match="expected a datasets.IterableDataset"):
        stream_source(ds, "py")


def test_hf_stream_image_folder_cells_hold_paths(tmp_path):
    """A streamed image folder yields cells with a path and no bytes: read from the path, in the
    folder source's order, with its classes; a corrupt file is an item that fails to decode."""
    from vsae.data.image_sources import folder_source

    for c, n in (("cat", 3), ("dog", 2)):
        (tmp_path / "imf" / "train" / c).mkdir(parents=True)
        for i in range(n):
            noise(10 * n + i, (12, 12)).save(tmp_path / "imf" / "train" / c / f"{i}.png")
    (tmp_path / "imf" / "train" / "dog" / "9.png").write_text("not an image")
    src = open_source(f"hf_stream:{tmp_path / 'imf'}")
    ref = folder_source(tmp_path / "imf", "train")
    assert src.classes == ref.classes == ("cat", "dog") and src.labels == ref.labels and len(src) == 6
    for i in range(5):
        assert src.reader(src.items[i]) == Path(ref.items[i]).read_bytes()
    with pytest.raises(DecodeError, match="not an image"):
        decode_bytes(src.reader(src.items[5]))
    src.reader.close()


def test_plugin_scheme_from_an_entry_point(monkeypatch):
    ep = importlib.metadata.EntryPoint("plug", "tests.data.test_schemes:_squares", S.ENTRY_POINTS)
    monkeypatch.setattr(S.SOURCE_SCHEMES, "_entry_points", lambda: {"plug": ep})
    S.SOURCE_SCHEMES.unregister("plug")
    try:
        assert "plug" in S.source_schemes() and "hf" in S.source_schemes() and "wds" in S.source_schemes()
        src = open_source("plug:4")
        assert len(src) == 4 and src.classes == ("even", "odd")
    finally:
        S.SOURCE_SCHEMES.unregister("plug")


def _stack(images):
    import torch

    return torch.from_numpy(np.stack([np.asarray(im) for im in images]))


def test_wds_reads_right_in_forked_workers(tmp_path):
    from vsae.data import iter_batches

    _tar(tmp_path / "a.tar", [(f"k{i:03d}.png", _png(i)) for i in range(24)])
    src = open_source(f"wds:{tmp_path}/a.tar")
    src.reader(src.items[5])  # the parent holds the shard open: workers must not share its offset
    got = {}
    for b in iter_batches(src, _stack, 0, len(src), 4, num_workers=2):
        got.update({int(i): x.numpy() for i, x in zip(b.ids, b.inputs)})
    assert sorted(got) == list(range(24))
    assert all(np.array_equal(got[i], np.asarray(noise(i, (12, 12)))) for i in range(24))
