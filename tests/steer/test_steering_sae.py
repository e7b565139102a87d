"""The steering SAE is trained on random:2 patch tokens of the layer LLaVA reads (Pach et al.)."""

from __future__ import annotations

import numpy as np
import torch

import vsae.models
import vsae.sae
from vsae.train.recipe import TrainRecipe
from vsae.world import generate
from vsae.world.llava import LlavaArch, build_llava
from vsae.world.llava.steering_sae import SteeringSAEConfig, token_rows, train_steering_sae


def test_train_steering_sae(tmp_path):
    model, processor = build_llava(None, LlavaArch(hidden=32, layers=1, heads=2, intermediate=64))
    model.save_pretrained(tmp_path / "llava")
    processor.save_pretrained(tmp_path / "llava")
    lm = vsae.models.load(str(tmp_path / "llava"))
    imgs = generate("train", 6, seed=0).images_NHWC
    rows = token_rows(lm, "resid.2", "random:2", imgs, seed=0)
    assert rows.shape == (12, 64)
    # Each row is one of that image's patch tokens (never CLS, token 0).
    with vsae.models.capture(lm, "resid.2") as cap:
        lm.run(lm.preprocess(generate("train", 6, seed=0).pil_images()))
    acts = cap.output
    for r in range(12):
        d = (acts[r // 2] - rows[r]).abs().amax(-1)
        assert int(d.argmin()) >= 1 and float(d.min()) < 1e-5

    cfg = SteeringSAEConfig(
        n_images=200, expansion=2, k=4, recipe=TrainRecipe(steps=20, batch_size=32, lr=1e-3)
    )
    sae_dir = train_steering_sae(tmp_path / "llava", tmp_path / "sae", cfg, progress=False)
    sae = vsae.sae.load(sae_dir)
    assert sae.cfg.d_in == 64 and sae.cfg.d_sae == 128 and sae.cfg.k == 4
    assert sae.cfg.provenance["hook"] == "resid.2" and sae.cfg.provenance["tokens"] == "random:2"
    z = sae.encode(rows)
    assert torch.all((z != 0).sum(-1) <= 4) and np.isfinite(z.detach().numpy()).all()
