"""Stored rows equal the model's own hidden states / sub-layer outputs / embeddings, per family and selection."""

import numpy as np
import pytest
import torch

from vsae.data import load_table
from vsae.data.fake_images import noise
from vsae.extract import ExtractConfig, extract
from vsae.models import load
from vsae.store import ActivationStore

IMAGE_CASES = [
    ("clip_vision", None),
    ("clip_vision_proj", None),
    ("clip", "vision"),
    ("siglip_vision", None),
    ("dinov2", None),
    ("dinov2_registers", None),
    ("vit", None),
    ("llava", "vision"),
    ("siglip2_vision", None),
    ("siglip2", None),
    ("dinov3", None),
    ("aimv2_vision", None),
    ("aimv2", None),
]
TEXT_CASES = [("clip_text", None), ("clip_text_proj", None), ("clip", "text"), ("llava", "language")]
IMAGE_SELECTIONS = ["cls", "mean", "patches", "all", "random:3"]
TEXT_SELECTIONS = ["mean", "all", "random:3"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for c, n in (("cat", 3), ("dog", 2)):
        (root / c).mkdir()
        for i in range(n):
            noise(10 * len(c) + i, (40 + 4 * i, 36)).save(root / c / f"{i}.png")
    (root / "dog" / "broken.png").write_text("no image")
    prompts = root.parent / "prompts.txt"
    prompts.write_text("a photo of the red cat\ndog\na big blue house on the tree with a small car\nstar\n")
    return root, prompts


def _reference(lm, items, hooks):
    """Hidden states and independently hooked sub-layer outputs for all usable items in one batch."""
    from vsae.data import load_image

    if lm.modality == "text":
        inputs = lm.preprocess(list(items))
    else:
        ok = [i for i, p in enumerate(items) if not p.endswith("broken.png")]
        inputs = lm.preprocess([load_image(items[i]) for i in ok])
    got = {}
    # the MLP's contribution to the residual stream (DINOv2 scales it by LayerScale first)
    # (DINOv2 / DINOv3 scale it by LayerScale first; AIMv2 names its MLP ffn)
    blk = lm.blocks[1]
    mlp = getattr(blk, "layer_scale2", None) or getattr(blk, "mlp", None) or blk.ffn
    handles = [
        mlp.register_forward_hook(lambda m, a, o: got.__setitem__("mlp.1", o)),
        lm.blocks[1].register_forward_hook(
            lambda m, a, o: got.__setitem__("resid.1", o[0] if isinstance(o, tuple) else o)
        ),
    ]
    with torch.no_grad():
        out = lm.model(**lm.to_device(inputs), output_hidden_states=True)
    for h in handles:
        h.remove()
    ref = {"resid.0": out.hidden_states[1], "resid.1": got["resid.1"], "mlp.1": got["mlp.1"]}
    if lm.modality == "image" or lm.family != "llava":
        torch.testing.assert_close(got["resid.1"], out.hidden_states[2])
    if "embed" in hooks:
        e = [getattr(out, f, None) for f in ("image_embeds", "text_embeds", "pooler_output")]
        ref["embed"] = next(x for x in e if x is not None)
    ids = list(range(len(items))) if lm.modality == "text" else ok
    # text: the attention mask; SigLIP 2 NaFlex: the mask of real (not padding) patches
    return ref, ids, inputs.get("attention_mask", inputs.get("pixel_attention_mask"))


def _expected_rows(H_BTd, ids, sel, lm, mask_BT, stored_tokens):
    """(image, token) -> row by the definitions, with explicit loops."""
    rows = {}
    for b, img in enumerate(ids):
        H = H_BTd[b]
        if H.ndim == 1:
            rows[(img, -1)] = H
            continue
        if mask_BT is not None:
            toks = [t for t in range(H.shape[0]) if mask_BT[b, t]]
            pos = {t: i for i, t in enumerate(toks)}  # right padding: position == index
            if sel == "mean":
                rows[(img, -1)] = torch.stack([H[t] for t in toks]).mean(0)
            elif sel in ("all", "patches"):  # NaFlex: every real patch
                rows.update({(img, pos[t]): H[t] for t in toks})
            else:
                rows.update({(img, int(t)): H[int(t)] for t in stored_tokens[img]})
                assert len(stored_tokens[img]) == min(3, len(toks)) and set(stored_tokens[img]) <= set(
                    pos.values()
                )
            continue
        p, T = lm.n_prefix, H.shape[0]
        if sel == "cls":
            rows[(img, 0)] = H[0]
        elif sel == "mean":
            rows[(img, -1)] = torch.stack([H[t] for t in range(p, T)]).mean(0)
        elif sel == "patches":
            rows.update({(img, t): H[t] for t in range(p, T)})
        elif sel == "registers":
            rows.update({(img, t): H[t] for t in range(1, p)})
        elif sel == "all":
            rows.update({(img, t): H[t] for t in range(T)})
        else:
            t = stored_tokens[img]
            assert len(t) == 3 == len(set(t)) and min(t) >= p and max(t) < T
            rows.update({(img, int(x)): H[int(x)] for x in t})
    return rows


def _check_case(tmp_path, tiny_dirs, data, kind, tower, selections, dtype="float32", atol=1e-5):
    lm = load(str(tiny_dirs[kind]), tower=tower)
    root, prompts = data
    src = str(prompts if lm.modality == "text" else root)
    hooks = ("resid.0", "resid.-1", "mlp.1") + (("embed",) if lm.embed_fields else ())
    for sel in selections:
        if sel == "cls" and not lm.has_cls:
            continue
        out = tmp_path / f"{kind}-{tower}-{sel.replace(':', '')}"
        extract(
            ExtractConfig(
                model="unused",
                hooks=hooks,
                data=src,
                out=str(out),
                tokens=sel,
                dtype=dtype,
                batch_size=2,
                rows_per_shard=7,
                progress=False,
            ),
            model=lm,
        )
        items = load_table(out / "resid.0")["items"]
        items = [str(root / x) for x in items] if lm.modality == "image" else items
        ref, ids, mask = _reference(lm, items, hooks)
        for h in ("resid.0", "resid.1", "mlp.1") + hooks[3:]:
            s = ActivationStore.open(out / h)
            assert s.complete and s.provenance["hook"] == h
            got = s[0 : len(s)]
            img, tok = s.image_index, s.token_index
            stored = {}
            for i, t in zip(img, tok):
                stored.setdefault(int(i), []).append(int(t))
            want = _expected_rows(ref[h], ids, sel, lm, mask, stored)
            assert len(s) == len(want), (h, sel)
            assert sorted(zip(img.tolist(), tok.tolist())) == sorted(want)
            assert list(img) == sorted(img)  # rows in image order
            exp = torch.stack([want[(int(i), int(t))] for i, t in zip(img, tok)]).float()
            torch.testing.assert_close(got, exp, atol=atol, rtol=atol)
            if lm.modality == "image":
                assert [x["reason"] for x in s.skipped] == ["not an image (unidentified format)"]


@pytest.mark.parametrize("kind,tower", IMAGE_CASES)
def test_image_families(tmp_path, tiny_dirs, data, kind, tower):
    _check_case(tmp_path, tiny_dirs, data, kind, tower, IMAGE_SELECTIONS)


@pytest.mark.parametrize("kind", ["dinov2_registers", "dinov3"])
def test_register_tokens_are_their_own_kind(tmp_path, tiny_dirs, data, kind):
    """``--tokens registers`` stores tokens 1..R (after CLS); ``patches`` never holds them."""
    lm = load(str(tiny_dirs[kind]))
    assert (lm.has_cls, lm.n_prefix) == (True, 3)  # CLS + 2 register tokens
    _check_case(tmp_path, tiny_dirs, data, kind, None, ["registers"])
    s = ActivationStore.open(tmp_path / f"{kind}-None-registers" / "resid.0")
    assert sorted(set(s.token_index.tolist())) == [1, 2]


def test_naflex_padding_is_never_a_row(tmp_path, tiny_dirs, data):
    """SigLIP 2 NaFlex: images of other aspect ratios get other patch grids; their padding tokens
    are not stored, and token t of an image is patch (t // w, t % w) of its own h x w grid."""
    from vsae.data import load_image

    lm = load(str(tiny_dirs["siglip2_vision"]))
    root, _ = data
    paths = sorted(str(p) for p in root.rglob("*.png") if p.name != "broken.png")
    x = lm.preprocess([load_image(p) for p in paths])
    hw = x["spatial_shapes"]
    n_real = (hw[:, 0] * hw[:, 1]).tolist()
    assert x["pixel_attention_mask"].sum(1).tolist() == n_real
    assert min(n_real) < x["pixel_values"].shape[1]  # some image is padded
    _check_case(tmp_path, tiny_dirs, data, "siglip2_vision", None, ["patches"])
    s = ActivationStore.open(tmp_path / "siglip2_vision-None-patches" / "resid.0")
    items = load_table(tmp_path / "siglip2_vision-None-patches" / "resid.0")["items"]
    by_path = dict(zip(paths, n_real))
    for i, p in enumerate(items):
        toks = s.token_index[s.image_index == i].tolist()
        if toks:
            assert toks == list(range(by_path[str(root / p)]))


@pytest.mark.parametrize("kind,tower", TEXT_CASES)
def test_text_families(tmp_path, tiny_dirs, data, kind, tower):
    _check_case(tmp_path, tiny_dirs, data, kind, tower, TEXT_SELECTIONS)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_storage_within_dtype_tolerance(tmp_path, tiny_dirs, data, dtype):
    _check_case(
        tmp_path,
        tiny_dirs,
        data,
        "clip_vision_proj",
        None,
        ["patches"],
        dtype=dtype,
        atol={"float16": 2e-3, "bfloat16": 1.6e-2}[dtype],
    )


def test_random_tokens_depend_on_seed_only_through_image(tmp_path, tiny_dirs, data):
    lm = load(str(tiny_dirs["dinov2"]))
    toks = []
    for seed, bs in ((0, 2), (0, 5), (1, 2)):
        out = tmp_path / f"s{seed}-{bs}"
        extract(
            ExtractConfig(
                model="x",
                hooks=("resid.0",),
                data=str(data[0]),
                out=str(out),
                tokens="random:4",
                seed=seed,
                batch_size=bs,
                progress=False,
            ),
            model=lm,
        )
        toks.append(ActivationStore.open(out).token_index.tolist())
    assert toks[0] == toks[1] and toks[0] != toks[2]
    assert np.all(np.array(toks[0]) >= 1)
