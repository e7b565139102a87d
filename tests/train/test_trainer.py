"""The training loop: schedules, init, sweeps in one pass, store streaming, in-process resume."""

import json
import shutil

import pytest
import torch

from vsae.errors import VsaeError
from vsae.sae import load
from vsae.sae.sae_config import config_for
from vsae.store import ActivationStore
from vsae.train import TensorSource, TrainConfig, Trainer, train
from vsae.train.init import geometric_median, input_scale
from vsae.train.planted import make_planted


def _cfg(arch="topk", k=3, F=64, name=None, **kw):
    return config_for(arch, d_in=16, d_sae=F, k=k, aux_k=8, name=name or f"{arch}-{k}-{F}", **kw)


def _tcfg(**kw):
    base = dict(
        steps=30, batch_size=128, lr=3e-3, log_every=10, ckpt_every=10, val_rows=0, dead_window_rows=1000
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def data():
    return make_planted(4000, 16, 32, 3, seed=1, offset=0.5)


def test_schedules():
    t = TrainConfig(steps=100, warmup_steps=10, decay_start=0.8, sparsity_warmup_steps=20, lr=1.0)
    assert t.lr_at(0) == pytest.approx(0.1) and t.lr_at(9) == pytest.approx(1.0)
    assert t.lr_at(50) == 1.0
    assert t.lr_at(90) == pytest.approx(0.5) and t.lr_at(99) == pytest.approx(0.05)
    assert t.sparsity_at(0) == pytest.approx(0.05) and t.sparsity_at(19) == 1.0 and t.sparsity_at(80) == 1.0
    with pytest.raises(VsaeError, match="--lr"):
        TrainConfig(steps=1, lr=0)


def test_geometric_median_and_scale():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=g)
    x[:20] += 100  # outliers pull the mean, not the median
    med = geometric_median(x)

    def cost(y):
        return float((x - y).norm(dim=1).sum())

    assert cost(med) < cost(x.mean(0))
    for _ in range(20):  # a local minimum: no small step improves it
        step = torch.randn(5, generator=g) * 1e-2
        assert cost(med) <= cost(med + step) + 1e-4
    s = input_scale(x)
    assert float((x * s).pow(2).sum(-1).mean()) == pytest.approx(5.0, rel=1e-5)


def test_sweep_in_one_pass_equals_separate_runs(data, tmp_path):
    src = TensorSource(data.x_Nd)
    cfgs = [_cfg(k=2), _cfg(k=4, F=48), _cfg(arch="relu", name="relu", l1_coeff=0.3)]
    together = train(src, cfgs, _tcfg(), tmp_path / "all", progress=False)
    for c, d in zip(cfgs, together):
        [alone] = train(src, [c], _tcfg(), tmp_path / c.name, progress=False)
        a, b = load(d), load(alone)
        for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(p, q), (c.name, n)


def test_resume_in_process_is_bit_identical(data, tmp_path):
    src = TensorSource(data.x_Nd)
    cfgs = [_cfg(arch="batchtopk", name="b"), _cfg(arch="jumprelu", name="j", l0_coeff=0.05)]
    [ref_b, ref_j] = train(src, cfgs, _tcfg(), tmp_path / "ref", progress=False)
    # A run stopped after its step-10 checkpoint: copy the state at that point and resume it.
    t = Trainer(src, cfgs, _tcfg(), tmp_path / "part", progress=False)
    it = src.iter_batches(128, seed=0)
    t.checkpoint()
    for _ in range(10):
        losses = t.step(next(it))
        assert set(losses) == {"b", "j"} and all(torch.isfinite(v["loss"]) for v in losses.values())
    assert t.steps_done == 10
    t.checkpoint()
    [got_b, got_j] = train(src, cfgs, _tcfg(), tmp_path / "part", resume=True, progress=False)
    for ref, got in ((ref_b, got_b), (ref_j, got_j)):
        a, b = load(ref), load(got)
        for (n, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(p, q), n


def test_run_is_the_public_step_in_a_loop(data, tmp_path):
    """`Trainer.step` on the source's batches, then the input scale folded in, gives the SAE `run` saves."""
    from vsae.train.fold import fold_input

    src = TensorSource(data.x_Nd)
    cfgs = [_cfg(arch="batchtopk", name="b"), _cfg(arch="relu", name="r", l1_coeff=0.3)]
    tc = _tcfg(ckpt_every=0)
    saved = train(src, cfgs, tc, tmp_path / "run", progress=False)
    t = Trainer(src, cfgs, tc, tmp_path / "steps", progress=False)
    it = src.iter_batches(tc.batch_size, seed=tc.seed)
    first = t.step(next(it))
    while t.steps_done < tc.steps:
        last = t.step(next(it))
    assert last["b"]["loss"] < first["b"]["loss"] and last["r"]["mse"] < first["r"]["mse"]
    rows = t.interval_metrics()
    assert set(rows) == {"b", "r"} and rows["b"]["step"] == tc.steps and 0 < rows["b"]["fvu"] < 1
    for d in saved:
        mine = fold_input(t.saes[d.name], t.scale, t.center).eval()
        for (n, p), (_, q) in zip(mine.state_dict().items(), load(d).state_dict().items()):
            assert torch.equal(p, q), (d.name, n)


def test_refuses_existing_run_and_mismatched_resume(data, tmp_path):
    src = TensorSource(data.x_Nd)
    train(src, [_cfg()], _tcfg(steps=10), tmp_path, progress=False)
    with pytest.raises(VsaeError, match="--resume"):
        train(src, [_cfg()], _tcfg(steps=10), tmp_path, progress=False)
    with pytest.raises(VsaeError, match="--batch-size 64 but the run used"):
        train(src, [_cfg()], _tcfg(steps=10, batch_size=64), tmp_path, resume=True, progress=False)
    with pytest.raises(VsaeError, match="d_in=16"):
        train(TensorSource(torch.randn(500, 8)), [_cfg()], _tcfg(steps=10), tmp_path / "x", progress=False)


def test_trains_from_store_with_validation_and_provenance(data, tmp_path, make_store):
    store = make_store(tmp_path / "acts", data.x_Nd[:3000])
    val = make_store(tmp_path / "val", data.x_Nd[3000:])
    src, vsrc = ActivationStore.open(store), ActivationStore.open(val)
    [d] = train(
        src,
        [_cfg()],
        _tcfg(steps=40, ckpt_every=20, val_rows=5000),
        tmp_path / "run",
        val=vsrc,
        progress=False,
    )
    meta = json.loads((d / "config.json").read_text())
    assert meta["cfg"]["provenance"]["model"] == "planted" and meta["cfg"]["provenance"]["hook"] == "resid.0"
    assert meta["cfg"]["provenance"]["store"].endswith("acts")
    assert 0 < meta["val"]["fvu"] < 1 and meta["val"]["rows"] == 1000
    sae = load(d)
    x = data.x_Nd[3000:]
    with torch.no_grad():
        x_hat = sae.decode(sae.encode(x))
    fvu = float((x_hat - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    assert meta["val"]["fvu"] == pytest.approx(fvu, rel=1e-4)  # folded weights work on raw inputs
    rows = [json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["val"]["fvu"] == meta["val"]["fvu"]
    assert [r["step"] for r in rows if "fvu" in r] == [10, 20, 30, 40]
    ckpts = sorted(p.name for p in d.glob("ckpt-*"))
    assert ckpts == ["ckpt-000000040"]  # older checkpoints removed after the newer one committed
    shutil.rmtree(tmp_path / "run")
