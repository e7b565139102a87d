import numpy as np
import pytest

from vsae.errors import VsaeError
from vsae.eval.sampling import describe_sample, spread_sample


def test_spread_sample_spans_a_class_sorted_source():
    labels = np.repeat(np.arange(12), 100)  # 12 classes, one after another (a folder tree)
    rows = spread_sample(labels.size, 120, seed=3)
    assert rows.size == 120 and np.all(np.diff(rows) > 0) and rows.min() >= 0 and rows.max() < labels.size
    counts = np.bincount(labels[rows], minlength=12)
    assert counts.min() == counts.max() == 10  # equal strata: every class is represented evenly
    assert np.unique(labels[:120]).size == 2  # what "the first 120" would have given
    assert np.array_equal(rows, spread_sample(labels.size, 120, seed=3))
    assert not np.array_equal(rows, spread_sample(labels.size, 120, seed=4))
    assert not np.array_equal(rows, np.arange(0, 1200, 10))  # random within strata, not a fixed stride


def test_spread_sample_edges_and_description():
    assert np.array_equal(spread_sample(5, None, 0), np.arange(5))
    assert np.array_equal(spread_sample(5, 9, 0), np.arange(5))
    assert spread_sample(7, 3, 0).size == 3
    with pytest.raises(VsaeError, match="at least 1 row"):
        spread_sample(5, 0, 0)
    assert describe_sample(10, None, 0) == {"rows": 10, "of": 10, "method": "all rows"}
    d = describe_sample(10, 4, 7)
    assert d["rows"] == 4 and d["of"] == 10 and d["seed"] == 7 and "seeded" in d["method"]
