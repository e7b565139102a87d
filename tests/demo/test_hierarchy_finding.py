"""The Matryoshka depth finding is judged only where the taxonomy's top level beats random groupings."""

import pytest

from vsae.demo.findings import headline_findings


def _layers(depths):
    return {
        "h": {
            "raw": {"ms": {"mean": 0.1}, "purity": {"pure_fraction": 0.1}},
            "saes": {
                "matryoshka-x2-k8": {
                    "arch": "matryoshka",
                    "expansion": 2,
                    "ms": {"mean": 0.3},
                    "purity": {"pure_fraction": 0.5},
                    "names": {"agreement": 0.4, "random_word_agreement": 0.0, "n_named": 3},
                    "depth_per_group": [{"mean_depth": d, "n_scored": 4} for d in depths],
                    "depth_per_group_colour": [{"mean_depth": d, "n_scored": 4} for d in depths],
                    "depth_trend": {"class": {"estimate": depths[-1] - depths[0], "lo": -0.5, "hi": 1.5}},
                }
            },
        }
    }


def _baseline(above):
    b = {
        "coarse_share": 0.1,
        "fine_share": 0.3,
        "baseline_mean": 0.11,
        "baseline_max": 0.2,
        "rank": 1 if above else 7,
        "n_groupings": 15,
        "above_baseline": above,
    }
    return {"h": {"class": {"shape_family/shape": b}, "colour": {"colour_family/colour": b}}}


@pytest.mark.parametrize(
    "above, depths, want",
    [
        (False, [1.0, 2.0], "not testable here"),  # a trend, but the top level is no better than chance
        (False, [2.0, 1.0], "not testable here"),
        (True, [1.0, 2.0], "holds"),
        (True, [2.0, 1.0], "does not hold"),
    ],
)
def test_depth_finding_states(above, depths, want):
    fs = headline_findings(
        _layers(depths), ("h", "matryoshka", 2), None, {"grouping_baseline": _baseline(above)}
    )
    (f,) = [f for f in fs if "class taxonomy" in f.claim]
    assert f.verdict == want and f.holds == (want == "holds")
    assert "rank " + ("1" if above else "7") + " of 15" in f.detail
    assert f.evidence["testable_hooks"] == (["h"] if above else [])
    assert f"last - first {depths[-1] - depths[0]:+.2f} [-0.50, +1.50]" in f.detail
    if not above:
        assert "(not tested)" in f.detail and f.label == "NOT TESTABLE HERE"
