"""End-to-end: the latent browser in real headless Debian Chromium, driven by Playwright.

Open the table, sort by MS, search a name, open a latent (its images and heatmaps must decode),
upload an image, steer the tiny LLaVA and see the answer change. Screenshots are saved in a tmp
dir (and in $VSAE_SCREENSHOTS when set).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from tests.report.browser import FLAGS, chromium
from vsae.serve import create_app
from vsae.serve.data import ImageSet


class FakeDiffusion:
    """Stands in for the diffusion steering hook (vsae.steer.diffusion) to test its UI."""

    n_latents = 16

    def __call__(self, prompt, latent, op, value, seed):
        return Image.new("RGB", (32, 32), (0, 0, 0)), Image.new("RGB", (32, 32), (200, 20 * latent % 256, 0))


@pytest.fixture(scope="module")
def live(served):
    """The app served by uvicorn on a free 127.0.0.1 port in a thread."""
    import uvicorn

    app = create_app(served, diffusion=FakeDiffusion())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    t = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    t.join(10)
    sock.close()


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
