"""Every architecture on planted data: low FVU, planted atoms recovered, arch-specific sparsity."""

import json

import pytest
import torch

from vsae.errors import VsaeError
from vsae.sae import SAEConfig, arch_names, build, fold_scale, load, save
from vsae.train import TensorSource, TrainConfig, train
from vsae.train.planted import atom_recovery, make_planted

D, M, K = 32, 48, 3
# Small-budget settings: a strong aux-k weight keeps latents alive in 1200 steps.
ARCH_KW = {
    "relu": {"l1_coeff": 0.3},
    "topk": {"aux_k": 16, "aux_coeff": 0.5},
    "batchtopk": {"aux_k": 16, "aux_coeff": 0.5},
    "matryoshka": {"aux_k": 16, "aux_coeff": 0.5, "groups": (0.125, 0.25, 0.625)},
    "jumprelu": {"l0_coeff": 0.1},
}


@pytest.fixture(scope="module")
def planted():
    return make_planted(20000, D, M, K, seed=0, offset=1.0)


def _fvu(x, x_hat):
    return float((x_hat.detach() - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


def _train(arch, planted, tmp_path, steps=1200):
    cfg = SAEConfig(arch=arch, d_in=D, d_sae=96, k=K, name=arch, **ARCH_KW[arch])
    t = TrainConfig(
        steps=steps, batch_size=256, lr=3e-3, log_every=200, ckpt_every=0, val_rows=0, dead_window_rows=5000
    )
    [out] = train(TensorSource(planted.x_Nd), [cfg], t, tmp_path, progress=False)
    return load(out), out


@pytest.mark.parametrize("arch", arch_names())
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


@pytest.mark.parametrize("arch", arch_names())
def test_fold_scale_gives_same_model_in_input_units(arch):
    torch.manual_seed(0)
    sae = build(SAEConfig(arch=arch, d_in=8, d_sae=24, k=3, groups=(0.5, 0.5)), seed=1)
    with torch.no_grad():
        sae.b_enc_F.normal_(0, 0.1)
        sae.b_dec_d.normal_()
    x = torch.randn(64, 8) * 7
    s = 0.3
    sae.train()
    sae(x * s)  # sets the BatchTopK threshold
    sae.eval()
    folded = fold_scale(sae, s)
    with torch.no_grad():
        torch.testing.assert_close(folded.encode(x), sae.encode(x * s) / s, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            folded.decode(folded.encode(x)), sae.decode(sae.encode(x * s)) / s, atol=1e-4, rtol=1e-4
        )
    torch.testing.assert_close(folded.W_dec_Fd.norm(dim=1), torch.ones(24))


@pytest.mark.parametrize("arch", arch_names())
def test_save_load_round_trip(arch, tmp_path):
    sae = build(
        SAEConfig(
            arch=arch,
            d_in=8,
            d_sae=16,
            k=2,
            groups=(0.25, 0.75),
            provenance={"model": "m", "hook": "resid.3"},
        ),
        seed=2,
    )
    save(sae, tmp_path / "s")
    back = load(tmp_path / "s")
    assert back.cfg == sae.cfg
    for (n, a), (_, b) in zip(sae.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), n
    assert load(tmp_path / "s" / "sae.safetensors").cfg == sae.cfg


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


@pytest.mark.parametrize("arch", ["batchtopk", "matryoshka"])
@pytest.mark.parametrize("trained", [True, False])
def test_eval_forward_does_not_depend_on_the_batch(arch, trained, tmp_path):
    """A loaded (eval-mode) BatchTopK / Matryoshka SAE: forward of a row alone == forward of the
    row inside a batch == decode(encode(x)) (the inference threshold, not the batch's top k*B)."""
    torch.manual_seed(0)
    sae = build(SAEConfig(arch=arch, d_in=8, d_sae=32, k=3, groups=(0.25, 0.75)), seed=3)
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
