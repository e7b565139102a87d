"""The names SAELens / dictionary_learning users type (issue 25, point 4): W_enc [d_in, d_sae],
W_dec [d_sae, d_in], b_enc, b_dec, device, dtype, cfg.hook_name; encode/decode on [..., d];
`vsae.eval.commands` after `import vsae`; a SAELens export records the hook's module path."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import vsae
from vsae.sae import SAEConfig, build
from vsae.sae.sae_config import config_for
from vsae.sae.saelens import export_saelens, load_saelens


def _sae(arch="topk"):
    cfg = config_for(arch, d_in=6, d_sae=24, k=3, provenance={"hook": "resid.2", "hook_module": "blocks.2"})
    sae = build(cfg, seed=0).eval()
    with torch.no_grad():
        sae.b_enc_F.normal_()
        sae.b_dec_d.normal_()
    return sae


def test_aliases_are_the_parameters_in_saelens_layout():
    sae = _sae()
    assert sae.W_enc.shape == (6, 24) and sae.W_dec.shape == (24, 6)
    assert sae.b_enc.shape == (24,) and sae.b_dec.shape == (6,)
    assert torch.equal(sae.W_enc, sae.W_enc_Fd.T) and sae.W_dec is sae.W_dec_Fd
    assert sae.b_enc is sae.b_enc_F and sae.b_dec is sae.b_dec_d
    assert sae.device == torch.device("cpu") and sae.dtype == torch.float32
    assert sae.to(torch.float64).dtype == torch.float64
    assert (sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.hook_name) == (6, 24, "resid.2")
    assert SAEConfig(arch="relu", d_in=2, d_sae=4).hook_name is None
    # the SAELens formula with the aliases gives the SAE's own ReLU latents
    relu = _sae("relu")
    x = torch.randn(5, 6)
    assert torch.allclose(relu.encode(x), (x @ relu.W_enc + relu.b_enc).relu(), atol=1e-6)


@pytest.mark.parametrize("arch", ["relu", "topk", "batchtopk", "matryoshka", "jumprelu"])
def test_encode_decode_take_any_leading_dims(arch):
    sae = _sae(arch)
    x_BTd = torch.randn(2, 5, 6)
    z = sae.encode(x_BTd)
    assert z.shape == (2, 5, 24)
    assert torch.equal(z, sae.encode(x_BTd.reshape(10, 6)).reshape(2, 5, 24))
    assert sae.decode(z).shape == (2, 5, 6)
    assert torch.allclose(sae.decode(z), sae.decode(z.reshape(10, 24)).reshape(2, 5, 6))
    z_np = sae.encode(x_BTd.numpy()[None])  # [1, 2, 5, d] numpy
    assert isinstance(z_np, np.ndarray) and z_np.shape == (1, 2, 5, 24)
    with pytest.raises(ValueError, match=r"\[\.\.\., n\]"):
        sae.encode(torch.tensor(1.0))


def test_eval_pipeline_reachable_after_import_vsae():
    r = subprocess.run(
        [sys.executable, "-c", "import vsae; print(vsae.eval.commands.run_recon.__name__)"],
        capture_output=True,
        text=True,
    )
    assert r.stdout.strip() == "run_recon", r.stderr
    with pytest.raises(AttributeError):
        vsae.eval.no_such_module  # noqa: B018


def test_saelens_export_records_module_path_beside_vsae_hook(tmp_path):
    sae = _sae("relu")
    export_saelens(sae, tmp_path / "x")
    meta = json.loads((tmp_path / "x" / "cfg.json").read_text())["metadata"]
    assert meta["hook_name"] == "blocks.2" and meta["vsae_hook_name"] == "resid.2"
    back = load_saelens(tmp_path / "x")
    assert back.cfg.hook_name == "resid.2" and back.cfg.provenance["hook_module"] == "blocks.2"


def test_module_path_of_a_hook():
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Module()
            self.trunk.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])

        def forward(self, x):
            for b in self.trunk.blocks:
                x = b(x)
            return x

    lm = vsae.models.from_module(Net(), lambda images: torch.zeros(len(images), 4), blocks="trunk.blocks")
    assert lm.module_path("resid.1") == "trunk.blocks.1"
    assert lm.module_path("resid.-1") == "trunk.blocks.2"
