"""`vsae extract-mllm` on LLaVA-NeXT, Gemma 3 and Idefics3 (tiny random models with their own
processors, chat templates and image-token layouts): image rows equal the model's own language-model
hidden states at its image tokens, text rows those of the caption alone. (resid.0: the tiny LMs
have 2 layers and transformers reports the last one after the final norm.)"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vsae.models.families.mllm import conversation, processor_images
from vsae.models.tiny_mllm import WITH_PROCESSOR, build_tiny_mllm
from vsae.store import ActivationStore
from vsae.store.columns import read_column

QUESTION = "what is shown in this image ?"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from vsae.world import export

    root = tmp_path_factory.mktemp("mllm")
    export(root / "world", counts={"train": 6}, progress=False)
    return root, {k: build_tiny_mllm(k, root / k) for k in WITH_PROCESSOR}


@pytest.mark.parametrize("kind", WITH_PROCESSOR)
def test_image_and_text_rows_equal_the_models_hidden_states(setup, kind, tmp_path):
    import transformers as T

    from vsae.data import open_source
    from vsae.extract.mllm_tokens import MllmExtractConfig, extract_mllm

    root, dirs = setup
    out = extract_mllm(
        MllmExtractConfig(model=str(dirs[kind]), hooks=("resid.0",), data=str(root / "world"), split="train",
                          out=str(tmp_path / "s"), question=QUESTION, dtype="float32", batch_size=4,
                          balance=False, progress=False)
    )  # fmt: skip
    s = ActivationStore.open(out)
    assert s.provenance["family"] == kind and s.provenance["tower"] == "language"
    mod, tid = read_column(s, "modality"), read_column(s, "token_id")
    model = T.AutoModelForImageTextToText.from_pretrained(dirs[kind]).eval()
    proc = T.AutoProcessor.from_pretrained(dirs[kind])
    prompt = proc.apply_chat_template(conversation(QUESTION), add_generation_prompt=True)
    src = open_source(str(root / "world"), "train")
    caps = json.loads((out / "images.json").read_text())["captions"]
    image_id = model.config.image_token_id
    for i in range(3):
        x = proc(
            images=processor_images([Image.open(src.items[i]).convert("RGB")]),
            text=[prompt],
            return_tensors="pt",
        )
        with torch.no_grad():
            hs = model(**x, output_hidden_states=True, use_cache=False).hidden_states[1][0]
        pos = torch.nonzero(x["input_ids"][0] == image_id)[:, 0]
        rows = np.flatnonzero((s.image_index == i) & (mod == 0))
        assert len(rows) == len(pos) > 0 and np.array_equal(s.token_index[rows], np.arange(len(pos)))
        torch.testing.assert_close(s[rows], hs[pos], rtol=1e-4, atol=1e-5)
        ids = proc.tokenizer(caps[i], return_tensors="pt")["input_ids"]
        with torch.no_grad():
            ht = model(input_ids=ids, output_hidden_states=True, use_cache=False).hidden_states[1][0]
        trows = np.flatnonzero((s.image_index == i) & (mod == 1))
        assert np.array_equal(s.token_index[trows], np.arange(1, ids.shape[1]))  # all but <bos>
        assert np.array_equal(tid[trows], ids[0, 1:].numpy())
        torch.testing.assert_close(s[trows], ht[1:], rtol=1e-4, atol=1e-5)


def test_any_resolution_images_of_other_sizes(setup, tmp_path):
    """LLaVA-NeXT gives images of other sizes other numbers of image tokens (its tile grid): each
    image's rows are its own prompt's image tokens, equal to the model's hidden states on it alone."""
    import transformers as T

    from vsae.extract.mllm_tokens import MllmExtractConfig, extract_mllm

    root, dirs = setup
    data = tmp_path / "imgs"
    data.mkdir()
    g = torch.Generator().manual_seed(1)
    sizes = [(32, 32), (64, 32), (32, 64), (40, 44)]
    for n, (w, h) in enumerate(sizes):
        Image.fromarray((torch.rand(h, w, 3, generator=g) * 255).byte().numpy()).save(data / f"{n}.png")
    caps = tmp_path / "caps.txt"
    caps.write_text("a red cat\na big dog\nthe blue house\na star\n")
    out = extract_mllm(
        MllmExtractConfig(model=str(dirs["llava_next"]), hooks=("resid.0",), data=str(data), captions=str(caps),
                          out=str(tmp_path / "s"), question=QUESTION, dtype="float32", batch_size=4,
                          balance=False, progress=False)
    )  # fmt: skip
    s = ActivationStore.open(out)
    mod = read_column(s, "modality")
    model = T.AutoModelForImageTextToText.from_pretrained(dirs["llava_next"]).eval()
    proc = T.AutoProcessor.from_pretrained(dirs["llava_next"])
    prompt = proc.apply_chat_template(conversation(QUESTION), add_generation_prompt=True)
    counts = []
    for i in range(len(sizes)):
        im = Image.open(data / f"{i}.png").convert("RGB")
        x = proc(images=processor_images([im]), text=[prompt], return_tensors="pt")
        with torch.no_grad():
            hs = model(**x, output_hidden_states=True, use_cache=False).hidden_states[1][0]
        pos = torch.nonzero(x["input_ids"][0] == model.config.image_token_id)[:, 0]
        rows = np.flatnonzero((s.image_index == i) & (mod == 0))
        counts.append(len(pos))
        assert len(rows) == len(pos) and np.array_equal(s.token_index[rows], np.arange(len(pos)))
        torch.testing.assert_close(s[rows], hs[pos], rtol=1e-4, atol=1e-5)
    assert len(set(counts)) > 1  # the sizes gave different token counts, in one batch
