"""Validation rows span a class-sorted --val store (a seeded sample, not its first rows); the
training log's `mse` is METRICS.md's (mean over d), as the validation row's."""

import json

import numpy as np
import pytest
import torch

from vsae.cli import main
from vsae.sae import SAEConfig
from vsae.store import ActivationStore
from vsae.train import TensorSource, TrainConfig, train
from vsae.train.batch_sources import spread_rows
from vsae.train.planted import make_planted

D, N_CLASSES, PER_CLASS = 16, 10, 400


def _class_sorted(seed: int = 0) -> torch.Tensor:
    """Rows of 10 classes in class order (as a class-folder extraction writes them); column 0 is
    the class id. Classes 0-3 (the first 40%) are one constant row each: no variance of their own."""
    g = torch.Generator().manual_seed(seed)
    parts = []
    for c in range(N_CLASSES):
        if c < 4:
            x = torch.full((PER_CLASS, D), 0.5).index_fill_(1, torch.tensor([0]), float(c))
        else:
            x = torch.randn(PER_CLASS, D, generator=g) * 2
            x[:, 0] = c
        parts.append(x)
    return torch.cat(parts)


def test_spread_rows_cover_every_class_of_a_sorted_store(tmp_path, make_store):
    store = ActivationStore.open(make_store(tmp_path / "val", _class_sorted()))
    rows = torch.cat(list(spread_rows(store, 1600, seed=0, batch_size=500)))
    assert rows.shape == (1600, D)
    counts = np.bincount(rows[:, 0].round().long().numpy(), minlength=N_CLASSES)
    assert (counts > 100).all(), counts  # the first 1,600 rows would be classes 0-3 only
    again = torch.cat(list(spread_rows(store, 1600, seed=0)))
    assert torch.equal(rows, again)  # seeded: the same rows every time
    assert not torch.equal(rows, torch.cat(list(spread_rows(store, 1600, seed=1))))
    varied = rows[rows[:, 0] >= 4]
    assert len(torch.unique(varied, dim=0)) == len(varied)  # no row drawn twice
    everything = torch.cat(list(spread_rows(store, 10**6, seed=0)))
    assert torch.equal(everything, store[0 : len(store)])


def test_trainer_validates_on_rows_from_the_whole_val_store(tmp_path, make_store):
    val = ActivationStore.open(make_store(tmp_path / "val", _class_sorted()))
    src = TensorSource(make_planted(3000, D, 32, 3, seed=1, offset=0.5).x_Nd)
    cfg = SAEConfig(arch="topk", d_in=D, d_sae=32, k=3, aux_k=8, name="t")
    tcfg = TrainConfig(steps=10, batch_size=128, lr=3e-3, log_every=10, ckpt_every=0, val_rows=1600)
    [d] = train(src, [cfg], tcfg, tmp_path / "run", val=val, progress=False)
    v = json.loads((d / "config.json").read_text())["val"]
    assert v["rows"] == 1600
    # The first 1,600 rows (classes 0-3) have a total variance of 1,600 * 0.0 + class ids only:
    # the FVU over them is not the FVU over the store. Over a spread sample it is close to it.
    from vsae.sae import load
    from vsae.train.validation import recon_metrics

    sae = load(d)
    whole = recon_metrics(sae, [val[0 : len(val)]])
    first = recon_metrics(sae, [val[0:1600]])
    assert abs(v["fvu"] - whole["fvu"]) < 0.25 * whole["fvu"]
    assert abs(first["fvu"] - whole["fvu"]) > 0.5 * whole["fvu"]  # what the old first-N gave


def test_log_mse_is_the_mean_over_d(tmp_path):
    x = make_planted(2000, D, 32, 3, seed=3, offset=0.5).x_Nd * 3.0
    src = TensorSource(x)
    cfg = SAEConfig(arch="relu", d_in=D, d_sae=32, l1_coeff=0.1, name="r")
    tcfg = TrainConfig(steps=1, batch_size=256, lr=1e-3, log_every=1, ckpt_every=0, val_rows=0, seed=4)
    [d] = train(src, [cfg], tcfg, tmp_path / "run", progress=False)
    row = json.loads((d / "log.jsonl").read_text().splitlines()[0])
    batch = next(iter(src.iter_batches(256, seed=4)))  # the batch of step 1
    var_per_element = float((batch - batch.mean(0)).pow(2).sum()) / (256 * D)
    # fvu = sse / total variance and mse = sse / (rows * d): their ratio is the batch's variance
    # per element (in the input's scale), whatever the SAE reconstructed.
    assert row["mse"] / row["fvu"] == pytest.approx(var_per_element, rel=1e-4)


def test_cli_val_rows_flag(tmp_path, make_store):
    acts = make_store(tmp_path / "acts", make_planted(2000, D, 32, 3, seed=2).x_Nd)
    val = make_store(tmp_path / "val", _class_sorted())
    run = tmp_path / "run"
    opts = "--arch topk --expansion 2 --k 3 --steps 5 --batch-size 100 --val-rows 700 --ckpt-every 0 --quiet"
    main(["train", "--acts", str(acts), "--out", str(run), "--val", str(val), *opts.split()])
    meta = json.loads((run / "topk-x2-k3" / "config.json").read_text())
    assert meta["val"]["rows"] == 700 and meta["train_cfg"]["val_rows"] == 700
