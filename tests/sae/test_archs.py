"""The built-in architectures on planted data: low FVU, planted atoms recovered, arch-specific
sparsity. What every registered architecture must do is tests/sae/test_contract.py."""

import json

import pytest
import torch

from vsae.errors import VsaeError
from vsae.sae import SAEConfig, build, load, save
from vsae.sae.sae_config import config_for
from vsae.train import TensorSource, TrainConfig, train
from vsae.train.planted import atom_recovery, make_planted

D, M, K = 32, 48, 3
BUILTIN = ("batchtopk", "jumprelu", "matryoshka", "relu", "topk")
# Small-budget settings, by setting (each architecture takes those it has): a strong aux-k
# weight keeps latents alive in 1200 steps.
SMALL_BUDGET = {
    "k": K,
    "l1_coeff": 0.3,
    "l0_coeff": 0.1,
    "aux_k": 16,
    "aux_coeff": 0.5,
    "groups": (0.125, 0.25, 0.625),
}


@pytest.fixture(scope="module")
def planted():
    return make_planted(20000, D, M, K, seed=0, offset=1.0)


def _fvu(x, x_hat):
    return float((x_hat.detach() - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


def _train(arch, planted, tmp_path, steps=1200):
    cfg = config_for(arch, d_in=D, d_sae=96, name=arch, **SMALL_BUDGET)
    t = TrainConfig(
        steps=steps, batch_size=256, lr=3e-3, log_every=200, ckpt_every=0, val_rows=0, dead_window_rows=5000
    )
    [out] = train(TensorSource(planted.x_Nd), [cfg], t, tmp_path, progress=False)
    return load(out), out


@pytest.mark.parametrize("arch", BUILTIN)
def test_planted_recovery(arch, planted, tmp_path):
    sae, out = _train(arch, planted, tmp_path)
    x = planted.x_Nd[:4000]
    with torch.no_grad():
        z = sae.encode(x)
        x_hat = sae.decode(z)
    assert _fvu(x, x_hat) < 0.2
    assert atom_recovery(planted.atoms_Md, sae.W_dec_Fd) >= 0.9
    l0_rows = (z != 0).sum(-1).float()
    if arch == "topk":
        assert bool((l0_rows == K).all())
    elif arch in ("batchtopk", "matryoshka"):
        sae.train()
        with torch.no_grad():
            o = sae(x[:1024])
        assert o.l0() == pytest.approx(K, abs=0.01)  # exactly k*B kept in training (up to ties)
        assert float(l0_rows.mean()) == pytest.approx(K, rel=0.15)  # the inference threshold
        assert float(l0_rows.std()) > 0  # rows vary: not a per-row top-k
    else:
        assert 1 <= float(l0_rows.mean()) <= 3 * K
    if arch == "matryoshka":
        fvus = [_fvu(x, r) for r in sae.prefix_reconstructions(x, z)]
        assert all(f < 0.9 for f in fvus), fvus  # every prefix reconstructs on its own
        assert fvus == sorted(fvus, reverse=True)  # longer prefixes reconstruct better
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(200, 1201, 200))
    assert {"fvu", "mse", "l0", "dead_frac", "lr", "loss/loss"} <= set(log[-1])


def test_decoder_unit_norm_and_parallel_grad_removed():
    sae = build(SAEConfig(arch="relu", d_in=8, d_sae=16), seed=0)
    torch.testing.assert_close(sae.W_dec_Fd.norm(dim=1), torch.ones(16))
    torch.testing.assert_close(sae.W_enc_Fd, sae.W_dec_Fd)  # encoder = decoder transpose
    x = torch.randn(10, 8, generator=torch.Generator().manual_seed(0))
    sae(x).losses["loss"].backward()
    g_before = sae.W_dec_Fd.grad.norm(dim=1)
    sae.remove_parallel_decoder_grad()
    dots = (sae.W_dec_Fd.grad * sae.W_dec_Fd).sum(1)
    # the parallel component is gone up to float32 rounding, relative to the gradient's size
    assert bool((dots.detach().abs() <= 1e-6 * (1 + g_before)).all())
    assert float(g_before.max()) > 1e-3  # a real gradient was projected


def test_load_rejects_non_checkpoints(tmp_path):
    with pytest.raises(VsaeError, match="not a vsae SAE"):
        load(tmp_path)
    (tmp_path / "config.json").write_text('{"hello": 1}')
    with pytest.raises(VsaeError, match="not a vsae SAE config"):
        load(tmp_path)
    save(build(SAEConfig(arch="topk", d_in=4, d_sae=8, k=2), seed=0), tmp_path / "ok")
    (tmp_path / "ok" / "sae.safetensors").write_bytes(b"\x00garbage that is not safetensors")
    with pytest.raises(VsaeError, match="safetensors") as e:
        load(tmp_path / "ok")
    assert "\n" not in str(e.value)


def test_config_validation():
    with pytest.raises(VsaeError, match="unknown SAE architecture"):
        SAEConfig(arch="gated", d_in=4, d_sae=8)
    with pytest.raises(VsaeError, match="k=9"):
        SAEConfig(arch="topk", d_in=4, d_sae=8, k=9)
    with pytest.raises(VsaeError, match="summing to 1"):
        SAEConfig(arch="matryoshka", d_in=4, d_sae=8, k=2, groups=(0.5, 0.4))
    assert SAEConfig(arch="matryoshka", d_in=4, d_sae=64, k=2).group_sizes == (4, 8, 16, 36)
    with pytest.raises(
        VsaeError, match=r"^k: not a setting of SAE architecture 'relu' \(its settings: l1_coeff\)$"
    ):
        SAEConfig(arch="relu", d_in=4, d_sae=8, k=2)
    relu = config_for("relu", d_in=4, d_sae=8, k=2, l1_coeff=0.5)  # settings meant for several archs
    assert relu.to_json() == {
        "arch": "relu",
        "d_in": 4,
        "d_sae": 8,
        "name": "sae",
        "provenance": {},
        "l1_coeff": 0.5,
    }


@pytest.mark.parametrize("arch", ["batchtopk", "matryoshka"])
@pytest.mark.parametrize("trained", [True, False])
def test_eval_forward_does_not_depend_on_the_batch(arch, trained, tmp_path):
    """A loaded (eval-mode) BatchTopK / Matryoshka SAE: forward of a row alone == forward of the
    row inside a batch == decode(encode(x)) (the inference threshold, not the batch's top k*B)."""
    torch.manual_seed(0)
    sae = build(config_for(arch, d_in=8, d_sae=32, k=3, groups=(0.25, 0.75)), seed=3)
    x = torch.randn(64, 8)
    if trained:
        sae.train()
        sae(x)  # sets the threshold
    save(sae, tmp_path / "s")
    sae = load(tmp_path / "s")
    assert not sae.training
    with torch.no_grad():
        whole = sae(x)
        z_ref = sae.encode(x)
        torch.testing.assert_close(whole.z, z_ref)
        torch.testing.assert_close(whole.x_hat, sae.decode(z_ref), atol=1e-5, rtol=1e-5)
        for i in (0, 17, 63):
            alone = sae(x[i : i + 1])
            torch.testing.assert_close(alone.z[0], whole.z[i])
            torch.testing.assert_close(alone.x_hat[0], whole.x_hat[i], atol=1e-5, rtol=1e-5)
    assert float((z_ref != 0).sum(-1).float().std()) > 0 or not trained  # per-row L0 varies
