"""`steer mllm` through a vision-tower SAE on LLaVA-NeXT, Gemma 3 and Idefics3 (tiny random
models with their own processors and chat templates): a clamp changes the model's output, an
edit that changes no latent leaves it bit-identical, and the whole experiment runs."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import vsae.models
import vsae.sae
import vsae.world  # noqa: F401  (registers the world: image source the experiment reads by default)
from vsae.experiments.mllm_steering.mllm_config import SteerConfig
from vsae.experiments.mllm_steering.mllm_run import run_steering
from vsae.models.families.mllm import conversation, processor_images
from vsae.models.tiny_mllm import WITH_PROCESSOR, build_tiny_mllm
from vsae.steer.edits import LatentEdit
from vsae.steer.intervention import intervene
from vsae.steer.mllm import ask, default_hook

from .conftest import make_sae

QUESTION = "what is shown in this image ?"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mllm")
    return {k: build_tiny_mllm(k, root / k) for k in WITH_PROCESSOR}


def _images():
    g = torch.Generator().manual_seed(3)
    return [Image.fromarray((torch.rand(36, 40, 3, generator=g) * 255).byte().numpy()) for _ in range(2)]


@pytest.mark.parametrize("kind", WITH_PROCESSOR)
def test_vision_sae_edit_steers_the_whole_model(dirs, kind):
    from transformers import AutoProcessor

    lm = vsae.models.load(str(dirs[kind]))
    proc = AutoProcessor.from_pretrained(dirs[kind])
    model = lm.full_model
    hook = default_hook(lm)
    assert hook == (
        "resid.0" if kind == "llava_next" else "resid.1"
    )  # LLaVA reads layer -2, the others the last
    prompt = proc.apply_chat_template(conversation(QUESTION), add_generation_prompt=True)
    x = proc(images=processor_images(_images()), text=[prompt] * 2, return_tensors="pt")

    def logits():
        with torch.no_grad():
            return model(**x, use_cache=False).logits

    base = logits()
    sae = make_sae(d_in=32, d_sae=64, k=4)
    with intervene(lm, hook, sae, [LatentEdit(3, "add", 0.0, "all")]) as h:
        same = logits()
    assert h.calls >= 1  # the SAE ran inside the model's own forward pass
    assert torch.equal(same, base)  # no latent changed: bit-identical
    with intervene(lm, hook, sae, [LatentEdit(3, "clamp", 100.0, "all")]):
        steered = logits()
    assert (steered - base).abs().max() > 1e-3
    answers = ask(model, proc, _images(), QUESTION, max_new_tokens=2)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)


def test_run_steering_on_gemma3(dirs, tmp_path):
    from transformers import CLIPImageProcessor, CLIPProcessor

    from vsae.models.tiny_models import build_tiny, tiny_tokenizer

    clip = build_tiny("clip", tmp_path / "clip")
    CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tiny_tokenizer(),
    ).save_pretrained(clip)
    vsae.sae.save(make_sae(d_in=32, d_sae=64, k=4), tmp_path / "sae")
    cfg = SteerConfig(n_latents=2, n_images=2, n_hai_images=12, hai_k=3, blank_latents=1, max_new_tokens=2)
    res = run_steering(dirs["gemma3"], tmp_path / "sae", clip, cfg, tmp_path / "out", progress=False)
    assert res.hook == "resid.1" and res.llava["family"] == "gemma3"
    assert len(res.latents) == 2 and all(len(r.answers_steered) == 2 for r in res.latents)
