"""A store's manifest is untrusted input: names must stay inside the store and be regular files,
claims must match the shard headers, and verification catches tampering and NaN/Inf (issue 16)."""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from vsae.errors import VsaeError
from vsae.store import ActivationStore, StoreWriter, check_store
from vsae.store.dtypes import STORAGE_DTYPES
from vsae.store.validate import STORAGE_DTYPES as VALIDATE_DTYPES


def make(path, x=None, complete=True):
    x = torch.randn(300, 6, generator=torch.Generator().manual_seed(0)) if x is None else x
    w = StoreWriter.create_or_resume(
        path, d=x.shape[1], dtype="float32", provenance={"hook": "h"}, rows_per_shard=100
    )
    for a in range(0, len(x), 100):
        w.add(x[a : a + 100], np.arange(a, a + 100), np.zeros(100, np.int64))
        w.mark_images_done(a + 100)
    w.close() if complete else w.flush()
    return path


def manifest(path):
    return json.loads((path / "manifest.json").read_text())


def put_manifest(path, m):
    (path / "manifest.json").write_text(json.dumps(m))


def point_shard_at(path, target: str, sha_of=None):
    m = manifest(path)
    m["shards"][0]["files"]["acts"] = target
    if sha_of is not None:
        m["shards"][0]["sha256"]["acts"] = hashlib.sha256(sha_of.read_bytes()).hexdigest()
    put_manifest(path, m)


def read_all(path, verify=False):
    s = ActivationStore.open(path, verify=verify)
    return s[:]


def test_dtype_lists_agree():
    assert VALIDATE_DTYPES == STORAGE_DTYPES


@pytest.mark.parametrize("how", ["absolute", "dotdot", "subdir"])
def test_shard_names_outside_the_store_are_refused_even_with_matching_sha(tmp_path, how):
    s = make(tmp_path / "s")
    outside = tmp_path / "secret.npy"
    shutil.copy(s / manifest(s)["shards"][0]["files"]["acts"], outside)
    name = {"absolute": str(outside), "dotdot": "../secret.npy", "subdir": "x/../../secret.npy"}[how]
    point_shard_at(s, name, sha_of=outside)
    with pytest.raises(VsaeError, match="not a plain file name inside the store"):
        read_all(s)
    rep = check_store(s)  # used to say "ok": the checksum matched the file outside
    assert not rep.ok and any("not a plain file name" in p for p in rep.problems)


def test_symlinks_out_of_the_store_and_special_files_are_refused_without_hanging(tmp_path):
    s = make(tmp_path / "s")
    f = s / manifest(s)["shards"][0]["files"]["acts"]
    shutil.copy(f, tmp_path / "out.npy")
    f.unlink()
    f.symlink_to(tmp_path / "out.npy")
    with pytest.raises(VsaeError, match="symlink out of the store"):
        read_all(s)
    f.unlink()
    f.symlink_to("/dev/zero")
    with pytest.raises(VsaeError, match="symlink out of the store"):
        read_all(s)
    f.unlink()
    os.mkfifo(f)  # reading it would block forever
    with pytest.raises(VsaeError, match="is a FIFO, not a regular file"):
        read_all(s)
    assert any("a FIFO" in p for p in check_store(s).problems)
    f.unlink()
    with pytest.raises(VsaeError, match="is missing"):
        read_all(s)


def test_symlink_inside_the_store_is_followed(tmp_path):
    s = make(tmp_path / "s")
    f = s / manifest(s)["shards"][0]["files"]["acts"]
    f.rename(s / "real.npy")
    f.symlink_to("real.npy")
    assert check_store(s).ok and read_all(s, verify=True).shape == (300, 6)


def test_store_check_cli_on_fifo_and_outside_shards_does_not_hang(tmp_path):
    s = make(tmp_path / "s")
    m = manifest(s)
    os.unlink(s / m["shards"][1]["files"]["rows"])
    os.mkfifo(s / m["shards"][1]["files"]["rows"])
    point_shard_at(s, "/dev/zero")
    r = subprocess.run(
        [sys.executable, "-m", "vsae.cli", "store", "check", str(s)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "not a plain file name" in r.stdout and "a FIFO" in r.stdout


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda m: m["shards"][0].update(rows=60), r"manifest says \(60, 6\)"),  # under-reported
        (lambda m: m["shards"][0].update(rows=10**9), r"manifest says \(1000000000, 6\)"),
        (lambda m: m.update(d=7), r"manifest says \(100, 7\)"),
        (lambda m: m.update(shards="x"), "'shards' is not a list"),
        (lambda m: m.pop("d"), "width d is 'None'"),
        (lambda m: m.update(d=True), "width d"),
        (lambda m: m.update(dtype="float8"), "dtype 'float8'"),
        (lambda m: m["shards"][0].update(rows="12"), "claims 12 rows"),
        (lambda m: m["shards"][0]["files"].pop("rows"), "must list the files acts, rows"),
        (lambda m: m["shards"][0].update(images=[5, 2]), "image range"),
        (lambda m: m.update(complete="yes"), "'complete' is not true/false"),
    ],
)
def test_manifest_claims_that_disagree_are_one_line_errors(tmp_path, edit, match):
    s = make(tmp_path / "s")
    m = manifest(s)
    edit(m)
    put_manifest(s, m)
    with pytest.raises(VsaeError, match=match) as e:
        read_all(s)
    assert "\n" not in str(e.value)


def test_parts_with_different_widths_are_refused(tmp_path):
    for i, d in ((0, 4), (1, 5)):
        w = StoreWriter.create_or_resume(
            tmp_path / "s", d=d, dtype="float32", part=(i, 2), start_image=i * 10
        )
        w.add(torch.randn(10, d), np.arange(i * 10, i * 10 + 10), np.zeros(10, np.int64))
        w.mark_images_done(i * 10 + 10)
        w.close()
    with pytest.raises(VsaeError, match="d=5 but part 0 has 4"):
        ActivationStore.open(tmp_path / "s")


def test_verify_catches_flipped_bytes_and_nan_rows_on_first_read(tmp_path):
    s = make(tmp_path / "s")
    f = s / manifest(s)["shards"][2]["files"]["acts"]
    b = bytearray(f.read_bytes())
    b[-3] ^= 0x40
    f.write_bytes(bytes(b))
    assert read_all(s).shape == (300, 6)  # unverified reads see only a changed value
    st = ActivationStore.open(s, verify=True)
    st[:100]  # shard 0 is fine
    with pytest.raises(VsaeError, match="checksum mismatch"):
        st[250]
    x = torch.randn(300, 6)
    x[120, 2] = float("nan")
    x[5, 0] = float("-inf")
    n = make(tmp_path / "n", x)
    with pytest.raises(VsaeError, match="shard 0 holds 1 rows with NaN or Inf"):
        read_all(n, verify=True)
    assert check_store(n).nonfinite_rows == 2


def test_verification_runs_once_per_shard(tmp_path, monkeypatch):
    import vsae.store.reader as reader

    s = ActivationStore.open(make(tmp_path / "s"), verify=True)
    calls = []
    real = reader.sha256_regular
    monkeypatch.setattr(reader, "sha256_regular", lambda p: calls.append(p) or real(p))
    for _ in range(3):
        s[:]
    assert len(calls) == 3 * 2  # 3 shards x (acts, rows), each hashed once
    assert s.fingerprint == ActivationStore.open(tmp_path / "s").fingerprint


def test_resume_of_a_garbage_manifest_is_one_line(tmp_path):
    s = make(tmp_path / "s", complete=False)
    for content in (b"\xff\xfe\x00", b'{"format": ', b'{"format": "dense", "shards": "x"}'):
        (s / "manifest.json").write_bytes(content)
        with pytest.raises(VsaeError, match="manifest .*(corrupt|damaged)"):
            StoreWriter.create_or_resume(
                s, d=6, dtype="float32", provenance={"hook": "h"}, rows_per_shard=100
            )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_nonfinite_rows_are_counted_on_the_stored_bits(tmp_path, dtype):
    x = torch.randn(300, 6, generator=torch.Generator().manual_seed(4))
    x[[3, 150, 151], [0, 5, 5]] = torch.tensor([float("nan"), float("inf"), float("-inf")])
    x[200, 1] = 1e30 if dtype == "float32" else 3e4  # large but finite in every dtype that stores it
    w = StoreWriter.create_or_resume(tmp_path / "s", d=6, dtype=dtype, rows_per_shard=100)
    w.add(x, np.arange(300), np.zeros(300, np.int64))
    w.mark_images_done(300)
    w.close()
    rep = check_store(tmp_path / "s")
    assert rep.nonfinite_rows == 3 and not rep.ok
    with pytest.raises(VsaeError, match="holds 3 rows with NaN or Inf"):
        ActivationStore.open(tmp_path / "s", verify=True)[0]
