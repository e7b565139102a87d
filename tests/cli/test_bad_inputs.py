"""A catalogue of bad inputs fed to the CLI (issue 16): each must end with exit status 2, exactly one
line on stderr starting `error:`, no traceback, and nothing written that a later run would trip over.

Most cases call the console entry point `vsae.cli.main` in this process (the same code path as the
`vsae` command, minus interpreter start-up); the cases that could hang or depend on the process
(FIFOs, /dev/zero, device probing, click's usage errors) run `python -m vsae.cli` in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from vsae.cli import main
from vsae.store import StoreWriter

D = 8


def write_store(path: Path, x: torch.Tensor, complete: bool = True, rows_per_shard: int = 100) -> Path:
    w = StoreWriter.create_or_resume(
        path, d=x.shape[1], dtype="float32", provenance={"hook": "resid.0"}, rows_per_shard=rows_per_shard
    )
    for a in range(0, len(x), 50):
        w.add(x[a : a + 50], np.arange(a, a + 50), np.zeros(50, np.int64))
        w.mark_images_done(a + 50)
    if complete:
        w.close()
    else:
        w.flush()
    return path


def train_args(acts, out, *extra: str) -> list[str]:
    return [
        "train", "--acts", str(acts), "--out", str(out), "--steps", "4", "--batch-size", "32",
        "--arch", "topk", "--expansion", "2", "--k", "4", "--quiet", "--threads", "1",
        "--log-every", "2", "--ckpt-every", "2", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """Shared, never modified inputs: good stores, a finished training run, a tiny CLIP, images."""
    from vsae.data.fake_images import noise
    from vsae.models.tiny_models import build_tiny

    root = tmp_path_factory.mktemp("catalogue")
    g = torch.Generator().manual_seed(0)
    c = {
        "root": root,
        "good": write_store(root / "good", torch.randn(400, D, generator=g)),
        "other": write_store(root / "other", torch.randn(400, D, generator=g)),
        "wide": write_store(root / "wide", torch.randn(400, 2 * D, generator=g)),
        "clip": build_tiny("clip_vision", root / "clip"),
    }
    (root / "imgs").mkdir()
    for i in range(4):
        noise(i, (24, 24)).save(root / "imgs" / f"{i}.png")
    c["imgs"] = root / "imgs"
    main(train_args(c["good"], root / "run"))
    c["run"] = root / "run"
    c["sae"] = root / "run" / "topk-x2-k4"
    return c


# ----------------------------------------------------------------------------- store damage
def copy_store(ctx, tmp: Path, name: str = "good") -> Path:
    return Path(shutil.copytree(ctx[name], tmp / "acts"))


def edit_manifest(store: Path, fn: Callable[[dict], None]) -> Path:
    m = json.loads((store / "manifest.json").read_text())
    fn(m)
    (store / "manifest.json").write_text(json.dumps(m))
    return store


def shard0(store: Path, key: str = "acts") -> Path:
    m = json.loads((store / "manifest.json").read_text())
    return store / m["shards"][0]["files"][key]


def _sha(p: Path) -> str:
    import hashlib

    return hashlib.sha256(p.read_bytes()).hexdigest()


def shard_elsewhere(ctx, tmp, how: str) -> Path:
    """A shard file name pointing outside the store, with a matching sha256 (it would pass a checksum)."""
    s = copy_store(ctx, tmp)
    outside = tmp / "outside.npy"
    shutil.copy(shard0(s), outside)

    def point(m):
        m["shards"][0]["files"]["acts"] = {"abs": str(outside), "dotdot": "../outside.npy"}[how]
        m["shards"][0]["sha256"]["acts"] = _sha(outside)

    return edit_manifest(s, point)


def shard_symlink(ctx, tmp, target: str) -> Path:
    s = copy_store(ctx, tmp)
    f = shard0(s)
    f.unlink()
    if target == "outside":
        shutil.copy(ctx["good"] / f.name, tmp / "outside.npy")
        target = str(tmp / "outside.npy")
    os.symlink(target, f)
    return s


def flipped(ctx, tmp) -> Path:
    s = copy_store(ctx, tmp)
    f = shard0(s)
    b = bytearray(f.read_bytes())
    b[-5] ^= 0xFF
    f.write_bytes(bytes(b))
    return s


def with_value(ctx, tmp, v: float) -> Path:
    """A store whose rows 10..12 hold `v` (NaN or Inf), with matching checksums (the model wrote them)."""
    x = torch.randn(400, D, generator=torch.Generator().manual_seed(1))
    x[10:13, 3] = v
    return write_store(tmp / "acts", x)


def incomplete(ctx, tmp) -> Path:
    x = torch.randn(400, D, generator=torch.Generator().manual_seed(2))
    return write_store(tmp / "acts", x, complete=False)


def manifest_edit(key: str, value) -> Callable:
    def make(ctx, tmp):
        def fn(m):
            if key.startswith("shard0."):
                m["shards"][0][key[7:]] = value
            elif value is DELETE:
                del m[key]
            else:
                m[key] = value

        return edit_manifest(copy_store(ctx, tmp), fn)

    return make


DELETE = object()


def garbage_manifest(ctx, tmp) -> Path:
    s = copy_store(ctx, tmp)
    (s / "manifest.json").write_bytes(b"\xff\xfe\x00garbage\x80")
    return s


# ----------------------------------------------------------------------------- runs to resume
def run_copy(ctx, tmp) -> Path:
    return Path(shutil.copytree(ctx["run"], tmp / "run"))


def resume_with(*extra: str, acts: str = "good") -> Callable:
    def make(ctx, tmp):
        return train_args(ctx[acts], run_copy(ctx, tmp), "--resume", *extra)

    return make


def state_edit(value) -> Callable:
    def make(ctx, tmp):
        run = run_copy(ctx, tmp)
        p = run / "train_state.json"
        if isinstance(value, bytes):
            p.write_bytes(value)
        else:
            st = json.loads(p.read_text())
            st.update(value)
            p.write_text(json.dumps(st))
        return train_args(ctx["good"], run, "--resume")

    return make


# ----------------------------------------------------------------------------- extraction
def extract_args(ctx, tmp, *extra: str) -> list[str]:
    return [
        "extract", "--model", str(ctx["clip"]), "--hook", "resid.0", "--data", str(ctx["imgs"]),
        "--out", str(tmp / "st"), "--batch-size", "2", "--num-workers", "0", "--quiet", "--threads", "1",
        *extra,
    ]  # fmt: skip


def extract_resume_garbage(content: bytes) -> Callable:
    def make(ctx, tmp):
        (tmp / "st").mkdir()
        (tmp / "st" / "manifest.json").write_bytes(content)
        return extract_args(ctx, tmp)

    return make


def extract_fifo_images_json(ctx, tmp) -> list[str]:
    (tmp / "st").mkdir()
    os.mkfifo(tmp / "st" / "images.json")  # reading it would block forever
    return extract_args(ctx, tmp)


def pickle_only_model(ctx, tmp) -> list[str]:
    m = Path(shutil.copytree(ctx["clip"], tmp / "model"))
    (m / "model.safetensors").unlink()
    (m / "pytorch_model.bin").write_bytes(b"not even a pickle")  # never opened
    return [*extract_args(ctx, tmp)[:2], str(m), *extract_args(ctx, tmp)[3:]]


def corrupt_embeddings(ctx, tmp) -> list[str]:
    (tmp / "emb.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    return ["eval", "ms", "--acts", str(ctx["good"]), "--embeddings", str(tmp / "emb.safetensors"),
            "--out", str(tmp / "ms"), "--quiet"]  # fmt: skip


@dataclass
class Case:
    """One bad input: `make(ctx, tmp)` returns the argv (after creating what it needs under tmp)."""

    id: str
    make: Callable
    match: str
    sub: bool = False  # run as a real subprocess
    patch: Callable | None = None  # patch(monkeypatch) before the run (in-process cases)
    after: Callable | None = None  # after(ctx, tmp): for runs that may write, what a later run finds


def acts_case(id: str, make_store: Callable, match: str, *extra: str, sub: bool = False) -> Case:
    return Case(id, lambda ctx, tmp: train_args(make_store(ctx, tmp), tmp / "out", *extra), match, sub)


def train_case(id: str, match: str, *extra: str) -> Case:
    return Case(id, lambda ctx, tmp: train_args(ctx["good"], tmp / "out", *extra), match)


CASES = [
    # stores that point outside themselves or at things that are not files
    acts_case("shard-absolute-path", lambda c, t: shard_elsewhere(c, t, "abs"), "not a plain file name"),
    acts_case("shard-dotdot-path", lambda c, t: shard_elsewhere(c, t, "dotdot"), "not a plain file name"),
    acts_case("shard-symlink-out", lambda c, t: shard_symlink(c, t, "outside"), "symlink out of the store"),
    acts_case(
        "shard-symlink-dev-zero", lambda c, t: shard_symlink(c, t, "/dev/zero"), "symlink out", sub=True
    ),
    acts_case("shard-dangling-symlink", lambda c, t: shard_symlink(c, t, "/nonexistent/x"), "dangling"),
    acts_case("shard-fifo", lambda c, t: _fifo_shard(c, t), "a FIFO, not a regular file", sub=True),
    acts_case("shard-is-directory", lambda c, t: _dir_shard(c, t), "a directory, not a regular file"),
    # data training must refuse
    acts_case("shard-flipped-bytes", flipped, "checksum mismatch"),
    acts_case("rows-nan", lambda c, t: with_value(c, t, float("nan")), "NaN or Inf"),
    acts_case("rows-inf", lambda c, t: with_value(c, t, float("inf")), "NaN or Inf"),
    acts_case("store-incomplete", incomplete, "incomplete.*--allow-incomplete"),
    acts_case("manifest-underreports-rows", manifest_edit("shard0.rows", 60), r"manifest says \(60, 8\)"),
    acts_case("manifest-claims-1e9-rows", manifest_edit("shard0.rows", 10**9), "manifest says"),
    acts_case("manifest-d-differs", manifest_edit("d", 9), r"manifest says \(100, 9\)"),
    acts_case("manifest-shards-string", manifest_edit("shards", "x"), "'shards' is not a list"),
    acts_case("manifest-no-d", manifest_edit("d", DELETE), "width d"),
    acts_case("manifest-garbage", garbage_manifest, "manifest .* is corrupt"),
    acts_case("manifest-fifo", lambda c, t: _fifo_manifest(c, t), "not a regular file", sub=True),
    Case(
        "store-check-shards-string",
        lambda c, t: ["store", "check", str(manifest_edit("shards", "x")(c, t))],
        "'shards' is not a list",
    ),  # fmt: skip
    Case(
        "val-other-width",
        lambda c, t: train_args(c["good"], t / "out", "--val", str(c["wide"])),
        "--val .* d=16 but --acts has d=8",
    ),  # fmt: skip
    # options that were silently changed or crashed
    train_case("k-zero", "--k must be a positive integer", "--k", "0"),
    train_case("k-fraction", "--k must be a positive integer", "--k", "2.5"),
    train_case("warmup-negative", "--warmup-steps must be an integer >= 0", "--warmup-steps", "-5"),
    train_case("dead-window-zero", "--dead-window must be an integer >= 1", "--dead-window", "0"),
    train_case("aux-k-negative", "--aux-k must be >= 0", "--aux-k", "-1"),
    train_case("aux-coeff-nan", "--aux-coeff must be a number >= 0", "--aux-coeff", "nan"),
    train_case("lr-nan", "--lr must be a number in", "--lr", "nan"),
    train_case("lr-inf", "--lr must be a number in", "--lr", "inf"),
    train_case("grad-clip-negative", "--grad-clip must be >= 0", "--grad-clip", "-1"),
    train_case("log-every-zero", "--log-every must be an integer >= 1", "--log-every", "0"),
    train_case("ckpt-every-negative", "--ckpt-every must be an integer >= 0", "--ckpt-every", "-1"),
    train_case("seed-negative", "--seed must be an integer >= 0", "--seed", "-1"),
    train_case("expansion-zero", "--expansion must be positive", "--expansion", "0"),
    train_case("device-bogus", "'bogus' is not a device; available here: cpu", "--device", "bogus"),
    train_case("device-gpu", r"'gpu' is not a device \(GPUs are 'cuda'", "--device", "gpu"),
    Case(
        "device-cuda-cpu-torch",
        lambda c, t: train_args(c["good"], t / "out", "--device", "cuda"),
        "--device cuda: .*available here: cpu",
        sub=True,
    ),  # fmt: skip
    # resume with settings other than the run's
    Case("resume-grad-clip", resume_with("--grad-clip", "0.5"), "--grad-clip 0.5 but the run used 1.0"),
    Case("resume-warmup", resume_with("--warmup-steps", "3"), "--warmup-steps 3 but the run used 0"),
    Case("resume-lr", resume_with("--lr", "0.001"), "--lr 0.001 but the run used 0.0004"),
    Case("resume-aux-k", resume_with("--aux-k", "2"), "--aux-k 2 but the run used 4"),
    Case("resume-aux-coeff", resume_with("--aux-coeff", "0.1"), "--aux-coeff 0.1 but the run used 0.03"),
    Case("resume-dead-window", resume_with("--dead-window", "64"), "--dead-window 64 but the run used"),
    Case("resume-other-acts", resume_with(acts="other"), "another --acts store"),
    Case("resume-state-step-abc", state_edit({"step": "abc"}), "damaged \\(step is 'abc'\\)"),
    Case("resume-state-garbage", state_edit(b"\x00\xffnot json"), "train_state.json is corrupt"),
    Case("resume-state-no-cfg", state_edit({"train_cfg": None}), "damaged \\(train_cfg"),
    # extraction
    Case("extract-max-images-zero", lambda c, t: extract_args(c, t, "--max-images", "0"), "--max-images 0"),
    Case(
        "extract-max-images-negative",
        lambda c, t: extract_args(c, t, "--max-images", "-5"),
        "--max-images -5",
    ),
    Case(
        "extract-rows-per-shard-zero",
        lambda c, t: extract_args(c, t, "--rows-per-shard", "0"),
        "--rows-per-shard 0",
    ),  # fmt: skip
    Case(
        "extract-num-workers-negative",
        lambda c, t: extract_args(c, t, "--num-workers", "-1"),
        "--num-workers -1",
    ),  # fmt: skip
    Case(
        "extract-seed-negative-random-k",
        lambda c, t: extract_args(c, t, "--tokens", "random:2", "--seed", "-1"),
        "--seed -1",
    ),  # fmt: skip
    Case("extract-device-bogus", lambda c, t: extract_args(c, t, "--device", "bogus"), "not a device"),
    Case(
        "extract-dtype-float8",
        lambda c, t: extract_args(c, t, "--dtype", "float8"),
        "Invalid value for '--dtype'.*see `vsae extract --help`",
        sub=True,
    ),  # fmt: skip
    Case(
        "extract-resume-binary-manifest",
        extract_resume_garbage(b"\xff\xfe\x80\x00"),
        "manifest .* is corrupt",
    ),
    Case(
        "extract-resume-bad-json", extract_resume_garbage(b'{"format": "dense", '), "manifest .* is corrupt"
    ),
    Case(
        "extract-images-json-fifo",
        extract_fifo_images_json,
        "images.json is a FIFO, not a regular file",
        sub=True,
    ),
    Case("extract-pickle-only-model", pickle_only_model, "only pickle weights \\(pytorch_model.bin\\)"),
    # encode / eval / steer
    Case(
        "encode-batch-size-zero",
        lambda c, t: [
            "encode",
            "--sae",
            str(c["sae"]),
            "--acts",
            str(c["good"]),
            "--out",
            str(t / "lat"),
            "--batch-size",
            "0",
            "--quiet",
        ],
        "--batch-size 0",
    ),  # fmt: skip
    Case(
        "encode-device-bogus",
        lambda c, t: [
            "encode",
            "--sae",
            str(c["sae"]),
            "--acts",
            str(c["good"]),
            "--out",
            str(t / "lat"),
            "--device",
            "bogus",
        ],
        "not a device",
    ),  # fmt: skip
    Case("eval-corrupt-embeddings", corrupt_embeddings, "not a readable .safetensors file"),
    Case("eval-corrupt-top-images", lambda c, t: _corrupt_top_images(t), "not a readable top-images file"),
    Case("steer-device-gpu", lambda c, t: ["steer", "mllm", "--device", "gpu"], "'gpu' is not a device"),
    train_case("lr-too-large", "--lr must be a number in \\(0, 1\\]", "--lr", "1e38"),
    # training that goes wrong: stops with one line, leaves the last good checkpoint
    Case(
        "loss-diverges-extreme-rows",
        lambda c, t: train_args(_extreme(t), t / "out"),
        "diverged: the loss became inf between steps 1 and 2",
        after=lambda c, t: _state_at(t / "out", 0),
    ),  # fmt: skip
    Case(
        "nan-rows-no-verify",
        lambda c, t: train_args(with_value(c, t, float("nan")), t / "out", "--no-verify"),
        "diverged: the loss became nan between steps 1 and 2",
        after=lambda c, t: _state_at(t / "out", 0),
    ),  # fmt: skip
    Case(
        "disk-full-at-checkpoint",
        lambda c, t: train_args(c["good"], t / "out"),
        "cannot write checkpoint .*ckpt-000000002 .*No space left.*rerun with --resume",
        patch=lambda mp: _disk_full_at(mp, "ckpt-000000002"),
        after=lambda c, t: _resume_is_exact(c, t),
    ),  # fmt: skip
    Case(
        "unknown-option",
        lambda c, t: ["train", "--bogus-flag"],
        "No such option .--bogus-flag.; see `vsae train --help`",
    ),
]


def _corrupt_top_images(tmp) -> list[str]:
    (tmp / "top_images.safetensors").write_bytes(b"\xff" * 40)
    return [
        "eval",
        "uniqueness",
        "--top-images",
        str(tmp / "top_images.safetensors"),
        "--out",
        str(tmp / "u"),
    ]


def _extreme(tmp) -> Path:
    x = torch.randn(400, D, generator=torch.Generator().manual_seed(3))
    x[::7] *= 1e19  # finite, but their squares are not
    return write_store(tmp / "acts", x)


def _state_at(run: Path, step: int) -> None:
    st = json.loads((run / "train_state.json").read_text())
    assert st["step"] == step and (run / "topk-x2-k4" / f"ckpt-{step:09d}" / "weights.safetensors").is_file()


def _disk_full_at(mp, where: str) -> None:
    from safetensors import SafetensorError

    import vsae.sae.files as io

    real = io.save_file

    def save_file(tensors, path, metadata=None):
        if where in str(path):
            Path(path).write_bytes(b"\0" * 10)  # a partial temporary file
            raise SafetensorError(
                'Error while serializing: IoError(Os { code: 28, message: "No space left on device" })'
            )
        return real(tensors, path, metadata=metadata)

    mp.setattr(io, "save_file", save_file)


def _resume_is_exact(ctx, tmp) -> None:
    from safetensors.torch import load_file

    out = tmp / "out"
    _state_at(out, 0)
    assert not list(out.rglob("*.tmp"))
    main(train_args(ctx["good"], out, "--resume"))
    got, want = load_file(out / "topk-x2-k4" / "sae.safetensors"), load_file(ctx["sae"] / "sae.safetensors")
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)


def _fifo_shard(ctx, tmp) -> Path:
    s = copy_store(ctx, tmp)
    f = shard0(s)
    f.unlink()
    os.mkfifo(f)
    return s


def _dir_shard(ctx, tmp) -> Path:
    s = copy_store(ctx, tmp)
    f = shard0(s)
    f.unlink()
    f.mkdir()
    return s


def _fifo_manifest(ctx, tmp) -> Path:
    s = copy_store(ctx, tmp)
    (s / "manifest.json").unlink()
    os.mkfifo(s / "manifest.json")
    return s


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in files + dirs:
            p = Path(dirpath) / n
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def run_cli(argv: list[str], sub: bool, capsys) -> tuple[int, str]:
    if sub:
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        }
        r = subprocess.run(
            [sys.executable, "-m", "vsae.cli", *argv], capture_output=True, text=True, timeout=120, env=env
        )
        return r.returncode, r.stderr
    capsys.readouterr()
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def test_catalogue_has_every_issue_case():
    assert len(CASES) >= 41 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line(case: Case, ctx, tmp_path, capsys):
    if case.id == "device-cuda-cpu-torch" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU: --device cuda is valid here")
    argv = case.make(ctx, tmp_path)
    before, shared = snapshot(tmp_path), snapshot(ctx["root"])
    with pytest.MonkeyPatch.context() as mp:
        if case.patch:
            case.patch(mp)
        code, err = run_cli(argv, case.sub, capsys)
    lines = err.strip().splitlines()
    assert code == 2, (case.id, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), (case.id, err)
    assert "Traceback" not in err
    import re

    assert re.search(case.match, lines[0]), (case.id, lines[0])
    assert snapshot(ctx["root"]) == shared, case.id
    if case.after:  # a run that stopped part-way: what it left is what a later run needs
        case.after(ctx, tmp_path)
    else:  # nothing written at all
        assert snapshot(tmp_path) == before, case.id
