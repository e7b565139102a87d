"""Explanations in `vsae serve` (issue 29): the phrase and scores on the table and latent pages, and
the concept search by meaning, on a shapes-world store with a planted SAE whose answers are known
(latent i < 8 fires on colour i: "red" must find latent 0 first), through the HTTP API and in
Chromium (Playwright)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.eval.test_explain import COLOURS, SHAPES, SMALL, build_planted_world
from tests.serve.conftest import local_client, serve_in_thread
from vsae.cli import main
from vsae.serve import SaeSource, Served, create_app


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    p = build_planted_world(tmp_path_factory.mktemp("serve-explain"))
    out = p["root"] / "explain"
    main(["eval", "explain", "--acts", str(p["acts"]), "--sae", str(p["sae"]), "--words", str(p["vocab"]),
          "--image-embeddings", str(p["emb"]), "--out", str(out), *SMALL, "--quiet"])  # fmt: skip
    p["out"] = out
    p["ex"] = json.loads((out / "explanations.json").read_text())
    return p


def _served(p, with_explanations=True):
    return Served(
        (
            SaeSource(
                "resid.1/planted", p["sae"], p["acts"], explanations=p["out"] if with_explanations else None
            ),
        )
    )


@pytest.fixture(scope="module")
def client(explained):
    return local_client(create_app(_served(explained), diffusion=None), raise_server_exceptions=False)


def test_table_and_latent_pages_show_explanations(client, explained):
    by = {r["latent"]: r for r in explained["ex"]["latents"]}
    assert client.get("/api/info").json()["has_explanations"] is True
    rows = client.get("/api/latents", params={"limit": 50}).json()["rows"]
    assert len(rows) == len(COLOURS) + len(SHAPES)
    for r in rows:
        e = by.get(r["latent"])
        assert r["explanation"] == (e["phrase"] if e else None)
        assert r["explanation_score"] == (e["detection"] if e else None)
    f = next(iter(by))
    d = client.get(f"/api/latent/{f}").json()["explanation"]
    assert d["phrase"] == by[f]["phrase"] and d["detection"] == by[f]["detection"]
    assert d["shuffled_detection"] == by[f]["shuffled_detection"] and d["explainer"] == "vocab"
    assert client.get(f"/api/explain/{f}").json()["explanation"]["phrase"] == by[f]["phrase"]


def test_concept_search_finds_latents_by_meaning(client, explained):
    """ "red" ranks the planted red latent first, "star" the star latent: by the CLIP similarity of
    the query to the phrases and top images, checked against a direct computation."""
    recs = explained["recs"]
    for query, want in (
        ("red", 0),
        ("blue", COLOURS.index("blue")),
        ("a photo of a star", 8 + SHAPES.index("star")),
    ):
        res = client.get("/api/explain/search", params={"q": query, "k": 5}).json()["results"]
        assert res[0]["latent"] == want, (query, [(r["latent"], r["phrase"], r["score"]) for r in res])
        assert [r["score"] for r in res] == sorted((r["score"] for r in res), reverse=True)
    # the score is the mean of the two cosines, recomputed here from the written vectors
    from safetensors.numpy import load_file

    from vsae.eval.naming import encode_words
    from vsae.models import load
    from vsae.world import shipped_clip_dir

    arr = load_file(str(explained["out"] / "explanations.safetensors"))
    q = encode_words(load(str(shipped_clip_dir()), tower="text"), ["red"], "{}")[0]
    q /= np.linalg.norm(q)
    direct = (arr["phrase_emb"] @ q + arr["top_emb"] @ q) / 2
    res = client.get("/api/explain/search", params={"q": "red", "k": 200}).json()["results"]
    assert [r["latent"] for r in res] == [int(arr["latents"][j]) for j in np.argsort(-direct, kind="stable")]
    assert res[0]["score"] == pytest.approx(direct.max(), abs=1e-4)
    # ground truth: the top images of the latent "red" finds first are red, though few images are
    import torch

    from vsae.sae import load as load_sae
    from vsae.store import ActivationStore

    with torch.no_grad():
        z = load_sae(explained["sae"]).encode(ActivationStore.open(explained["acts"])[:]).numpy()
    top = np.argsort(-z[:, res[0]["latent"]], kind="stable")[:8]
    assert all(recs[i]["colour"] == "red" for i in top)
    assert sum(r["colour"] == "red" for r in recs) < len(recs) / 4


def test_concept_search_bad_input(client, explained):
    assert client.get("/api/explain/search").status_code == 400
    assert "give a query" in client.get("/api/explain/search", params={"q": " "}).json()["error"]
    assert "k must be in" in client.get("/api/explain/search", params={"q": "red", "k": 0}).json()["error"]
    assert (
        "k must be an integer"
        in client.get("/api/explain/search", params={"q": "red", "k": "x"}).json()["error"]
    )
    assert client.get("/api/explain/99999").status_code == 400
    bare = local_client(create_app(_served(explained, False), diffusion=None), raise_server_exceptions=False)
    r = bare.get("/api/explain/search", params={"q": "red"})
    assert r.status_code == 400 and "has no explanations" in r.json()["error"]
    assert bare.get("/api/info").json()["has_explanations"] is False
    assert "explanation" not in bare.get("/api/latents").json()["rows"][0]  # the page as before


def test_demo_layout_finds_the_explanations(explained, tmp_path):
    """`vsae serve DEMO_DIR` serves OUT/explain/<hook>/<run>/ (what `vsae demo` writes)."""
    import shutil

    from vsae.serve import from_demo

    root = tmp_path / "demo"
    shutil.copytree(explained["acts"], root / "stores" / "clip" / "test" / "resid.1")
    shutil.copytree(explained["sae"], root / "runs" / "resid.1" / "planted")
    shutil.copytree(explained["out"], root / "explain" / "resid.1" / "planted")
    (root / "results.json").write_text(json.dumps({"layers": {"resid.1": {"saes": {"planted": {}}}}}))
    (src,) = from_demo(root).saes
    assert src.explanations == root / "explain" / "resid.1" / "planted"


# ----------------------------------------------------------------------------- in Chromium
@pytest.fixture(scope="module")
def live(explained):
    yield from serve_in_thread(create_app(_served(explained), diffusion=None))


def test_concept_search_in_the_browser(live, explained, tmp_path):
    from playwright.sync_api import sync_playwright

    from tests.report.browser import FLAGS, chromium

    errors: list[str] = []
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium(), headless=True,
            args=[f for f in FLAGS if not f.startswith("--virtual-time")], viewport={"width": 1280, "height": 900},
        )  # fmt: skip
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        # the table shows each latent's explanation
        page.goto(live + "/")
        page.wait_for_selector("#latent-table tbody tr")
        first = explained["ex"]["latents"][0]
        cell = page.locator(f'#latent-table tr[data-latent="{first["latent"]}"] td.explanation')
        assert first["phrase"] in cell.inner_text()
        # the concept search: type "red", the first row is the red latent
        page.click("#nav-concepts")
        page.wait_for_selector("#concept-query")
        page.fill("#concept-query", "red")
        page.press("#concept-query", "Enter")
        page.wait_for_selector("#concept-table tbody tr")
        assert page.locator("#concept-table tbody tr").first.get_attribute("data-latent") == "0"
        page.screenshot(path=str(tmp_path / "concepts.png"), full_page=True)
        assert Path(tmp_path / "concepts.png").stat().st_size > 1000
        # its link opens the latent page, which shows the explanation and its score
        page.locator("#concept-table tbody tr").first.locator("a").click()
        page.wait_for_selector("#latent-explanation")
        assert "detection AUROC" in page.inner_text("#latent-explanation")
        ctx.close()
    assert not errors, errors


def test_serve_flag_checks_the_explanations(explained):
    """`vsae serve --acts --sae --explanations DIR` reads DIR before serving (bad ones: the catalogue)."""
    from vsae.serve.explanations import check

    assert check(explained["out"]) == explained["out"]
    from vsae.cli.serve import serve

    assert "--explanations" in {o for p in serve.params for o in getattr(p, "opts", [])}
