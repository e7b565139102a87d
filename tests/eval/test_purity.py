import itertools

import numpy as np
import pytest

from vsae.errors import VsaeError
from vsae.eval.purity import top_image_purity


def direct_purity(idx, excluded, attributes):
    out = []
    for f in range(idx.shape[0]):
        rows = [int(r) for r in idx[f] if r >= 0]
        if excluded[f] or not rows:
            out.append((np.nan, None, -1))
            continue
        best = (-1.0, None, -1)
        for name, codes in attributes.items():  # first attribute wins ties, then smallest code
            for v in sorted(set(int(codes[r]) for r in rows)):
                frac = sum(int(codes[r]) == v for r in rows) / len(rows)
                if frac > best[0]:
                    best = (frac, name, v)
        out.append(best)
    return out


def test_matches_direct_loop_on_random_data():
    rng = np.random.default_rng(0)
    n, f, k = 40, 25, 6
    attributes = {
        "shape": rng.integers(0, 3, n),
        "colour": rng.integers(0, 2, n),
        "size": rng.integers(0, 5, n),
    }
    idx = np.stack([rng.choice(n, k, replace=False) for _ in range(f)])
    idx[3, 4:] = -1  # padding
    idx[4, :] = -1  # nothing at all
    excluded = np.zeros(f, bool)
    excluded[[1, 7]] = True
    got = top_image_purity(idx, excluded, attributes)
    want = direct_purity(idx, excluded, attributes)
    for i, (p, a, v) in enumerate(want):
        if np.isnan(p):
            assert np.isnan(got["purity_F"][i])
        else:
            assert (
                got["purity_F"][i] == pytest.approx(p)
                and got["attribute_F"][i] == a
                and got["value_F"][i] == v
            )
    scored = [p for p, _, _ in want if not np.isnan(p)]
    assert got["n_scored"] == len(scored)
    assert got["pure_fraction"] == pytest.approx(np.mean([p == 1.0 for p in scored]))
    assert got["mean_purity"] == pytest.approx(np.mean(scored))


def test_pure_latent_and_errors():
    attributes = {"colour": np.array([0, 0, 1, 1]), "shape": np.array([2, 1, 2, 0])}
    got = top_image_purity(np.array([[0, 1], [0, 2], [2, 3]]), np.zeros(3, bool), attributes)
    assert list(got["purity_F"]) == [1.0, 1.0, 1.0]
    assert list(got["attribute_F"]) == ["colour", "shape", "colour"]
    assert got["pure_fraction"] == 1.0
    with pytest.raises(VsaeError, match="attributes cover 4 images"):
        top_image_purity(np.array([[0, 9]]), np.zeros(1, bool), attributes)
    with pytest.raises(VsaeError, match="give one per image"):
        top_image_purity(np.array([[0]]), np.zeros(1, bool), {"a": np.zeros(3), "b": np.zeros(4)})
    assert list(itertools.chain(got["value_F"])) == [0, 2, 1]
