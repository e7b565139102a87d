"""The random-grouping baseline of a taxonomy level (vsae.eval.grouping) against direct computations."""

from math import factorial

import numpy as np
import pytest

from vsae.errors import VsaeError
from vsae.eval.grouping import grouping_baseline, groupings_of_sizes
from vsae.eval.variance import between_group_fraction


@pytest.mark.parametrize(
    "n, sizes, count", [(6, (2, 2, 2), 15), (8, (3, 3, 2), 280), (5, (1, 4), 5), (4, (2, 2), 3)]
)
def test_every_grouping_once(n, sizes, count):
    gs = list(groupings_of_sizes(n, sizes))
    assert len(gs) == count == len({tuple(sorted(map(tuple, map(sorted, g)))) for g in gs})
    for g in gs:
        assert sorted(i for m in g for i in m) == list(range(n)) and sorted(map(len, g)) == sorted(sizes)
    # the closed form n! / (prod size! * prod multiplicity!)
    mult = np.prod([factorial(list(sizes).count(s)) for s in set(sizes)])
    assert count == factorial(n) // (np.prod([factorial(s) for s in sizes]) * mult)


def _world(coarse_scale, seed=0, n=1200, d=16):
    rng = np.random.default_rng(seed)
    fine = rng.integers(0, 6, n)
    coarse_of = {0: "a", 1: "a", 2: "b", 3: "b", 4: "c", 5: "c"}
    centres_c = {c: rng.normal(scale=coarse_scale, size=d) for c in "abc"}
    centres_f = rng.normal(size=(6, d))
    x = (
        np.stack([centres_c[coarse_of[f]] for f in fine])
        + centres_f[fine]
        + rng.normal(scale=0.5, size=(n, d))
    )
    return x, fine, coarse_of


def test_shares_equal_the_direct_between_group_fraction():
    x, fine, coarse_of = _world(1.0)
    res = grouping_baseline(x, fine, coarse_of)
    coarse = np.array([coarse_of[f] for f in fine])
    assert res["coarse_share"] == pytest.approx(between_group_fraction(x, coarse))
    assert res["fine_share"] == pytest.approx(between_group_fraction(x, fine))
    # the baseline, directly: every other pairing of the 6 fine values
    others = []
    for g in groupings_of_sizes(6, (2, 2, 2)):
        label = {i: k for k, m in enumerate(g) for i in m}
        if sorted(map(sorted, g)) != [[0, 1], [2, 3], [4, 5]]:
            others.append(between_group_fraction(x, np.array([label[f] for f in fine])))
    assert res["n_groupings"] == 15 and res["exact"]
    assert res["baseline_mean"] == pytest.approx(np.mean(others))
    assert res["beats_fraction"] == pytest.approx(np.mean(np.array(others) < res["coarse_share"]))
    assert res["rank"] == 1 + sum(o >= res["coarse_share"] for o in others)


def test_a_dominant_coarse_factor_is_above_the_baseline_and_none_is_not():
    assert grouping_baseline(*_world(4.0))["above_baseline"]
    flat = grouping_baseline(*_world(0.0, seed=1))
    assert not flat["above_baseline"] and flat["coarse_share"] < flat["fine_share"]


def test_many_groupings_are_sampled():
    rng = np.random.default_rng(0)
    fine = rng.integers(0, 12, 600)
    res = grouping_baseline(
        rng.normal(size=(600, 4)), fine, {i: i // 2 for i in range(12)}, max_groupings=300
    )
    assert not res["exact"] and res["n_groupings"] <= 301


def test_bad_input():
    with pytest.raises(VsaeError, match="no coarse value"):
        grouping_baseline(np.ones((3, 2)) * [[1], [2], [3]], [0, 1, 2], {0: "a", 1: "a"})
    with pytest.raises(VsaeError, match="do not partition"):
        list(groupings_of_sizes(5, (2, 2)))
