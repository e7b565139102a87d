"""Any nn.Module: blocks in any indexable container, and the command-line routes
`--model python:package.module:factory` and `--model timm:NAME`."""

import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from vsae.cli import main as cli_main
from vsae.data.fake_images import noise
from vsae.errors import VsaeError
from vsae.models import capture, from_module, load
from vsae.store import ActivationStore

FACTORY = '''
import numpy as np
import torch
from torch import nn


class TinyCNN(nn.Module):
    """A conv stem, then blocks in an nn.Sequential (as timm and torchvision models hold them)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.blocks = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1))
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = self.stem(x)
        for b in self.blocks:
            x = x + torch.relu(b(x))
        return self.pool(x).flatten(1)


def preprocess(images):
    arrs = [np.asarray(im.convert("RGB").resize((16, 16)), np.float32) / 255 for im in images]
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()


def make():
    torch.manual_seed(0)
    return TinyCNN(), preprocess, {"blocks": "blocks"}


def make_loaded():
    import vsae.models

    torch.manual_seed(0)
    return vsae.models.from_module(TinyCNN(), preprocess, name="tiny", blocks="blocks")


def broken():
    raise RuntimeError("no weights here")


def wrong():
    return 42
'''


@pytest.fixture
def factory_dir(tmp_path, monkeypatch):
    d = tmp_path / "pkg"
    d.mkdir()
    (d / "tinycnn_factory.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(d))
    yield d
    sys.modules.pop("tinycnn_factory", None)


def test_blocks_in_a_sequential_or_a_list(factory_dir):
    import tinycnn_factory as f

    net, prep, _ = f.make()
    x = torch.randn(2, 3, 16, 16)
    for blocks in ("blocks", list(net.blocks), net.blocks):
        lm = from_module(net, prep, blocks=blocks)
        assert lm.num_layers == 2
        with capture(lm, ["resid.0", "resid.-1"]) as cap:
            lm.run(x)
        with torch.no_grad():
            h = net.stem(x)
            r0 = h + torch.relu(net.blocks[0](h))
        torch.testing.assert_close(cap.outputs["resid.0"], net.blocks[0](h))  # the block's own output
        torch.testing.assert_close(cap.outputs["resid.1"], net.blocks[1](r0))
    for bad in ("pool", "nothing.here", [1, 2]):
        with pytest.raises(VsaeError, match="not an indexable container of blocks"):
            from_module(net, prep, blocks=bad)


def _images(tmp_path, n=6):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(n):
        noise(i, (20, 20)).save(d / f"{i}.png")
    (tmp_path / "list.txt").write_text("".join(f"imgs/{i}.png\n" for i in range(n)))
    return tmp_path / "list.txt"


def _extract(model, data, out, *hooks):
    opts = "--tokens all --dtype float32 --batch-size 4 --num-workers 0 --threads 1 --quiet"
    args = ["extract", "--model", model, "--data", str(data), "--out", str(out), *opts.split()]
    for h in hooks:
        args += ["--hook", h]
    try:
        cli_main(args)
    except SystemExit as e:
        assert e.code in (0, None), e.code


def test_python_factory_route_through_the_cli(tmp_path, factory_dir):
    import tinycnn_factory as f

    from vsae.data import load_image

    data = _images(tmp_path)
    _extract("python:tinycnn_factory:make", data, tmp_path / "s", "module:stem", "resid.1", "embed")
    net, prep, _ = f.make()
    x = prep([load_image(tmp_path / "imgs" / f"{i}.png") for i in range(6)])
    with torch.no_grad():
        stem = net.stem(x)
        r0 = stem + torch.relu(net.blocks[0](stem))
        want = {
            "module_stem": stem.flatten(2).transpose(1, 2).reshape(-1, 8),
            "resid.1": net.blocks[1](r0).flatten(2).transpose(1, 2).reshape(-1, 8),
            "embed": net(x),
        }
    for name, w in want.items():
        s = ActivationStore.open(tmp_path / "s" / name)
        torch.testing.assert_close(s[0 : len(s)], w)
        prov = s.manifest["provenance"]
        assert prov["model"] == "python:tinycnn_factory:make" and prov["family"] == "module"
        assert len(prov["weights_sha256"]) == 64
    # a file path and a factory returning a LoadedModel work the same
    _extract(f"python:{factory_dir / 'tinycnn_factory.py'}:make_loaded", data, tmp_path / "f", "embed")
    s = ActivationStore.open(tmp_path / "f")
    torch.testing.assert_close(s[0 : len(s)], want["embed"])


@pytest.mark.parametrize(
    "model, want",
    [
        ("python:no_such_module_xyz:make", "cannot import 'no_such_module_xyz'"),
        ("python:tinycnn_factory:missing", "has no function 'missing'"),
        ("python:tinycnn_factory", "expected python:package.module:factory"),
        ("python:tinycnn_factory:broken", "raised RuntimeError: no weights here"),
        ("python:tinycnn_factory:wrong", "returned int; it must return a LoadedModel"),
        ("timm:", "needs a model name"),
    ],
)
def test_python_route_errors_are_one_line(tmp_path, factory_dir, capsys, model, want):
    data, out = _images(tmp_path), tmp_path / "o"
    with pytest.raises(SystemExit) as e:
        cli_main(
            [
                "extract",
                "--model",
                model,
                "--hook",
                "embed",
                "--data",
                str(data),
                "--out",
                str(out),
                "--quiet",
            ]
        )
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and want in err[0], err


def test_timm_not_installed_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    with pytest.raises(
        VsaeError, match="needs timm, which is not installed; install it as docs/extract.md shows"
    ) as e:
        load("timm:resnet18")
    assert "\n" not in str(e.value)


def test_timm_route_with_a_stand_in_timm(monkeypatch):
    """The glue to timm's API (create_model, resolve_model_data_config, create_transform) on a
    stand-in module: timm itself is not installed here."""
    calls = {}

    class ViTish(nn.Module):
        num_prefix_tokens = 1

        def __init__(self):
            super().__init__()
            self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
            self.patch = nn.Conv2d(3, 8, 8, stride=8)
            self.blocks = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))

        def forward(self, x):
            t = self.patch(x).flatten(2).transpose(1, 2)
            t = torch.cat([self.cls_token.expand(len(t), -1, -1), t], 1)
            for b in self.blocks:
                t = t + b(t)
            return t[:, 0]

    def create_model(name, pretrained, num_classes):
        calls["create"] = (name, pretrained, num_classes)
        torch.manual_seed(0)
        return ViTish()

    def create_transform(input_size, is_training, **kw):
        calls["transform"] = (input_size, is_training)

        def transform(im):
            return torch.from_numpy(np.asarray(im.resize(input_size[1:]), np.float32) / 255).permute(2, 0, 1)

        return transform

    data = types.ModuleType("timm.data")
    data.resolve_model_data_config = lambda model: {"input_size": (3, 16, 16), "interpolation": "bicubic"}
    data.create_transform = create_transform
    timm = types.ModuleType("timm")
    timm.create_model, timm.data = create_model, data
    monkeypatch.setitem(sys.modules, "timm", timm)
    monkeypatch.setitem(sys.modules, "timm.data", data)
    from vsae.models import hub

    monkeypatch.setattr(
        hub, "offline_env", lambda: False
    )  # online: timm downloads (offline: test_timm_python.py)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=1.0: True)
    lm = load("timm:vit_tiny_test")
    assert calls == {"create": ("vit_tiny_test", True, 0), "transform": ((3, 16, 16), False)}
    assert lm.num_layers == 2 and lm.has_cls and lm.n_prefix == 1
    assert lm.provenance["model"] == "timm:vit_tiny_test"
    assert lm.provenance["timm_data_config"]["input_size"] == [3, 16, 16]
    x = lm.dummy_inputs()
    assert x.shape == (1, 3, 16, 16)
    with capture(lm, ["resid.1", "embed"]) as cap:
        lm.run(x)
    assert cap.outputs["resid.1"].shape == (1, 5, 8) and cap.outputs["embed"].shape == (1, 8)
