import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from vsae.errors import VsaeError
from vsae.eval._arrays import chunks_of
from vsae.eval.monosemanticity import (
    monosemanticity_score,
    monosemanticity_score_streaming,
    summarize_ms,
)


def ms_direct(a_nf: np.ndarray, e_nd: np.ndarray) -> np.ndarray:
    """METRICS.md, literally: min-max scale, cosine, double loop over pairs i < j."""
    a_nf = np.asarray(a_nf, dtype=np.float64)
    e_nd = np.asarray(e_nd, dtype=np.float64)
    n, f = a_nf.shape
    out = np.full(f, np.nan)
    for k in range(f):
        col = a_nf[:, k]
        lo, hi = col.min(), col.max()
        if hi == lo:
            continue
        a = (col - lo) / (hi - lo)
        num = den = 0.0
        for i in range(n):
            for j in range(i + 1, n):
                ni, nj = np.linalg.norm(e_nd[i]), np.linalg.norm(e_nd[j])
                s = 0.0 if ni == 0 or nj == 0 else float(e_nd[i] @ e_nd[j]) / (ni * nj)
                num += a[i] * a[j] * s
                den += a[i] * a[j]
        if den != 0:
            out[k] = num / den
    return out


def _sparse_acts(rng, n, f, density=0.3):
    a = rng.exponential(size=(n, f)) * (rng.random((n, f)) < density)
    return a


def test_dense_matches_direct_with_edge_cases():
    rng = np.random.default_rng(0)
    n, f, d = 23, 9, 5
    a = _sparse_acts(rng, n, f)
    a[:, 0] = 0.0  # all-zero column -> dead
    a[:, 1] = 3.5  # constant non-zero -> dead
    a[:, 2] = 0.0
    a[7, 2] = 2.0  # fires on a single image -> denominator 0 -> NaN
    a[:, 3] = rng.normal(size=n) - 4.0  # negative, min != 0
    a[:, 4] = np.round(rng.random(n) * 3)  # ties
    a[:, 5] = rng.random(n) + 10.0  # positive min far from 0
    e = rng.normal(size=(n, d))
    e[4] = 0.0  # a zero embedding: cosine 0 with everything
    ref = ms_direct(a, e)
    got = monosemanticity_score(torch.tensor(a), torch.tensor(e)).numpy()
    assert got.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    assert np.isnan(got[[0, 1, 2]]).all()
    np.testing.assert_allclose(got[~np.isnan(ref)], ref[~np.isnan(ref)], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("chunk_rows", [1, 4, 7, 100])
def test_sparse_streaming_matches_direct(chunk_rows):
    rng = np.random.default_rng(1)
    n, f, d = 19, 12, 4
    a = _sparse_acts(rng, n, f, density=0.25)
    a[:, 0] = 0.0
    a[3, 5] = -0.5  # a negative explicit value in a sparse column: min != 0
    a[:, 6] = rng.random(n) + 1.0  # dense column inside a CSR matrix: min = 1 != 0
    e = rng.normal(size=(n, d))
    ref = ms_direct(a, e)
    res = monosemanticity_score_streaming(chunks_of(sp.csr_matrix(a), chunk_rows), e)
    np.testing.assert_array_equal(np.isnan(res.scores_F), np.isnan(ref))
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(res.scores_F[ok], ref[ok], rtol=1e-9, atol=1e-12)
    assert res.dead_F[0] and not res.dead_F[6]


def test_sparse_and_dense_agree_and_csr_tuple_chunks():
    rng = np.random.default_rng(2)
    a = _sparse_acts(rng, 40, 30, density=0.1)
    e = rng.normal(size=(40, 8))
    dense = monosemanticity_score_streaming(chunks_of(a, 16), e).scores_F
    m = sp.csr_matrix(a)

    def tuples():
        for s in range(0, 40, 16):
            c = m[s : s + 16]
            yield s, (c.indptr, c.indices, c.data)

    sparse = monosemanticity_score_streaming(tuples, e, n_cols=30).scores_F
    np.testing.assert_allclose(sparse, dense, rtol=1e-10, equal_nan=True)


def test_single_image_is_all_dead():
    res = monosemanticity_score_streaming(chunks_of(np.array([[1.0, 0.0, 2.0]])), np.ones((1, 3)))
    assert res.dead_F.all() and np.isnan(res.scores_F).all()
    summ = summarize_ms(res)
    assert summ["n_dead"] == 3 and summ["n_scored"] == 0 and math.isnan(summ["mean"])


def test_identical_embeddings_give_one_and_bounds():
    rng = np.random.default_rng(3)
    a = _sparse_acts(rng, 30, 6, density=0.5)
    e = np.tile(rng.normal(size=(1, 4)), (30, 1)) * rng.uniform(0.5, 2, size=(30, 1))
    s = monosemanticity_score(a, e).numpy()
    np.testing.assert_allclose(s[~np.isnan(s)], 1.0, rtol=1e-12)
    e2 = rng.normal(size=(30, 4))
    s2 = monosemanticity_score(a, e2).numpy()
    assert np.all(s2[~np.isnan(s2)] <= 1 + 1e-12) and np.all(s2[~np.isnan(s2)] >= -1 - 1e-12)


def test_row_mismatch_is_one_line_error():
    with pytest.raises(VsaeError, match="10 rows.*9 images"):
        monosemanticity_score(np.ones((9, 2)), np.ones((10, 3)))


def test_summary_matches_direct():
    rng = np.random.default_rng(4)
    a = _sparse_acts(rng, 25, 30, density=0.3)
    a[:, :3] = 0
    e = rng.normal(size=(25, 6))
    res = monosemanticity_score_streaming(chunks_of(a, 10), e)
    summ = summarize_ms(res, top=5)
    s = res.scores_F
    v = s[~np.isnan(s)]
    assert summ["n_dead"] == 3
    assert summ["mean"] == pytest.approx(v.mean()) and summ["std"] == pytest.approx(v.std(ddof=1))
    order = sorted(np.flatnonzero(~np.isnan(s)), key=lambda i: -s[i])
    assert [t[0] for t in summ["top"]] == order[:5]
    assert [t[0] for t in summ["bottom"]] == sorted(np.flatnonzero(~np.isnan(s)), key=lambda i: s[i])[:5]
