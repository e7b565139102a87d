"""The verdict machinery (vsae.eval.verdict) against a direct numpy implementation."""

import numpy as np
import pytest

from vsae.errors import VsaeError
from vsae.eval.verdict import Comparison, Interval, outcome, paired_difference, stratified_bootstrap


def _direct_paired(a, b, n_boot, level, seed):
    """The paired bootstrap written out: one resample of the units at a time."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    stats = [a[i].mean() - b[i].mean() for i in idx]
    q = (1 - level) / 2
    return a.mean() - b.mean(), *np.quantile(stats, [q, 1 - q])


def test_paired_difference_matches_direct_implementation():
    rng = np.random.default_rng(3)
    a = (rng.random(300) < 0.8).astype(float)
    b = (rng.random(300) < 0.7).astype(float)
    got = paired_difference(a, b, n_boot=500, level=0.9, seed=7)
    est, lo, hi = _direct_paired(a, b, 500, 0.9, 7)
    assert got.estimate == pytest.approx(est) and got.lo == pytest.approx(lo) and got.hi == pytest.approx(hi)
    assert got.lo < got.estimate < got.hi and got.level == 0.9 and got.n_boot == 500


def test_stratified_bootstrap_resamples_each_stratum_on_its_own():
    """A ratio of means over two strata (retention = shifted / test), written out directly."""
    rng = np.random.default_rng(0)
    test = rng.random((200, 2)) < [0.9, 0.85]
    shift = rng.random((120, 2)) < [0.5, 0.6]
    stat = lambda m: m["shift"][:, 1] / m["test"][:, 1] - m["shift"][:, 0] / m["test"][:, 0]  # noqa: E731
    got = stratified_bootstrap({"test": test, "shift": shift}, stat, n_boot=400, seed=5)
    r = np.random.default_rng(5)
    it = r.integers(0, 200, size=(400, 200))
    ish = r.integers(0, 120, size=(400, 120))
    direct = [
        shift[j, 1].mean() / test[i, 1].mean() - shift[j, 0].mean() / test[i, 0].mean()
        for i, j in zip(it, ish)
    ]
    lo, hi = np.quantile(direct, [0.025, 0.975])
    est = shift[:, 1].mean() / test[:, 1].mean() - shift[:, 0].mean() / test[:, 0].mean()
    assert got.estimate == pytest.approx(est) and got.lo == pytest.approx(lo) and got.hi == pytest.approx(hi)


def test_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    hits = 0
    for s in range(200):
        a = rng.normal(0.3, 1, 100)
        b = a + rng.normal(-0.1, 0.5, 100)  # true mean(a - b) = 0.1
        iv = paired_difference(a, b, n_boot=400, seed=s)
        hits += iv.lo <= 0.1 <= iv.hi
    assert 0.88 <= hits / 200 <= 0.99


@pytest.mark.parametrize(
    "lo, hi, want",
    [
        (-0.01, 0.015, "equivalent"),  # inside the margin, even across 0
        (0.005, 0.015, "equivalent"),  # above 0 but by less than the margin
        (0.01, 0.05, "better"),
        (-0.05, -0.03, "worse"),
        (-0.058, 0.004, "inconclusive"),  # the resid.1 interval: too wide to decide
        (-0.03, 0.03, "inconclusive"),
    ],
)
def test_outcome_against_the_margin(lo, hi, want):
    iv = Interval((lo + hi) / 2, lo, hi, 0.95, 100)
    assert outcome(iv, 0.02) == want
    c = Comparison.judge("A - B", iv, 0.02)
    assert c.outcome == want and c.to_json()["outcome"] == want and want in c.text()


def test_text_prints_the_interval_in_points():
    c = Comparison.judge("A - B", Interval(-0.026, -0.058, 0.004, 0.95, 2000), 0.02)
    assert c.text() == "-2.6 [-5.8, +0.4] pts (95% CI), margin ±2.0: inconclusive"


def test_bad_input_is_a_vsae_error():
    with pytest.raises(VsaeError, match="one of each per unit"):
        paired_difference(np.ones(3), np.ones(4))
    with pytest.raises(VsaeError, match="margin"):
        outcome(Interval(0, 0, 0, 0.95, 1), -1)
    with pytest.raises(VsaeError, match="units > 0"):
        stratified_bootstrap({"x": np.zeros((0, 2))}, lambda m: m["x"][:, 0])


def test_comparison_round_trips_through_json():
    c = Comparison.judge("A - B", Interval(0.03, 0.01, 0.05, 0.95, 10), 0.02)
    assert Comparison.from_json(c.to_json()) == c
