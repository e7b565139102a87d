"""`vsae.sae.batched`: the one batched, gradient-free encode loop, on every kind of input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from vsae.errors import VsaeError
from vsae.sae import SAEConfig, build, encode_batched
from vsae.sae.batched import iter_encode
from vsae.store import ActivationStore, StoreWriter


@pytest.fixture(scope="module")
def sae_x():
    sae = build(SAEConfig(arch="topk", d_in=8, d_sae=32, k=3), seed=0).eval()
    x = torch.randn(103, 8, generator=torch.Generator().manual_seed(1))
    return sae, x


def test_every_input_kind_gives_the_whole_batch_latents(sae_x, tmp_path):
    sae, x = sae_x
    want = sae.encode(x).detach().numpy()
    w = StoreWriter.create_or_resume(tmp_path / "s", d=8, dtype="float32", provenance={}, rows_per_shard=40)
    w.add(x, np.arange(103), np.zeros(103, np.int64))
    w.mark_images_done(103)
    w.close()
    store = ActivationStore.open(tmp_path / "s")
    for rows in (x, x.numpy(), sp.csr_matrix(x.numpy()), store):  # every kind holds the same rows
        got = encode_batched(sae, rows, batch_size=10)
        assert got.shape == (103, 32) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(encode_batched(sae, x, batch_size=4096), want)


def test_batches_cover_the_rows_in_order_without_gradients(sae_x):
    sae, x = sae_x
    bs = list(iter_encode(sae, x, batch_size=25, decode=True))
    assert [b.start for b in bs] == [0, 25, 50, 75, 100]
    assert sum(len(b.z) for b in bs) == 103
    assert all(not b.z.requires_grad and b.x_hat is not None and not b.x_hat.requires_grad for b in bs)
    torch.testing.assert_close(bs[-1].x_hat, sae.decode(sae.encode(x[100:])).detach())
    assert list(iter_encode(sae, x[:0], 8)) == []
    with pytest.raises(VsaeError, match="--batch-size 0"):
        list(iter_encode(sae, x, 0))
