"""The probes-under-shift verdict: its differences, its intervals and its three outcomes."""

import numpy as np
import pytest

from vsae.demo.analyse import ProbeRun
from vsae.demo.findings import Finding
from vsae.demo.probe_shift import PROBE_MARGIN, probe_finding, probe_verdict, shift_comparison

SPLITS = ("test", "ood_background", "ood_combo")


def _run(rates, n=400, seed=0, c=1.0):
    rng = np.random.default_rng(seed)
    correct = {s: rng.random(n) < r for s, r in zip(SPLITS, rates)}
    acc = {s: float(v.mean()) for s, v in correct.items()}
    return ProbeRun({**acc, "train": 1.0, "val": 0.9, "c": c}, correct, {c: 0.9})


def test_differences_are_the_direct_formulas():
    raw, sae = _run((0.9, 0.8, 0.3), seed=1), _run((0.85, 0.7, 0.2), seed=2)
    c = shift_comparison(raw, sae, seed=0)
    m = {s: (raw.correct[s].mean(), sae.correct[s].mean()) for s in SPLITS}
    shifted = [np.mean([m[s][i] for s in SPLITS[1:]]) for i in (0, 1)]
    assert c["absolute"]["estimate"] == pytest.approx(shifted[1] - shifted[0])
    assert c["retention"]["estimate"] == pytest.approx(shifted[1] / m["test"][1] - shifted[0] / m["test"][0])
    assert c["sae"]["kept"] == pytest.approx(shifted[1] / m["test"][1])
    assert c["absolute"]["lo"] < c["absolute"]["estimate"] < c["absolute"]["hi"]
    assert c["absolute"]["outcome"] == "worse"  # 10 points below on 800 shifted images


def test_same_probe_is_equivalent_and_the_finding_holds():
    raw = _run((0.9, 0.8, 0.5), n=3000, seed=3)
    c = shift_comparison(raw, raw, seed=0)
    assert c["absolute"]["outcome"] == c["retention"]["outcome"] == "equivalent"
    f = probe_finding({"h": c}, "matryoshka", 8)
    assert f.verdict == "holds" and f.holds and "margin ±2.0: equivalent" in f.detail
    assert f.evidence["margin"] == PROBE_MARGIN and "baseline" in f.evidence
    assert Finding.from_json(f.to_json()) == f


@pytest.mark.parametrize(
    "outcomes, want",
    [
        (["better", "equivalent"], "holds"),
        (["equivalent", "worse"], "does not hold"),
        (["inconclusive", "equivalent"], "inconclusive"),
        (["inconclusive", "worse"], "does not hold"),
    ],
)
def test_verdict_from_outcomes(outcomes, want):
    assert probe_verdict(outcomes) == want


def test_small_samples_are_inconclusive():
    raw, sae = _run((0.9, 0.8, 0.4), n=60, seed=4), _run((0.9, 0.8, 0.4), n=60, seed=5)
    f = probe_finding({"h": shift_comparison(raw, sae)}, "matryoshka", 8)
    assert f.verdict == "inconclusive" and not f.holds and f.label == "INCONCLUSIVE"


def _direct_seed_bootstrap(raw, saes, stat, n_boot, seed):
    """The two-level bootstrap written as loops (seeds drawn first, then each split's images)."""
    rng = np.random.default_rng(seed)
    S = len(saes)
    pick = rng.integers(0, S, size=(n_boot, S))
    idx = {s: rng.integers(0, len(raw.correct[s]), size=(n_boot, len(raw.correct[s]))) for s in SPLITS}
    vals = []
    for b in range(n_boot):
        m = {
            s: np.array(
                [
                    [
                        raw.correct[s][idx[s][b]].mean(),
                        np.mean([saes[k].correct[s][idx[s][b]].mean() for k in pick[b]]),
                    ]
                ]
            )
            for s in SPLITS
        }
        vals.append(stat(m)[0])
    return np.quantile(vals, [0.025, 0.975])


def test_seed_bootstrap_matches_direct_loops_and_widens_with_seed_spread():
    from vsae.demo.probe_shift import absolute_difference, seed_bootstrap

    raw = _run((0.9, 0.8, 0.4), n=300, seed=6)
    saes = [_run((0.9, 0.8 - d, 0.4 - d), n=300, seed=7 + i) for i, d in enumerate((0.0, 0.05, 0.1))]
    iv = seed_bootstrap(raw, saes, absolute_difference, n_boot=300, seed=3)
    lo, hi = _direct_seed_bootstrap(raw, saes, absolute_difference, 300, 3)
    assert (iv.lo, iv.hi) == pytest.approx((lo, hi))
    full = {
        s: np.array([[raw.correct[s].mean(), np.mean([a.correct[s].mean() for a in saes])]]) for s in SPLITS
    }
    assert iv.estimate == pytest.approx(absolute_difference(full)[0])
    # one seed's image-only interval is narrower than the interval over seeds that disagree
    one = shift_comparison(raw, saes[0], seed=3)
    assert iv.hi - iv.lo > one["absolute"]["hi"] - one["absolute"]["lo"]


def test_seed_runs_are_judged_by_the_seed_interval_and_reported():
    raw = _run((0.9, 0.8, 0.5), n=3000, seed=3)
    near = [_run((0.9, 0.8, 0.5), n=3000, seed=3)]  # the same outcomes: no seed spread
    c = shift_comparison(raw, raw, seed=0, seed_runs=near)
    assert c["seeds"]["n_seeds"] == 2 and c["seeds"]["absolute"]["differences"] == [0.0, 0.0]
    assert c["absolute"]["outcome"] == "equivalent" and "2 SAE seeds" in c["absolute"]["what"]
    far = [_run((0.9, 0.6, 0.3), n=3000, seed=9)]  # another seed 20 points worse: the verdict moves
    c = shift_comparison(raw, raw, seed=0, seed_runs=far)
    c["samples"] = {
        "n_samples": 1,
        "absolute": {"n_sae_at_least_raw": 1},
        "retention": {"n_sae_at_least_raw": 1},
    }
    assert c["absolute"]["outcome"] != "equivalent" and c["seeds"]["absolute"]["sd"] > 0.1
    f = probe_finding({"h": c}, "matryoshka", 8)
    assert (
        "over 2 SAE seeds" in f.detail
        and "other train samples" in f.detail
        and "SAE seeds" in f.claim
        and "seeds" in f.evidence["interval"]
    )
