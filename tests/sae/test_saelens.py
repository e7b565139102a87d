"""SAELens on-disk format: export -> import round trip, and import of SAELens conventions."""

import json

import pytest
import torch
from safetensors.torch import save_file

from vsae.errors import VsaeError
from vsae.sae import ARCHS, SAEConfig, build
from vsae.sae.saelens import export_saelens, load_saelens


@pytest.mark.parametrize("arch", ARCHS)
def test_round_trip_keeps_inference_outputs(arch, tmp_path):
    torch.manual_seed(0)
    sae = build(SAEConfig(arch=arch, d_in=8, d_sae=32, k=3, groups=(0.25, 0.75),
                          provenance={"model": "tiny-clip", "hook": "resid.2"}), seed=0)
    with torch.no_grad():
        sae.b_enc_F.normal_(0, 0.2)
        sae.b_dec_d.normal_()
    x = torch.randn(50, 8)
    sae.train()
    sae(torch.randn(50, 8))  # gives BatchTopK its inference threshold (from other rows than x)
    sae.eval()
    export_saelens(sae, tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    expected = {"relu": "standard", "topk": "topk"}.get(arch, "jumprelu")
    assert cfg["architecture"] == expected
    assert cfg["d_in"] == 8 and cfg["d_sae"] == 32 and cfg["apply_b_dec_to_input"] is False
    assert cfg["metadata"]["hook_name"] == "resid.2" and cfg["metadata"]["model_name"] == "tiny-clip"
    back = load_saelens(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(back.encode(x), sae.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(back.decode(back.encode(x)), sae.decode(sae.encode(x)), atol=1e-5, rtol=1e-5)
    assert back.cfg.provenance["hook"] == "resid.2"


def _saelens_reference(w, cfg, x):
    """SAELens inference semantics written out directly."""
    sae_in = x - w["b_dec"] if cfg["apply_b_dec_to_input"] else x
    pre = sae_in @ w["W_enc"] + w["b_enc"]
    if cfg["architecture"] == "standard":
        z = pre.relu()
    elif cfg["architecture"] == "jumprelu":
        z = pre.relu() * (pre > w["threshold"].relu())
    else:
        v, i = pre.topk(cfg["k"], dim=-1)
        z = torch.zeros_like(pre).scatter(-1, i, v.relu())
    return z @ w["W_dec"] + w["b_dec"]


@pytest.mark.parametrize("arch", ["standard", "jumprelu", "topk"])
def test_import_saelens_with_b_dec_on_input_and_unnormalised_decoder(arch, tmp_path):
    g = torch.Generator().manual_seed(0)
    d, F = 6, 20
    w = {"W_enc": torch.randn(d, F, generator=g), "W_dec": torch.randn(F, d, generator=g) * 0.3,
         "b_enc": torch.randn(F, generator=g) * 0.1, "b_dec": torch.randn(d, generator=g)}
    cfg = {"architecture": arch, "d_in": d, "d_sae": F, "apply_b_dec_to_input": True, "normalize_activations": "none"}
    if arch == "jumprelu":
        w["threshold"] = torch.rand(F, generator=g)
    if arch == "topk":
        cfg["k"] = 4
    save_file(w, str(tmp_path / "sae_weights.safetensors"))
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    sae = load_saelens(tmp_path)
    x = torch.randn(30, d, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(sae.decode(sae.encode(x)), _saelens_reference(w, cfg, x), atol=1e-5, rtol=1e-5)
    if arch != "topk":
        torch.testing.assert_close(sae.W_dec_Fd.norm(dim=1), torch.ones(F))


def test_import_rejects_unsupported(tmp_path):
    with pytest.raises(VsaeError, match="not a SAELens SAE"):
        load_saelens(tmp_path)
    save_file({"W_enc": torch.zeros(2, 3), "W_dec": torch.zeros(3, 2), "b_enc": torch.zeros(3), "b_dec": torch.zeros(2)},
              str(tmp_path / "sae_weights.safetensors"))
    (tmp_path / "cfg.json").write_text(json.dumps({"architecture": "gated", "d_in": 2, "d_sae": 3}))
    with pytest.raises(VsaeError, match="gated"):
        load_saelens(tmp_path)
