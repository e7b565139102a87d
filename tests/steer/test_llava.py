"""The tiny LLaVA: driven exactly like llava-hf/llava-1.5-7b-hf, and (shipped) answers correctly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vsae.steer.mllm import conversation
from vsae.train.recipe import TrainRecipe
from vsae.world.llava import LlavaArch, LlavaTrainConfig, answer, build_llava, load_llava
from vsae.world.llava.llava_train import QABatcher, prompt_ids, train_llava
from vsae.world.llava.questions import QUESTIONS

SMALL = LlavaArch(hidden=32, layers=1, heads=2, intermediate=64)


@pytest.fixture(scope="module")
def random_llava(tmp_path_factory):
    model, processor = build_llava(None, SMALL)
    out = tmp_path_factory.mktemp("llava")
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def test_driven_like_llava_hf(random_llava):
    from transformers import AutoProcessor, LlavaForConditionalGeneration, LlavaProcessor

    processor = AutoProcessor.from_pretrained(random_llava)
    model = LlavaForConditionalGeneration.from_pretrained(random_llava).eval()
    assert isinstance(processor, LlavaProcessor)
    prompt = processor.apply_chat_template(conversation(QUESTIONS["object"]), add_generation_prompt=True)
    assert prompt == "USER: <image>\nWhat is shown in this image? Use exactly one word! ASSISTANT:"
    inputs = processor(images=[Image.new("RGB", (32, 32))], text=[prompt], return_tensors="pt")
    n_img = int((inputs["input_ids"] == model.config.image_token_id).sum())
    # (32 / 8)^2 patches + 1 CLS (num_additional_image_tokens) - 1 (strategy "default" drops CLS)
    assert n_img == 16 == model.config.image_seq_length
    with torch.no_grad():
        feats = model.model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output[0]
    assert feats.shape[0] == n_img
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    text = processor.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert isinstance(text, str) and "<image>" not in text


def test_training_batches_match_inference_prompts(random_llava):
    from transformers import AutoProcessor

    from vsae.world import generate
    from vsae.world.training import pixel_values

    processor = AutoProcessor.from_pretrained(random_llava)
    b = generate("train", 4, seed=0)
    recs = [r.to_dict() for r in b.records]
    batcher = QABatcher(processor, recs)
    batch = batcher(np.arange(4), np.random.default_rng(0))
    tok = processor.tokenizer
    for i in range(4):
        ids = batch["input_ids"][i][batch["attention_mask"][i] == 1].tolist()
        labels = batch["labels"][i][batch["labels"][i] != -100].tolist()
        kind = next(k for k in QUESTIONS if ids[: len(prompt_ids(processor, k))] == prompt_ids(processor, k))
        assert tok.decode(labels, skip_special_tokens=True) == answer(kind, recs[i])
        assert labels[-1] == tok.eos_token_id
    # The trainer's pixel values are what the shipped processor makes.
    pix = processor(images=b.pil_images(), text=["<image>"] * 4, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(pix, pixel_values(b.images_NHWC), atol=1e-5, rtol=0)


def test_short_training_lowers_the_answer_loss(tmp_path):
    """60 steps on a random tower: the answer-token loss on a fixed held-out batch drops."""
    from vsae.world import generate
    from vsae.world.training import pixel_values

    cfg = LlavaTrainConfig(
        n_images=256,
        recipe=TrainRecipe(steps=60, batch_size=16, lr=3e-3, warmup=5, weight_decay=0.01),
        arch=SMALL,
    )
    train_llava(tmp_path / "m", None, cfg, progress=False, eval_images=0)
    trained, processor = load_llava(tmp_path / "m")
    untrained, _ = build_llava(None, SMALL, seed=cfg.recipe.seed)
    untrained.model.vision_tower.load_state_dict(trained.model.vision_tower.state_dict())  # same frozen tower
    b = generate("val", 32, seed=1)
    batch = QABatcher(processor, [r.to_dict() for r in b.records])(np.arange(32), np.random.default_rng(1))
    with torch.no_grad():
        before = untrained.eval()(pixel_values=pixel_values(b.images_NHWC), **batch).loss.item()
        after = trained(pixel_values=pixel_values(b.images_NHWC), **batch).loss.item()
    assert after < 0.7 * before, (before, after)


def test_shipped_llava_answers_one_word(capsys):
    from vsae.world.llava import answer_accuracy, shipped_llava_dir

    d = shipped_llava_dir()  # shipped with the package; raises if missing
    acc = answer_accuracy(d, kinds=("object", "colour"), n=150)
    with capsys.disabled():
        print(f"\nshipped tiny LLaVA one-word accuracy on 150 test images: {acc}")
    assert acc["object"] >= 0.9
    assert acc["colour"] >= 0.9


def test_shipped_llava_vision_tower_is_the_shipped_clip():
    """The tiny LLaVA carries a copy of the world CLIP's vision tower; rebuild it when the CLIP changes."""
    from safetensors import safe_open

    from vsae.world import shipped_clip_dir
    from vsae.world.llava import shipped_llava_dir

    llava, clip = shipped_llava_dir(), shipped_clip_dir()
    a = safe_open(str(llava / "model.safetensors"), "pt")
    b = safe_open(str(clip / "model.safetensors"), "pt")
    names_a, names_b = set(a.keys()), sorted(b.keys())
    keys = [k for k in names_b if k.startswith("vision_model.")]
    assert keys
    for k in keys:
        mine = k.replace("vision_model.", "vision_tower.", 1)
        assert mine in names_a, mine
        assert torch.equal(a.get_tensor(mine), b.get_tensor(k)), (
            f"{k} differs: run `vsae world build --only llava`"
        )
