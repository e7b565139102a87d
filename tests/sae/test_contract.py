"""The contract of an SAE architecture, one test run over every registered one (built-in, plug-in
or entry point) with no per-architecture edits, as overcomplete's tests/sae/test_base_sae.py runs
over ``all_sae``; a toy architecture written to a temporary module passes it too, so adding an
architecture is one file. Also: config.json files written by older vsae (every architecture's
settings in one flat layout, ``fixtures/flat_layout`` from main's ``vsae train``) load to the same
weights, byte for byte, and the same outputs."""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import vsae
from vsae.cli.train import arch_options
from vsae.errors import VsaeError
from vsae.sae import SAE, SAEConfig, arch_names, build, fold_scale, get_arch, load, save, unregister_arch
from vsae.sae.sae_config import settings
from vsae.sae.saelens import export_saelens, load_saelens

D, F, B = 8, 32, 64
FLAT = Path(__file__).parent / "fixtures" / "flat_layout"


def _x(n: int = B, d: int = D, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * 2 + 0.5


def check_contract(arch: str, tmp_path: Path) -> None:
    """What every architecture must do, with its default settings."""
    spec = get_arch(arch)
    # config: SAEConfig(arch=...) builds the architecture's own config class, and back from JSON
    cfg = SAEConfig(arch=arch, d_in=D, d_sae=F, provenance={"hook": "resid.1"})
    assert type(cfg) is spec.config and issubclass(spec.config, SAEConfig) and cfg.arch == arch
    assert SAEConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    with pytest.raises(VsaeError, match=f"^not_a_setting: not a setting of SAE architecture '{arch}'"):
        SAEConfig(arch=arch, d_in=D, d_sae=F, not_a_setting=1)
    own = {f.name: f for f in dataclasses.fields(spec.config) if f.name in settings(spec.config)}
    assert set(own) <= set(cfg.to_json())
    # its settings are vsae train options of this architecture (each documented)
    flags = {p.name for p in arch_options(arch)}
    assert flags == set(own)
    # build: deterministic, unit-norm decoder, encoder = decoder transpose
    sae = build(cfg, seed=1)
    assert isinstance(sae, spec.cls) and isinstance(sae, SAE) and type(sae).arch == arch
    again = build(cfg, seed=1)
    for (n, a), (_, b) in zip(sae.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), n
    torch.testing.assert_close(sae.W_dec_Fd.norm(dim=1), torch.ones(F))
    with torch.no_grad():
        sae.b_enc_F.normal_(0, 0.1, generator=torch.Generator().manual_seed(2))
    # training forward: reconstruction, a finite scalar loss with gradients to both weights
    x = _x()
    sae.train()
    out = sae(x, dead_F=torch.ones(F, dtype=torch.bool))
    assert out.x_hat.shape == (B, D) and out.z.shape == (B, F)
    assert out.losses["loss"].ndim == 0 and bool(torch.isfinite(out.losses["loss"]))
    out.losses["loss"].backward()
    assert sae.W_enc_Fd.grad is not None and sae.W_dec_Fd.grad is not None
    assert float(sae.W_dec_Fd.grad.abs().sum()) > 0
    assert out.fired_F().shape == (F,) and 0 <= out.l0() <= F
    sae.zero_grad()
    # inference: encode/decode on any leading dims and numpy; forward = decode(encode(x)); a row's
    # codes never depend on its batch
    sae.eval()
    with torch.no_grad():
        z = sae.encode(x)
        assert z.shape == (B, F) and bool((z >= 0).all())
        assert sae.encode(x[0]).shape == (F,) and sae.encode(x.reshape(4, 16, D)).shape == (4, 16, F)
        torch.testing.assert_close(sae.encode(x.reshape(4, 16, D)).reshape(B, F), z)
        zn = sae.encode(x.numpy())
        assert isinstance(zn, np.ndarray) and zn.shape == (B, F)
        torch.testing.assert_close(sae.decode(z), sae(x).x_hat, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(sae.encode(x[5:6])[0], z[5])
    # save / load: same class, config and weights, bit for bit
    save(sae, tmp_path / "s")
    back = load(tmp_path / "s")
    assert type(back) is type(sae) and back.cfg == sae.cfg and not back.training
    for (n, a), (_, b) in zip(sae.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), n
    # scale folding: the folded SAE on x is the SAE on x * s, in input units
    s = 0.3
    folded = fold_scale(back, s)
    with torch.no_grad():
        torch.testing.assert_close(folded.encode(x), sae.encode(x * s) / s, atol=1e-5, rtol=1e-5)
    # training through vsae.train (the trainer's normalisation folded back)
    tcfg = vsae.TrainConfig(steps=6, batch_size=32, val_rows=0, ckpt_every=0, log_every=3)
    [run] = vsae.train(_x(512, seed=3), [cfg], tcfg, tmp_path / "run", progress=False)
    trained = load(run)
    assert type(trained) is spec.cls and all(bool(torch.isfinite(p).all()) for p in trained.parameters())
    # SAELens export, where the architecture has one: the same latents back
    if spec.saelens is not None:
        export_saelens(trained, tmp_path / "sl")
        sl = load_saelens(tmp_path / "sl")
        with torch.no_grad():
            torch.testing.assert_close(sl.encode(x), trained.encode(x), atol=1e-4, rtol=1e-4)


def test_the_base_class_carries_no_export_or_trainer_concern():
    """SAELens export hooks live in sae/saelens.py (optional per architecture); the trainer's
    sync-free step and its distributed batch are contexts it enters (``vsae.sae.step``), not a
    flag on every SAE or an all-reduce in the base class."""
    hooks = ("saelens_tensors", "load_saelens_threshold", "saelens_training_details")
    hooks += ("config_from_saelens", "restores_from_saelens", "sync_free")
    assert not [h for h in hooks if hasattr(SAE, h)]
    import vsae.sae.base

    assert "torch.distributed" not in Path(vsae.sae.base.__file__).read_text()  # the trainer's step


@pytest.mark.parametrize("arch", arch_names())
def test_every_registered_architecture_keeps_the_contract(arch, tmp_path):
    check_contract(arch, tmp_path)


TOY = '''
"""A toy architecture in one file: ReLU latents shifted by a learned scalar, L1 penalty."""

from dataclasses import dataclass, field

import torch

from vsae.sae import SAE, SAEConfig, register_arch
from vsae.sae.base import SAEOutput, mse_sum


@dataclass(frozen=True, kw_only=True)
class ShiftConfig(SAEConfig):
    """The toy's settings.

    Attributes
    ----------
    shift_init: initial shift of the pre-activations.
    l1_coeff: weight of the L1 penalty.
    """

    arch: str = "toy_contract"
    shift_init: float = 0.1
    l1_coeff: float = field(default=0.05, metadata={"flag": "--toy-l1"})


@register_arch("toy_contract")  # no SAELens form (SAELens has no shift)
class ShiftSAE(SAE):
    config_class = ShiftConfig

    def __init__(self, cfg):
        super().__init__(cfg)
        self.shift = torch.nn.Parameter(torch.tensor(cfg.shift_init))

    @torch.no_grad()
    def fold_scale_(self, scale):
        super().fold_scale_(scale)
        self.shift.div_(scale)

    def encode(self, x_Bd):
        return (self.pre_acts(x_Bd) - self.shift).relu()

    def forward(self, x_Bd, dead_F=None, sparsity_scale=1.0):
        z = self.encode(x_Bd)
        x_hat = self.decode(z)
        mse = mse_sum(x_hat, x_Bd)
        l1 = z.sum(-1).mean()
        loss = mse + sparsity_scale * self.cfg.l1_coeff * l1
        return SAEOutput(x_hat, {"loss": loss, "mse": mse.detach(), "l1": l1.detach()}, z_dense=z)
'''


@pytest.fixture
def toy_module(tmp_path, monkeypatch):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "toy_contract_arch.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    yield
    unregister_arch("toy_contract")
    sys.modules.pop("toy_contract_arch", None)


def test_a_new_architecture_is_one_file(toy_module, tmp_path):
    """A toy written to a temporary module, imported, keeps the same contract (nothing else
    edited); `vsae train --help` lists its options under it."""
    assert "toy_contract" not in arch_names()
    import toy_contract_arch  # noqa: F401  (registers "toy_contract")

    assert "toy_contract" in arch_names()
    check_contract("toy_contract", tmp_path)
    from click.testing import CliRunner

    from vsae.cli.train import train

    help_text = CliRunner().invoke(train, ["--help"]).output
    section = help_text.split("Options of --arch toy_contract:", 1)[1]
    assert "--toy-l1" in section and "--shift-init" in section


@pytest.mark.parametrize("arch", ["batchtopk", "jumprelu", "matryoshka", "relu", "topk"])
def test_a_checkpoint_of_the_flat_layout_loads_bit_identical(arch, tmp_path):
    """config.json of older vsae carries every architecture's settings (``l1_coeff`` of a TopK
    SAE, ...): it loads, with the weights bit for bit, the outputs main's code computed (fixture
    ``expected.safetensors``, written by main 65a6650), and saves the same weights again."""
    d = FLAT / arch
    old = json.loads((d / "config.json").read_text())["cfg"]
    assert {"k", "l1_coeff", "l0_coeff", "groups", "threshold_momentum"} <= set(old)  # the old layout
    sae = load(d)
    assert type(sae) is get_arch(arch).cls and sae.cfg.arch == arch
    kept = sae.cfg.to_json()
    assert {k: old[k] for k in kept} == kept  # every setting it has, as written
    weights = load_file(d / "sae.safetensors")
    state = sae.state_dict()
    assert set(weights) <= set(state)
    for n, w in weights.items():
        assert torch.equal(state[n], w), n
    ref = load_file(FLAT / "expected.safetensors")
    with torch.no_grad():
        z = sae.encode(ref["x"])
        assert torch.equal(z, ref[f"{arch}.z"])
        assert torch.equal(sae.decode(z), ref[f"{arch}.x_hat"])
        assert torch.equal(sae(ref["x"]).x_hat, ref[f"{arch}.forward_x_hat"])
    save(sae, tmp_path / "again")
    assert (tmp_path / "again" / "sae.safetensors").read_bytes() == (d / "sae.safetensors").read_bytes()
