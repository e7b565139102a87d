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
