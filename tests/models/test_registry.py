"""A model family is one file that registers itself: a toy family defined here alone (its loader,
its layout and a hook name of its own) is loaded and extracted into a store by `vsae.extract`."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from vsae.data.fake_images import noise
from vsae.errors import VsaeError
from vsae.extract import ExtractConfig, extract
from vsae.models import Family, HookPoint, LoadedModel, LoadRequest, load, register_family
from vsae.models.family_registry import families, unregister_family
from vsae.store import ActivationStore

D, PATCH, SIDE = 6, 4, 8


class ToyBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Linear(D, D)
        self.ff = nn.Linear(D, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mix(x)
        return x + self.ff(torch.tanh(x))


class Toy(nn.Module):
    """Patches of 4x4 pixels -> 2 residual blocks -> a gated mean (the family's own hook `gate`)."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Linear(3 * PATCH * PATCH, D)
        self.layers = nn.ModuleList([ToyBlock(), ToyBlock()])
        self.gate = nn.Linear(D, D)

    def tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        B = pixel_values.shape[0]
        p = pixel_values.unfold(2, PATCH, PATCH).unfold(3, PATCH, PATCH)  # B 3 h w P P
        return self.patch(p.permute(0, 2, 3, 1, 4, 5).reshape(B, -1, 3 * PATCH * PATCH))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.tokens(pixel_values)
        for b in self.layers:
            x = b(x)
        return self.gate(x.mean(1))


def toy_preprocess(images: list[Image.Image]) -> dict[str, torch.Tensor]:
    arr = np.stack([np.asarray(im.convert("RGB").resize((SIDE, SIDE)), np.float32) / 255 for im in images])
    return {"pixel_values": torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()}


class ToyModel(LoadedModel):
    """The family resolves one hook name of its own (`gate`) and leaves the rest to the scheme."""

    def resolve(self, hook: str) -> HookPoint:
        if hook == "gate":
            return HookPoint("gate", self.model.gate)
        return super().resolve(hook)


def toy_claims(source: str, local_only: bool) -> bool:
    return (Path(source) / "toy.json").is_file()


def load_toy(req: LoadRequest) -> LoadedModel:
    seed = json.loads((Path(req.source) / "toy.json").read_text())["seed"]
    torch.manual_seed(seed)
    model = Toy().eval().to(req.device)
    return ToyModel(
        model,
        toy_preprocess,
        family="toy",
        tower="vision",
        modality="image",
        blocks=model.layers,
        sublayer_names={"attn": ("mix",), "mlp": ("ff",)},
        embed_fields=(),
        has_cls=False,
        n_prefix=0,
        provenance={"model": req.source, "family": "toy", "seed": seed},
    )


@pytest.fixture
def toy_family():
    fam = register_family(Family("toy", load_toy, claims=toy_claims))
    yield fam
    unregister_family("toy")


def _data(tmp_path, n=5):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(n):
        noise(i, (12, 10)).save(d / f"{i}.png")
    return d


def test_a_toy_family_extracts_through_the_registry_alone(tmp_path, toy_family):
    model_dir = tmp_path / "toy"
    model_dir.mkdir()
    (model_dir / "toy.json").write_text(json.dumps({"seed": 3}))
    data = _data(tmp_path)
    cfg = ExtractConfig(
        model=str(model_dir),
        hooks=("resid.1", "mlp.0", "gate"),
        data=str(data),
        out=str(tmp_path / "store"),
        tokens="all",
        dtype="float32",
        batch_size=2,
        progress=False,
        threads=1,
    )
    extract(cfg)

    lm = load(str(model_dir))
    assert isinstance(lm, ToyModel) and lm.family == "toy"
    from vsae.data import load_image, open_source

    src = open_source(data)
    x = lm.preprocess([load_image(p) for p in src.items])["pixel_values"]
    with torch.no_grad():
        t = lm.model.tokens(x)
        b0 = lm.model.layers[0]
        h = t + b0.mix(t)
        mlp0 = b0.ff(torch.tanh(h))
        r1 = lm.model.layers[1](h + mlp0)
        gate = lm.model.gate(r1.mean(1))
    n, T = len(src), t.shape[1]
    want = {"resid.1": r1.reshape(n * T, D), "mlp.0": mlp0.reshape(n * T, D), "gate": gate}
    for hook, rows in want.items():
        s = ActivationStore.open(tmp_path / "store" / hook)
        assert s.manifest["provenance"]["family"] == "toy"
        torch.testing.assert_close(s[0 : len(s)], rows, atol=1e-6, rtol=1e-5)
    assert len(ActivationStore.open(tmp_path / "store" / "gate")) == n


def test_a_prefix_family_and_registry_errors(tmp_path, toy_family):
    prefixed = Family("toyp", lambda req: load_toy(LoadRequest(req.rest)), prefix="toyp")
    register_family(prefixed)
    (tmp_path / "toy.json").write_text(json.dumps({"seed": 1}))
    try:
        lm = load(f"toyp:{tmp_path}")
        assert isinstance(lm, ToyModel) and lm.provenance["seed"] == 1 and lm.num_layers == 2
        with pytest.raises(VsaeError, match="unknown hook 'resid.x'"):
            lm.resolve("resid.x")
        with pytest.raises(VsaeError, match="already registered"):
            register_family(Family("toy", load_toy))
        with pytest.raises(VsaeError, match="prefix 'toyp'"):
            register_family(Family("toyp2", load_toy, prefix="toyp"))
        with pytest.raises(VsaeError, match="model_type 'clip' of family 'mine' is already loaded by 'clip'"):
            register_family(Family("mine", load_toy, model_types={"clip": "CLIPModel"}))
    finally:
        unregister_family("toyp")
    assert "toyp" not in [f.name for f in families()]


PLUGIN = """
from torch import nn

from vsae.models import from_module
from vsae.models.family_registry import Family, LoadRequest, register_family


def load(req: LoadRequest):
    return from_module(nn.Linear(3, int(req.rest)), lambda images: None, name=req.source)


register_family(Family("plugged", load, prefix="plugged"))
"""


def test_a_family_from_an_entry_point_is_found_by_load(tmp_path, monkeypatch):
    import sys

    (tmp_path / "plugged_family.py").write_text(PLUGIN)
    dist = tmp_path / "plugged-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugged\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vsae.model_families]\nplugged = plugged_family\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert "plugged" not in [f.name for f in families()]
        lm = load("plugged:5")  # the entry point's module is imported by load, and registers
        assert lm.provenance["model"] == "plugged:5" and lm.model.out_features == 5
    finally:
        unregister_family("plugged")
        sys.modules.pop("plugged_family", None)


def test_the_docs_example_runs_as_written(tmp_path):
    import re
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "extending.md").read_text()
    section = text.split("## Adding a model family", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, re.S)
    (tmp_path / "deit.py").write_text(code)
    r = subprocess.run(
        [sys.executable, "deit.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(root / "src"), "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    family, n_prefix, *_ = r.stdout.split()
    assert (family, n_prefix) == ("deit", "2")
