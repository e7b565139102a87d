"""The demo's explanation findings (`vsae.demo.explain_finding`): the verdict follows the paired
bootstrap intervals against the vocabulary names and the shuffled phrases, either way."""

from __future__ import annotations

import numpy as np
import pytest

from vsae.demo.explain_finding import detection_finding, explain_finding
from vsae.demo.findings import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE


def _hook(agree_e, agree_n, agree_s, det=(0.9, 0.8, 0.5)):
    n = len(agree_e)
    rng = np.random.default_rng(0)
    summ = {"agreement": 0.0}
    return {
        "sae": "x",
        "n_explained": n,
        "detection": {"mean": det[0]},
        "controls": {"names": {"mean": det[1]}, "shuffled": {"mean": det[2]}},
        "ground_truth": {k: {**summ, "agreement": float(np.mean(v))} for k, v in
                         (("explanations", agree_e), ("names", agree_n), ("shuffled", agree_s))},
        "agree_per_latent": {"explanations": list(agree_e), "names": list(agree_n), "shuffled": list(agree_s)},
        "detection_per_latent": {k: list(np.clip(m + 0.02 * rng.standard_normal(n), 0, 1))
                                 for k, m in zip(("explanations", "names", "shuffled"), det)},
    }  # fmt: skip


def test_holds_when_explanations_beat_both_baselines():
    n = 60
    e = [True] * 50 + [False] * 10
    f = explain_finding({"a": _hook(e, [True] * 20 + [False] * 40, [False] * n)})
    assert f.verdict == HOLDS and f.holds
    assert f.evidence["names"]["lo"] > 0 and f.evidence["shuffled"]["lo"] > 0
    assert "agreement 83.3% vs names 33.3% vs shuffled 0.0%" in f.detail


def test_inconclusive_when_the_names_tie_within_a_wide_interval():
    rng = np.random.default_rng(1)
    a = list(rng.random(40) < 0.4)
    f = explain_finding({"a": _hook(a, a[1:] + a[:1], [False] * 40)})
    assert f.verdict in (INCONCLUSIVE, DOES_NOT_HOLD)
    assert f.evidence["shuffled"]["outcome"] == "better"


def test_does_not_hold_when_the_names_agree_more():
    f = explain_finding({"a": _hook([False] * 40, [True] * 40, [False] * 40)})
    assert f.verdict == DOES_NOT_HOLD and f.evidence["names"]["outcome"] == "worse"


def test_detection_finding_compares_the_per_latent_aurocs():
    f = detection_finding({"a": _hook([True] * 30, [True] * 30, [True] * 30, det=(0.92, 0.85, 0.5))})
    assert f.verdict == HOLDS
    assert f.evidence["names"]["estimate"] == pytest.approx(0.07, abs=0.01)
    g = detection_finding({"a": _hook([True] * 30, [True] * 30, [True] * 30, det=(0.8, 0.9, 0.5))})
    assert g.verdict == DOES_NOT_HOLD
