"""The shipped world models: loading through the ordinary from_pretrained path, zero-shot accuracy."""

import json

import numpy as np
import pytest
import torch

from vsae.train.recipe import with_recipe
from vsae.world import generate, shipped_clip_dir, shipped_simenc_dir
from vsae.world.captions import colour_prompts, shape_prompts, vocabulary
from vsae.world.clip_tokenizer import build_tokenizer
from vsae.world.clip_zeroshot import zero_shot_accuracy
from vsae.world.training import pixel_values


def test_shipped_clip_loads_offline_through_auto_classes():
    from transformers import AutoModel, AutoProcessor, AutoTokenizer, CLIPModel

    d = shipped_clip_dir()
    assert (d / "model.safetensors").is_file() and not list(d.glob("*.bin"))
    assert sum(f.stat().st_size for f in d.iterdir()) < 8_000_000
    model = AutoModel.from_pretrained(d)
    assert isinstance(model, CLIPModel) and isinstance(CLIPModel.from_pretrained(d), CLIPModel)
    proc = AutoProcessor.from_pretrained(d)
    tok = AutoTokenizer.from_pretrained(d)
    ids = tok(shape_prompts() + colour_prompts(), padding=True)["input_ids"]
    assert all(tok.unk_token_id not in row for row in ids)
    assert all(row[0] == tok.bos_token_id and tok.eos_token_id in row for row in ids)
    assert model.config.text_config.eos_token_id == tok.eos_token_id != 2  # pooling at the EOS token
    b = generate("test", 8, seed=5)
    pix = proc(images=b.pil_images(), return_tensors="pt")["pixel_values"]
    assert pix.shape == (8, 3, 32, 32)
    # the processor reproduces exactly the normalisation the model was trained with
    assert torch.allclose(pix, pixel_values(b.images_NHWC), atol=1e-5)


def test_tokenizer_covers_the_vocabulary():
    tok = build_tokenizer()
    for w in vocabulary():
        assert tok(w)["input_ids"][1] != tok.unk_token_id, w
    assert tok("a purple star")["input_ids"] == tok("A  Purple star")["input_ids"]
    assert tok.unk_token_id in tok("a banana")["input_ids"]


def test_shipped_clip_zero_shot_accuracy():
    acc = zero_shot_accuracy(shipped_clip_dir(), split="test", n=300, seed=0)
    assert acc["shape"] >= 0.90, acc
    assert acc["colour"] >= 0.90, acc
    build = json.loads((shipped_clip_dir() / "vsae_world_build.json").read_text())
    assert build["config"]["steps"] > 0 and build["final_loss"] < 3.5  # trained, not a stub


def test_shipped_simenc_loads_and_embeds():
    from transformers import AutoModel, ViTModel

    from vsae.world.train_simenc import embed

    d = shipped_simenc_dir()
    assert isinstance(AutoModel.from_pretrained(d), ViTModel)
    b = generate("test", 200, seed=0)
    e = embed(b.pil_images(), d)
    assert e.shape == (200, AutoModel.from_pretrained(d).config.hidden_size) and np.isfinite(e).all()
    # images of the same class are more similar than images of different classes
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    s = e @ e.T
    y = b.labels("class_name")
    same = (y[:, None] == y[None, :]) & ~np.eye(len(y), dtype=bool)
    assert s[same].mean() > s[~same].mean() + 0.05
    build = json.loads((d / "vsae_world_build.json").read_text())
    assert build["val_head_accuracy"]["class_name"] >= 0.8 and build["val_head_accuracy"]["colour"] >= 0.95


@pytest.mark.slow
def test_rebuild_is_deterministic_and_accurate(tmp_path):
    """Rebuild both models with the shipped configs (about 17 minutes on one core): the same bits as shipped."""
    from safetensors.torch import load_file

    from vsae.world.builder import build

    res = build(tmp_path, threads=1, progress=False)
    assert sum(r["cpu_seconds"] for r in res.values()) < 2 * 15 * 60  # within 15 min of 2 cores
    acc = zero_shot_accuracy(tmp_path / "clip", split="test", n=300)
    assert acc["shape"] >= 0.90 and acc["colour"] >= 0.90, acc
    for name, shipped in (("clip", shipped_clip_dir()), ("simenc", shipped_simenc_dir())):
        a = load_file(str(tmp_path / name / "model.safetensors"))
        b = load_file(str(shipped / "model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), (
            f"{name} differs from the shipped"
        )


def test_short_builds_are_bitwise_deterministic(tmp_path):
    import dataclasses

    from safetensors.torch import load_file

    from vsae.world.builder import build
    from vsae.world.train_clip import ClipConfig
    from vsae.world.train_simenc import SimEncConfig

    cc = dataclasses.replace(with_recipe(ClipConfig(), steps=5), n_images=500)
    sc = dataclasses.replace(with_recipe(SimEncConfig(), steps=5), n_images=500)
    for run, jobs in (("a", 1), ("b", 2)):  # in-process and in two child processes
        build(tmp_path / run, cc, sc, threads=1, progress=False, jobs=jobs)
    for name in ("clip", "simenc"):
        a = load_file(str(tmp_path / "a" / name / "model.safetensors"))
        b = load_file(str(tmp_path / "b" / name / "model.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_cli_build_tiny_writes_loadable_models(tmp_path):
    """`vsae world build` end to end with 2 steps each: the outputs load through the Auto classes."""
    from click.testing import CliRunner
    from transformers import AutoImageProcessor, AutoModel, AutoProcessor, CLIPModel, ViTModel

    from vsae.cli.world import world

    args = ["build", "--out", str(tmp_path), "--threads", "1"]
    args += ["--clip-steps", "2", "--simenc-steps", "2", "--llava-steps", "2", "--sae-steps", "2"]
    args += ["--diffusion-steps", "2", "--diffusion-eval", "4", "--judge-images", "200"]
    r = CliRunner().invoke(world, args)
    assert r.exit_code == 0, r.output
    assert "tiny CLIP zero-shot on 300 test images" in r.output
    assert isinstance(AutoModel.from_pretrained(tmp_path / "clip"), CLIPModel)
    assert isinstance(AutoModel.from_pretrained(tmp_path / "simenc"), ViTModel)
    AutoProcessor.from_pretrained(tmp_path / "clip")
    assert AutoImageProcessor.from_pretrained(tmp_path / "simenc").size == {"height": 32, "width": 32}
    # the LLaVA is built last, on the CLIP just built: its vision tower is that CLIP's
    from transformers import LlavaForConditionalGeneration

    llava = LlavaForConditionalGeneration.from_pretrained(tmp_path / "llava")
    clip = CLIPModel.from_pretrained(tmp_path / "clip")
    mine = llava.model.vision_tower.state_dict()
    theirs = clip.vision_model.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(v, mine[k]) for k, v in theirs.items())
    assert (tmp_path / "llava" / "steering_sae" / "sae.safetensors").is_file()
    # the text-to-image model is conditioned on that CLIP's text encoder
    from transformers import CLIPTextModel

    sd = CLIPTextModel.from_pretrained(tmp_path / "diffusion" / "text_encoder").state_dict()
    te = {k.removeprefix("text_model."): v for k, v in sd.items()}
    assert all(torch.equal(v, te[k]) for k, v in clip.text_model.state_dict().items())
    assert (tmp_path / "diffusion" / "text_sae" / "sae.safetensors").is_file()


def test_world_models_are_ordinary_model_dirs_for_vsae_models():
    """The pipeline's loader treats the shipped dirs like hub models (CLIP vision tower, ViT)."""
    import vsae.models

    b = generate("test", 3, seed=0)
    for d, family in ((shipped_clip_dir(), "clip"), (shipped_simenc_dir(), "vit")):
        lm = vsae.models.load(str(d))
        assert lm.family == family and lm.num_layers == 3 and lm.has_cls
        with vsae.models.capture(lm, "resid.-1") as c:
            lm.run(lm.preprocess(b.pil_images()))
        assert c.output.shape == (3, 65, 64)  # CLS + 8x8 patches of 4 px, hidden 64
