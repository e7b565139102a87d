"""The demo report's head (findings table, links, contents), the diffusion table's fit and
headers, and the one definition of dead / no MS (issue 28)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.report.browser import chromium
from vsae.demo.report_page import dead_sentence
from vsae.eval.monosemanticity import monosemanticity_score_streaming
from vsae.experiments.diffusion_steering.diffusion_report import diffusion_section
from vsae.report.findings_table import deciding_number, findings_head
from vsae.report.html import Report

FINDINGS = [
    {
        "claim": "SAE latents are more monosemantic than raw neurons (mean MS)",
        "holds": True,
        "detail": "resid.1: SAE 0.368 vs raw 0.069; resid.2: SAE 0.398 vs raw 0.069; " + "x 1.0 < 2.0; " * 40,
        "source": "Pach et al.",
    },
    {
        "claim": "Earlier groups are shallower",
        "holds": False,
        "detail": "1.75 / 1.06 / 1.14",
        "source": "Pach et al.",
    },
    {
        "claim": "Steering works",
        "holds": True,
        "detail": "long " * 80,
        "source": "Olson et al.",
        "decisive": "62% vs 8%",
    },
]


def _render(tmp_path, with_pages=True) -> str:
    out = tmp_path / "out"
    for d in ("steering", "diffusion"):
        (out / d).mkdir(parents=True)
        if with_pages:
            (out / d / "index.html").write_text("<p>page</p>")
    r = Report("demo")
    findings_head(r, FINDINGS, out)
    r.heading("Monosemanticity (Pach et al.)")
    r.heading("Monosemanticity (Pach et al.)")  # a repeated title gets its own anchor
    return r.render(), out


def test_findings_table_links_and_contents(tmp_path):
    html, out = _render(tmp_path)
    table = html[html.index('<table class="findings">') : html.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table)[1:]
    assert len(rows) == 3
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows]
    assert [c[2] for c in cells] == ["HOLDS", "DOES NOT HOLD", "HOLDS"]
    assert [c[1] for c in cells] == ["Pach et al.", "Pach et al.", "Olson et al."]
    assert cells[0][3] == "resid.1: SAE 0.368 vs raw 0.069" and cells[2][3] == "62% vs 8%"
    for i, c in enumerate(cells, 1):
        assert f'href="#finding-{i}"' in c[0] and f'id="finding-{i}"' in html  # each links to its detail
    assert html.index('<table class="findings">') < html.index('id="finding-1"')  # table first, detail below
    # the contents list every section, each anchor exists once
    toc = html[html.index('<nav class="toc">') : html.index("</nav>")]
    anchors = re.findall(r'href="#([^"]+)"', toc)
    assert anchors == [
        "findings",
        "findings-detail",
        "monosemanticity-pach-et-al",
        "monosemanticity-pach-et-al-2",
    ]
    assert all(html.count(f'id="{a}"') == 1 for a in anchors)
    assert 'href="steering/index.html"' in html and 'href="diffusion/index.html"' in html
    assert f"vsae serve {out}" in html
    html2, _ = _render(tmp_path / "b", with_pages=False)
    assert "steering/index.html" not in html2  # no link to a page that is not there


def test_deciding_number_is_short():
    assert len(deciding_number({"detail": "a" * 500})) <= 110
    assert deciding_number({"detail": "x: 1 vs 2; y"}) == "x: 1 vs 2"


def _diffusion_res() -> dict:
    lat = {
        "latent": 202,
        "word": "medium",
        "word_share": 0.7986804325185249,
        "attribute": "size",
        "iou_baseline": 0.9243214726448059,
        "iou_steered": 0.8433634638786316,
        "target_steered": 0.5,
        "target_baseline": 0.08333333333333333,
        "preserved": 0.2916666666666667,
        "target_steered_drawn": 0.5,
        "target_baseline_drawn": 0.08333333333333333,
    }
    return {
        "generation": {"n": 64, "accuracy": {"shape": None}},
        "steering": {"target_rate": {"steered": None}, "latents": [lat] * 6},
        "discovery": {
            "latents": [
                {"latent": 32, "text_word": "background", "name": "star", "rise": 0.495, "truth": "light"}
            ]
        },
    }


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), headless=True, args=["--no-sandbox"])
        pg = b.new_page(viewport={"width": 1280, "height": 900})
        yield pg
        b.close()


def test_diffusion_table_fits_the_page_with_readable_headers(tmp_path, page):
    r = Report("diffusion")
    diffusion_section(r, _diffusion_res(), tmp_path)
    f = r.save(tmp_path / "d.html")
    html = f.read_text()
    assert "target_baseline_drawn" not in html and "iou_steered" not in html and "text_word" not in html
    assert "silhouette IoU, steered" in html and "target rate, unsteered (drawn objects)" in html
    page.goto(f.as_uri())
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 1280, width  # old: the table made the page 1,394 px wide


def test_dead_and_no_ms_are_told_apart():
    """dead = never fires (MSResult.dead_F, the browser's n_fires == 0); a latent firing on one
    image is not dead but has no MS (the old report counted it as 'never fires')."""
    rng = np.random.default_rng(0)
    a = np.zeros((20, 4))
    a[3, 1] = 2.0  # fires on one image
    a[:, 2] = rng.uniform(0, 1, 20)  # fires on all
    a[::2, 3] = rng.uniform(0, 1, 10)
    emb = rng.normal(size=(20, 5))
    res = monosemanticity_score_streaming(lambda: [(0, a)], emb)
    assert list(res.dead_F) == [True, False, False, False]
    assert np.isnan(res.scores_F[1]) and not np.isnan(res.scores_F[2])
    assert dead_sentence(res).startswith("1 never fire on the test images (dead); 1 more fire on exactly one")
