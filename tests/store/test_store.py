import itertools
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from vsae.errors import VsaeError
from vsae.store import ActivationStore, SparseStoreWriter, StoreWriter, check_store


def write_store(
    path, X, dtype="float32", rows_per_shard=100, step=30, part=(0, 1), start=0, tokens=None, open_=True
):
    w = StoreWriter.create_or_resume(
        path,
        d=X.shape[1],
        dtype=dtype,
        provenance={"hook": "resid.1"},
        rows_per_shard=rows_per_shard,
        part=part,
        start_image=start,
    )
    n = len(X)
    for i in range(w.next_image - start, n, step):
        j = min(i + step, n)
        w.add(X[i:j], np.arange(start + i, start + j), np.arange(i, j) if tokens is None else tokens[i:j])
        w.mark_images_done(start + j)
    w.close()
    return ActivationStore.open(path) if open_ else None


@pytest.mark.parametrize("dtype,tol", [("float32", 0), ("float16", 1e-3), ("bfloat16", 1e-2)])
def test_roundtrip_dtypes(tmp_path, dtype, tol):
    X = torch.randn(1000, 8)
    s = write_store(tmp_path / "s", X, dtype=dtype)
    assert len(s) == 1000 and s.d == 8 and s.complete and s.n_shards >= 9
    assert torch.allclose(s[:], X, rtol=tol, atol=tol)
    # the same values as torch's own rounding to the storage dtype
    assert torch.equal(s[:], X.to(getattr(torch, dtype)).float())
    assert torch.equal(s[5], s[5:6][0])
    ids = np.array([999, 0, 500, 500, 101])
    assert torch.equal(s[ids], s[:][ids])
    assert torch.equal(s[-1], s[999])
    assert torch.equal(s[10:400:7], s[:][10:400:7])
    np.testing.assert_array_equal(s.image_index, np.arange(1000))
    np.testing.assert_array_equal(s.token_index, np.arange(1000))
    with pytest.raises(IndexError):
        s[1000]


def test_shards_are_memory_mapped(tmp_path):
    s = write_store(tmp_path / "s", torch.randn(300, 4))
    assert isinstance(s._array(0, "acts"), np.memmap)


def test_shuffled_batches_cover_each_epoch_and_resume_exactly(tmp_path):
    X = torch.arange(1000 * 3, dtype=torch.float32).reshape(1000, 3)
    s = write_store(tmp_path / "s", X)
    kw = dict(seed=7, buffer_rows=256, block_rows=32)
    first = list(itertools.islice(s.iter_batches(64, **kw), 40))
    per_epoch = 1000 // 64
    epoch0 = torch.cat(first[:per_epoch])
    assert len(torch.unique(epoch0[:, 0])) == per_epoch * 64  # no row twice within an epoch
    assert not torch.equal(first[0], X[:64])  # shuffled
    assert not torch.equal(torch.cat(first[per_epoch : 2 * per_epoch]), epoch0)  # new order next epoch
    for start in (0, 3, per_epoch - 1, per_epoch, 33):
        resumed = list(itertools.islice(s.iter_batches(64, start_batch=start, **kw), 40 - start))
        assert all(torch.equal(a, b) for a, b in zip(first[start:], resumed))
    other = next(s.iter_batches(64, seed=8, buffer_rows=256, block_rows=32))
    assert not torch.equal(other, first[0])


def test_sequential_and_unshuffled(tmp_path):
    X = torch.randn(250, 5)
    s = write_store(tmp_path / "s", X)
    got = list(s.iter_sequential(100))
    assert [a for a, _ in got] == [0, 100, 200]
    assert torch.equal(torch.cat([x for _, x in got]), X)
    assert torch.equal(torch.cat(list(s.iter_batches(100, shuffle=False, drop_last=False))), X)
    assert len(list(s.iter_batches(100, shuffle=False))) == 2


def test_resume_after_crash_gives_identical_rows(tmp_path):
    X = torch.randn(500, 6)
    ref = write_store(tmp_path / "ref", X)
    # a crash: rows buffered but never flushed, plus debris of a half-written shard
    w = StoreWriter.create_or_resume(tmp_path / "s", d=6, provenance={"hook": "resid.1"}, rows_per_shard=100)
    for i in range(0, 330, 30):
        w.add(X[i : i + 30], np.arange(i, i + 30), np.arange(i, i + 30))
        w.mark_images_done(i + 30)
    (tmp_path / "s" / "shard-00000-00009.acts.npy.tmp").write_bytes(b"junk")
    (tmp_path / "s" / "shard-00000-00003.acts.npy").write_bytes(b"orphan")
    del w
    partial = ActivationStore.open(tmp_path / "s")
    assert not partial.complete and len(partial) == 240  # two shards of 120 rows committed
    s = write_store(tmp_path / "s", X)
    assert torch.equal(s[:], ref[:])
    np.testing.assert_array_equal(s.image_index, ref.image_index)
    assert not list((tmp_path / "s").glob("*.tmp"))
    assert check_store(tmp_path / "s").ok


def test_resume_with_other_arguments_is_refused(tmp_path):
    write_store(tmp_path / "s", torch.randn(50, 4))
    with pytest.raises(VsaeError, match="different provenance"):
        StoreWriter.create_or_resume(tmp_path / "s", d=4, provenance={"hook": "resid.2"}, rows_per_shard=100)
    with pytest.raises(VsaeError, match="different d"):
        StoreWriter.create_or_resume(tmp_path / "s", d=5, provenance={"hook": "resid.1"}, rows_per_shard=100)


def test_parts_read_as_one_store(tmp_path):
    X = torch.randn(400, 4)
    ref = write_store(tmp_path / "ref", X)
    write_store(tmp_path / "s", X[200:], part=(1, 2), start=200, open_=False)
    with pytest.raises(VsaeError, match=r"lacks parts \[0\] of 2"):
        ActivationStore.open(tmp_path / "s")
    s = write_store(tmp_path / "s", X[:200], part=(0, 2))
    assert torch.equal(s[:], ref[:]) and len(s.manifests) == 2
    np.testing.assert_array_equal(s.image_index, ref.image_index)


def test_skipped_images_are_recorded(tmp_path):
    w = StoreWriter.create_or_resume(tmp_path / "s", d=2, rows_per_shard=10)
    w.add(torch.ones(3, 2), np.array([0, 2, 3]), -np.ones(3))
    w.skip(1, "bad.jpg", "corrupt: cannot identify image file")
    w.mark_images_done(4)
    w.close()
    s = ActivationStore.open(tmp_path / "s")
    assert s.skipped == [{"image": 1, "path": "bad.jpg", "reason": "corrupt: cannot identify image file"}]
    assert s.manifest["next_image"] == 4


def test_sparse_store(tmp_path):
    g = torch.Generator().manual_seed(0)
    Z = torch.relu(torch.randn(120, 40, generator=g) - 1.5)
    Z[7] = 0  # an all-zero row
    w = SparseStoreWriter.create_or_resume(tmp_path / "z", d=40, dtype="float32", rows_per_shard=50)
    for i in range(0, 120, 25):
        j = min(i + 25, 120)
        w.add(Z[i:j], np.arange(i, j), -np.ones(j - i, np.int64))
        w.mark_images_done(j)
    w.close()
    s = ActivationStore.open(tmp_path / "z")
    assert type(s).__name__ == "SparseActivationStore" and s.d == 40 and len(s) == 120
    assert torch.equal(s[:], Z) and torch.equal(s[[7, 100, 3]], Z[[7, 100, 3]])
    indptr, idx, val = s.csr(10, 90)
    dense = np.zeros((80, 40), np.float32)
    for r in range(80):
        dense[r, idx[indptr[r] : indptr[r + 1]]] = val[indptr[r] : indptr[r + 1]]
    np.testing.assert_array_equal(dense, Z[10:90].numpy())
    assert check_store(tmp_path / "z").ok


def test_check_finds_corruption_and_nonfinite(tmp_path):
    X = torch.randn(300, 4)
    X[17, 2] = float("nan")
    write_store(tmp_path / "s", X)
    rep = check_store(tmp_path / "s")
    assert not rep.ok and rep.nonfinite_rows == 1
    f = tmp_path / "s" / "shard-00000-00001.acts.npy"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    assert any("checksum mismatch" in p for p in check_store(tmp_path / "s").problems)


def test_open_errors_are_one_line(tmp_path):
    with pytest.raises(VsaeError, match="no such directory"):
        ActivationStore.open(tmp_path / "missing")
    (tmp_path / "d").mkdir()
    with pytest.raises(VsaeError, match="no manifest.json"):
        ActivationStore.open(tmp_path / "d")
    (tmp_path / "d" / "manifest.json").write_text("{not json")
    with pytest.raises(VsaeError, match="corrupt"):
        ActivationStore.open(tmp_path / "d")


def test_cli_info_and_check(tmp_path):
    write_store(tmp_path / "s", torch.randn(120, 4))
    vsae = [sys.executable, "-m", "vsae.cli"]
    out = subprocess.run(
        [*vsae, "store", "info", str(tmp_path / "s"), "--json"], capture_output=True, text=True
    )
    info = json.loads(out.stdout)
    assert (
        info["rows"] == 120
        and info["d"] == 4
        and info["complete"]
        and info["provenance"] == {"hook": "resid.1"}
    )
    human = subprocess.run(
        [*vsae, "store", "info", str(tmp_path / "s")], capture_output=True, text=True
    ).stdout
    assert "120 x 4 float32" in human
    ok = subprocess.run([*vsae, "store", "check", str(tmp_path / "s")], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: 120 rows")
    bad = subprocess.run([*vsae, "store", "info", str(tmp_path / "nope")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "error:" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_training_reader_memory_is_independent_of_store_size(tmp_path):
    """Peak anonymous (non file-backed) memory while streaming batches stays far below the store size."""
    d, n = 512, 120_000  # 245 MB float32
    w = StoreWriter.create_or_resume(tmp_path / "big", d=d, rows_per_shard=20_000)
    g = torch.Generator().manual_seed(0)
    for i in range(0, n, 20_000):
        w.add(torch.randn(20_000, d, generator=g), np.arange(i, i + 20_000), np.zeros(20_000))
        w.mark_images_done(i + 20_000)
    w.close()
    code = textwrap.dedent(f"""
        import re, torch
        from vsae.store import ActivationStore
        def anon():
            return int(re.search(r"RssAnon:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024
        s = ActivationStore.open({str(tmp_path / "big")!r})
        base, peak = anon(), 0
        for b, x in enumerate(s.iter_batches(1024, buffer_rows=16384)):
            peak = max(peak, anon())
            if b == 150: break
        print(peak - base)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert out.returncode == 0, out.stderr
    grew_mb = int(out.stdout.strip())
    assert grew_mb < 100, f"reader grew anonymous memory by {grew_mb} MB for a 245 MB store"


@pytest.mark.parametrize(
    "bs,buffer_rows,block_rows", [(64, 100, 10), (100, 64, 16), (7, 20, 3), (64, 1024, 1024)]
)
def test_batches_full_size_and_resumable_for_any_buffer_geometry(tmp_path, bs, buffer_rows, block_rows):
    X = torch.arange(2 * 1037, dtype=torch.float32).reshape(1037, 2)
    s = write_store(tmp_path / "s", X, rows_per_shard=300, step=97)
    kw = dict(seed=3, buffer_rows=buffer_rows, block_rows=block_rows)
    pe = 1037 // bs
    ref = list(itertools.islice(s.iter_batches(bs, **kw), 3 * pe))
    assert all(len(x) == bs for x in ref)
    assert len(torch.unique(torch.cat(ref[:pe])[:, 0])) == pe * bs
    for start in range(0, 3 * pe, 5):
        got = list(itertools.islice(s.iter_batches(bs, start_batch=start, **kw), 3 * pe - start))
        assert all(torch.equal(a, b) for a, b in zip(ref[start:], got)), start


def test_cli_os_errors_are_one_line(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    out = subprocess.run(
        [sys.executable, "-m", "vsae.cli", "demo", "--fast", "--out", str(f / "sub")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.strip().count("\n") == 0
