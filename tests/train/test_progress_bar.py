"""The training bar names the hook and the SAE(s), and a sweep's bar shows every SAE's metrics."""

import numpy as np
import torch

import vsae
from vsae.store import StoreWriter
from vsae.train import TrainConfig, open_store_source


def test_sweep_bar_names_hook_and_every_sae(tmp_path, capsys):
    w = StoreWriter.create_or_resume(tmp_path / "s", d=8, dtype="float32", provenance={"hook": "resid.3"})
    w.add(
        torch.randn(256, 8, generator=torch.Generator().manual_seed(0)),
        np.arange(256),
        np.zeros(256, np.int64),
    )
    w.mark_images_done(256)
    w.close()
    cfgs = [vsae.SAEConfig(arch="topk", d_in=8, d_sae=d, k=2) for d in (16, 32)]
    vsae.train(
        open_store_source(tmp_path / "s"), cfgs, TrainConfig(steps=4, batch_size=64, log_every=2), tmp_path / "r"
    )
    err = capsys.readouterr().err
    assert "train resid.3: 2 SAEs" in err
    names = vsae.train.run_name  # the default names of a sweep
    for c in cfgs:
        assert f"{names(c)} fvu " in err
    vsae.train(torch.randn(128, 8), cfgs[0], TrainConfig(steps=2, batch_size=64, log_every=1), tmp_path / "t")
    err = capsys.readouterr().err
    assert "train sae: " in err and "fvu=" in err  # one SAE, named by its config
