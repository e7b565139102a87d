import numpy as np
import pytest
import scipy.sparse as sp
import torch

from vsae.eval.recon import ReconAccumulator, reconstruction_metrics


def test_streaming_matches_direct_formulas():
    rng = np.random.default_rng(0)
    n, d, f = 53, 7, 12
    x = rng.normal(loc=5.0, size=(n, d))
    xh = x + rng.normal(scale=0.3, size=(n, d))
    z = np.abs(rng.normal(size=(n, f))) * (rng.random((n, f)) < 0.2)
    z[:, 0] = 0  # dead
    z[:, 1] = 1.0  # dense
    acc = ReconAccumulator()
    for a in range(0, n, 10):
        zz = sp.csr_matrix(z[a : a + 10]) if a % 20 else torch.tensor(z[a : a + 10])
        acc.update(torch.tensor(x[a : a + 10]), xh[a : a + 10], zz)
    r = acc.result()
    mse = np.mean([np.sum((x[i] - xh[i]) ** 2) / d for i in range(n)])
    fvu = np.sum((x - xh) ** 2) / np.sum((x - x.mean(axis=0)) ** 2)
    assert r.mse == pytest.approx(mse, rel=1e-12)
    assert r.fvu == pytest.approx(fvu, rel=1e-10)
    assert r.l0 == pytest.approx(np.mean([np.count_nonzero(z[i]) for i in range(n)]))
    freq = (z != 0).mean(axis=0)
    assert r.dead_fraction == pytest.approx(np.mean(freq == 0))
    assert r.dense_fraction == pytest.approx(np.mean(freq > 0.1))
    np.testing.assert_allclose(r.frequency_F, freq)
    h = r.summary()["firing_histogram"]
    assert sum(h["counts"]) == f - h["n_dead"] and h["n_dead"] >= 1


def test_perfect_reconstruction_and_single_row():
    x = np.arange(12.0).reshape(3, 4)
    r = reconstruction_metrics(x, x, np.zeros((3, 5)))
    assert r.mse == 0 and r.fvu == 0 and r.l0 == 0 and r.dead_fraction == 1
    r1 = reconstruction_metrics(x[:1], x[:1] + 1, np.ones((1, 2)))
    assert np.isnan(r1.fvu) and r1.mse == 1.0 and r1.dense_fraction == 1.0
