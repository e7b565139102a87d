"""Issue 13: ``--precision`` (fp32 | tf32 | bf16 autocast) keeps fp32 weights and FVU parity."""

import json

import pytest
import torch

from vsae.sae import load
from vsae.sae.sae_config import config_for
from vsae.train import TrainConfig, train
from vsae.train.batch_sources import TensorSource
from vsae.train.planted import make_planted


@pytest.fixture(scope="module")
def planted():
    return make_planted(4096 + 1024, 64, 128, 8, noise=0.05, seed=2, offset=1.0).x_Nd


def _fit(x, out, precision, arch):
    cfg = config_for(arch, d_in=64, d_sae=512, k=8, aux_k=32, l1_coeff=0.02, name="s")
    tc = TrainConfig(
        steps=60,
        batch_size=512,
        lr=1e-3,
        log_every=30,
        ckpt_every=0,
        val_rows=1024,
        init_rows=512,
        precision=precision,
    )
    [d] = train(TensorSource(x[:4096]), [cfg], tc, out, val=TensorSource(x[4096:]), progress=False)
    logs = [json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()]
    return [r["fvu"] for r in logs if "fvu" in r], json.loads((d / "config.json").read_text())["val"], load(d)


@pytest.mark.parametrize("arch", ["batchtopk", "relu"])
def test_bf16_and_tf32_match_fp32_fvu(planted, tmp_path, arch):
    torch.set_num_threads(1)
    ref, ref_val, _ = _fit(planted, tmp_path / "fp32", "fp32", arch)
    assert ref[-1] < 0.8 * ref[0]  # it learns, so parity is not trivially "both at 1.0"
    for p in ("bf16", "tf32"):
        got, got_val, sae = _fit(planted, tmp_path / p, p, arch)
        assert all(t.dtype == torch.float32 for t in sae.state_dict().values())  # fp32 master weights
        assert abs(got[-1] - ref[-1]) < 0.02, (p, got, ref)
        assert abs(got_val["fvu"] - ref_val["fvu"]) < 0.02, (p, got_val, ref_val)


def test_unknown_precision_is_refused():
    from vsae.errors import VsaeError

    with pytest.raises(VsaeError, match="--precision"):
        TrainConfig(steps=1, precision="fp16")
