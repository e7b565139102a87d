"""Training straight from a model (`vsae train --model --hook --data`, `vsae.train.stream`): one
epoch of the stream is exactly the rows an extracted store holds, training reaches the store
path's FVU at equal rows, and a run killed with SIGKILL resumes to bit-identical weights."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from vsae.cli import main
from vsae.data.fake_images import noise
from vsae.extract import ExtractConfig, extract
from vsae.models.tiny_models import build_tiny
from vsae.sae import SAEConfig
from vsae.store import ActivationStore
from vsae.train import ModelSource, StreamConfig, TrainConfig, train


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    for ci, c in enumerate("abcd"):
        (root / "data" / c).mkdir(parents=True)
        for i in range(15):
            noise(50 * ci + i, (32, 32)).save(root / "data" / c / f"{i:02d}.png")
    (root / "data" / "b" / "07x.png").write_text("not an image")
    return root, build_tiny("clip_vision_proj", root / "model")


def _stream(model, data, **kw):
    cfg = StreamConfig(
        model=str(model), hook="resid.1", data=str(data), tokens="random:4", num_workers=0, **kw
    )
    return ModelSource(cfg, seed=0)


def _sorted_rows(x):
    return x[torch.argsort(x[:, 0])]


def test_one_epoch_is_the_store_and_fvu_matches(setup, tmp_path):
    root, model = setup
    store = extract(
        ExtractConfig(
            model=str(model), hooks=("resid.1",), data=str(root / "data"), out=str(tmp_path / "store"),
            tokens="random:4", dtype="float32", num_workers=0, progress=False,
        )
    )  # fmt: skip
    s = ActivationStore.open(store)
    src = _stream(model, root / "data", buffer_rows=10_000, images_per_batch=8)
    assert len(s) == 240 and src.d == s.d
    epoch = next(src.iter_batches(240, seed=0))  # the whole epoch in one buffer, one batch
    assert torch.allclose(_sorted_rows(epoch), _sorted_rows(s[0 : len(s)]), atol=1e-5)
    assert list(src.skipped.values()) == [x["reason"] for x in s.skipped]

    tcfg = TrainConfig(steps=120, batch_size=32, lr=3e-3, log_every=120, ckpt_every=0, val_rows=0)
    cfg = SAEConfig(arch="topk", d_in=s.d, d_sae=4 * s.d, k=4)
    stream = _stream(model, root / "data", buffer_rows=64, images_per_batch=4)
    fvu = {}
    for name, source in (("store", s), ("stream", stream)):
        [d] = train(source, cfg, tcfg, tmp_path / name, progress=False)
        rows = [json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()]
        fvu[name] = rows[-1]["fvu"]
        assert rows[-1]["rows"] == 120 * 32
    assert fvu["store"] < 0.6, fvu  # the SAEs learned something
    assert abs(fvu["stream"] - fvu["store"]) < 0.05 + 0.15 * fvu["store"], fvu


def _cmd(model, data, out, *extra):
    return [
        sys.executable, "-m", "vsae.cli", "train", "--model", str(model), "--hook", "resid.1",
        "--tokens", "random:4", "--data", str(data), "--buffer-rows", "64", "--images-per-batch", "4",
        "--num-workers", "0", "--arch", "topk", "--expansion", "4,2", "--k", "4", "--steps", "150",
        "--batch-size", "16", "--lr", "3e-3", "--out", str(out), "--ckpt-every", "7", "--log-every", "10",
        "--quiet", "--seed", "3", *extra,
    ]  # fmt: skip


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def test_sigkill_then_resume_matches_uninterrupted(setup, tmp_path):
    root, model = setup
    ref, run = tmp_path / "ref", tmp_path / "run"
    main(_cmd(model, root / "data", ref)[3:])
    p = subprocess.Popen(
        _cmd(model, root / "data", run), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    state, deadline, killed_at = run / "train_state.json", time.time() + 180, None
    while time.time() < deadline and p.poll() is None:
        try:
            step = json.loads(state.read_text())["step"]
        except (OSError, ValueError, KeyError):
            step = 0
        if step >= 14:  # mid-refill: 64-row refills serve 4 batches of 16
            p.send_signal(signal.SIGKILL)
            killed_at = step
            break
        time.sleep(0.005)
    p.wait()
    assert killed_at is not None and p.returncode == -signal.SIGKILL, p.stderr.read().decode()[-2000:]
    assert not (run / "topk-x4-k4" / "sae.safetensors").exists()
    saved = json.loads(state.read_text())["data"]["stream"]
    assert 0 < saved["first_batch"] <= killed_at and saved["refill"] > 0
    done = subprocess.run(
        _cmd(model, root / "data", run, "--resume"), env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("topk-x4-k4", "topk-x2-k4"):
        a, b = load_file(ref / name / "sae.safetensors"), load_file(run / name / "sae.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert json.loads((run / "skipped.json").read_text()) == json.loads((ref / "skipped.json").read_text())
    assert list(json.loads((ref / "skipped.json").read_text()).values())[0].startswith("not an image")


def test_cli_refuses_both_or_half(setup, tmp_path, capsys):
    root, model = setup
    for args in (["--model", str(model)], ["--acts", str(tmp_path), "--model", str(model)], []):
        with pytest.raises(SystemExit) as e:
            main(["train", *args, "--steps", "5", "--out", str(tmp_path / "r")])
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert "not both" in err and "--model, --hook and --data" in err
