"""Adding an SAE architecture is one file: a toy architecture defined here only, registered, then
trained with `vsae.train`, saved, loaded, scale-folded and exported to SAELens through the
registry alone; and the worked example of docs/extending.md runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

import vsae
from vsae.cli import main
from vsae.errors import VsaeError
from vsae.sae import SAE, SAEConfig, arch_names, get_arch, register_arch, unregister_arch
from vsae.sae.archs.relu import ReluConfig
from vsae.sae.base import SAEOutput, mse_sum
from vsae.sae.saelens import export_saelens, load_saelens
from vsae.store import StoreWriter

ROOT = Path(__file__).resolve().parents[2]


class ShiftedReluSAE(SAE):
    """A toy: z = ReLU(W_enc x + b_enc - shift) with one learned scalar ``shift`` (state of its own,
    folded with the input scale); L1 penalty. Not exportable to SAELens (no such architecture).
    It reuses the ReLU SAE's settings (``l1_coeff``)."""

    config_class = ReluConfig

    def __init__(self, cfg: SAEConfig):
        super().__init__(cfg)
        self.shift = torch.nn.Parameter(torch.tensor(0.1))

    @torch.no_grad()
    def fold_scale_(self, scale: float) -> None:
        super().fold_scale_(scale)
        self.shift.div_(scale)

    def encode(self, x_Bd: torch.Tensor) -> torch.Tensor:
        return (self.pre_acts(x_Bd) - self.shift).relu()

    def forward(
        self, x_Bd: torch.Tensor, dead_F: torch.Tensor | None = None, sparsity_scale: float = 1.0
    ) -> SAEOutput:
        z = self.encode(x_Bd)
        x_hat = self.decode(z)
        mse = mse_sum(x_hat, x_Bd)
        l1 = z.sum(-1).mean()
        loss = mse + sparsity_scale * self.cfg.l1_coeff * l1
        return SAEOutput(x_hat, {"loss": loss, "mse": mse.detach(), "l1": l1.detach()}, z_dense=z)


@dataclass(frozen=True, kw_only=True)
class SqrtReluConfig(SAEConfig):
    """The docs/extending.md example's settings.

    Attributes
    ----------
    l1_coeff: weight of the square-root sparsity penalty.
    """

    arch: str = "toy_sqrt"
    l1_coeff: float = field(default=1.0, metadata={"flag": "--l1"})


class SqrtReluSAE(SAE):
    """The docs/extending.md example: ReLU latents (SAELens "standard"), square-root penalty."""

    config_class = SqrtReluConfig

    def encode(self, x_Bd: torch.Tensor) -> torch.Tensor:
        return self.pre_acts(x_Bd).relu()

    def forward(
        self, x_Bd: torch.Tensor, dead_F: torch.Tensor | None = None, sparsity_scale: float = 1.0
    ) -> SAEOutput:
        z = self.encode(x_Bd)
        x_hat = self.decode(z)
        mse = mse_sum(x_hat, x_Bd)
        penalty = (z * self.W_dec_Fd.norm(dim=1) + 1e-6).sqrt().sum(-1).mean()
        loss = mse + sparsity_scale * self.cfg.l1_coeff * penalty
        return SAEOutput(x_hat, {"loss": loss, "mse": mse.detach(), "sqrt": penalty.detach()}, z_dense=z)


@pytest.fixture
def toys():
    register_arch("toy_shifted")(ShiftedReluSAE)
    register_arch("toy_sqrt", saelens="standard")(SqrtReluSAE)
    yield
    unregister_arch("toy_shifted")
    unregister_arch("toy_sqrt")


def _rows(n: int = 3000, d: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g) * 3 + 1  # not unit scale: the trainer folds a scale


def test_a_registered_toy_trains_saves_loads_and_folds_its_own_state(toys, tmp_path):
    assert {"toy_shifted", "toy_sqrt"} <= set(arch_names())
    assert not get_arch("toy_shifted").uses_k
    x = _rows()
    cfg = SAEConfig(arch="toy_shifted", d_in=12, d_sae=48, l1_coeff=0.05)
    assert type(cfg) is ReluConfig and cfg.arch == "toy_shifted"
    with pytest.raises(VsaeError, match="k: not a setting of SAE architecture 'toy_shifted'"):
        SAEConfig(arch="toy_shifted", d_in=12, d_sae=48, k=999)
    tcfg = vsae.TrainConfig(steps=60, batch_size=256, lr=3e-3, val_rows=0, ckpt_every=0, log_every=30)
    [run] = vsae.train(x, [cfg], tcfg, tmp_path / "run", progress=False)
    assert vsae.sae.run_name(cfg) == "toy_shifted-x4"  # no -kK for an architecture without k
    sae = vsae.sae.load(run)
    assert type(sae) is ShiftedReluSAE and sae.cfg.arch == "toy_shifted"
    assert float(sae.shift.detach()) != pytest.approx(0.1)  # trained, then folded into input units
    with torch.no_grad():
        z = sae.encode(x)
        fvu = float((sae.decode(z) - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    assert 0 < float((z > 0).float().mean()) < 1
    assert fvu < 0.9  # it learned something on the raw (unnormalised) rows: the scale was folded back
    with pytest.raises(VsaeError, match="no SAELens equivalent"):
        export_saelens(sae, tmp_path / "sl")
    # fold_scale goes through the architecture's own fold_scale_
    folded = vsae.sae.fold_scale(sae, 0.5)
    torch.testing.assert_close(folded.encode(x), sae.encode(x * 0.5) / 0.5, atol=1e-4, rtol=1e-4)


def test_a_registered_toy_exports_to_saelens_and_trains_from_the_cli(toys, tmp_path, capsys):
    x = _rows()
    w = StoreWriter.create_or_resume(tmp_path / "acts", d=12, dtype="float32", provenance={"hook": "resid.0"})
    w.add(x, np.arange(len(x)), np.zeros(len(x), np.int64))
    w.mark_images_done(len(x))
    w.close()
    args = ["train", "--acts", str(tmp_path / "acts"), "--out", str(tmp_path / "run"), "--arch", "toy_sqrt",
            "--expansion", "2,4", "--l1", "0.05", "--steps", "40", "--batch-size", "256",
            "--quiet", "--threads", "1", "--export-saelens"]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main([*args, "--k", "3,5"])  # toy_sqrt has no k
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert re.match(
        r"error: --k is an option of --arch .*topk, not of --arch toy_sqrt \(its options: --l1", err
    )
    assert not (tmp_path / "run").exists()
    main(args)
    runs = capsys.readouterr().out.split()
    assert [Path(r).name for r in runs] == ["toy_sqrt-x2", "toy_sqrt-x4"]
    assert vsae.sae.load(runs[0]).cfg.l1_coeff == 0.05  # its own option, from its own config
    for r in map(Path, runs):
        sae = vsae.sae.load(r)
        assert type(sae) is SqrtReluSAE and sae.cfg.provenance["hook"] == "resid.0"
        back = load_saelens(r / "saelens")  # written by --export-saelens: SAELens "standard" = ReLU
        assert back.cfg.arch == "toy_sqrt"  # metadata.vsae restores the architecture
        torch.testing.assert_close(back.encode(x), sae.encode(x), atol=1e-4, rtol=1e-4)


def test_unknown_and_duplicate_architectures_are_refused(toys):
    with pytest.raises(VsaeError, match="unknown SAE architecture 'nope'; use one of: .*toy_sqrt"):
        SAEConfig(arch="nope", d_in=4, d_sae=8)
    with pytest.raises(VsaeError, match="already registered"):
        register_arch("toy_sqrt")(ShiftedReluSAE)
    with pytest.raises(VsaeError, match="must be an identifier"):
        register_arch("has space")(ShiftedReluSAE)


def test_the_docs_example_runs_as_written(tmp_path):
    text = (ROOT / "docs" / "extending.md").read_text()
    section = text.split("## Adding an SAE architecture", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, re.S)
    (tmp_path / "relu_sqrt.py").write_text(code)
    r = subprocess.run(
        [sys.executable, "relu_sqrt.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    run, cls = r.stdout.split()[:2]
    assert cls == "SqrtReluSAE" and Path(run).parent.name == "runs"
    assert (tmp_path / run / "saelens" / "cfg.json").is_file()
