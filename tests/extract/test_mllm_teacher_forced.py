"""`vsae extract-mllm --text-kind teacher-forced`: the caption read as the answer to the image
prompt (image in context), checked against the HF model's own hidden states; caption-alone rows
beside it stay what they were."""

import numpy as np
import pytest
import torch
from tests.extract.test_mllm import N_IMAGES, _extract, _hf, _records, setup  # noqa: F401

from vsae.errors import VsaeError
from vsae.store import ActivationStore
from vsae.store.columns import read_column


@pytest.fixture(scope="module")
def both(setup):  # noqa: F811
    return _extract(setup, setup / "both", balance=False, text_kinds=("caption", "teacher-forced"))


def test_teacher_forced_rows_equal_the_lm_reading_the_caption_after_the_image(setup, both):  # noqa: F811
    from PIL import Image

    model, proc = _hf(setup)
    src, recs = _records(setup)
    prompt = proc.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]}],
        add_generation_prompt=True,
    )
    s = ActivationStore.open(both / "resid.1")
    mod, kind, tid = read_column(s, "modality"), read_column(s, "text_kind"), read_column(s, "token_id")
    assert s.provenance["text_kinds"] == ["caption", "teacher-forced"]
    assert np.all(kind[mod == 0] == -1) and set(np.unique(kind[mod == 1])) == {0, 1}
    for i in np.unique(s.image_index)[:3]:
        inp = proc(images=[Image.open(src.items[i]).convert("RGB")], text=[prompt], return_tensors="pt")
        cap = proc.tokenizer(recs[i]["caption"], return_tensors="pt")["input_ids"][0, 1:]  # without <s>
        ids = torch.cat([inp["input_ids"][0], cap])[None]
        with torch.no_grad():
            hs = model(input_ids=ids, pixel_values=inp["pixel_values"], output_hidden_states=True)
        hs = hs.hidden_states[2][0]
        start = inp["input_ids"].shape[1]
        tf = np.flatnonzero((s.image_index == i) & (kind == 1))
        alone = np.flatnonzero((s.image_index == i) & (kind == 0))
        assert np.array_equal(s.token_index[tf], s.token_index[alone])  # the same caption tokens
        assert np.array_equal(tid[tf], cap.numpy())
        torch.testing.assert_close(s[tf], hs[start:], rtol=0, atol=1e-5)
        assert not torch.allclose(s[tf], s[alone], atol=1e-3)  # the image in context changes them


def test_caption_rows_are_unchanged_by_the_teacher_forced_kind(setup, both):  # noqa: F811
    a = ActivationStore.open(both / "resid.0")
    u = ActivationStore.open(_extract(setup, setup / "alone", balance=False) / "resid.0")
    keep = read_column(a, "text_kind") < 1
    torch.testing.assert_close(a[np.flatnonzero(keep)], u[:])
    assert "text_kinds" not in u.provenance and "text_kind" not in u.provenance["columns"]


def test_unknown_text_kind_is_refused(setup, tmp_path):  # noqa: F811
    with pytest.raises(VsaeError, match="--text-kind"):
        _extract(setup, tmp_path / "x", text_kinds=("answer",))
