"""The top-level Python API: dir(vsae), vsae.train on tensors, summarize_ms on scores, store dtype/labels."""

import json

import numpy as np
import pytest
import torch

import vsae
from vsae.errors import VsaeError
from vsae.eval.monosemanticity import (
    monosemanticity_score,
    monosemanticity_score_streaming,
    summarize_ms,
)
from vsae.store import ActivationStore, StoreWriter


def test_dir_lists_the_public_api():
    names = dir(vsae)
    for n in ("ActivationStore", "SAE", "SAEConfig", "TrainConfig", "load", "train", "eval", "store"):
        assert n in names, n
    assert vsae.load is vsae.sae.load and vsae.ActivationStore is ActivationStore
    assert vsae.SAEConfig is vsae.sae.SAEConfig


@pytest.mark.parametrize("kind", ["tensor", "numpy"])
def test_vsae_train_takes_rows_directly(tmp_path, kind):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g) @ torch.randn(8, 8, generator=g)
    rows = x if kind == "tensor" else x.numpy()
    cfg = vsae.SAEConfig(arch="topk", d_in=8, d_sae=16, k=2)
    tcfg = vsae.TrainConfig(steps=20, batch_size=64, lr=1e-3)
    dirs = vsae.train(rows, cfg, tcfg, tmp_path / "run", val=rows[:128], progress=False)
    assert len(dirs) == 1
    sae = vsae.load(dirs[0])
    assert sae.cfg.d_in == 8 and sae.encode(x[:4]).shape == (4, 16)
    # the same as training on the TensorSource by hand
    ref = vsae.train.train(vsae.train.TensorSource(x), [cfg], tcfg, tmp_path / "ref", progress=False)
    torch.testing.assert_close(vsae.load(ref[0]).W_dec_Fd, sae.W_dec_Fd)


def test_summarize_ms_takes_what_monosemanticity_score_returns():
    g = np.random.default_rng(0)
    acts = np.abs(g.normal(size=(40, 6)))
    acts[:, 2] = 0.0  # dead
    emb = g.normal(size=(40, 5))
    scores = monosemanticity_score(acts, emb)
    s = summarize_ms(scores, top=3)
    full = summarize_ms(monosemanticity_score_streaming(lambda: [(0, acts)], emb))
    valid = scores.numpy()[~np.isnan(scores.numpy())]
    assert s["n_latents"] == 6 and s["n_dead"] == 1 and s["n_scored"] == 5 and s["n_images"] is None
    assert s["mean"] == pytest.approx(float(valid.mean())) and s["mean"] == pytest.approx(full["mean"])
    assert s["std"] == pytest.approx(float(valid.std(ddof=1)))
    assert s["top"][0][1] == pytest.approx(float(valid.max())) and len(s["top"]) == 3


def test_store_dtype_is_torch_and_labels_come_from_the_store(tmp_path):
    w = StoreWriter.create_or_resume(tmp_path / "s", d=3, dtype="bfloat16", provenance={})
    w.add(torch.randn(6, 3), np.array([0, 0, 1, 2, 3, 3]), np.arange(6))
    w.mark_images_done(4)
    w.close()
    s = ActivationStore.open(tmp_path / "s")
    assert s.dtype == torch.bfloat16 and s.dtype_name == "bfloat16" and s.np_dtype == np.uint16
    assert s[:].dtype == torch.float32
    with pytest.raises(VsaeError, match="no images.json"):
        _ = s.labels
    (tmp_path / "s" / "images.json").write_text(json.dumps({"labels": [1, 0, 1, -1], "classes": ["a", "b"]}))
    s = ActivationStore.open(tmp_path / "s")
    np.testing.assert_array_equal(s.labels, [1, 1, 0, 1, -1, -1])
    assert s.classes == ["a", "b"]


def test_ms_progress_bars_count_images_out_of_a_total(capsys):
    g = np.random.default_rng(0)
    acts, emb = np.abs(g.normal(size=(40, 6))), g.normal(size=(40, 5))
    monosemanticity_score_streaming(lambda: [(0, acts[:25]), (25, acts[25:])], emb, progress=True)
    err = capsys.readouterr().err
    assert "MS pass 1/2 (min/max):   0%|          | 0/40 [" in err
    assert "MS pass 2/2 (sums):   0%|          | 0/40 [" in err
