"""The demo's self-checks: each agrees on a consistent run and fails when one number is off."""

import json

import numpy as np
import pytest
import torch

from vsae.demo.consistency import (
    ConsistencyError,
    ms_vs_eval_ms,
    probe_vs_zero_shot,
    require,
    training_log_vs_recon,
)
from vsae.errors import VsaeError
from vsae.eval.monosemanticity import monosemanticity_score
from vsae.store import StoreWriter
from vsae.train.planted import make_planted


def _store(path, x_Nd):
    """One row per image (a CLS-token store)."""
    w = StoreWriter.create_or_resume(
        path,
        d=x_Nd.shape[1],
        dtype="float32",
        provenance={"model": "planted", "hook": "resid.0", "tokens": "cls"},
    )
    n = x_Nd.shape[0]
    w.add(x_Nd, np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64))
    w.mark_images_done(n)
    w.close()
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from vsae.sae import SAEConfig
    from vsae.store import ActivationStore
    from vsae.train import TrainConfig, train

    root = tmp_path_factory.mktemp("checks")
    p = make_planted(1500, 16, 32, 3, seed=1)
    train_s = _store(root / "train", p.x_Nd[:1000])
    val_s = _store(root / "val", p.x_Nd[1000:1300])
    test_s = _store(root / "test", p.x_Nd[1300:])
    emb = _store(root / "emb", torch.randn(200, 8, generator=torch.Generator().manual_seed(0)))
    cfg = SAEConfig(arch="matryoshka", d_in=16, d_sae=32, k=3, groups=(0.25, 0.75), name="m")
    tcfg = TrainConfig(
        steps=60, batch_size=100, lr=3e-3, seed=0, log_every=20, ckpt_every=0, val_rows=300, init_rows=1000
    )
    (run_dir,) = train(
        ActivationStore.open(train_s),
        [cfg],
        tcfg,
        root / "runs",
        val=ActivationStore.open(val_s),
        progress=False,
    )
    return root, run_dir, val_s, test_s, emb


def test_probe_vs_zero_shot():
    assert probe_vs_zero_shot(0.97, 0.987)["ok"]
    bad = probe_vs_zero_shot(0.61, 0.987)  # the demo's old probe, trained on 3 of the 6 shapes
    assert not bad["ok"] and bad["probe_test"] == 0.61
    with pytest.raises(ConsistencyError, match="probe vs CLIP zero-shot.*probe_test 0.61") as e:
        require([probe_vs_zero_shot(0.99, 0.987), bad])
    assert isinstance(e.value, VsaeError)  # the CLI prints one `error:` line, exit 2
    require([probe_vs_zero_shot(0.99, 0.987)])


def test_training_log_vs_recon(run, tmp_path):
    _, run_dir, val_s, _, _ = run
    good = training_log_vs_recon(run_dir, val_s, tmp_path / "a")
    assert good["ok"] and good["training_log"] == pytest.approx(good["eval_recon"], rel=1e-4)
    log = run_dir / "log.jsonl"
    rows = [json.loads(r) for r in log.read_text().splitlines()]
    last = rows[-1]
    assert "val" in last
    last["val"]["fvu"] *= 1.5  # a log that disagrees with the evaluation
    log.write_text(log.read_text() + json.dumps(last) + "\n")
    try:
        assert not training_log_vs_recon(run_dir, val_s, tmp_path / "b")["ok"]
    finally:
        log.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_ms_vs_eval_ms(run, tmp_path):
    from vsae.sae import load
    from vsae.store import ActivationStore

    _, run_dir, _, test_s, emb = run
    sae = load(run_dir)
    with torch.no_grad():
        z = sae.encode(ActivationStore.open(test_s)[:])
    ms = monosemanticity_score(z, ActivationStore.open(emb)[:]).numpy()
    good = ms_vs_eval_ms(ms, run_dir, test_s, emb, tmp_path / "a")
    assert good["ok"] and good["demo_mean"] == pytest.approx(np.nanmean(ms))
    off = ms.copy()
    off[np.flatnonzero(~np.isnan(off))[0]] += 1e-3
    assert not ms_vs_eval_ms(off, run_dir, test_s, emb, tmp_path / "b")["ok"]
