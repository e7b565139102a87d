"""`vsae encode`, `vsae eval ms` and `vsae eval top-images` killed with SIGKILL at a chosen point,
then run again with the same arguments, end with exactly the files of an uninterrupted run (issue 22).

The kill is real (the process SIGKILLs itself, as `kill -9` would) and placed exactly: right after
the k-th file the command made durable (`vsae.store.safe_io.fsync_dir` follows every rename), so
each test covers a killed run that left some outputs and not others.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vsae.cli import main
from vsae.store.safe_io import LOCK_NAME
from vsae.store.writer import StoreWriter

KILL_AFTER = """
import os, signal, sys
import vsae.store.safe_io as s
k, n, real = int(sys.argv[1]), [0], s.fsync_dir
def fsync_dir(p):
    real(p)
    n[0] += 1
    if n[0] == k:
        os.kill(os.getpid(), signal.SIGKILL)
s.fsync_dir = fsync_dir
from vsae.cli import main
main(sys.argv[2:])
"""


def run_killed(argv: list[str], k: int) -> None:
    """Run `vsae argv` in a subprocess that SIGKILLs itself after its k-th durable write."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-c", KILL_AFTER, str(k), *argv], capture_output=True, text=True,
                       env=env, timeout=300)  # fmt: skip
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr[-2000:])


def files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def same_store(ref: Path, run: Path) -> None:
    """The same shards byte for byte, the same manifest but for its start and end times."""
    a, b = files(ref), files(run)
    assert a.keys() == b.keys()
    for name in a:
        if name == "manifest.json":
            ma, mb = json.loads(a[name]), json.loads(b[name])
            for stamp in ("created", "finished"):  # wall-clock times, not content
                ma.pop(stamp), mb.pop(stamp)
            assert ma == mb
        else:
            assert a[name] == b[name], name


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A store of 140,000 rows (3 sparse shards of latents), an SAE on it, embeddings per image."""
    root = tmp_path_factory.mktemp("kill")
    n, d = 140_000, 8
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(0))
    w = StoreWriter.create_or_resume(root / "acts", d=d, dtype="float32", provenance={"hook": "resid.0"},
                                     rows_per_shard=50_000)  # fmt: skip
    w.add(x, np.arange(n, dtype=np.int64), np.zeros(n, np.int64))
    w.mark_images_done(n)
    w.close()
    small = StoreWriter.create_or_resume(root / "small", d=d, dtype="float32", provenance={"hook": "resid.0"})
    small.add(x[:600], np.arange(600, dtype=np.int64), np.zeros(600, np.int64))
    small.mark_images_done(600)
    small.close()
    main(["train", "--acts", str(root / "small"), "--out", str(root / "run"), "--steps", "4", "--batch-size", "32",
          "--arch", "topk", "--expansion", "2", "--k", "4", "--quiet", "--threads", "1"])  # fmt: skip
    np.save(root / "emb.npy", np.random.default_rng(0).standard_normal((600, 4)).astype(np.float32))
    return {"root": root, "acts": root / "acts", "small": root / "small", "sae": root / "run" / "topk-x2-k4",
            "emb": root / "emb.npy"}  # fmt: skip


@pytest.mark.parametrize("k", [1, 4, 5, 9, 11])
def test_encode_killed_then_rerun_is_exact(inputs, tmp_path, k):
    argv = ["encode", "--sae", str(inputs["sae"]), "--acts", str(inputs["acts"]), "--quiet", "--out"]
    ref, run = tmp_path / "ref", tmp_path / "run"
    main([*argv, str(ref)])
    assert (
        len(json.loads((ref / "manifest.json").read_text())["shards"]) == 3
    )  # the kills fall between shards
    run_killed([*argv, str(run)], k)
    assert (
        run.is_dir()
        and not (run / "manifest.json").exists()
        or not json.loads((run / "manifest.json").read_text())["complete"]
    )  # it really stopped part-way
    main([*argv, str(run)])
    same_store(ref, run)
    assert not os.path.lexists(run / LOCK_NAME)


def _eval(cmd: str, inputs, out: Path) -> list[str]:
    lat = inputs["root"] / "lat"
    if not lat.exists():
        main(
            [
                "encode",
                "--sae",
                str(inputs["sae"]),
                "--acts",
                str(inputs["small"]),
                "--out",
                str(lat),
                "--quiet",
            ]
        )
    if cmd == "ms":
        return [
            "eval",
            "ms",
            "--latents",
            str(lat),
            "--embeddings",
            str(inputs["emb"]),
            "--out",
            str(out),
            "--quiet",
        ]
    return ["eval", "top-images", "--latents", str(lat), "--out", str(out), "-k", "5", "--quiet"]


@pytest.mark.parametrize(("cmd", "k"), [("ms", 1), ("ms", 2), ("top-images", 1)])
def test_eval_killed_then_rerun_is_exact(inputs, tmp_path, cmd, k):
    """ms: killed after ms_scores.safetensors (k=1) or ms.json (k=2); top-images: after its tensors,
    before its JSON. The rerun's files equal an uninterrupted run's, byte for byte."""
    ref, run = tmp_path / "ref", tmp_path / "run"
    main(_eval(cmd, inputs, ref))
    run_killed(_eval(cmd, inputs, run), k)
    left = set(files(run)) - {LOCK_NAME}  # the killed run's lock file stays (its flock died with it)
    assert left and left < set(files(ref)), left  # some outputs were written, the run did not finish
    main(_eval(cmd, inputs, run))
    assert files(run) == files(ref)
