import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from vsae.eval._arrays import chunks_of
from vsae.eval.topimages import jaccard_pair_counts, top_images, top_images_streaming


def topk_direct(a, k):
    n, f = a.shape
    idx = np.full((f, k), -1)
    val = np.zeros((f, k))
    for c in range(f):
        order = sorted(range(n), key=lambda i: (-a[i, c], i))[:k]
        idx[c, : len(order)] = order
        val[c, : len(order)] = a[order, c]
    return idx, val


@pytest.mark.parametrize("chunk_rows", [1, 3, 8, 64])
def test_dense_topk_with_ties_matches_direct(chunk_rows):
    rng = np.random.default_rng(0)
    a = np.round(rng.random((37, 11)) * 4) / 4  # many ties
    a[:, 0] = 0.0
    a[:, 1] = -rng.random(37)  # negative values
    idx, val = topk_direct(a, 5)
    t = top_images_streaming(chunks_of(a, chunk_rows), k=5)
    np.testing.assert_array_equal(t.indices_Fk, idx)
    np.testing.assert_array_equal(t.values_Fk, val)
    assert t.excluded_F[0] and not t.excluded_F[1]


@pytest.mark.parametrize("chunk_rows", [2, 10, 100])
def test_sparse_topk_matches_direct_on_nonzeros(chunk_rows):
    rng = np.random.default_rng(1)
    a = rng.exponential(size=(50, 20)) * (rng.random((50, 20)) < 0.15)
    a[:, 3] = 0.0
    a[[4, 9], 5] = 2.0  # a column with 2 non-zeros (< k): padded, worst 0, excluded
    t = top_images_streaming(chunks_of(sp.csr_matrix(a), chunk_rows), k=4)
    idx, val = topk_direct(a, 4)
    nz = val > 0
    np.testing.assert_array_equal(t.indices_Fk[nz], idx[nz])
    np.testing.assert_array_equal(t.values_Fk, val)
    assert (t.indices_Fk[~nz] == -1).all()
    np.testing.assert_array_equal(t.excluded_F, val[:, -1] == 0)
    np.testing.assert_array_equal(t.worst_F, val[:, -1])


def test_fewer_rows_than_k_and_single_image():
    t = top_images(np.array([[1.0, 0.0]]), k=3)
    assert t.indices_Fk.tolist() == [[0, -1, -1], [0, -1, -1]]
    assert t.excluded_F.all()


def jaccard_direct(t, thresholds):
    keep = [f for f in range(t.indices_Fk.shape[0]) if t.values_Fk[f, -1] != 0 and t.indices_Fk[f, -1] >= 0]
    sets = {f: set(t.indices_Fk[f][t.indices_Fk[f] >= 0].tolist()) for f in keep}
    counts = dict.fromkeys(thresholds, 0)
    for f, g in itertools.combinations(keep, 2):
        j = len(sets[f] & sets[g]) / len(sets[f] | sets[g])
        for th in thresholds:
            counts[th] += j > th
    return counts, len(keep)


def test_jaccard_counts_match_direct():
    rng = np.random.default_rng(2)
    # few images so that HAI sets overlap a lot, including identical sets (Jaccard 1)
    a = rng.exponential(size=(9, 40)) * (rng.random((9, 40)) < 0.7)
    a[:, 1] = a[:, 0] * 2
    a[:, 2] = 0
    t = top_images(a, k=4)
    got = jaccard_pair_counts(t)
    ths = [round(0.1 * i, 1) for i in range(1, 10)]
    ref, n_keep = jaccard_direct(t, ths)
    assert got["n_latents"] == n_keep and got["n_excluded"] == 40 - n_keep
    assert got["pairs_above"] == {f"{th:.1f}": ref[th] for th in ths}
    assert got["n_pairs"] == n_keep * (n_keep - 1) // 2
    assert got["max_jaccard"] == 1.0
