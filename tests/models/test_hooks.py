"""Hook names, errors, early stop, cleanup, module: hooks and custom nn.Modules."""

import pytest
import torch
from torch import nn

from vsae.errors import VsaeError
from vsae.models import capture, from_module, load, resolve_hook
from vsae.models.tiny_models import build_tiny


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return load(str(build_tiny("clip_vision_proj", tmp_path_factory.mktemp("m") / "clip")))


def test_negative_layers_and_canonical_names(lm):
    assert resolve_hook(lm, "resid.-1").name == "resid.1"
    assert resolve_hook(lm, "mlp.-2").module is lm.blocks[0].mlp
    assert resolve_hook(lm, "attn.1").module is lm.blocks[1].self_attn
    assert resolve_hook(lm, "module:vision_model.post_layernorm").name == "module:vision_model.post_layernorm"
    assert lm.hook_module("resid.0") is lm.blocks[0]


@pytest.mark.parametrize(
    "bad", ["resid.2", "resid.-3", "mlp.7", "foo", "resid", "module:no.such.thing", "layer.1"]
)
def test_bad_hooks_give_one_line_listing_valid(lm, bad):
    with pytest.raises(VsaeError) as e:
        resolve_hook(lm, bad)
    msg = str(e.value)
    assert "\n" not in msg and "resid.L" in msg and "0..1" in msg and "embed" in msg


def _calls(module):
    n = []
    h = module.register_forward_hook(lambda *a: n.append(1))
    return n, h


def test_early_stop_skips_later_blocks_and_hooks_are_removed(lm):
    x = lm.dummy_inputs()
    later, h = _calls(lm.blocks[1])
    with capture(lm, "resid.0") as cap:
        lm.run(x)
        lm.run(x)  # a second pass re-captures cleanly
    assert cap.output.shape == (1, 17, 32)
    assert later == []  # block 1 never ran
    with capture(lm, "resid.0", stop_early=False):
        lm.run(x)
    assert later == [1]
    h.remove()
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in lm.model.modules())


def test_module_hook_returns_tuple_output(lm):
    # attention modules return (output, weights); the capture keeps the first element
    with capture(lm, ["module:vision_model.encoder.layers.0.self_attn", "attn.0"]) as cap:
        lm.run(lm.dummy_inputs())
    a = cap.outputs["module:vision_model.encoder.layers.0.self_attn"]
    torch.testing.assert_close(a, cap.outputs["attn.0"])


class TinyNet(nn.Module):
    """A CNN stem followed by two transformer-ish blocks (each a Linear)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 4, stride=4)
        self.blocks = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        t = self.conv(x).flatten(2).transpose(1, 2)
        for b in self.blocks:
            t = t + b(t)
        return self.head(t.mean(1))


def test_custom_module_hooks():
    torch.manual_seed(0)
    net = TinyNet()

    def prep(images):
        import numpy as np

        return torch.stack(
            [
                torch.from_numpy(np.asarray(im.resize((16, 16)), np.float32)).permute(2, 0, 1) / 255
                for im in images
            ]
        )

    lm = from_module(net, prep, name="tinynet", blocks="blocks")
    assert lm.num_layers == 2 and lm.family == "module"
    x = lm.dummy_inputs()
    with capture(lm, ["module:conv", "resid.1", "embed"]) as cap:
        lm.run(x)
    assert cap.outputs["module:conv"].shape == (1, 8, 4, 4)
    assert cap.outputs["embed"].shape == (1, 5)
    with torch.no_grad():
        torch.testing.assert_close(cap.outputs["embed"], net(x))
    with pytest.raises(VsaeError, match="not an indexable container of blocks"):
        from_module(net, prep, blocks="head")
    with pytest.raises(VsaeError, match="no attn sub-module"):
        resolve_hook(lm, "attn.0")
    assert len(lm.provenance["weights_sha256"]) == 64


def _bn_relu6_net():
    """Conv -> BatchNorm -> ReLU6(inplace=True) -> Conv: the ReLU6 overwrites the BN's output."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU6(inplace=True), nn.Conv2d(6, 4, 1)
    )
    with torch.no_grad():
        net[1].weight.fill_(10.0)  # a range well beyond [0, 6]
    return net


def test_capture_keeps_values_at_the_hook_point_despite_inplace_ops_downstream():
    net = _bn_relu6_net()
    lm = from_module(net, lambda images: torch.randn(len(images), 3, 8, 8), name="bn-relu6")
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        want = net[1](net[0](x))
    assert float(want.min()) < -1 and float(want.max()) > 7
    with capture(lm, "module:1") as alone:
        lm.run(x)
    with capture(lm, ["module:1", "module:3"]) as both:
        lm.run(x)
    with capture(lm, ["module:1"], stop_early=False) as no_stop:
        lm.run(x)
    torch.testing.assert_close(alone.output, want)
    torch.testing.assert_close(both.outputs["module:1"], want)
    torch.testing.assert_close(no_stop.output, want)
    torch.testing.assert_close(both.outputs["module:3"], net(x))
