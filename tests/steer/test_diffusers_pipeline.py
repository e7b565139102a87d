"""Steering SDXL, SD3 and FLUX (tiny random pipelines built from configs) through an SAE on each of
their text encoders: an edit that changes no latent is bit-identical to plain generation, a clamp
changes the images, and the splice fires inside the pipeline's own prompt encoding."""

from __future__ import annotations

import numpy as np
import pytest

import vsae.sae
from vsae.errors import VsaeError
from vsae.models.tiny_pipelines import PIPELINE_KINDS, build_tiny_pipeline
from vsae.steer.diffusers_pipeline import encoder_model, generate, load_pipeline
from vsae.steer.edits import LatentEdit

CASES = [("sdxl", "text"), ("sdxl", "text_2"), ("sd3", "text"), ("sd3", "text_2"), ("sd3", "text_3"),
         ("flux", "text"), ("flux", "text_2")]  # fmt: skip
# the block each pipeline reads: SDXL / SD3 CLIPs the penultimate (resid.0 of 2), the rest the last
HOOK = {("sdxl", "text"): "resid.0", ("sdxl", "text_2"): "resid.0", ("sd3", "text"): "resid.0",
        ("sd3", "text_2"): "resid.0"}  # fmt: skip
PROMPTS = ["a red cat", "a big blue house"]


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipes")
    return {k: load_pipeline(build_tiny_pipeline(k, root / k)) for k in PIPELINE_KINDS}


def _sae(d_in: int):
    sae = vsae.sae.build(vsae.sae.SAEConfig(arch="topk", d_in=d_in, d_sae=4 * d_in, k=4), seed=0)
    return sae.eval()


@pytest.mark.parametrize("kind,tower", CASES)
def test_text_encoder_steering(pipes, kind, tower):
    pipe = pipes[kind]
    lm = encoder_model(pipe, tower)
    assert lm.family == (
        "t5_text" if (kind, tower) in (("sd3", "text_3"), ("flux", "text_2")) else "clip_text"
    )
    d = int(getattr(lm.model.config, "d_model", 0) or lm.model.config.hidden_size)
    sae, hook = _sae(d), HOOK.get((kind, tower), "resid.1")
    run = dict(steps=2, seed=3, size=32, max_sequence_length=16)
    base = generate(pipe, PROMPTS, tower=tower, **run)
    assert base.shape == (2, 32, 32, 3) and base.dtype == np.uint8
    calls = []
    h = lm.hook_module(hook).register_forward_hook(lambda *a: calls.append(1))
    same = generate(
        pipe, PROMPTS, tower=tower, sae=sae, hook=hook, edits=[LatentEdit(1, "add", 0.0, "all")], **run
    )
    h.remove()
    assert calls and np.array_equal(same, base)  # the splice ran, and changed no latent: bit-identical
    steered = generate(
        pipe, PROMPTS, tower=tower, sae=sae, hook=hook, edits=[LatentEdit(1, "clamp", 200.0, "all")], **run
    )
    assert not np.array_equal(steered, base)


def test_bad_towers_are_one_line_errors(pipes):
    with pytest.raises(VsaeError, match="no text_encoder_3; valid towers: text, text_2"):
        encoder_model(pipes["flux"], "text_3")
    with pytest.raises(VsaeError, match="unknown text encoder tower"):
        encoder_model(pipes["sdxl"], "vision")
