"""The raw-stream precondition of the shared-latents test (vsae.eval.shared_precondition) against
a direct implementation, and the verdict it gates: NOT TESTABLE HERE where the raw stream does not
share the attribute, DOES NOT HOLD / HOLDS only where it does."""

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from vsae.demo.findings import shared_finding
from vsae.eval import shared_precondition as P

VALUES = np.array(["red", "blue", "green", "pink"])


def _rows(n, shared, rng, d=12):
    """Image rows: value v along direction v (+ noise); text rows: along the same direction when
    `shared`, along an unrelated one otherwise."""
    y_img = VALUES[rng.integers(0, 4, n)]
    y_txt = VALUES[rng.integers(0, 4, n // 2)]
    basis = np.eye(d)[:4] * 3
    other = np.eye(d)[4:8] * 3
    code = {v: i for i, v in enumerate(VALUES)}
    x_img = basis[[code[v] for v in y_img]] + rng.normal(size=(n, d))
    x_txt = (basis if shared else other)[[code[v] for v in y_txt]] + rng.normal(size=(n // 2, d)) + 2.0
    return x_img, y_img, x_txt, y_txt


def test_probe_transfer_matches_a_direct_fit_and_its_chance():
    rng = np.random.default_rng(0)
    x_img, y_img, x_txt, y_txt = _rows(400, True, rng)
    got = P.probe_transfer(x_img, y_img, x_txt, y_txt, c=0.1)
    clf = LogisticRegression(C=0.1, max_iter=100, random_state=0).fit(x_img, y_img)
    acc = float((clf.predict(x_txt) == y_txt).mean())
    assert got["accuracy"] == pytest.approx(acc)
    _, counts = np.unique(y_txt, return_counts=True)
    assert got["chance"] == pytest.approx(max(0.25, counts.max() / counts.sum()))
    lo, hi = got["interval"]
    assert lo <= acc <= hi and hi - lo < 0.2
    assert got["holds"] and got["n_rows"] == 200


def test_precondition_fails_when_text_rows_do_not_share_the_direction():
    rng = np.random.default_rng(1)
    got = P.probe_transfer(*_rows(400, False, rng))
    assert not got["holds"] and got["interval"][0] <= got["chance"]


def test_raw_precondition_labels_rows_by_their_next_word_and_skips_rare_attributes():
    rng = np.random.default_rng(2)
    x_img, y_img, x_txt, y_txt = _rows(400, True, rng)
    image_of = np.arange(400)
    table = {"colour": y_img.astype(object), "size": np.array(["small", "large"] * 200, object)}
    lex = {v: ("colour", v) for v in VALUES} | {"small": ("size", "small"), "large": ("size", "large")}
    nxt = list(y_txt[:-5]) + ["small"] * 5  # 5 size rows: fewer than MIN_ROWS, skipped
    other = _rows(400, False, rng)[2]
    got = P.raw_precondition(x_img, image_of, {"a": (x_txt, nxt), "b": (other, nxt)}, table, lex)
    assert set(got["a"]["per_attribute"]) == {"colour"} and got["a"]["holds"]
    direct = P.probe_transfer(x_img, y_img, x_txt[:-5], y_txt[:-5])
    assert got["a"]["per_attribute"]["colour"]["accuracy"] == pytest.approx(direct["accuracy"])
    assert not got["b"]["holds"]  # the same probe on text rows of another kind that do not share


def _layer(found, pre_holds, control=True):
    sel = {
        "found": found,
        "n_shared": 3 if found else 0,
        "n_image_selective": 20,
        "matched_rate": 0.15 if found else 0.0,
        "mismatched_rate": 0.01,
        "p_value": 0.001 if found else 1.0,
        "min_detectable_rate": 0.12,
        "shared_latents": [1] if found else [],
        "shared_pairs": [],
        "control": {"n_planted": 8, "n_found": 8 if control else 0, "found": control},
    }
    pre = {
        "per_attribute": {
            "colour": {
                "accuracy": 0.8 if pre_holds else 0.1,
                "interval": [0.7, 0.9] if pre_holds else [0.05, 0.15],
                "chance": 0.16,
                "n_rows": 100,
                "holds": pre_holds,
            }
        },
        "holds": pre_holds,
    }
    state = (
        "not testable here"
        if not pre_holds
        else ("shared latents found" if found and control else "none found")
    )
    return {"state": state, "precondition": pre, "selectivity": sel}


def test_verdict_is_not_testable_where_the_raw_stream_does_not_share():
    layers = {
        h: {"by_kind": {"caption": _layer(False, False), "teacher-forced": _layer(False, False)}}
        for h in ("resid.0", "resid.1")
    }
    f = shared_finding({"layers": layers})
    assert f.verdict == "not testable here"
    assert "raw stream does not share" in f.detail and "[teacher-forced rows]" in f.detail
    layers["resid.1"]["by_kind"]["teacher-forced"] = _layer(False, True)  # testable, none found
    assert shared_finding({"layers": json.loads(json.dumps(layers))}).verdict == "does not hold"
    layers["resid.1"]["by_kind"]["teacher-forced"] = _layer(True, True)
    f = shared_finding({"layers": layers})
    assert f.verdict == "holds"
    assert f.evidence["per_layer"]["resid.1 [teacher-forced]"]["state"] == "shared latents found"
    assert f.evidence["per_layer"]["resid.0 [caption]"]["state"] == "not testable here"
    # selectivity found where the raw stream does not share is not counted as sharing
    only = {"resid.0": {"by_kind": {"caption": _layer(True, False)}}}
    assert shared_finding({"layers": only}).verdict == "not testable here"
