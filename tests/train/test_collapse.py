"""Regression test for issue 13: BatchTopK at lr = 1e-3 must not kill its latents.

On planted data with a large common offset (as real activations have), the old trainer encoded
un-centred inputs: every Adam step on W_enc moved all pre-activations of a latent by about
lr * ||x||_1, most latents were pushed below zero for every row and died. Measured with this test on the
old code: dead fraction 0.44-0.47 from step 20 on (0.50 of latents never fire on held-out rows),
training FVU 0.636 and validation FVU 0.83 at step 60; centred: no dead latents, 0.55 and 0.77.
"""

import json

import pytest
import torch

from vsae.sae import SAEConfig
from vsae.sae.sae_config import config_for
from vsae.train import TrainConfig, train
from vsae.train.batch_sources import TensorSource
from vsae.train.planted import make_planted

D, F, K, B = 256, 2048, 16, 512


@pytest.fixture(scope="module")
def planted():
    torch.manual_seed(0)
    return make_planted(8 * B + 2048, D, 4 * D, K, noise=0.05, seed=3, offset=1.0).x_Nd


def _run(x, tmp_path, lr):
    cfg = SAEConfig(arch="batchtopk", d_in=D, d_sae=F, k=K, aux_k=D // 2, aux_coeff=1 / 32, name="b")
    tc = TrainConfig(
        steps=60,
        batch_size=B,
        lr=lr,
        warmup_steps=5,
        decay_start=1.0,
        log_every=20,
        ckpt_every=0,
        dead_window_rows=5 * B,
        init_rows=B,
        val_rows=2048,
    )
    [d] = train(
        TensorSource(x[: 8 * B]),
        [cfg],
        tc,
        tmp_path / f"lr{lr}",
        val=TensorSource(x[8 * B :]),
        progress=False,
    )
    rows = [json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()]
    return [r for r in rows if "fvu" in r], json.loads((d / "config.json").read_text())["val"]


def test_lr_1e3_keeps_latents_alive_and_reconstructs(planted, tmp_path):
    torch.set_num_threads(1)
    logs, val = _run(planted, tmp_path, 1e-3)
    dead = [r["dead_frac"] for r in logs]
    # Old code: dead 0.44-0.47 from step 20 on. Centred inputs: none die in 60 steps.
    assert max(dead) < 0.1, dead
    assert logs[-1]["fvu"] < logs[0]["fvu"] and logs[-1]["fvu"] < 0.6, [r["fvu"] for r in logs]
    # Inference (threshold) on held-out rows, through the saved (input-space) SAE.
    assert val["dead_frac"] < 0.1 and val["fvu"] < 0.8, val


@pytest.mark.parametrize("arch", ["relu", "topk", "batchtopk", "matryoshka", "jumprelu"])
def test_fold_input_gives_the_same_model_on_raw_inputs(arch):
    from vsae.sae.io import build
    from vsae.train.fold import fold_input

    torch.manual_seed(1)
    sae = build(config_for(arch, d_in=16, d_sae=64, k=4, jumprelu_init_threshold=0.05), seed=0).eval()
    with torch.no_grad():
        sae.b_enc_F.normal_(0, 0.1)
        sae.b_dec_d.normal_(0, 0.1)
        if arch == "batchtopk":
            sae.threshold.fill_(0.2)
    x = torch.randn(50, 16) + 3.0
    scale, center = 0.7, torch.randn(16) + 3.0
    folded = fold_input(sae, scale, center)
    z_ref = sae.encode((x - center) * scale) / scale
    z = folded.encode(x)
    assert (z != 0).sum() > 0
    torch.testing.assert_close(z, z_ref, atol=1e-5, rtol=1e-5)
    x_hat_ref = sae.decode(sae.encode((x - center) * scale)) / scale + center
    torch.testing.assert_close(folded.decode(z), x_hat_ref, atol=1e-5, rtol=1e-5)
    assert folded is not sae and not torch.equal(folded.b_dec_d, sae.b_dec_d)  # a folded copy
