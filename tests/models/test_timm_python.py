"""Issue 30: `--model timm:NAME` says what is really missing, loads local weights, fails at once
offline; `--model python:...` reports any import error in one line and imports the file's siblings.

timm is not installed here (it needs torchvision, never installed in this venv): a stand-in
`timm` module with timm's API (create_model, models.get_pretrained_cfg, data.*) and a tiny
EfficientNet-like CNN (conv stem, blocks in an nn.Sequential, head conv, pooled classifier)."""

import sys
import time
import types

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from vsae.cli import main as cli_main
from vsae.data.fake_images import noise
from vsae.errors import VsaeError
from vsae.models import capture, hub, load
from vsae.store import ActivationStore


class TinyEfficientNet(nn.Module):
    """timm's layout: conv_stem, blocks (Sequential), conv_head, global pool, classifier."""

    pretrained_cfg = {"classifier": "classifier"}

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 8, 4, stride=4)
        self.bn1 = nn.BatchNorm2d(8)
        self.blocks = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1))
        self.conv_head = nn.Conv2d(16, 12, 1)
        self.classifier = nn.Linear(12, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x):
        x = torch.relu(self.bn1(self.conv_stem(x)))
        for b in self.blocks:
            x = torch.relu(b(x))
        return self.conv_head(x)

    def forward(self, x):
        return self.classifier(self.forward_features(x).mean((2, 3)))


def _transform(input_size):
    def f(im):
        return torch.from_numpy(np.asarray(im.resize(input_size[1:]), np.float32) / 255).permute(2, 0, 1)

    return f


@pytest.fixture
def fake_timm(monkeypatch):
    """A stand-in `timm` that records its calls; no weights anywhere but what a test gives."""
    calls = []

    def create_model(name, pretrained=False, num_classes=10, **kw):
        calls.append(("create", name, pretrained, num_classes))
        if name != "tiny_effnet":
            raise RuntimeError(f"Unknown model ({name})")
        torch.manual_seed(123)  # random init: a test's weights must replace it
        return TinyEfficientNet(num_classes)

    data = types.ModuleType("timm.data")
    data.resolve_model_data_config = lambda model: {"input_size": (3, 16, 16), "crop_pct": 0.875}
    data.create_transform = lambda input_size, is_training, **kw: _transform(input_size)
    models = types.ModuleType("timm.models")
    models.get_pretrained_cfg = lambda name: types.SimpleNamespace(hf_hub_id=f"timm/{name}.test_in1k")
    timm = types.ModuleType("timm")
    timm.create_model, timm.data, timm.models = create_model, data, models
    for k, v in {"timm": timm, "timm.data": data, "timm.models": models}.items():
        monkeypatch.setitem(sys.modules, k, v)
    return calls


def _trained(num_classes=10):
    torch.manual_seed(7)
    net = TinyEfficientNet(num_classes)
    with torch.no_grad():
        net.bn1.running_mean.uniform_(-0.1, 0.1)
    return net.eval()


def _images(tmp_path, n=6):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(n):
        noise(i, (20, 20)).save(d / f"{i}.png")
    (tmp_path / "list.txt").write_text("".join(f"imgs/{i}.png\n" for i in range(n)))
    return tmp_path / "list.txt"


def _cli(args):
    try:
        cli_main(args)
    except SystemExit as e:
        return e.code or 0
    return 0


# ----------------------------------------------------------------------------- timm: import errors
def test_timm_import_failing_on_torchvision_names_torchvision(tmp_path, monkeypatch):
    """Old code: "needs timm, which is not installed" although timm is there and torchvision is not."""
    pkg = tmp_path / "site" / "timm"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("import torchvision\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "timm", raising=False)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # not installed (whatever this venv has)
    with pytest.raises(VsaeError) as e:
        load("timm:efficientnet_lite0")
    msg = str(e.value)
    assert "'torchvision'" in msg and "timm is installed" in msg and "needs timm, which is not" not in msg
    assert "\n" not in msg


# ----------------------------------------------------------------------------- timm: local weights
@pytest.mark.parametrize("form", ["safetensors", "checkpoint"])
def test_timm_local_weights(tmp_path, fake_timm, form):
    """timm:NAME:FILE builds the model without hub weights, loads the file (its 10-class head
    dropped: embed is the pooled feature) and records the file's sha256."""
    net = _trained()
    if form == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    else:  # a training checkpoint: {"state_dict": ...} with DDP's "module." prefix
        path = tmp_path / "w.pth"
        torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}, "epoch": 3}, path)
    lm = load(f"timm:tiny_effnet:{path}")
    assert fake_timm == [("create", "tiny_effnet", False, 0)]  # no pretrained download asked for
    x = torch.rand(2, 3, 16, 16)
    with capture(lm, ["resid.0", "embed"]) as cap:
        lm.run(x)
    with torch.no_grad():
        want = net.forward_features(x).mean((2, 3))
    torch.testing.assert_close(cap.outputs["embed"], want)
    assert lm.provenance["weights_file"] == str(path.resolve())
    assert len(lm.provenance["weights_file_sha256"]) == 64


def test_timm_local_weights_through_extract(tmp_path, fake_timm):
    net = _trained()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    data = _images(tmp_path)
    code = _cli(
        ["extract", "--model", f"timm:tiny_effnet:{path}", "--hook", "embed", "--tokens", "all",
         "--data", str(data), "--out", str(tmp_path / "s"), "--dtype", "float32",
         "--num-workers", "0", "--threads", "1", "--quiet"]
    )  # fmt: skip
    assert code == 0
    from vsae.data import load_image

    x = torch.stack([_transform((3, 16, 16))(load_image(tmp_path / "imgs" / f"{i}.png")) for i in range(6)])
    s = ActivationStore.open(tmp_path / "s")
    with torch.no_grad():
        torch.testing.assert_close(s[0 : len(s)], net.forward_features(x).mean((2, 3)))


def test_timm_weights_that_do_not_fit_are_one_line(tmp_path, fake_timm):
    path = tmp_path / "w.safetensors"
    save_file({"conv_stem.weight": torch.zeros(8, 3, 4, 4)}, str(path))
    with pytest.raises(VsaeError, match="does not fit timm:tiny_effnet") as e:
        load(f"timm:tiny_effnet:{path}")
    assert "\n" not in str(e.value)
    with pytest.raises(VsaeError, match="does not exist"):
        load(f"timm:tiny_effnet:{tmp_path / 'nope.safetensors'}")


# ----------------------------------------------------------------------------- timm: offline
def test_timm_offline_fails_at_once_without_asking_timm(fake_timm, monkeypatch, tmp_path):
    """Old code: create_model(pretrained=True) at once, i.e. timm's network retries (58 s measured)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    t0 = time.perf_counter()
    with pytest.raises(VsaeError) as e:
        load("timm:tiny_effnet")
    assert time.perf_counter() - t0 < 4.0
    msg = str(e.value)
    assert "timm/tiny_effnet.test_in1k is not in the Hugging Face cache" in msg and "HF_HUB_OFFLINE" in msg
    assert "timm:tiny_effnet:path/to/weights.safetensors" in msg and "\n" not in msg
    assert fake_timm == []  # timm was never asked to download


def test_timm_no_network_fails_at_once(fake_timm, monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # a closed port stands for no network
    hub._probe.cache_clear()
    with pytest.raises(VsaeError, match=r"127\.0\.0\.1 is unreachable \(no network\)"):
        load("timm:tiny_effnet")
    assert fake_timm == []


def test_timm_online_asks_for_pretrained_weights(fake_timm, monkeypatch):
    monkeypatch.setattr(hub, "offline_env", lambda: False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=1.0: True)
    lm = load("timm:tiny_effnet")
    assert fake_timm == [("create", "tiny_effnet", True, 0)] and lm.num_layers == 2


# ----------------------------------------------------------------------------- python: factories
GOOD = """
import numpy as np, torch
from torch import nn
from helper_sibling import WIDTH


def make():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, WIDTH, 4, stride=4), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    prep = lambda ims: torch.stack([torch.from_numpy(np.asarray(i.resize((8, 8)), np.float32)).permute(2, 0, 1) for i in ims])
    return net, prep
"""


@pytest.mark.parametrize(
    "body, want",
    [
        ("raise ValueError('bad config value')\ndef make(): pass\n", "raised ValueError: bad config value"),
        ("def make(:\n", "raised SyntaxError"),
        (
            "import not_installed_dep_xyz\ndef make(): pass\n",
            "imports 'not_installed_dep_xyz', which is not installed",
        ),
    ],
)
@pytest.mark.parametrize("form", ["file", "module"])
def test_python_factory_import_errors_are_one_line(tmp_path, monkeypatch, capsys, body, want, form):
    """Old code: a 40-51 line traceback and exit 1 (file form, or any non-ModuleNotFoundError), and a
    missing dependency reported as "cannot import the module; run from its folder"."""
    d = tmp_path / "fac"
    d.mkdir()
    mod = f"factory_{form}_{abs(hash(body)) % 10**6}"
    (d / f"{mod}.py").write_text(body)
    monkeypatch.syspath_prepend(str(d))
    model = f"python:{d / (mod + '.py')}:make" if form == "file" else f"python:{mod}:make"
    data = _images(tmp_path)
    code = _cli(["extract", "--model", model, "--hook", "embed", "--data", str(data),
                 "--out", str(tmp_path / "o"), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and want in err[0], err
    sys.modules.pop(mod, None)


def test_python_file_form_imports_its_siblings(tmp_path, monkeypatch):
    """Old code: ModuleNotFoundError (traceback) for `from helper_sibling import ...`."""
    d = tmp_path / "elsewhere"
    d.mkdir()
    (d / "helper_sibling.py").write_text("WIDTH = 5\n")
    (d / "netfile.py").write_text(GOOD)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # restored afterwards
    lm = load(f"python:{d / 'netfile.py'}:make")
    with capture(lm, "embed") as cap:
        lm.run(torch.rand(1, 3, 8, 8))
    assert cap.output.shape == (1, 5)
    sys.modules.pop("helper_sibling", None)


def test_timm_offline_with_cached_weights_loads_from_the_cache_alone(fake_timm, monkeypatch, tmp_path):
    """Cached weights: timm is asked for them with huggingface_hub switched to its cache (no retries)."""
    import huggingface_hub.constants as hc

    snap = tmp_path / "hub" / "models--timm--tiny_effnet.test_in1k" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").write_bytes(b"x")
    (tmp_path / "hub" / "models--timm--tiny_effnet.test_in1k" / "refs").mkdir()
    (tmp_path / "hub" / "models--timm--tiny_effnet.test_in1k" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    seen = []
    create = sys.modules["timm"].create_model

    def create_model(*a, **kw):
        seen.append(hc.HF_HUB_OFFLINE)
        return create(*a, **kw)

    monkeypatch.setattr(sys.modules["timm"], "create_model", create_model)
    before = hc.HF_HUB_OFFLINE
    lm = load("timm:tiny_effnet")
    assert fake_timm == [("create", "tiny_effnet", True, 0)] and seen == [True] and lm.num_layers == 2
    assert before == hc.HF_HUB_OFFLINE  # restored
