"""End-to-end: the latent browser in real headless Debian Chromium, driven by Playwright.

Open the table, sort by MS, search a name, open a latent (its images and heatmaps must decode),
upload an image, steer the tiny LLaVA and see the answer change. Screenshots are saved in a tmp
dir (and in $VSAE_SCREENSHOTS when set).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

from tests.report.browser import FLAGS, chromium
from tests.serve.conftest import serve_in_thread
from vsae.serve import create_app
from vsae.serve.latent_index import ImageSet


class FakeDiffusion:
    """Stands in for the diffusion steering hook (vsae.steer.diffusion) to test its UI."""

    n_latents = 16

    def __call__(self, prompt, latent, op, value, seed):
        return Image.new("RGB", (32, 32), (0, 0, 0)), Image.new("RGB", (32, 32), (200, 20 * latent % 256, 0))


@pytest.fixture(scope="module")
def live(served, tmp_path_factory):
    """The app served by uvicorn on a free 127.0.0.1 port in a thread."""
    from dataclasses import replace

    from vsae.serve import Served

    # a second SAE id over the same run, without MS or names, so share links can name either
    # (it carries a warning, as an SAE served with --force does, to check the banner)
    second = replace(
        served.saes[0],
        id=served.saes[0].id + "-copy",
        ms_F=None,
        names=None,
        name_scores=None,
        warning="hook mismatch, served with --force: test",
    )
    from vsae.serve import SteerSource

    diff = tmp_path_factory.mktemp("diffusion") / "results.json"
    diff.write_text(
        json.dumps({"steering": {"latents": [{"latent": 3, "word": "medium"}, {"latent": 5, "word": "red"}]}})
    )
    steer = SteerSource(served.steer.llava, served.steer.sae_dir, served.steer.steer_results, diff)
    app = create_app(Served((*served.saes, second), steer), diffusion=FakeDiffusion())
    yield from serve_in_thread(app)


def _api(url: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def _all_decoded(page, selector: str) -> list[int]:
    """naturalWidth of every image matching selector, once each has finished loading."""
    page.wait_for_function(
        "sel => [...document.querySelectorAll(sel)].every(i => i.complete)", arg=selector, timeout=30_000
    )
    return page.eval_on_selector_all(selector, "els => els.map(e => e.naturalWidth)")


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    args = [f for f in FLAGS if not f.startswith("--virtual-time")]
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium(),
            headless=True,
            args=args,
            viewport={"width": 1280, "height": 900},
        )
        page = ctx.new_page()
        yield page
        ctx.close()


def test_browser_end_to_end(live, browser_page, built, tmp_path_factory):
    page = browser_page
    shots = tmp_path_factory.mktemp("screenshots")
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))

    def shot(name: str) -> None:
        p = shots / f"{name}.png"
        page.screenshot(path=str(p), full_page=True)
        assert p.stat().st_size > 1000
        if os.environ.get("VSAE_SCREENSHOTS"):
            Path(os.environ["VSAE_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
            shutil.copy(p, Path(os.environ["VSAE_SCREENSHOTS"]) / p.name)

    # 1. the table
    page.goto(live + "/")
    page.wait_for_selector("#latent-table tbody tr")
    assert page.locator("#latent-table tbody tr").count() == 50
    assert "1–50 of 256" in page.inner_text("#count")
    shot("table")

    # 2. sort by MS (descending on the first click): the column is non-increasing, as the API says
    page.click("#sort-ms")
    page.wait_for_function("() => location.hash.includes('sort=ms')")
    page.wait_for_selector("#sort-ms:has-text('▼')")
    ms = [
        float(x) for x in page.eval_on_selector_all("td.ms", "els => els.map(e => e.textContent)") if x != "–"
    ]
    assert len(ms) == 50 and ms == sorted(ms, reverse=True)
    api_top = _api(live + "/api/latents?sort=ms&order=desc&limit=50")["rows"]
    rows = page.eval_on_selector_all("tr.latent-row", "els => els.map(e => Number(e.dataset.latent))")
    assert rows == [r["latent"] for r in api_top]

    # 3. search a name
    want = sum(1 for n in built["names"] if n == "triangle")
    page.fill("#search", "triangle")
    page.wait_for_function("() => location.hash.includes('q=triangle')")
    # the table re-renders when the search answer arrives: wait for it, not for the old rows
    page.wait_for_function(
        "(want) => document.querySelectorAll('td.name').length === want",
        arg=want,
    )
    names = page.eval_on_selector_all("td.name", "els => els.map(e => e.textContent)")
    assert len(names) == want > 0 and all("triangle" in n for n in names)
    shot("search")

    # 4. open the most frequent latent: its top images and heatmaps decode
    page.fill("#search", "")
    page.wait_for_function("() => !location.hash.includes('q=triangle')")
    page.click("#sort-freq")
    page.wait_for_selector("#sort-freq:has-text('▼')")
    first = page.locator("tr.latent-row").first
    f = int(first.get_attribute("data-latent"))
    first.locator("a").first.click()
    page.wait_for_selector("#top-images img.heat")
    n_top = len(_api(f"{live}/api/latent/{f}")["top"])
    widths = _all_decoded(page, "#top-images img.img")
    heats = _all_decoded(page, "#top-images img.heat")
    assert len(widths) == len(heats) == n_top > 0
    assert min(widths) > 0 and min(heats) > 0
    assert min(_all_decoded(page, "#quantiles img")) > 0
    assert page.locator("#histogram rect").count() == 24
    assert page.locator("#nearest li").count() == 10
    assert f"Latent #{f}" in page.inner_text("#latent-title")
    shot("latent")
    page.locator("#nearest a").first.click()
    page.wait_for_function(f"() => !location.hash.endsWith('/latent/{f}')")
    page.wait_for_selector("#latent-title")

    # 5. upload an image
    page.click("#nav-upload")
    page.wait_for_selector("#upload-file")
    page.set_input_files("#upload-file", str(ImageSet(built["store"], None).path(9)))
    page.wait_for_selector("#upload-latents img.heat")
    assert min(_all_decoded(page, "#upload-image")) > 0
    up = _all_decoded(page, "#upload-latents img.heat")
    assert len(up) > 0 and min(up) > 0
    assert page.inner_text("#upload-progress").startswith("done in")
    # a large upload is seen at the model's input size (32 px), with progress and its time shown
    big = tmp_path_factory.mktemp("big") / "big.png"
    Image.new("RGB", (1024, 768), (200, 30, 30)).save(big)
    page.set_input_files("#upload-file", str(big))
    page.wait_for_function(
        "() => (document.querySelector('#upload-result figcaption') || {}).textContent?.includes('1024')"
    )
    assert "1024×768 px, seen by the model at 43×32 px" in page.inner_text("#upload-result figcaption")
    shot("upload")

    # 6. steer: find a latent that changes the answer on the first image (API), then do it in the page
    info = _api(live + "/api/steer/info")
    img = info["images"][0]
    latent = next(
        g
        for g in range(0, info["n_latents"], 37)
        if (r := _api(live + "/api/steer", {"image": img, "latent": g, "op": "clamp", "value": 100}))[
            "steered"
        ]
        != r["unsteered"]
    )
    page.click("#nav-steer")
    page.wait_for_selector("#steer-form")
    page.fill("#steer-latent", str(latent))
    page.select_option("#steer-op", "clamp")
    page.fill("#steer-value", "100")
    page.click("#steer-run")
    page.wait_for_selector("#answer-steered")
    unsteered, steered = page.inner_text("#answer-unsteered"), page.inner_text("#answer-steered")
    assert unsteered and steered and unsteered != steered
    assert page.inner_text("#answer-changed") == "the answer changed"
    # the diffusion panel (a stand-in hook here): both generated images decode
    page.fill("#diff-prompt", "a blue square")
    page.click("#diff-run")
    page.wait_for_selector("#diff-steered")
    assert min(_all_decoded(page, "#diff-result img")) > 0
    shot("steer")

    # 7. a bad request shows a one-line error, the page survives
    page.goto(live + "/#/latent/99999")
    page.wait_for_selector(".error-line")
    assert "out of range" in page.inner_text(".error-line")

    assert not errors, errors
    assert all(u.startswith(live) or u.startswith("data:") for u in requests), [
        u for u in requests if not u.startswith(live)
    ]


def test_browser_state_lives_in_the_url(live, browser_page, built, served):
    """Share links keep their SAE and view state; nearest / co-activation / heatmap notes; table
    filters, thumbnails, titles and the small bugs of issue 28 (each failed on the old page)."""
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    first, second = served.saes[0].id, served.saes[0].id + "-copy"
    enc = {x: quote(x, safe="") for x in (first, second)}  # as URLSearchParams writes it
    rows = _api(live + "/api/latents?sort=freq&order=desc&limit=500")["rows"]
    f = rows[0]["latent"]

    # a shared link names the SAE: it opens that SAE, not the default one (old: sessionStorage)
    page.goto(f"{live}/#/latent/{f}?sae={second}")
    page.wait_for_selector("#latent-title")
    assert page.eval_on_selector("#sae-select", "e => e.value") == second
    assert page.inner_text("#latent-title").startswith(f"Latent #{f}")
    assert f"Latent #{f}" in page.title() and second in page.title()
    assert page.is_visible("#banner") and "served with --force" in page.inner_text("#banner")
    assert all(
        f"sae={enc[second]}" in h
        for h in page.eval_on_selector_all("#nearest a", "els => els.map(e => e.href)")
    )
    # a link without the SAE, opened afresh, shows the default SAE and gets it written in
    page.goto("about:blank")
    page.goto(f"{live}/#/latent/{f}")
    page.wait_for_function("() => location.hash.includes('sae=')")
    assert page.eval_on_selector("#sae-select", "e => e.value") == first
    assert f"sae={enc[first]}" in page.url
    assert not page.is_visible("#banner")

    # nearest latents are live, dead ones apart; co-activation neighbours beside them
    page.wait_for_selector("#nearest li")
    assert "dead" not in page.inner_text("#nearest")
    d = _api(f"{live}/api/latent/{f}")
    assert page.locator("#coactive li").count() == len(d["coactive"]) > 0
    # the maps say what they are, flag patch tokens as out of distribution, share one colour scale
    assert "out of its training distribution" in page.inner_text("#map-note")
    assert page.locator("#colour-scale").count() == 1
    heat_srcs = page.eval_on_selector_all("img.heat", "els => els.map(e => e.src)")
    n_shown = len(d["top"]) + sum(len(q["images"]) for q in d["quantiles"])
    assert len(heat_srcs) == n_shown and all("vmax=" in u for u in heat_srcs)  # quantile images too
    assert min(_all_decoded(page, "#quantiles img.heat")) > 0
    hist = page.eval_on_selector("#histogram", "e => e.textContent")
    assert "images (log scale)" in hist and "activation (pooled per image)" in hist

    # the stats grid fits a 420 px window
    page.set_viewport_size({"width": 420, "height": 900})
    page.wait_for_timeout(200)
    assert page.evaluate("() => document.querySelector('.stats').getBoundingClientRect().right") <= 420
    page.set_viewport_size({"width": 1280, "height": 900})

    # a dead latent says so instead of "Top 0 images with patch heatmaps"
    dead = _api(live + "/api/latents?filter=dead&limit=1")["rows"]
    if dead:
        page.goto(f"{live}/#/latent/{dead[0]['latent']}?sae={first}")
        page.wait_for_selector("#no-top")
        assert "never fires" in page.inner_text("#no-top") and "Top 0" not in page.inner_text("#view")

    # table: a minimum count, a count beside MS, thumbnails, a title; offsets past the end
    page.goto(f"{live}/#/?sort=ms&order=desc&min_count=5&sae={first}")
    page.wait_for_selector("#latent-table tbody tr")
    counts = [
        int(t.split()[0]) for t in page.eval_on_selector_all("td.count", "els => els.map(e => e.textContent)")
    ]
    assert counts and min(counts) >= 5
    assert page.eval_on_selector("#min-count", "e => e.value") == "5"
    assert min(_all_decoded(page, "img.thumb")) > 0
    assert page.title().startswith("Latents")
    before = page.inner_text("#count")
    page.goto(f"{live}/#/?offset=100000&sae={first}")
    # a hash change re-renders in place: wait for the new table's count, not the old one's
    page.wait_for_function("prev => (document.querySelector('#count') || {}).textContent !== prev", arg=before)
    assert page.inner_text("#count") == f"nothing at 100001: there are {built['F']}"
    # a bad parameter: an error message, and the default table (old: the view replaced by an error line)
    page.goto(f"{live}/#/?sort=bogus&sae={first}")
    page.wait_for_selector("#latent-table tbody tr")
    page.wait_for_function(
        "() => !document.querySelector('#error').hidden && document.querySelector('#error').textContent.includes('unknown sort')"
    )
    assert "showing the default table" in page.inner_text("#error")

    # steering: the state is in the URL, ablate shows no value, the diffusion panel has its own latent
    page.goto(f"{live}/#/steer?latent=7&op=ablate&sae={first}")
    page.wait_for_selector("#steer-form")
    assert page.eval_on_selector("#steer-latent", "e => e.value") == "7"
    assert page.eval_on_selector("#steer-op", "e => e.value") == "ablate"
    assert page.title().startswith("Steering")
    page.click("#steer-run")
    page.wait_for_selector("#edit-label")
    assert page.inner_text("#edit-label") == "ablate #7"
    # the steering latent can be inspected before steering: its top served images
    page.click("#steer-inspect-run")
    page.wait_for_selector("#steer-inspect-title")
    assert page.inner_text("#steer-inspect-title").startswith("Steering latent #7")
    n_top = len(_api(f"{live}/api/steer/latent/7")["top"])
    assert page.locator("#steer-inspect-images img").count() == n_top
    assert "image=" in page.url and "latent=7" in page.url
    assert page.eval_on_selector("#diff-latent", "e => e.max") == "15"  # the text-encoder SAE's size
    # its own suggestions: the latents the diffusion experiment steered, not the LLaVA's
    assert page.eval_on_selector_all("#diff-suggested option", "els => els.map(e => e.value)") == ["3", "5"]
    assert "medium" in page.eval_on_selector("#diff-suggested", "e => e.innerHTML")
    page.fill("#diff-latent", "3")
    page.click("#diff-run")
    page.wait_for_selector("#diff-steered")
    assert "#3" in page.inner_text("#diff-result") and "#7" not in page.inner_text("#diff-result")
    assert "dlatent=3" in page.url
    # an empty latent field is refused (old: it steered latent 0 with value 0)
    page.fill("#steer-latent", "")
    page.click("#steer-run")
    # (an earlier message may still be up: wait for this one)
    page.wait_for_function(
        "() => !document.querySelector('#error').hidden && document.querySelector('#error').textContent.includes('give latent')"
    )
    assert not errors, errors


class TextDiffusion(FakeDiffusion):
    """The stand-in diffusion hook, editing the SAE at `sae_dir` (served as a text-encoder SAE)."""

    def __init__(self, sae_dir, n_latents):
        self.sae_dir, self.n_latents = sae_dir, n_latents


@pytest.fixture(scope="module")
def live_steer(served, built, steer_images, tmp_path_factory):
    """A server whose steering SAE is browsable (its store: 32 world images) and whose diffusion
    hook edits a served SAE (a copy of the fixture's run, standing for a text-encoder SAE)."""
    from dataclasses import replace

    from vsae.serve import Served, SteerSource

    text = tmp_path_factory.mktemp("text") / "text_sae"
    shutil.copytree(built["run"], text)
    text_src = replace(served.saes[0], id="text/" + text.name, sae_dir=text, ms_F=None, names=None)
    diff = tmp_path_factory.mktemp("diffusion") / "results.json"
    rows = [{"latent": 3, "word": "medium", "max_act": 13.5}, {"latent": 5, "word": "red", "max_act": 2.0}]
    diff.write_text(json.dumps({"steering": {"strength": 4.0, "latents": rows}}))
    steer = SteerSource(served.steer.llava, served.steer.sae_dir, served.steer.steer_results, diff)
    app = create_app(
        Served((*served.saes, text_src), steer, steer_images=steer_images),
        diffusion=TextDiffusion(text, built["F"]),
    )
    yield from serve_in_thread(app)


def test_browser_steering_sae_and_steer_links(live_steer, browser_page, built):
    """The steering SAE has a table and latent pages with heatmaps; a steering SAE's latent page
    steers with that latent (the LLaVA's or the text-encoder SAE's panel, SAE and latent in the
    URL); the diffusion panel has its own latent field, suggestions, value and validation."""
    live, page = live_steer, browser_page
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    info = _api(live + "/api/info")
    sid, first = info["steering_sae"], info["saes"][0]
    assert sid in info["saes"]

    # its table, from the SAE menu like any other SAE (old: not listed, only an "inspect" view)
    page.goto(f"{live}/#/?sae={quote(sid, safe='')}&sort=freq&order=desc")
    page.wait_for_selector("#latent-table tbody tr", timeout=120_000)
    assert page.eval_on_selector("#sae-select", "e => e.value") == sid
    assert "resid.1 (patches)" in page.inner_text("#sae-info")
    assert min(_all_decoded(page, "img.thumb")) > 0
    f = int(page.eval_on_selector("#latent-table tbody tr", "e => e.dataset.latent"))
    # its latent page: top images with heatmaps on one scale, in distribution (patch tokens)
    page.click(f"#latent-table tbody tr[data-latent='{f}'] a")
    page.wait_for_selector("#latent-title")
    assert min(_all_decoded(page, "#top-images img.heat")) > 0
    assert page.get_attribute("#map-note", "class") == "muted"  # not flagged out of distribution
    assert page.locator("#nearest li").count() > 0
    # steer with this latent: the LLaVA panel, the steering SAE and the latent in the URL
    page.click("#steer-with")
    page.wait_for_selector("#steer-form")
    assert "#/steer?" in page.url and f"latent={f}" in page.url and f"sae={quote(sid, safe='')}" in page.url
    assert page.eval_on_selector("#steer-latent", "e => e.value") == str(f)
    assert "different dictionary" not in page.inner_text("#view")  # it steers the browsed SAE
    # and back: the playground links its latent to the steering SAE's page
    assert page.get_attribute("#steer-browse", "href").startswith(f"#/latent/{f}?")
    page.fill("#steer-latent", "9")
    assert page.get_attribute("#steer-browse", "href").startswith("#/latent/9?")
    page.click("#steer-browse")
    page.wait_for_selector("#latent-title")
    assert page.inner_text("#latent-title").startswith("Latent #9")
    assert page.eval_on_selector("#sae-select", "e => e.value") == sid

    # the other SAEs' latent pages cannot steer
    page.goto("about:blank")
    page.goto(f"{live}/#/latent/{f}?sae={quote(first, safe='')}")
    page.wait_for_selector("#latent-title")
    assert page.locator("#steer-with").count() == 0

    # the text-encoder SAE: its latent opens the diffusion panel with its own field filled in
    text = next(s for s in info["saes"] if s.startswith("text/"))
    page.goto("about:blank")
    page.goto(f"{live}/#/latent/4?sae={quote(text, safe='')}")
    page.wait_for_selector("#steer-with")
    page.click("#steer-with")
    page.wait_for_selector("#diff-form")
    assert "dlatent=4" in page.url and f"sae={quote(text, safe='')}" in page.url
    assert page.eval_on_selector("#diff-latent", "e => e.value") == "4"
    assert page.eval_on_selector("#steer-latent", "e => e.value") != "4"  # the LLaVA's field is apart
    assert page.evaluate("() => document.activeElement.id") == "diff-latent"
    # its own suggestions with their own values (strength x max activation), not the LLaVA's
    opts = page.eval_on_selector_all("#diff-suggested option", "els => els.map(e => e.textContent)")
    assert opts == ["#3 medium (value 54)", "#5 red (value 8)"]
    page.goto("about:blank")
    page.goto(f"{live}/#/steer?sae={quote(text, safe='')}")
    page.wait_for_selector("#diff-form")
    assert page.eval_on_selector("#diff-latent", "e => e.value") == "3"
    assert page.eval_on_selector("#diff-value", "e => e.value") == "54"
    # its own validation: the text-encoder SAE's range, checked before anything is sent
    page.fill("#diff-latent", str(built["F"] + 5))
    page.click("#diff-run")
    page.wait_for_function(
        "() => !document.querySelector('#error').hidden && document.querySelector('#error').textContent.includes('text-encoder SAE')"
    )
    assert f"0..{built['F'] - 1}" in page.inner_text("#error")
    assert page.inner_text("#diff-result") == ""
    page.fill("#diff-latent", "5")
    page.click("#diff-run")
    page.wait_for_selector("#diff-steered")
    assert "#5" in page.inner_text("#diff-result")
    assert not errors, errors
