"""`vsae extract-mllm`: a LLaVA language model's residual stream at image tokens and caption tokens
in one store, checked against the HF model's own hidden states (output_hidden_states)."""

import json

import numpy as np
import pytest
import torch

from vsae.cli import main
from vsae.store import ActivationStore
from vsae.store.columns import check_columns, read_column

N_IMAGES = 10


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny random-weight LLaVA built from code (3 LM layers, with its LlavaProcessor) and a small world export."""
    from vsae.world import export
    from vsae.world.llava.llava_model import LlavaArch, build_llava

    root = tmp_path_factory.mktemp("mllm")
    model, proc = build_llava(
        None, LlavaArch(hidden=32, layers=3, heads=2, intermediate=64, max_positions=64)
    )
    model.save_pretrained(root / "llava")
    proc.save_pretrained(root / "llava")
    export(root / "world", counts={"train": 24}, progress=False)
    return root


def _extract(root, out, **kw):
    from vsae.extract.mllm_tokens import MllmExtractConfig, extract_mllm

    args = dict(
        model=str(root / "llava"),
        hooks=("resid.0", "resid.1"),
        data=str(root / "world"),
        split="train",
        out=str(out),
        n_images=N_IMAGES,
        dtype="float32",
        batch_size=4,
        progress=False,
    )
    return extract_mllm(MllmExtractConfig(**{**args, **kw}))


@pytest.fixture(scope="module")
def unbalanced(setup):
    return _extract(setup, setup / "unbalanced", balance=False)


def _hf(root):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    return LlavaForConditionalGeneration.from_pretrained(
        root / "llava"
    ).eval(), AutoProcessor.from_pretrained(root / "llava")


def _records(root):
    from vsae.data import open_source

    src = open_source(str(root / "world"), "train")
    rows = {r["path"]: r for r in json.loads((root / "world" / "attributes.json").read_text())}
    return src, [rows[str(__import__("pathlib").Path(p).relative_to(root / "world"))] for p in src.items]


def test_image_rows_equal_the_lms_hidden_states(setup, unbalanced):
    from PIL import Image

    model, proc = _hf(setup)
    src, _ = _records(setup)
    prompt = proc.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]}],
        add_generation_prompt=True,
    )
    for layer in (0, 1):
        s = ActivationStore.open(unbalanced / f"resid.{layer}")
        mod = read_column(s, "modality")
        items = np.unique(s.image_index)
        assert len(items) == N_IMAGES and not np.array_equal(items, np.arange(N_IMAGES))  # a seeded sample
        for i in items[:3]:
            inp = proc(images=[Image.open(src.items[i]).convert("RGB")], text=[prompt], return_tensors="pt")
            with torch.no_grad():
                hs = model(**inp, output_hidden_states=True).hidden_states[layer + 1][0]
            pos = torch.nonzero(inp["input_ids"][0] == model.config.image_token_id)[:, 0]
            rows = np.flatnonzero((s.image_index == i) & (mod == 0))
            assert len(rows) == len(pos) == 16  # every image token: (32 / 8) ** 2
            assert np.array_equal(s.token_index[rows], np.arange(16))  # patch positions
            torch.testing.assert_close(s[rows], hs[pos], rtol=0, atol=1e-6)


def test_text_rows_are_the_caption_tokens_without_padding(setup, unbalanced):
    model, proc = _hf(setup)
    _, recs = _records(setup)
    s = ActivationStore.open(unbalanced / "resid.1")
    mod, tid = read_column(s, "modality"), read_column(s, "token_id")
    lengths = set()
    for i in np.unique(s.image_index):
        ids = proc.tokenizer(recs[i]["caption"], return_tensors="pt")["input_ids"]
        lengths.add(ids.shape[1])
        with torch.no_grad():  # the caption alone: no padding, no image
            hs = model(input_ids=ids, output_hidden_states=True).hidden_states[2][0]
        rows = np.flatnonzero((s.image_index == i) & (mod == 1))
        assert np.array_equal(s.token_index[rows], np.arange(1, ids.shape[1]))  # all but <s>, no padding
        assert np.array_equal(tid[rows], ids[0, 1:].numpy())
        torch.testing.assert_close(s[rows], hs[1:], rtol=0, atol=1e-5)
    assert len(lengths) > 1  # captions of different lengths were padded in the batches
    assert np.all(tid[mod == 0] == -1)
    vocab = json.loads((unbalanced / "resid.1" / "tokens.json").read_text())
    words = {vocab[str(t)] for t in tid[mod == 1]}
    assert "<pad>" not in words and "<s>" not in words


def test_balanced_store_has_equal_rows_per_modality_and_is_reproducible(setup, unbalanced):
    out = _extract(setup, setup / "balanced")
    s, u = ActivationStore.open(out / "resid.0"), ActivationStore.open(unbalanced / "resid.0")
    mod, umod = read_column(s, "modality"), read_column(u, "modality")
    n_img, n_txt = np.bincount(mod, minlength=2)
    assert n_img == n_txt == min(np.bincount(umod))
    # the kept rows are a subset of the unbalanced rows, with the same values
    key = {(a, b, c): r for r, (a, b, c) in enumerate(zip(u.image_index, u.token_index, umod))}
    idx = [key[(a, b, c)] for a, b, c in zip(s.image_index, s.token_index, mod)]
    torch.testing.assert_close(s[:], u[np.array(idx)])
    again = _extract(setup, setup / "balanced2")
    a = ActivationStore.open(again / "resid.0")
    assert np.array_equal(a.token_index, s.token_index) and torch.equal(a[:], s[:])
    assert not check_columns(s)
    assert s.provenance["columns"]["modality"].startswith("int8")


def test_killed_run_resumes_to_the_same_rows(setup, unbalanced, monkeypatch):
    import vsae.extract.mllm_tokens as em

    real, calls = em._forward_batch, []

    def dies(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(em, "_forward_batch", dies)
    with pytest.raises(KeyboardInterrupt):
        _extract(setup, setup / "resumed", balance=False, rows_per_shard=10)
    monkeypatch.setattr(em, "_forward_batch", real)
    part = ActivationStore.open(setup / "resumed" / "resid.1")
    assert 0 < len(part) < len(ActivationStore.open(unbalanced / "resid.1")) and not part.complete
    _extract(setup, setup / "resumed", balance=False, rows_per_shard=10)
    r, u = ActivationStore.open(setup / "resumed" / "resid.1"), ActivationStore.open(unbalanced / "resid.1")
    assert (
        r.complete
        and np.array_equal(r.image_index, u.image_index)
        and np.array_equal(r.token_index, u.token_index)
    )
    assert np.array_equal(read_column(r, "modality"), read_column(u, "modality"))
    assert np.array_equal(read_column(r, "token_id"), read_column(u, "token_id"))
    torch.testing.assert_close(r[:], u[:])


def _err(args, capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["extract-mllm", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    return err


def test_bad_inputs_are_one_line_errors(setup, tmp_path, capsys):
    from PIL import Image

    from vsae.models.tiny_models import build_tiny

    base = ["--hook", "resid.0", "--out", str(tmp_path / "o"), "--quiet"]
    world = ["--data", str(setup / "world"), "--split", "train"]
    clip = build_tiny("clip_vision", tmp_path / "clip")
    assert "needs a LLaVA" in _err(["--model", str(clip), *world, *base], capsys)
    bare = build_tiny("llava", tmp_path / "bare")  # a LLaVA saved without its processor
    assert "processor" in _err(["--model", str(bare), *world, *base], capsys)
    llava = ["--model", str(setup / "llava")]
    (tmp_path / "caps.txt").write_text("a red square\na blue circle\n")
    assert "2 captions for 24 images" in _err(
        [*llava, *world, "--captions", str(tmp_path / "caps.txt"), *base], capsys
    )
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "imgs" / "a.png")
    assert "--captions" in _err([*llava, "--data", str(tmp_path / "imgs"), *base], capsys)
    assert "out of range" in _err(
        [*llava, *world, "--hook", "resid.7", "--out", str(tmp_path / "o2")], capsys
    )
    assert "random:K" in _err([*llava, *world, *base, "--image-tokens", "cls"], capsys)


def test_columns_are_verified_and_missing_ones_refused(unbalanced, tmp_path):
    import shutil

    from vsae.errors import VsaeError
    from vsae.store.check import check_store

    store = shutil.copytree(unbalanced / "resid.0", tmp_path / "s")
    s = ActivationStore.open(store)
    assert check_store(store).ok and not check_columns(s)  # other readers see an ordinary store
    col = store / s.manifests[0]["shards"][0]["columns"]["modality"]["file"]
    a = np.load(col)
    a[0] = 1 - a[0]
    np.save(col, a)
    assert any("checksum mismatch" in p for p in check_columns(ActivationStore.open(store)))
    assert any("column modality" in p for p in check_store(store).problems)  # `vsae store check` sees it
    with pytest.raises(VsaeError, match="no per-row column 'nope'"):
        read_column(s, "nope")
