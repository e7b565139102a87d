"""Qwen2.5-VL / Qwen3-VL vision towers: the hooks reshape the model's flat, window-reordered patch
sequence to per-image raster grids, equal to the model's own hidden states placed by an independent
scatter, and the merger applied to them gives the model's own (un-windowed) output;
`vsae extract --tower vision` stores them; a splice writes edited grids back in the packed order.
Tiny random-weight models, no torchvision."""

import numpy as np
import pytest
import torch
from PIL import Image
from tests.models.qwen_tiny import MERGE, build_tiny_qwen

from vsae.errors import VsaeError
from vsae.extract import ExtractConfig, extract
from vsae.models import capture, load
from vsae.store import ActivationStore

KINDS = ("qwen2_5_vl", "qwen3_vl")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("qwen")
    return {k: build_tiny_qwen(k, root / k) for k in KINDS}


def _images():
    g = torch.Generator().manual_seed(0)
    return [
        Image.fromarray((torch.rand(h, w, 3, generator=g) * 255).byte().numpy())
        for h, w in ((40, 36), (30, 60), (32, 32))
    ]


def _raster(S, grid_thw, window_index):
    """For each flat position p: (image b, raster index of its patch). Position p holds merge unit
    window_index[p // m²] (in processor order), patch p % m² of that unit."""
    unit = MERGE * MERGE
    (t, h, w), out = grid_thw[0].tolist(), []
    for p in range(S):
        k = (int(window_index[p // unit]) if window_index is not None else p // unit) * unit + p % unit
        b, k = divmod(k, t * h * w)
        u, (i, j) = k // unit, divmod(k % unit, MERGE)
        hb, wb = divmod(u, w // MERGE)
        out.append((b, (hb * MERGE + i) * w + wb * MERGE + j))
    return out


def _scatter(flat_Sd, grid_thw, window_index):
    """The model's flat sequence placed at its raster positions, position by position."""
    B, (t, h, w) = len(grid_thw), grid_thw[0].tolist()
    out = torch.full((B, t * h * w, flat_Sd.shape[1]), float("nan"))
    for p, (b, r) in enumerate(_raster(len(flat_Sd), grid_thw, window_index)):
        out[b, r] = flat_Sd[p]
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_vision_hooks_are_the_models_hidden_states_on_per_image_grids(dirs, kind):
    lm = load(str(dirs[kind]))
    assert (lm.family, lm.tower, lm.has_cls, lm.n_prefix) == (kind, "vision", False, 0)
    assert lm.model is lm.full_model.model.visual
    x = lm.preprocess(_images())
    assert x["grid_thw"].tolist() == [[1, 32, 32]] * 3  # one square view per image, whatever its size
    with capture(lm, ["resid.0", "resid.1", "attn.1", "mlp.1", "embed"], stop_early=False) as cap:
        lm.run(x)
    with torch.no_grad():
        own = lm.model(**x, output_hidden_states=True)
    win = lm.window_index()
    assert (win is not None) == (kind == "qwen2_5_vl")
    if win is not None:  # the tiny config's windows reorder the sequence (not an involution either)
        assert not torch.equal(win, torch.arange(len(win))) and not torch.equal(
            win[win], torch.arange(len(win))
        )
    for layer in (0, 1):
        want = _scatter(own.hidden_states[layer + 1], x["grid_thw"], win)
        torch.testing.assert_close(cap.outputs[f"resid.{layer}"], want)
    delta = cap.outputs["resid.1"] - cap.outputs["resid.0"]
    torch.testing.assert_close(delta, cap.outputs["attn.1"] + cap.outputs["mlp.1"], atol=1e-5, rtol=1e-4)
    # the model un-windows only after its merger: merging our raster grid reproduces that output
    r = (
        cap.outputs["resid.1"]
        .reshape(3, 16, MERGE, 16, MERGE, -1)
        .permute(0, 1, 3, 2, 4, 5)
        .reshape(3 * 1024, -1)
    )
    with torch.no_grad():
        merged = lm.model.merger(r)
    torch.testing.assert_close(merged, own.pooler_output, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(cap.outputs["embed"], own.pooler_output.reshape(3, 256, -1))


def test_extract_stores_the_grids_and_refuses_what_does_not_apply(dirs, tmp_path):
    data = tmp_path / "imgs"
    data.mkdir()
    ims = _images()
    for i, im in enumerate(ims):
        im.save(data / f"{i}.png")
    lm = load(str(dirs["qwen2_5_vl"]))
    with capture(lm, ["resid.1"]) as cap:
        lm.run(lm.preprocess([Image.open(data / f"{i}.png") for i in range(3)]))
    ref = cap.outputs["resid.1"]
    base = dict(model=str(dirs["qwen2_5_vl"]), data=str(data), num_workers=0, dtype="float32", progress=False)
    for tokens, rows in (("patches", ref.reshape(-1, ref.shape[-1])), ("mean", ref.mean(1))):
        out = extract(ExtractConfig(hooks=("resid.1",), out=str(tmp_path / tokens), tokens=tokens, **base))
        st = ActivationStore.open(out)
        torch.testing.assert_close(st[0 : len(st)], rows, atol=1e-5, rtol=1e-5)
        if tokens == "patches":
            assert np.array_equal(st.token_index[:3], [0, 1, 2]) and len(st) == 3 * 1024
    with pytest.raises(VsaeError, match="no CLS token"):
        extract(ExtractConfig(hooks=("resid.1",), out=str(tmp_path / "cls"), tokens="cls", **base))
    with pytest.raises(VsaeError, match="tower 'language' not available"):
        load(str(dirs["qwen3_vl"]), tower="language")


class _RowScale(torch.nn.Module):
    """A stand-in SAE (identity code) whose decoder scales row n of the [B*T, d] rows by 1 + n/1000:
    its effect depends on each row's (image, raster position)."""

    def __init__(self, scale=True):
        super().__init__()
        self.scale = scale
        self.register_buffer("one", torch.ones(()))

    def encode(self, x):
        return x

    def decode(self, z):
        return z * (1 + torch.arange(len(z))[:, None] / 1000) if self.scale else z * self.one


@pytest.mark.parametrize("kind", KINDS)
def test_a_splice_writes_the_edited_grids_back_into_the_packed_sequence(dirs, kind):
    from vsae.steer.intervention import intervene

    lm = load(str(dirs[kind]))
    x = lm.preprocess(_images())
    with torch.no_grad():
        plain = lm.model(**x).pooler_output
        with intervene(lm, "resid.0", _RowScale(scale=False), keep_error=False):
            same = lm.model(**x).pooler_output
        with intervene(lm, "resid.0", _RowScale(), keep_error=False):
            steered = lm.model(**x).pooler_output
    assert torch.equal(same, plain)  # grid -> packed is the exact inverse of packed -> grid
    assert not torch.allclose(steered, plain)
    win, T = lm.window_index(), 32 * 32
    pos = _raster(3 * T, x["grid_thw"], win)
    scale_S = torch.tensor([1 + (b * T + r) / 1000 for b, r in pos])[:, None]
    handle = lm.model.blocks[0].register_forward_hook(lambda m, a, out: out * scale_S)
    try:
        with torch.no_grad():
            want = lm.model(**x).pooler_output  # the same edit made on the packed sequence directly
    finally:
        handle.remove()
    torch.testing.assert_close(steered, want)
