"""The demo's diffusion section on the shipped tiny text-to-image model (small settings), its
two findings and its report section."""

from __future__ import annotations

import json

import pytest


def _res(steered, baseline, agreement, random):
    return {
        "steering": {"target_rate": {"steered": steered, "baseline": baseline}, "n_latents": 3,
                     "n_meeting_target": 1, "preserved_rate": 0.8, "preserved_rate_baseline": 0.9},
        "discovery": {"agreement": agreement, "random_agreement": random, "n_with_truth": 5, "n_latents": 9},
    }  # fmt: skip


@pytest.mark.parametrize(
    "steered, baseline, holds",
    [(0.6, 0.2, True), (0.6, 0.31, False), (0.45, 0.0, False), (0.5, 0.25, True)],
)
def test_steering_finding_threshold(steered, baseline, holds):
    from vsae.demo.diffusion import diffusion_findings

    f = diffusion_findings(_res(steered, baseline, 0.5, 0.05))
    assert f[0]["holds"] is holds and f"{steered:.1%}" in f[0]["detail"]


def test_steering_finding_counts_only_images_that_draw_an_object():
    from vsae.demo.diffusion import diffusion_findings

    res = _res(0.6, 0.1, 0.5, 0.05)
    res["steering"]["target_rate"] |= {"steered_drawn": 0.3, "baseline_drawn": 0.1}
    f = diffusion_findings(res)[0]
    assert f["holds"] is False and "30.0% vs 10.0%" in f["detail"] and "60.0%" in f["detail"]
    res["steering"]["target_rate"] |= {"steered_drawn": 0.55}
    assert diffusion_findings(res)[0]["holds"] is True


@pytest.mark.parametrize(
    "agreement, random, holds", [(0.5, 0.05, True), (0.34, 0.05, False), (0.36, 0.05, True)]
)
def test_discovery_finding_threshold(agreement, random, holds):
    from vsae.demo.diffusion import diffusion_findings

    f = diffusion_findings(_res(0.6, 0.1, agreement, random))
    assert f[1]["holds"] is holds and f"{agreement:.1%}" in f[1]["detail"]


def test_no_ground_truth_no_findings():
    from vsae.demo.diffusion import diffusion_findings

    assert diffusion_findings(_res(None, None, None, None)) == []


def test_demo_section_on_the_shipped_model(tmp_path):
    from vsae.demo.diffusion import DiffusionDemoConfig, diffusion_findings, run_diffusion_demo
    from vsae.experiments.diffusion_steering.report import diffusion_section
    from vsae.report.html import Report

    cfg = DiffusionDemoConfig(
        n_latents=2, n_prompts=3, n_eval=4, discovery_latents=3, discovery_prompts=2, steps=3
    )
    res = run_diffusion_demo(tmp_path, cfg)
    saved = json.loads((tmp_path / "diffusion" / "results.json").read_text())
    assert saved["steering"]["n_latents"] == len(saved["steering"]["latents"]) == 2
    assert all(r["attribute"] in ("shape", "colour", "size") for r in saved["steering"]["latents"])
    assert saved["discovery"]["n_latents"] == 3
    assert len(diffusion_findings(res)) == 2
    r = Report("t")
    diffusion_section(r, res, tmp_path / "diffusion")
    page = r.render()
    assert page.count("<img") == len(res["examples"]) == 2 and "Discovery" in page
