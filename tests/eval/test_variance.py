import numpy as np
import pytest

from vsae.eval.variance import between_group_fraction, variance_shares


def test_between_group_fraction_is_the_r2_of_the_group_means():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    centers = rng.normal(scale=3, size=(4, 5))
    x = centers[y] + rng.normal(size=(200, 5))
    # direct: R^2 of least squares on the one-hot labels (with intercept), summed over columns
    onehot = np.eye(4)[y]
    coef, *_ = np.linalg.lstsq(onehot, x, rcond=None)
    pred = onehot @ coef
    r2 = 1 - ((x - pred) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert between_group_fraction(x, y) == pytest.approx(r2, rel=1e-12)
    assert between_group_fraction(x, np.zeros(200)) == pytest.approx(0.0, abs=1e-12)
    assert between_group_fraction(x, np.arange(200)) == pytest.approx(1.0)
    coarse = y // 2  # a coarser labelling explains at most as much
    shares = variance_shares(x, {"fine": y, "coarse": coarse})
    assert shares["coarse"] <= shares["fine"]
    assert np.isnan(between_group_fraction(np.ones((3, 2)), [0, 1, 1]))
