"""Issue 13: the training step makes no host synchronisation between log intervals.

The check runs on CPU through a dispatch mode that sees every ATen op (autograd backward and
the optimizer included) and counts the ones that force a device->host sync on CUDA: reading a
scalar (``.item()``, ``float(t)``, ``bool(t)``, ``int(t)`` all become ``_local_scalar_dense``),
``nonzero`` and boolean-mask indexing (data-dependent shapes), ``bincount`` and ``unique``
(CUDA reads the extent back), ``repeat_interleave`` with tensor repeats, and tensors made
from host values (a blocking host->device copy on CUDA); ``tolist``/``numpy``
are patched at the Python level. On a GPU the same property is checked with
``torch.cuda.set_sync_debug_mode("error")`` (bench/train.py --device cuda --check-sync).
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vsae.sae import SAEConfig
from vsae.sae.archs.batchtopk import BatchTopKSAE, batch_topk_fixed, batch_topk_flat
from vsae.sae.io import build
from vsae.sae.step import fixed_shapes
from vsae.train import TrainConfig, Trainer
from vsae.train.batch_sources import TensorSource
from vsae.train.planted import make_planted

aten = torch.ops.aten
_SYNC_OPS = {
    aten._local_scalar_dense.default,
    aten.nonzero.default,
    aten.masked_select.default,
    aten.bincount.default,
    aten._unique2.default,
    aten.unique_dim.default,
    aten.unique_consecutive.default,
    aten.repeat_interleave.Tensor,
    aten.equal.default,
    aten.is_nonzero.default,
    aten.lift_fresh.default,  # torch.tensor(host value) on the device: a blocking copy on CUDA
    aten.lift_fresh_copy.default,
}


class SyncCounter(TorchDispatchMode):
    """Records every op that would make the host wait for the device."""

    def __init__(self):
        super().__init__()
        self.hits: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _SYNC_OPS:
            self.hits.append(str(func))
        elif func in (aten.index.Tensor, aten.index_put_.default, aten.index_put.default):
            idx = args[1]
            if any(i is not None and i.dtype == torch.bool for i in idx):
                self.hits.append(f"{func} (boolean mask)")
        return func(*args, **kwargs)


@contextlib.contextmanager
def count_syncs():
    counter = SyncCounter()
    saved = {n: getattr(torch.Tensor, n) for n in ("tolist", "numpy")}

    def wrap(name):
        def f(self, *a, **k):
            counter.hits.append(f"Tensor.{name}")
            return saved[name](self, *a, **k)

        return f

    try:
        for n in saved:
            setattr(torch.Tensor, n, wrap(n))
        with counter:
            yield counter
    finally:
        for n, f in saved.items():
            setattr(torch.Tensor, n, f)


D, F, K, B = 32, 256, 4, 256


@pytest.fixture(scope="module")
def rows():
    return make_planted(8 * B, D, 64, K, noise=0.05, seed=1, offset=1.0).x_Nd


def _trainer(rows, tmp_path, sync_free, arch="batchtopk", **kw):
    cfg = SAEConfig(arch=arch, d_in=D, d_sae=F, k=K, aux_k=16, name="b")
    tc = TrainConfig(
        steps=40,
        batch_size=B,
        lr=1e-3,
        log_every=20,
        ckpt_every=0,
        val_rows=0,
        dead_window_rows=2 * B,
        sync_free=sync_free,
        **kw,
    )
    return Trainer(TensorSource(rows), [cfg], tc, tmp_path, progress=False)


def _steps(t, rows, a, b):
    assert t.steps_done == a
    it = TensorSource(rows).iter_batches(B, seed=0, start_batch=a)
    for _ in range(a, b):
        t.step(next(it))


def test_counter_sees_the_syncs_of_the_old_step(rows, tmp_path):
    a, b = torch.tensor([1.0, 2.0]), torch.arange(4)
    with count_syncs() as c:
        a.sum().item()
        torch.nonzero(b)
        b[b > 1]
        b.tolist()
        torch.tensor(1.0)
    assert len(c.hits) == 5, c.hits
    t = _trainer(rows, tmp_path, sync_free=False)
    _steps(t, rows, 0, 3)
    with count_syncs() as c:
        _steps(t, rows, 3, 8)  # dead latents exist from step 2 on: aux-k runs too
    assert len(c.hits) >= 5 * 3, c.hits  # selection, threshold, aux-k, fired latents, Adam ...


@pytest.mark.parametrize("arch", ["batchtopk", "matryoshka"])
def test_sync_free_step_makes_no_host_sync(rows, tmp_path, arch):
    t = _trainer(rows, tmp_path, sync_free=True, arch=arch)
    _steps(t, rows, 0, 3)
    assert t.runs[0].since_max + 3 * B >= t.tcfg.dead_window  # the aux-k path is live in the steps counted
    with count_syncs() as c:
        _steps(t, rows, 3, 13)
    assert c.hits == [], sorted(set(c.hits))
    row = t.interval_metrics()["b"]  # the log interval reads everything back, once
    assert 0 < row["fvu"] < 1.5 and row["l0"] == pytest.approx(K) and row["loss/aux"] > 0
    assert row["capped_steps"] == 0


def test_fixed_selection_equals_batch_topk_unless_capped():
    g = torch.Generator().manual_seed(0)
    pre = torch.randn(64, 512, generator=g)
    row, col, capped = batch_topk_fixed(pre, 8 * 64, 32)
    flat = batch_topk_flat(pre.reshape(-1), 8 * 64)
    assert not capped and torch.equal(row * 512 + col, flat)
    pre[3] += 10.0  # row 3 now holds far more than 32 of the top 512
    _, _, capped = batch_topk_fixed(pre, 8 * 64, 32)
    assert capped


def test_fixed_threshold_and_aux_loss_equal_the_reference():
    cfg = SAEConfig(arch="batchtopk", d_in=D, d_sae=F, k=K, aux_k=16)
    ref, fix0 = build(cfg, seed=0), build(cfg, seed=0)
    assert isinstance(fix0, BatchTopKSAE)

    def fix(*args, **kw):  # the trainer's sync-free step: forward inside fixed_shapes()
        with fixed_shapes():
            return fix0(*args, **kw)

    x = torch.randn(B, D)
    dead = torch.zeros(F, dtype=torch.bool)
    dead[::3] = True
    for m in (ref, fix0):
        m.train()
    o_ref, o_fix = ref(x, dead_F=dead), fix(x, dead_F=dead)
    assert torch.allclose(o_ref.x_hat, o_fix.x_hat, atol=1e-6)
    assert torch.allclose(o_ref.losses["aux"], o_fix.losses["aux"], rtol=1e-5) and o_ref.losses["aux"] > 0
    assert torch.equal(ref.threshold, fix0.threshold)
    for _ in range(3):
        ref(x * 1.1, dead_F=dead), fix(x * 1.1, dead_F=dead)
    assert torch.allclose(ref.threshold, fix0.threshold)
    none = torch.zeros(F, dtype=torch.bool)
    assert ref(x, dead_F=none).losses["aux"] == 0 and fix(x, dead_F=none).losses["aux"] == 0


@pytest.mark.parametrize("arch", ["batchtopk", "matryoshka"])
def test_sync_free_training_matches_the_exact_path(rows, tmp_path, arch):
    """Same data, same steps: the sync-free step (fixed-shape selection, fused Adam) trains as well."""
    import json

    from vsae.train import train

    cfg = SAEConfig(arch=arch, d_in=D, d_sae=F, k=K, aux_k=16, name="b")
    fvus = {}
    for sf in (False, True):
        tc = TrainConfig(
            steps=40,
            batch_size=B,
            lr=1e-3,
            log_every=20,
            ckpt_every=0,
            val_rows=0,
            dead_window_rows=4 * B,
            sync_free=sf,
        )
        [d] = train(TensorSource(rows), [cfg], tc, tmp_path / str(sf), progress=False)
        logs = [json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()]
        fvus[sf] = [r["fvu"] for r in logs]
        assert all(0 <= r["data_wait_frac"] <= 1 for r in logs)
        assert ("capped_steps" in logs[-1]) == sf
    assert fvus[True][-1] < 0.8 * fvus[True][0]
    assert abs(fvus[True][-1] - fvus[False][-1]) < 0.03, fvus


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_step_has_no_sync_under_debug_mode(rows, tmp_path):
    """On a GPU: any implicit host sync inside the 10 steps raises (torch's sync debug mode)."""
    t = _trainer(rows, tmp_path, sync_free=None, device="cuda")
    assert t.sync_free
    _steps(t, rows, 0, 3)
    it = TensorSource(rows).iter_batches(B, seed=0, start_batch=3)
    xs = [next(it).cuda() for _ in range(10)]  # on the device (in training, the prefetcher's job)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for x in xs:
            t.step(x)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    row = t.interval_metrics()["b"]
    assert 0 < row["fvu"] < 1.5 and row["loss/aux"] > 0
