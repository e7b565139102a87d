"""The demo's shared-features section on the shipped tiny LLaVA: both LM layers measured, the
finding's verdict follows its numbers, and the report section renders them."""

import dataclasses
import json

import pytest

from vsae.demo.demo_config import demo_train_config
from vsae.demo.findings import shared_finding
from vsae.demo.run import phrase_words
from vsae.experiments.shared_features.shared_run import SharedFeaturesConfig, run_shared_features


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    from vsae.world import export
    from vsae.world.llava import shipped_llava_dir

    root = tmp_path_factory.mktemp("shared_demo")
    export(root / "world", counts={"train": 60, "test": 40}, progress=False)
    cfg = SharedFeaturesConfig(n_train=60, n_test=40, steps=40, batch_size=128)
    train_cfg = lambda n: demo_train_config(cfg, n)  # noqa: E731
    got = run_shared_features(
        shipped_llava_dir(), root / "world", root / "out", cfg, train_cfg, phrase_words()
    )
    assert got.to_json()["layers"] == got.report.layers and "ratios" not in got.to_json()
    return root, got.to_json(), got.report.ratios


def test_two_layers_measured_and_written(shared):
    root, res, ratios = shared
    assert list(res["layers"]) == ["resid.0", "resid.1"]
    on_disk = json.loads((root / "out" / "shared" / "shared.json").read_text())
    for h, L in res["layers"].items():
        assert L["rows"]["image"] == L["rows"]["text"] > 0  # balanced
        assert sum(L["ratio_histogram"]["counts"]) == L["n_live"]
        assert on_disk["layers"][h]["shared_fraction"] == pytest.approx(L["shared_fraction"])
        assert len(ratios[h]) == L["n_latents"]
    assert res["setup"]["image_tokens_per_image"] == 64  # the shipped LLaVA: (32 / 4) ** 2
    # the setup as results.json held it before the experiment had its own folder: the config's
    # fields, then the model and what the stores' provenance says, in this order
    fields = [f.name for f in dataclasses.fields(SharedFeaturesConfig)]
    rest = ["model", "question", "image_tokens_per_image", "balance", "rows_train", "rows_test"]
    assert list(res["setup"]) == fields + rest
    # test stores: image rows, caption-alone rows and as many teacher-forced rows (the densities
    # count the first two only)
    assert (
        res["setup"]["rows_test"]
        == sum(L["rows"]["image"] + 2 * L["rows"]["text"] for L in res["layers"].values()) / 2
    )
    for L in res["layers"].values():
        assert list(L["by_kind"]) == ["caption", "teacher-forced"]
        assert L["selectivity"] == L["by_kind"]["caption"]["selectivity"]
        for K in L["by_kind"].values():
            assert K["selectivity"]["units"]["text_rows"] == L["rows"]["text"]
            pre = K["precondition"]
            assert pre["holds"] == any(p["holds"] for p in pre["per_attribute"].values())
            if not pre["holds"]:
                assert K["state"] == "not testable here"


def test_finding_follows_the_numbers(shared):
    _, res, _ = shared
    f = shared_finding(res)
    kinds = {(h, k): K for h, L in res["layers"].items() for k, K in L["by_kind"].items()}
    for (
        K
    ) in kinds.values():  # the planted control is found even on these 40 test images (some values too rare)
        c = K["selectivity"]["control"]
        assert c["found"] and 0 < c["n_found"] <= c["n_planted"]
    testable = [K for K in kinds.values() if K["precondition"]["holds"]]
    want = (
        "not testable here"
        if not testable
        else ("holds" if any(K["selectivity"]["found"] for K in testable) else "does not hold")
    )
    assert f.verdict == want and f.holds is (want == "holds")
    assert "resid.0" in f.detail and "resid.1" in f.detail and "detectable from" in f.detail
    assert set(f.evidence["per_layer"]) == {f"{h} [{k}]" for h, k in kinds}
    assert list(f.to_json()) == [
        "claim",
        "holds",
        "detail",
        "source",
        "verdict",
        "evidence",
    ]  # results.json's keys
    flipped = json.loads(json.dumps(res["layers"]))  # a shared.json from before text kinds
    for L in flipped.values():
        del L["by_kind"]
        L["selectivity"].update(found=False, n_shared=0)
    assert shared_finding({"layers": flipped}).verdict == "does not hold"
    flipped["resid.1"]["selectivity"].update(found=True, n_shared=3)
    assert shared_finding({"layers": flipped}).verdict == "holds"
    for L in flipped.values():  # a control that is not found: the test could not see the effect
        L["selectivity"]["control"]["found"] = False
    assert shared_finding({"layers": flipped}).verdict == "not testable here"


def test_report_section_shows_the_numbers(shared, tmp_path):
    from vsae.experiments.shared_features.shared_report import shared_section
    from vsae.report.html import Report

    root, res, _ = shared
    r = Report("t", "s")
    shared_section(r, res, root / "out" / "shared")
    page = r.save(tmp_path / "r.html").read_text()
    assert "Shared vision/language latents" in page and "data:image/png;base64" in page
    for L in res["layers"].values():
        assert f'<td class="">{L["n_live"]}</td>' in page
