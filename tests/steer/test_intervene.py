"""Interventions: the no-edit identity, exact edits at the hook, nothing upstream, removal."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import vsae.models
from vsae.errors import VsaeError
from vsae.steer import LatentEdit, intervene, splice


def _run(lm, pix):
    with torch.no_grad():
        return lm.model(pixel_values=pix).last_hidden_state


def _captured(lm, hooks, pix):
    with vsae.models.capture(lm, hooks, stop_early=False) as cap:
        lm.run({"pixel_values": pix})
    return {k: v.clone() for k, v in cap.outputs.items()}


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def test_no_edit_is_identity(tiny_clip, sae, pixel_values):
    ref = _run(tiny_clip, pixel_values)
    with intervene(tiny_clip, "resid.0", sae) as h:
        out = _run(tiny_clip, pixel_values)
    assert h.calls == 1
    assert torch.equal(out, ref)
    # Edits that change no latent go through the full SAE path and must still be the identity.
    noop = [LatentEdit(f, "scale", 1.0) for f in range(0, 128, 7)] + [LatentEdit(3, "add", 0.0)]
    with intervene(tiny_clip, "resid.0", sae, noop):
        out = _run(tiny_clip, pixel_values)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_clamp_changes_hooked_activations_exactly(tiny_clip, sae, pixel_values):
    before = _captured(tiny_clip, ["embed", "resid.0", "resid.1"], pixel_values)
    f, v = 5, 100.0
    with intervene(tiny_clip, "resid.0", sae, [LatentEdit(f, "clamp", v)]):
        after = _captured(tiny_clip, ["embed", "resid.0", "resid.1"], pixel_values)
    x = before["resid.0"]
    z = sae.encode(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:2], -1)
    # decode is affine: clamping z_f to v moves every token by (v - z_f) * W_dec[f].
    expected = x + (v - z[..., f, None]) * sae.W_dec_Fd[f]
    torch.testing.assert_close(after["resid.0"], expected.detach(), rtol=1e-5, atol=1e-4)
    # Downstream changes, and the pooled output (not hooked) too.
    assert not torch.allclose(after["resid.1"], before["resid.1"])
    assert not torch.allclose(after["embed"], before["embed"])


def test_nothing_upstream_changes(tiny_clip, sae, pixel_values):
    before = _captured(tiny_clip, ["resid.0", "module:embeddings"], pixel_values)
    with intervene(tiny_clip, "resid.1", sae, [LatentEdit(1, "clamp", 50.0)]):
        after = _captured(tiny_clip, ["resid.0", "module:embeddings", "resid.1"], pixel_values)
    assert torch.equal(after["resid.0"], before["resid.0"])
    assert torch.equal(after["module:embeddings"], before["module:embeddings"])


@pytest.mark.parametrize(
    ("tokens", "changed"),
    [("cls", [0]), ("patches", list(range(1, 17))), ((2, 4), [2, 4]), ("all", list(range(17)))],
)
def test_token_selection(tiny_clip, sae, pixel_values, tokens, changed):
    x = _captured(tiny_clip, "resid.0", pixel_values)["resid.0"]
    with intervene(tiny_clip, "resid.0", sae, [LatentEdit(9, "clamp", 30.0, tokens=tokens)]):
        y = _captured(tiny_clip, "resid.0", pixel_values)["resid.0"]
    moved = (y - x).abs().amax(dim=(0, 2)) > 1e-3
    assert moved.nonzero().flatten().tolist() == changed


def test_token_mask_per_image(tiny_clip, sae, pixel_values):
    mask = torch.zeros(3, 17, dtype=torch.bool)
    mask[1, 3] = True
    x = _captured(tiny_clip, "resid.0", pixel_values)["resid.0"]
    with intervene(tiny_clip, "resid.0", sae, [LatentEdit(9, "add", 20.0, tokens=mask)]):
        y = _captured(tiny_clip, "resid.0", pixel_values)["resid.0"]
    moved = (y - x).abs().amax(dim=2) > 1e-3
    assert torch.equal(moved, mask)


def test_ops_and_pre_zero(tiny_clip, sae, pixel_values):
    x = _captured(tiny_clip, "resid.0", pixel_values)["resid.0"]
    x_Nd = x.reshape(-1, 32)
    z = sae.encode(x_Nd)
    W = sae.W_dec_Fd.detach()
    f = int(z.abs().sum(0).argmax())  # a latent that fires
    cases = {
        "scale": (LatentEdit(f, "scale", 3.0), 2.0 * z[:, f : f + 1] * W[f]),
        "ablate": (LatentEdit(f, "ablate"), -z[:, f : f + 1] * W[f]),
        "add": (LatentEdit(f, "add", 7.0), 7.0 * W[f].expand_as(x_Nd)),
    }
    for name, (edit, delta) in cases.items():
        with intervene(tiny_clip, "resid.0", sae, [edit]):
            y = _captured(tiny_clip, "resid.0", pixel_values)["resid.0"].reshape(-1, 32)
        torch.testing.assert_close(y, (x_Nd + delta).detach(), rtol=1e-5, atol=1e-4, msg=name)
    # pre_zero: only the clamped latent remains -> x + (v W_f + b) - (z W + b)
    with intervene(tiny_clip, "resid.0", sae, [LatentEdit(2, "clamp", 10.0)], pre_zero=True):
        y = _captured(tiny_clip, "resid.0", pixel_values)["resid.0"].reshape(-1, 32)
    expected = x_Nd + 10.0 * W[2] - z @ W
    torch.testing.assert_close(y, expected.detach(), rtol=1e-5, atol=1e-4)


def test_keep_error_false_is_reconstruction(tiny_clip, sae, pixel_values):
    x = _captured(tiny_clip, "resid.0", pixel_values)["resid.0"]
    with intervene(tiny_clip, "resid.0", sae, keep_error=False):
        y = _captured(tiny_clip, "resid.0", pixel_values)["resid.0"]
    torch.testing.assert_close(y, sae.decode(sae.encode(x.reshape(-1, 32))).reshape(x.shape).detach())


def test_plain_function_and_removal(tiny_clip, sae, pixel_values):
    ref = _run(tiny_clip, pixel_values)
    module = tiny_clip.hook_module("resid.0")
    n_hooks = len(module._forward_hooks)
    h = splice(tiny_clip, "resid.0", sae, [LatentEdit(0, "clamp", 100.0)])
    assert not torch.allclose(_run(tiny_clip, pixel_values), ref)
    h.remove()
    assert len(module._forward_hooks) == n_hooks
    assert torch.equal(_run(tiny_clip, pixel_values), ref)
    # The model class is untouched (no patching): same type and forward as before.
    assert type(module).forward is type(module).__dict__.get("forward", type(module).forward)


class _TupleBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(32, 32)

    def forward(self, x):
        return self.lin(x), "aux"


def test_tuple_output_and_plain_module(sae):
    net = nn.Sequential(_TupleBlock())
    x = torch.randn(2, 5, 32)
    with intervene(net, "module:0", sae, [LatentEdit(4, "clamp", 10.0)]):
        y, aux = net(x)
    ref, _ = net(x)
    assert aux == "aux"
    z = sae.encode(ref.reshape(-1, 32))
    torch.testing.assert_close(y, (ref + (10.0 - z[:, 4]).reshape(2, 5, 1) * sae.W_dec_Fd[4]).detach())
    with pytest.raises(VsaeError):
        splice(net, "resid.0", sae)


def test_bad_edits():
    with pytest.raises(VsaeError):
        LatentEdit(1, "multiply", 2.0)
    with pytest.raises(VsaeError):
        LatentEdit(-1)
    with pytest.raises(VsaeError):
        LatentEdit(1, tokens="cats")


def test_llava_image_features_follow_the_splice(tiny_llava_dir, sae):
    """LLaVA reads hidden_states recorded by hooks transformers installs lazily: the splice must
    run before them, even when the model has already run (hooks installed)."""
    lm = vsae.models.load(str(tiny_llava_dir))
    llava = lm.full_model
    pix = torch.randn(1, 3, 32, 32)
    layer = llava.config.vision_feature_layer  # -2: block L-2's output feeds the projector
    hook = f"resid.{lm.num_layers + layer}"
    with torch.no_grad():
        ref = llava.model.get_image_features(pixel_values=pix).pooler_output[0]
        with intervene(lm, hook, sae, [LatentEdit(3, "clamp", 100.0)]):
            out = llava.model.get_image_features(pixel_values=pix).pooler_output[0]
        again = llava.model.get_image_features(pixel_values=pix).pooler_output[0]
    assert not torch.allclose(out, ref)
    assert torch.equal(again, ref)


def test_width_mismatch_is_a_user_error(tiny_clip, pixel_values):
    from .conftest import make_sae

    with (
        intervene(tiny_clip, "resid.0", make_sae(d_in=16, d_sae=32, k=4), [LatentEdit(0)]),
        pytest.raises(VsaeError, match="d_in is 16"),
    ):
        _run(tiny_clip, pixel_values)


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 12, 3, padding=1), nn.ReLU(), nn.Conv2d(12, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )


def test_cnn_feature_map_splice_uses_the_extraction_layout():
    """A [B, C, H, W] hook output is spliced as the H*W tokens of width C that extraction stores."""
    from vsae.steer.reconstruction import splice_effect

    from .conftest import make_sae

    net = _cnn()
    lm = vsae.models.from_module(net, lambda ims: torch.randn(len(ims), 3, 7, 5), name="cnn")
    x = torch.randn(2, 3, 7, 5)  # H=7, W=5: neither is the channel width 12
    sae = make_sae(d_in=12, d_sae=48, k=4)
    with vsae.models.capture(lm, "module:0") as cap:
        lm.run(x)
    rows, img, tok = vsae.models.select_tokens(cap.output, "all", False, [0, 1])  # as the store
    assert rows.shape == (2 * 35, 12) and list(tok[:3]) == [0, 1, 2]
    z = sae.encode(rows)
    edited = rows + (10.0 - z[:, 5])[:, None] * sae.W_dec_Fd[5]
    fm = edited.reshape(2, 7, 5, 12).permute(0, 3, 1, 2)  # row-major tokens back to [B, C, H, W]
    with intervene(lm, "module:0", sae, [LatentEdit(5, "clamp", 10.0)]) as h:
        out = net(x)
    assert h.calls == 1
    torch.testing.assert_close(out, net[1:](fm), atol=1e-5, rtol=1e-5)
    recon = sae.decode(z).reshape(2, 7, 5, 12).permute(0, 3, 1, 2)
    with intervene(net, "module:0", sae, keep_error=False):  # a plain module: same layout
        torch.testing.assert_close(net(x), net[1:](recon), atol=1e-5, rtol=1e-5)
    eff = splice_effect(lm, "module:0", sae, [x])
    torch.testing.assert_close(torch.as_tensor(eff["spliced"]), net[1:](recon), atol=1e-5, rtol=1e-5)
    with (
        intervene(lm, "module:0", make_sae(d_in=5, d_sae=16, k=2), [LatentEdit(0)]),
        pytest.raises(VsaeError, match=r"width 12 \(its \[2, 12, 7, 5\] output read as \[B, H\*W, C\]"),
    ):
        net(x)
