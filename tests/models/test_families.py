"""Every family's hook points equal the model's own hidden states / sub-layer sums / embeddings."""

import pytest
import torch

from vsae.models import capture, load
from vsae.models.tiny_models import TINY_KINDS, build_tiny

CASES = [(k, None) for k in TINY_KINDS if k not in ("clip", "llava")] + [
    ("clip", "vision"),
    ("clip", "text"),
    ("llava", "vision"),
    ("llava", "language"),
]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {k: build_tiny(k, root / k) for k in TINY_KINDS}


def _inputs(lm):
    if lm.modality == "text":
        return lm.preprocess(["a photo of the red cat", "dog", "a big blue house on the tree"])
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    imgs = [Image.fromarray((torch.rand(40, 36, 3, generator=g) * 255).byte().numpy()) for _ in range(3)]
    return lm.preprocess(imgs)


def _reference(lm, inputs):
    with torch.no_grad():
        return lm.model(**lm.to_device(inputs), output_hidden_states=True)


@pytest.mark.parametrize("kind,tower", CASES)
def test_hooks_match_hidden_states(model_dirs, kind, tower):
    lm = load(str(model_dirs[kind]), tower=tower)
    inputs = _inputs(lm)
    hooks = ["resid.0", "resid.-1", "attn.0", "mlp.0", "attn.1", "mlp.1"] + (
        ["embed"] if lm.embed_fields else []
    )
    with capture(lm, hooks, stop_early=False) as cap:
        lm.run(inputs)
    ref = _reference(lm, inputs)
    hs = ref.hidden_states
    assert len(hs) == lm.num_layers + 1 == 3
    torch.testing.assert_close(cap.outputs["resid.0"], hs[1])
    if lm.family == "llava" and lm.tower == "language":
        # decoder LMs report the final hidden state after the final norm; resid.L is the block output
        torch.testing.assert_close(lm.model.norm(cap.outputs["resid.1"]), hs[2])
    else:
        torch.testing.assert_close(cap.outputs["resid.1"], hs[2])
    # each block adds its attention and MLP sub-layer outputs to the residual stream
    torch.testing.assert_close(
        hs[1] - hs[0], cap.outputs["attn.0"] + cap.outputs["mlp.0"], atol=1e-5, rtol=1e-4
    )
    torch.testing.assert_close(
        cap.outputs["resid.1"] - hs[1], cap.outputs["attn.1"] + cap.outputs["mlp.1"], atol=1e-5, rtol=1e-4
    )
    if "embed" in hooks:
        want = getattr(ref, "image_embeds", None)
        want = getattr(ref, "text_embeds", None) if want is None else want
        want = ref.pooler_output if want is None else want
        torch.testing.assert_close(cap.outputs["embed"], want)


def test_full_clip_dir_embeds_equal_clip_features(model_dirs):
    import transformers as T

    clip = T.CLIPModel.from_pretrained(model_dirs["clip"]).eval()
    v = load(str(model_dirs["clip"]))
    t = load(str(model_dirs["clip"]), tower="text")
    assert (v.family, v.tower, t.family, t.tower) == ("clip", "vision", "clip_text", "text")
    xi, xt = _inputs(v), _inputs(t)
    for lm, x, fn in ((v, xi, clip.get_image_features), (t, xt, clip.get_text_features)):
        with capture(lm, "embed") as cap:
            lm.run(x)
        with torch.no_grad():
            want = fn(**x)
        want = want if torch.is_tensor(want) else want.pooler_output
        assert cap.output.shape == (3, 16)
        torch.testing.assert_close(cap.output, want)


def test_siglip_and_registers_layout(model_dirs):
    s = load(str(model_dirs["siglip_vision"]))
    r = load(str(model_dirs["dinov2_registers"]))
    assert (s.has_cls, s.n_prefix) == (False, 0)
    assert (r.has_cls, r.n_prefix) == (True, 3)  # CLS + 2 register tokens


def test_llava_towers(model_dirs):
    v = load(str(model_dirs["llava"]))
    lang = load(str(model_dirs["llava"]), tower="language")
    assert type(v.full_model).__name__ == "LlavaForConditionalGeneration"
    assert v.model is v.full_model.model.vision_tower
    assert lang.model is lang.full_model.model.language_model
    assert lang.modality == "text" and not lang.embed_fields
