"""SAELens 6.x on-disk format: export -> import round trips, the export against SAELens's config
schema and inference rule written out directly, import of SAELens conventions, `vsae encode`
on a SAELens directory, and (slow) the export loaded by the real ``sae-lens`` package."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from packaging.version import Version
from safetensors.torch import load_file, save_file

from vsae.cli import main
from vsae.errors import VsaeError
from vsae.sae import arch_names, build, load
from vsae.sae.sae_config import config_for
from vsae.sae.saelens import SAELENS_VERSION, export_saelens, load_saelens
from vsae.store import ActivationStore, StoreWriter

PROV = {"model": "tiny-clip", "hook": "resid.2", "tokens": "cls"}
# SAELens 6.x's inference architectures and the fields of their config dataclasses
# (sae_lens/saes/sae.py SAEConfig, topk_sae.py TopKSAEConfig; other keys are ignored on load).
SAELENS_FIELDS = {
    "d_in",
    "d_sae",
    "dtype",
    "device",
    "apply_b_dec_to_input",
    "normalize_activations",
    "reshape_activations",
    "metadata",
    "architecture",
}
SAELENS_TOPK_FIELDS = {"k", "rescale_acts_by_decoder_norm"}


def _trained(arch: str, seed: int = 0):
    """A small SAE of ``arch`` with non-trivial biases and (BatchTopK) a learned inference threshold."""
    torch.manual_seed(seed)
    sae = build(
        config_for(arch, d_in=8, d_sae=32, k=3, groups=(0.25, 0.25, 0.5), aux_k=4, provenance=PROV),
        seed=seed,
    )
    with torch.no_grad():
        sae.b_enc_F.normal_(0, 0.2)
        sae.b_dec_d.normal_()
        if arch == "jumprelu":
            sae.threshold_F.uniform_(0, 0.5)
    sae.train()
    sae(torch.randn(50, 8))  # gives BatchTopK its inference threshold (from other rows than x)
    return sae.eval()


def _saelens_reference(w, cfg, x):
    """SAELens 6.x inference (encode, decode) for standard / topk / jumprelu, written out directly."""
    sae_in = x - w["b_dec"] if cfg.get("apply_b_dec_to_input", True) else x
    pre = sae_in @ w["W_enc"] + w["b_enc"]
    arch = cfg["architecture"]
    norms = w["W_dec"].norm(dim=-1)
    rescale = arch == "topk" and cfg.get("rescale_acts_by_decoder_norm", False)
    if rescale:
        pre = pre * norms
    if arch == "standard":
        z = pre.relu()
    elif arch == "jumprelu":
        z = pre.relu() * (pre > w["threshold"])
    else:
        v, i = pre.topk(cfg["k"], dim=-1)
        z = torch.zeros_like(pre).scatter(-1, i, v.relu())
    return z, (z / norms if rescale else z) @ w["W_dec"] + w["b_dec"]


@pytest.mark.parametrize("arch", arch_names())
def test_export_follows_the_saelens_6_schema(arch, tmp_path):
    sae = _trained(arch)
    export_saelens(sae, tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    assert cfg["architecture"] == {"relu": "standard", "topk": "topk"}.get(arch, "jumprelu")
    assert set(cfg) <= SAELENS_FIELDS | (SAELENS_TOPK_FIELDS if arch == "topk" else set())
    assert cfg["d_in"] == 8 and cfg["d_sae"] == 32 and cfg["apply_b_dec_to_input"] is False
    meta = cfg["metadata"]
    # SAELens treats a config without metadata.sae_lens_version >= 6.0 as pre-6.0 and drops the metadata.
    assert (
        Version(meta["sae_lens_version"]) >= Version("6.0.0") and meta["sae_lens_version"] == SAELENS_VERSION
    )
    assert meta["hook_name"] == "resid.2" and meta["model_name"] == "tiny-clip"
    assert meta["vsae"]["cfg"]["arch"] == arch and meta["vsae"]["cfg"]["provenance"] == PROV
    if arch == "topk":
        assert cfg["k"] == 3 and cfg["rescale_acts_by_decoder_norm"] is True  # unit-norm rows
    if arch in ("batchtopk", "matryoshka"):
        assert meta["training_architecture"] == {"batchtopk": "batchtopk"}.get(arch, "matryoshka_batchtopk")
        details = meta["training_architecture_details"]
        assert details["k"] == 3 and details["rescale_acts_by_decoder_norm"] is True
        if arch == "matryoshka":
            assert details["matryoshka_widths"] == [8, 16, 32]  # cumulative, as SAELens's
    w = load_file(str(tmp_path / "sae_weights.safetensors"))
    assert {n: tuple(t.shape) for n, t in w.items()} == {
        "W_enc": (8, 32),
        "W_dec": (32, 8),
        "b_enc": (32,),
        "b_dec": (8,),
        **({"threshold": (32,)} if arch not in ("relu", "topk") else {}),
    }
    x = torch.randn(40, 8, generator=torch.Generator().manual_seed(1))
    z_ref, x_hat_ref = _saelens_reference(w, cfg, x)
    with torch.no_grad():
        z = sae.encode(x)
        torch.testing.assert_close(z_ref, z, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(x_hat_ref, sae.decode(z), atol=1e-5, rtol=1e-5)
    assert (z > 0).any() and (z == 0).any()


@pytest.mark.parametrize("arch", arch_names())
def test_round_trip_keeps_architecture_k_groups_and_provenance(arch, tmp_path):
    sae = _trained(arch)
    export_saelens(sae, tmp_path)
    back = load_saelens(tmp_path)
    assert type(back) is type(sae)
    assert back.cfg.replace(provenance={}) == sae.cfg.replace(provenance={})  # arch, k, groups, aux_k, ...
    assert back.cfg.provenance == {**PROV, "imported_from": "saelens"}
    x = torch.randn(50, 8)
    with torch.no_grad():
        torch.testing.assert_close(back.encode(x), sae.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            back.decode(back.encode(x)), sae.decode(sae.encode(x)), atol=1e-5, rtol=1e-5
        )
    if arch in ("batchtopk", "matryoshka"):
        assert float(back.threshold) == float(sae.threshold)


@pytest.mark.parametrize("arch", ["standard", "jumprelu", "topk", "topk-rescaled"])
def test_import_saelens_with_b_dec_on_input_and_unnormalised_decoder(arch, tmp_path):
    g = torch.Generator().manual_seed(0)
    d, F = 6, 20
    w = {
        "W_enc": torch.randn(d, F, generator=g),
        "W_dec": torch.randn(F, d, generator=g) * 0.3,
        "b_enc": torch.randn(F, generator=g) * 0.1,
        "b_dec": torch.randn(d, generator=g),
    }
    cfg = {
        "architecture": arch.split("-")[0],
        "d_in": d,
        "d_sae": F,
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "metadata": {"sae_lens_version": "6.54.12", "hook_name": "blocks.3"},
    }
    if arch == "jumprelu":
        w["threshold"] = torch.rand(F, generator=g)
    if arch.startswith("topk"):
        cfg["k"] = 4
        cfg["rescale_acts_by_decoder_norm"] = arch == "topk-rescaled"
    save_file(w, str(tmp_path / "sae_weights.safetensors"))
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    sae = load_saelens(tmp_path)
    assert sae.cfg.provenance == {"hook": "blocks.3", "imported_from": "saelens"}
    x = torch.randn(30, d, generator=g)
    z_ref, x_hat_ref = _saelens_reference(w, cfg, x)
    with torch.no_grad():
        torch.testing.assert_close(sae.decode(sae.encode(x)), x_hat_ref, atol=1e-5, rtol=1e-5)
        if arch == "topk":  # without rescaling the latents are SAELens's exactly
            torch.testing.assert_close(sae.encode(x), z_ref, atol=1e-5, rtol=1e-5)
    if arch != "topk":
        torch.testing.assert_close(sae.W_dec_Fd.norm(dim=1), torch.ones(F))


def _saelens_batchtopk(tmp_path, threshold, unit=True, widths=None):
    g = torch.Generator().manual_seed(3)
    d, F = 6, 16
    W_dec = torch.randn(F, d, generator=g)
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True) if unit else W_dec
    w = {
        "W_enc": torch.randn(d, F, generator=g),
        "W_dec": W_dec,
        "b_enc": torch.randn(F, generator=g) * 0.1,
        "b_dec": torch.randn(d, generator=g),
        "threshold": threshold,
    }
    details = {"k": 5.0, "topk_threshold_lr": 0.01, "rescale_acts_by_decoder_norm": True}
    if widths:
        details["matryoshka_widths"] = widths
    meta = {
        "sae_lens_version": "6.54.12",
        "model_name": "gpt2",
        "hook_name": "blocks.0.hook_resid_pre",
        "training_architecture": "matryoshka_batchtopk" if widths else "batchtopk",
        "training_architecture_details": details,
    }
    cfg = {"architecture": "jumprelu", "d_in": d, "d_sae": F, "apply_b_dec_to_input": True, "metadata": meta}
    save_file(w, str(tmp_path / "sae_weights.safetensors"))
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    x = torch.randn(30, d, generator=g)
    return _saelens_reference(w, cfg, x), x


@pytest.mark.parametrize("widths", [None, [4, 8, 16]])
def test_import_saelens_batchtopk_restores_k_and_groups(widths, tmp_path):
    (z_ref, x_hat_ref), x = _saelens_batchtopk(tmp_path, torch.full((16,), 0.3), widths=widths)
    sae = load_saelens(tmp_path)
    assert sae.cfg.arch == ("matryoshka" if widths else "batchtopk") and sae.cfg.k == 5
    assert abs(float(sae.threshold) - 0.3) < 1e-7
    assert sae.cfg.provenance == {
        "model": "gpt2",
        "hook": "blocks.0.hook_resid_pre",
        "imported_from": "saelens",
    }
    if widths:
        assert sae.cfg.group_sizes == (4, 4, 8)
    with torch.no_grad():
        torch.testing.assert_close(sae.encode(x), z_ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(sae.decode(sae.encode(x)), x_hat_ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", ["per-latent threshold", "unnormalised decoder"])
def test_import_saelens_batchtopk_that_is_not_one_threshold_stays_jumprelu(case, tmp_path):
    t = torch.linspace(0.1, 0.5, 16) if case == "per-latent threshold" else torch.full((16,), 0.3)
    (z_ref, x_hat_ref), x = _saelens_batchtopk(tmp_path, t, unit=case != "unnormalised decoder")
    sae = load_saelens(tmp_path)
    assert sae.cfg.arch == "jumprelu"
    with torch.no_grad():
        torch.testing.assert_close(sae.decode(sae.encode(x)), x_hat_ref, atol=1e-5, rtol=1e-5)


def test_import_pre_6_config_keeps_top_level_hook_and_model(tmp_path):
    w = {
        "W_enc": torch.randn(4, 8),
        "W_dec": torch.randn(8, 4),
        "b_enc": torch.zeros(8),
        "b_dec": torch.zeros(4),
    }
    save_file(w, str(tmp_path / "sae_weights.safetensors"))
    (tmp_path / "cfg.json").write_text(
        json.dumps(
            {"d_in": 4, "d_sae": 8, "model_name": "gpt2-small", "hook_point": "blocks.8.hook_resid_pre"}
        )
    )
    sae = load_saelens(tmp_path)
    assert sae.cfg.arch == "relu"
    assert sae.cfg.provenance == {
        "model": "gpt2-small",
        "hook": "blocks.8.hook_resid_pre",
        "imported_from": "saelens",
    }


def test_import_rejects_unsupported(tmp_path):
    with pytest.raises(VsaeError, match="not a SAELens SAE"):
        load_saelens(tmp_path)
    save_file(
        {
            "W_enc": torch.zeros(2, 3),
            "W_dec": torch.zeros(3, 2),
            "b_enc": torch.zeros(3),
            "b_dec": torch.zeros(2),
        },
        str(tmp_path / "sae_weights.safetensors"),
    )
    (tmp_path / "cfg.json").write_text(json.dumps({"architecture": "gated", "d_in": 2, "d_sae": 3}))
    with pytest.raises(VsaeError, match="gated"):
        load_saelens(tmp_path)
    (tmp_path / "cfg.json").write_text(
        json.dumps(
            {
                "architecture": "standard",
                "d_in": 2,
                "d_sae": 3,
                "metadata": {"vsae": {"cfg": {"arch": "relu", "d_in": 5, "d_sae": 3}}},
            }
        )
    )
    with pytest.raises(VsaeError, match="inconsistent"):
        load_saelens(tmp_path)
    for cfg, match in (
        ({"architecture": "standard", "d_in": 2, "d_sae": 4}, "weights are 2 x 3"),
        ({"architecture": "topk", "d_in": 2, "d_sae": 3, "k": 7}, "k=7"),
        ({"architecture": "jumprelu", "d_in": 2, "d_sae": 3}, "no 'threshold'"),
    ):
        (tmp_path / "cfg.json").write_text(json.dumps(cfg))
        with pytest.raises(VsaeError, match=match):
            load_saelens(tmp_path)
    save_file(
        {
            "W_enc": torch.zeros(2, 3),
            "W_dec": torch.zeros(3, 2),
            "b_enc": torch.zeros(4),
            "b_dec": torch.zeros(2),
        },
        str(tmp_path / "sae_weights.safetensors"),
    )
    with pytest.raises(VsaeError, match="inconsistent tensor shapes"):
        load_saelens(tmp_path)


def test_cli_encode_reports_a_bad_saelens_directory_in_one_line(tmp_path, capsys):
    export_saelens(_trained("relu"), tmp_path / "sl")
    (tmp_path / "sl" / "cfg.json").write_text(json.dumps({"architecture": "gated", "d_in": 8, "d_sae": 32}))
    with pytest.raises(SystemExit) as e:
        main(
            [
                "encode",
                "--sae",
                str(tmp_path / "sl"),
                "--acts",
                str(tmp_path / "sl"),
                "--out",
                str(tmp_path / "z"),
            ]
        )
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith("error:") and "\n" not in err


def test_load_and_cli_encode_accept_a_saelens_directory(tmp_path, capsys):
    sae = _trained("batchtopk")
    export_saelens(sae, tmp_path / "sl")
    assert type(load(tmp_path / "sl")) is type(sae)
    assert type(load(tmp_path / "sl" / "sae_weights.safetensors")) is type(sae)
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(5))
    w = StoreWriter.create_or_resume(
        tmp_path / "acts", d=8, dtype="float32", provenance=PROV, rows_per_shard=4096
    )
    w.add(x, np.arange(64, dtype=np.int64), np.zeros(64, dtype=np.int64))
    w.mark_images_done(64)
    w.close()
    main(
        [
            "encode",
            "--sae",
            str(tmp_path / "sl"),
            "--acts",
            str(tmp_path / "acts"),
            "--out",
            str(tmp_path / "z"),
            "--quiet",
        ]
    )
    lat = ActivationStore.open(tmp_path / "z")
    with torch.no_grad():
        z = sae.encode(x)
    assert lat.d == 32 and len(lat) == 64 and (z > 0).any()
    torch.testing.assert_close(lat[0:64], z)


# ----- the real sae-lens package, in its own venv (slow: building it takes ~3 min) ---------------

VENV = Path(
    os.environ.get("VSAE_SAELENS_VENV", Path(__file__).resolve().parents[2] / "bench" / ".venv-saelens")
)
_PROBE = r"""
import json, sys
import torch
from safetensors.torch import load_file, save_file
import sae_lens
from sae_lens import SAE
root = sys.argv[1]
x = load_file(f"{root}/x.safetensors")["x"]
out, meta = {}, {"version": sae_lens.__version__}
for arch in sys.argv[2:]:
    sae = SAE.load_from_disk(f"{root}/{arch}")
    with torch.no_grad():
        z = sae.encode(x)
        out[f"{arch}.z"], out[f"{arch}.x_hat"] = z, sae.decode(z)
    meta[arch] = {"class": type(sae).__name__, "metadata": sae.cfg.metadata.to_dict(),
                  "k": getattr(sae.cfg, "k", None), "rescale": getattr(sae.cfg, "rescale_acts_by_decoder_norm", None)}
save_file(out, f"{root}/out.safetensors")
json.dump(meta, open(f"{root}/meta.json", "w"), default=str)
"""


def _saelens_python() -> Path:
    py, done = VENV / "bin" / "python", VENV / f".installed-sae-lens-{SAELENS_VERSION}"
    if not done.exists():  # CPU torch first and pinned, so that pip never resolves a CUDA build
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        for pkgs in (["torch==2.13.0"], ["torch==2.13.0", f"sae-lens=={SAELENS_VERSION}"]):
            subprocess.run([str(py), "-m", "pip", "install", "-q", *pkgs], check=True)
        done.touch()
    return py


@pytest.mark.slow
def test_real_saelens_loads_every_export_with_identical_latents(tmp_path):
    py = _saelens_python()
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(7))
    save_file({"x": x}, str(tmp_path / "x.safetensors"))
    saes = {arch: _trained(arch) for arch in arch_names()}
    for arch, sae in saes.items():
        export_saelens(sae, tmp_path / arch)
    (tmp_path / "probe.py").write_text(_PROBE)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [str(py), str(tmp_path / "probe.py"), str(tmp_path), *arch_names()], check=True, env=env, timeout=600
    )
    out = load_file(str(tmp_path / "out.safetensors"))
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["version"] == SAELENS_VERSION
    for arch, sae in saes.items():
        with torch.no_grad():
            z = sae.encode(x)
            torch.testing.assert_close(out[f"{arch}.z"], z, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(out[f"{arch}.x_hat"], sae.decode(z), atol=1e-5, rtol=1e-5)
        m = meta[arch]
        assert m["class"] == {"relu": "StandardSAE", "topk": "TopKSAE"}.get(arch, "JumpReLUSAE")
        assert m["metadata"]["hook_name"] == "resid.2" and m["metadata"]["model_name"] == "tiny-clip"
        assert m["metadata"]["vsae"]["cfg"]["arch"] == arch
        if arch == "topk":
            assert m["k"] == 3 and m["rescale"] is True
        if arch in ("batchtopk", "matryoshka"):
            assert m["metadata"]["training_architecture_details"]["k"] == 3
