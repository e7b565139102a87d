"""An SAE spliced into the vision families added for current models (SigLIP 2 NaFlex, DINOv3,
AIMv2): an edit that changes no latent leaves the model's output bit-identical, a clamp changes it."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import vsae.models
import vsae.sae
from vsae.models.tiny_models import build_tiny
from vsae.steer.edits import LatentEdit
from vsae.steer.intervention import intervene


@pytest.mark.parametrize("kind", ["siglip2_vision", "dinov3", "aimv2_vision"])
def test_splice_is_exact_when_empty_and_steers_when_clamped(tmp_path, kind):
    lm = vsae.models.load(str(build_tiny(kind, tmp_path / kind)))
    x = lm.to_device(
        lm.preprocess([Image.new("RGB", (40, 36), (200, 30, 30)), Image.new("RGB", (24, 48), (0, 90, 200))])
    )

    def out():
        with torch.no_grad():
            return lm.model(**x).last_hidden_state

    base = out()
    sae = vsae.sae.build(vsae.sae.SAEConfig(arch="topk", d_in=32, d_sae=128, k=8), seed=0).eval()
    with intervene(lm, "resid.0", sae, [LatentEdit(5, "add", 0.0, "patches")]) as h:
        same = out()
    assert h.calls == 1 and torch.equal(same, base)
    with intervene(lm, "resid.0", sae, [LatentEdit(5, "clamp", 50.0, "patches")]):
        steered = out()
    assert (steered - base).abs().max() > 1e-3
