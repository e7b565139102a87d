"""Every headline finding carries its interval or power, its baseline and its control (issue 23):
the helpers against direct formulas, and the evidence keys of each finding."""

import numpy as np
import pytest
from scipy.stats import binom

from vsae.demo import findings as F


def test_mean_gap_interval_is_a_per_group_bootstrap():
    rng = np.random.default_rng(0)
    a = [rng.normal(0.4, 0.1, 50), rng.normal(0.5, 0.1, 60)]
    b = rng.normal(0.1, 0.05, 40)
    iv = F.mean_gap_interval(a, b)
    assert iv["estimate"] == pytest.approx((a[0].mean() + a[1].mean()) / 2 - b.mean())
    # direct: the same draws, group by group, in the mapping's order
    r = np.random.default_rng(0)
    idx = [r.integers(0, len(x), size=(1000, len(x))) for x in (*a, b)]
    stats = (a[0][idx[0]].mean(1) + a[1][idx[1]].mean(1)) / 2 - b[idx[2]].mean(1)
    assert (iv["lo"], iv["hi"]) == pytest.approx(tuple(np.quantile(stats, [0.025, 0.975])))
    assert F.mean_gap_interval([[0.1, np.nan, 0.3]], [0.0, 0.0])["estimate"] == pytest.approx(0.2)


def test_proportion_test_matches_the_binomial_formulas():
    t = F.proportion_test(12, 40, 0.1)
    assert t["rate"] == pytest.approx(0.3)
    assert t["p_value"] == pytest.approx(binom.sf(11, 40, 0.1))
    lo, hi = t["interval"]
    assert binom.sf(11, 40, lo) == pytest.approx(0.025, abs=1e-4)  # Clopper-Pearson bounds
    assert binom.cdf(12, 40, hi) == pytest.approx(0.025, abs=1e-4)
    assert 0.1 < t["min_detectable_rate"] < 0.4
    assert F.proportion_test(0, 0, 0.1)["interval"] is None


def _layers():
    rng = np.random.default_rng(1)
    saes = {
        f"{a}-x{e}": {
            "arch": a,
            "expansion": e,
            "ms": {"mean": 0.2 + 0.05 * e},
            "ms_per_latent": list(rng.normal(0.2 + 0.05 * e, 0.05, 30)),
            "purity": {"pure_fraction": 0.7, "n_scored": 30},
            "names": {"agreement": 0.4, "n_agree": 8, "n_named": 20, "random_word_agreement": 0.05},
        }
        for a in ("batchtopk", "matryoshka")
        for e in (2, 4)
    }
    raw = {
        "ms": {"mean": 0.1},
        "ms_per_latent": list(rng.normal(0.1, 0.05, 30)),
        "purity": {"pure_fraction": 0.5},
    }
    return {"h": {"raw": raw, "saes": saes}}


def test_every_headline_finding_has_interval_baseline_and_control():
    steering = {
        "score": {
            "steered": 0.5,
            "baseline": 0.3,
            "moved_toward": 0.6,
            "moved_away": 0.1,
            "steered_per_latent": [0.5, 0.6, 0.4],
            "baseline_per_latent": [0.3, 0.3, 0.3],
        },
        "latents": [1, 2, 3],
        "test_images": [0],
    }
    out = F.headline_findings(_layers(), ("h", "matryoshka", 4), steering)
    assert len(out) == 5
    for f in out:
        assert {"baseline", "control"} <= set(f.evidence), f.claim
        assert "interval" in f.evidence, f.claim
    ms = out[0].evidence["interval"]["h"]
    assert ms["lo"] > 0  # 0.3 vs 0.1 on 30 latents each
    steer = out[-1].evidence["interval"]
    assert steer["estimate"] == pytest.approx(0.2) and "[+" in out[-1].detail
