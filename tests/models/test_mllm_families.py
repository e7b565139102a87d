"""Multimodal LLMs (LLaVA-NeXT, LLaVA-OneVision, Gemma 3, Idefics3, SmolVLM, InternVL): each tower's
hooks equal the model's own hidden states, and `vsae extract --tower vision` stores them."""

import numpy as np
import pytest
import torch
from PIL import Image

from vsae.extract import ExtractConfig, extract
from vsae.models import capture, load
from vsae.models.families.mllm import LAYOUTS
from vsae.models.tiny_mllm import MLLM_KINDS, build_tiny_mllm
from vsae.store import ActivationStore


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mllm")
    return {k: build_tiny_mllm(k, root / k) for k in MLLM_KINDS}


def _images():
    g = torch.Generator().manual_seed(0)
    return [
        Image.fromarray((torch.rand(h, w, 3, generator=g) * 255).byte().numpy())
        for h, w in ((40, 36), (30, 60), (32, 32))
    ]


@pytest.mark.parametrize("kind", MLLM_KINDS)
def test_vision_tower_hooks_match_hidden_states(dirs, kind):
    lm = load(str(dirs[kind]))
    assert (lm.family, lm.tower, lm.modality) == (kind, "vision", "image")
    assert lm.model is lm.full_model.get_submodule(LAYOUTS[kind].vision)  # the tower the model runs
    x = lm.preprocess(_images())
    assert x["pixel_values"].shape == (3, 3, 32, 32)  # one view per image
    has_sub = kind != "internvl"
    hooks = ["resid.0", "resid.1"] + (["attn.1", "mlp.1"] if has_sub else [])
    with capture(lm, hooks, stop_early=False) as cap:
        lm.run(x)
    with torch.no_grad():
        hs = lm.model(**x, output_hidden_states=True).hidden_states
    torch.testing.assert_close(cap.outputs["resid.0"], hs[1])
    torch.testing.assert_close(cap.outputs["resid.1"], hs[2])
    if has_sub:  # the block adds its attention and MLP outputs to the residual stream
        torch.testing.assert_close(
            hs[2] - hs[1], cap.outputs["attn.1"] + cap.outputs["mlp.1"], atol=1e-5, rtol=1e-4
        )
    assert lm.n_prefix == (1 if kind in ("llava_next", "internvl") else 0)  # CLIP / InternViT CLS


def test_the_view_is_the_models_own_global_image(dirs):
    """LLaVA-NeXT: the vision tower sees tile 0 of the processor's any-resolution tiles (the whole
    image at the base resolution); Idefics3: the single global image without splitting."""
    from transformers import AutoImageProcessor

    ims = _images()
    for kind, kw, pick in (
        ("llava_next", {}, lambda pv: pv[:, 0]),
        ("idefics3", {"do_image_splitting": False}, lambda pv: pv[:, 0]),
    ):
        lm = load(str(dirs[kind]))
        full = AutoImageProcessor.from_pretrained(dirs[kind])([[im] for im in ims], return_tensors="pt", **kw)
        assert torch.equal(lm.preprocess(ims)["pixel_values"], pick(full["pixel_values"]))


@pytest.mark.parametrize("kind", ["llava_next", "gemma3", "idefics3", "internvl"])
def test_language_tower_matches_hidden_states(dirs, kind):
    lm = load(str(dirs[kind]), tower="language")
    assert (lm.family, lm.tower, lm.modality) == (kind, "language", "text")
    assert lm.model is lm.full_model.get_submodule(LAYOUTS[kind].language)
    x = lm.preprocess(["a photo of the red cat", "dog"])
    with capture(lm, ["resid.0"], stop_early=False) as cap:
        lm.run(x)
    with torch.no_grad():
        hs = lm.model(**x, output_hidden_states=True, use_cache=False).hidden_states
    torch.testing.assert_close(cap.outputs["resid.0"], hs[1])


@pytest.mark.parametrize("kind", ["llava_next", "gemma3", "idefics3", "smolvlm"])
def test_extract_vision_tower_store_equals_hidden_states(tmp_path, dirs, kind):
    data = tmp_path / "imgs"
    data.mkdir()
    ims = _images()
    for i, im in enumerate(ims):
        im.save(data / f"{i}.png")
    lm = load(str(dirs[kind]))
    out = tmp_path / "s"
    extract(
        ExtractConfig(model=str(dirs[kind]), hooks=("resid.1",), data=str(data), out=str(out), tokens="all",
                      dtype="float32", batch_size=2, progress=False),
    )  # fmt: skip
    s = ActivationStore.open(out)
    assert s.provenance["family"] == kind and s.provenance["tower"] == "vision"
    with torch.no_grad():
        h = lm.model(**lm.preprocess(ims), output_hidden_states=True).hidden_states[2]
    T = h.shape[1]
    assert len(s) == 3 * T and np.array_equal(s.token_index, np.tile(np.arange(T), 3))
    torch.testing.assert_close(s[0 : len(s)], h.reshape(3 * T, -1), atol=1e-5, rtol=1e-4)
