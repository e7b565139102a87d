"""A real `vsae train` subprocess killed with SIGKILL after a checkpoint, then resumed, ends with
exactly the weights of an uninterrupted run (bit-identical on CPU)."""

import json
import os
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

from vsae.cli import main
from vsae.train.planted import make_planted


def _cmd(store, out, *extra):
    return [
        sys.executable,
        "-m",
        "vsae.cli",
        "train",
        "--acts",
        str(store),
        "--arch",
        "batchtopk",
        "--expansion",
        "4,2",
        "--k",
        "4",
        "--steps",
        "100",
        "--batch-size",
        "256",
        "--lr",
        "3e-3",
        "--out",
        str(out),
        "--ckpt-every",
        "10",
        "--log-every",
        "10",
        "--quiet",
        "--seed",
        "3",
        *extra,
    ]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_sigkill_then_resume_matches_uninterrupted(tmp_path, make_store):
    store = make_store(tmp_path / "acts", make_planted(6000, 64, 128, 4, seed=0).x_Nd)
    ref, run = tmp_path / "ref", tmp_path / "run"
    main(_cmd(store, ref)[3:])  # the uninterrupted reference, in this process (one thread, as below)

    p = subprocess.Popen(_cmd(store, run), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = run / "train_state.json"
    deadline = time.time() + 120
    killed_at = None
    while time.time() < deadline and p.poll() is None:
        try:
            step = json.loads(state.read_text())["step"]
        except (OSError, ValueError, KeyError):
            step = 0
        if step >= 10:
            p.send_signal(signal.SIGKILL)
            killed_at = step
            break
        time.sleep(0.005)
    p.wait()
    assert killed_at is not None and p.returncode == -signal.SIGKILL, p.stderr.read().decode()[-2000:]
    assert not (run / "batchtopk-x4-k4" / "sae.safetensors").exists()  # it really stopped mid-run

    done = subprocess.run(_cmd(store, run, "--resume"), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("batchtopk-x4-k4", "batchtopk-x2-k4"):
        a = load_file(str(ref / name / "sae.safetensors"))
        b = load_file(str(run / name / "sae.safetensors"))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    log = [json.loads(line) for line in (run / "batchtopk-x4-k4" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 100
