"""The background prefetcher (issue 13): same batches, same order, exact resume, storage dtype."""

import itertools
import threading

import numpy as np
import pytest
import torch

from vsae.store import ActivationStore, StoreWriter
from vsae.store.prefetch import prefetch_batches
from vsae.train.batch_sources import TensorSource


def _store(path, X, dtype):
    w = StoreWriter.create_or_resume(
        path, d=X.shape[1], dtype=dtype, provenance={"hook": "resid.1"}, rows_per_shard=700
    )
    for a in range(0, len(X), 250):
        b = min(a + 250, len(X))
        w.add(X[a:b], np.arange(a, b), np.zeros(b - a, dtype=np.int64))
        w.mark_images_done(b)
    w.close()
    return ActivationStore.open(path)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_prefetch_gives_the_store_batches_in_order_and_resumes_exactly(tmp_path, dtype):
    X = torch.randn(3000, 16)
    s = _store(tmp_path / "s", X, dtype)
    kw = {"buffer_rows": 1024, "block_rows": 64}  # several windows, shards and epochs below
    ref = list(itertools.islice(s.iter_batches(256, seed=3, **kw), 30))  # float32, as the trainer read before
    got = list(itertools.islice(prefetch_batches(_Small(s, kw), 256, seed=3), 30))
    assert all(g.dtype == s.dtype for g in got)  # storage dtype: converted on the device
    assert all(torch.equal(g.float(), r) for g, r in zip(got, ref, strict=True))
    # Resuming at batch 17 (inside an epoch, not at a window boundary) gives batch 17 onwards.
    resumed = list(itertools.islice(prefetch_batches(_Small(s, kw), 256, seed=3, start_batch=17), 13))
    assert all(torch.equal(g.float(), r) for g, r in zip(resumed, ref[17:], strict=True))
    # The epoch permutation still visits every row once.
    per_epoch = len(X) // 256
    rows = torch.cat([g.float() for g in got[:per_epoch]])
    exact = X.to(s.dtype).float()
    assert len(torch.unique(rows, dim=0)) == len(rows) and bool(
        (rows[:, None, :1] == exact[None, :, :1]).any(1).all()
    )


class _Small:
    """The store with small windows (the default window, 65536 rows, exceeds this test store)."""

    def __init__(self, s, kw):
        self.s, self.kw = s, kw

    def iter_batches(self, bs, *, seed=0, start_batch=0, raw=False):
        return self.s.iter_batches(bs, seed=seed, start_batch=start_batch, raw=raw, **self.kw)


def test_prefetch_of_a_tensor_source_and_thread_shutdown():
    X = torch.randn(1000, 8)
    src = TensorSource(X)
    ref = list(itertools.islice(src.iter_batches(100, seed=1), 25))
    it = prefetch_batches(src, 100, seed=1, depth=2)
    got = list(itertools.islice(it, 25))
    assert all(torch.equal(g, r) for g, r in zip(got, ref, strict=True))
    it.close()  # the reader thread stops when the consumer leaves
    assert not any(t.name == "vsae-prefetch" and t.is_alive() for t in threading.enumerate())


def test_reader_errors_reach_the_consumer():
    class Broken:
        def iter_batches(self, bs, *, seed=0, start_batch=0):
            yield torch.zeros(bs, 4)
            raise OSError("disk gone")

    it = prefetch_batches(Broken(), 8)
    assert next(it).shape == (8, 4)
    with pytest.raises(OSError, match="disk gone"):
        next(it)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_prefetch_to_cuda_gives_the_same_batches(tmp_path):
    X = torch.randn(3000, 16)
    s = _store(tmp_path / "s", X, "float16")
    kw = {"buffer_rows": 1024, "block_rows": 64}
    ref = list(itertools.islice(s.iter_batches(256, seed=3, **kw), 20))
    got = list(itertools.islice(prefetch_batches(_Small(s, kw), 256, seed=3, device="cuda", depth=2), 20))
    assert all(g.is_cuda and g.dtype == torch.float16 for g in got)
    assert all(torch.equal(g.float().cpu(), r) for g, r in zip(got, ref, strict=True))
