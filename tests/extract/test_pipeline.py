"""The pipeline end to end: corrupt files, kill -9 and resume, 2-process shards, argument checks."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from vsae.cli import main as cli_main
from vsae.data.fake_images import bad_files, noise, odd_modes
from vsae.errors import VsaeError
from vsae.extract import ExtractConfig, block_range, extract
from vsae.store import ActivationStore


@pytest.fixture(scope="module")
def big_data(tmp_path_factory):
    """240 images in two classes plus one corrupt file (in the middle of the order)."""
    root = tmp_path_factory.mktemp("big")
    for c in ("a", "b"):
        (root / "train" / c).mkdir(parents=True)
        for i in range(120):
            noise(i + (1000 if c == "b" else 0), (48, 48)).save(root / "train" / c / f"{i:03d}.png")
    (root / "train" / "b" / "050x.png").write_text("not an image")
    return root


def _args(model, data, out, *extra):
    return [
        "extract",
        "--model",
        str(model),
        "--data",
        str(data),
        "--split",
        "train",
        "--out",
        str(out),
        "--batch-size",
        "4",
        "--num-workers",
        "1",
        "--dtype",
        "float32",
        "--rows-per-shard",
        "60",
        "--quiet",
        *extra,
    ]


def _spawn(args):
    """`vsae extract` as a real separate process."""
    cmd = [sys.executable, "-m", "vsae.cli", *args]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _run_here(args):
    """The same command line in this process (saves a second interpreter start on 2 CPU cores)."""
    try:
        cli_main(args)
    except SystemExit as e:
        assert e.code in (0, None), e.code


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _same_store(a, b):
    sa, sb = ActivationStore.open(a), ActivationStore.open(b)
    assert sa.complete and sb.complete and len(sa) == len(sb) > 0
    assert torch.equal(sa[0 : len(sa)], sb[0 : len(sb)])
    assert np.array_equal(sa.image_index, sb.image_index) and np.array_equal(sa.token_index, sb.token_index)
    assert sa.skipped == sb.skipped


def _reference(model, data, out, hooks, tokens):
    cfg = ExtractConfig(
        model=str(model),
        hooks=hooks,
        data=str(data),
        split="train",
        out=str(out),
        tokens=tokens,
        batch_size=4,
        dtype="float32",
        rows_per_shard=60,
        progress=False,
    )
    return extract(cfg)


def test_kill_and_resume_equals_uninterrupted_run(tmp_path, tiny_dirs, big_data):
    model, out = tiny_dirs["clip_vision_proj"], tmp_path / "killed"
    args = _args(model, big_data, out, "--hook", "resid.1", "--hook", "embed", "--tokens", "random:5")
    p = _spawn(args)
    manifest = out / "resid.1" / "manifest.json"
    t0 = time.time()
    while time.time() - t0 < 120 and p.poll() is None:
        if manifest.exists() and json.loads(manifest.read_text())["shards"]:
            break
        time.sleep(0.005)
    p.kill()  # SIGKILL: no cleanup of any kind
    p.wait()
    m = json.loads(manifest.read_text())
    assert p.returncode == -9, p.stderr.read().decode()[-2000:]
    assert not m["complete"] and 0 < m["next_image"] < 241, "the run was not killed mid-way"
    _run_here(args)  # the same command again resumes
    _reference(model, big_data, tmp_path / "ref", ("resid.1", "embed"), "random:5")
    for h in ("resid.1", "embed"):
        _same_store(out / h, tmp_path / "ref" / h)
    s = ActivationStore.open(out / "resid.1")
    assert len(s) == 240 * 5 and [x["path"].split("/")[-1] for x in s.skipped] == ["050x.png"]


def test_two_process_shards_equal_one_process(tmp_path, tiny_dirs, big_data):
    model, out = tiny_dirs["dinov2"], tmp_path / "sharded"
    p = _spawn(_args(model, big_data, out, "--hook", "resid.0", "--tokens", "cls", "--shard", "1/2"))
    _run_here(_args(model, big_data, out, "--hook", "resid.0", "--tokens", "cls", "--shard", "0/2"))
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err.decode()[-2000:]
    assert sorted(x.name for x in out.glob("manifest*.json")) == [
        "manifest.part-0-of-2.json",
        "manifest.part-1-of-2.json",
    ]
    _reference(model, big_data, tmp_path / "ref", ("resid.0",), "cls")
    _same_store(out, tmp_path / "ref")
    assert block_range(241, (0, 2)) == (0, 120) and block_range(241, (1, 2)) == (120, 241)


def test_torchrun_env_sets_the_shard(tmp_path, tiny_dirs, big_data, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    cfg = ExtractConfig(
        model=str(tiny_dirs["vit"]),
        hooks=("resid.0",),
        data=str(big_data),
        split="train",
        out=str(tmp_path / "s"),
        max_images=30,
        progress=False,
    )
    extract(cfg)
    m = json.loads((tmp_path / "s" / "manifest.part-1-of-3.json").read_text())
    assert m["image_range"] == [10, 20] and m["complete"]


def test_corrupt_and_odd_images(tmp_path, tiny_dirs):
    data = tmp_path / "d"
    reasons = bad_files(data / "x")
    modes = odd_modes(data / "x")
    extract(
        ExtractConfig(
            model=str(tiny_dirs["siglip_vision"]),
            hooks=("embed",),
            data=str(data),
            out=str(tmp_path / "s"),
            tokens="mean",
            batch_size=3,
            num_workers=2,
            progress=False,
        )
    )
    s = ActivationStore.open(tmp_path / "s")
    got = {x["path"].split("/")[-1]: x["reason"] for x in s.skipped}
    assert set(got) == set(reasons) and all(got[n].startswith(r) for n, r in reasons.items())
    assert len(s) == len(modes) and torch.isfinite(s[0 : len(s)]).all()
    table = json.loads((tmp_path / "s" / "images.json").read_text())
    assert sorted(table["items"]) == sorted(f"x/{n}" for n in [*reasons, *modes])
    assert table["labels"] == [0] * 9 and table["classes"] == ["x"]


def test_different_arguments_on_existing_store(tmp_path, tiny_dirs, big_data):
    base = dict(
        model=str(tiny_dirs["vit"]),
        hooks=("resid.0",),
        data=str(big_data),
        split="train",
        out=str(tmp_path / "s"),
        max_images=8,
        progress=False,
    )
    extract(ExtractConfig(**base, tokens="cls"))
    extract(ExtractConfig(**base, tokens="cls", batch_size=3))  # complete already: nothing to do
    with pytest.raises(VsaeError, match=r"made with tokens=\"cls\", not \"mean\"") as e:
        extract(ExtractConfig(**base, tokens="mean"))
    assert "\n" not in str(e.value)
    with pytest.raises(VsaeError, match="single-hook store"):
        extract(ExtractConfig(**{**base, "hooks": ("resid.0", "embed")}, tokens="cls"))
    with pytest.raises(VsaeError, match="different --shard split"):
        extract(ExtractConfig(**base, tokens="cls", shard=(0, 2)))


def test_cli_prints_one_line_errors(tmp_path, tiny_dirs, big_data, capsys):
    args = [
        "extract",
        "--model",
        str(tiny_dirs["vit"]),
        "--data",
        str(big_data),
        "--split",
        "train",
        "--out",
        str(tmp_path / "o"),
        "--quiet",
    ]
    for extra, want in (
        (["--hook", "resid.9"], "layer 9 out of range"),
        (["--hook", "resid.0", "--tokens", "top"], "unknown token selection"),
        (["--hook", "resid.0", "--shard", "2/2"], "need 0 <= I < N"),
    ):
        with pytest.raises(SystemExit) as e:
            cli_main(args + extra)
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and want in err[0], err


def test_custom_module_through_the_pipeline(tmp_path):
    from torch import nn

    from vsae.models import from_module

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 4, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def prep(images):
        arrs = [np.asarray(im.resize((16, 16)), np.float32) / 255 for im in images]
        return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()

    for i in range(5):
        noise(i, (20, 20)).save(tmp_path / f"{i}.png")
    (tmp_path / "list.txt").write_text("".join(f"{i}.png\n" for i in range(5)))
    lm = from_module(net, prep, name="cnn")
    out = extract(
        ExtractConfig(
            model="cnn",
            hooks=("module:0", "embed"),
            data=str(tmp_path / "list.txt"),
            out=str(tmp_path / "s"),
            tokens="all",
            dtype="float32",
            batch_size=2,
            progress=False,
        ),
        model=lm,
    )
    conv, emb = ActivationStore.open(out / "module_0"), ActivationStore.open(out / "embed")
    from vsae.data import load_image

    x = prep([load_image(tmp_path / f"{i}.png") for i in range(5)])
    with torch.no_grad():
        fm = net[0](x)  # [5, 6, 4, 4] -> 16 tokens of width 6 per image
        want = fm.flatten(2).transpose(1, 2).reshape(-1, 6)
        torch.testing.assert_close(conv[0 : len(conv)], want)
        torch.testing.assert_close(emb[0 : len(emb)], net(x))
    assert conv.token_index.tolist() == list(range(16)) * 5 and emb.provenance["model"] == "cnn"
