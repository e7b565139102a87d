"""API tests of `vsae serve`: every route, its numbers against direct computations, bad inputs."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

import vsae.models
import vsae.sae
from tests.serve.conftest import local_client
from vsae.data.fake_images import png_bomb
from vsae.errors import VsaeError
from vsae.serve import SaeSource, Served, ServeLimits, create_app, from_demo, from_flags
from vsae.serve.latent_index import ImageSet
from vsae.store import ActivationStore


@pytest.fixture(scope="module")
def client(served):
    return local_client(
        create_app(served, ServeLimits(max_upload_bytes=200_000), diffusion=None),
        raise_server_exceptions=False,
    )


@pytest.fixture(scope="module")
def direct(built):
    """Latents of every test image computed directly: SAE encode of the store's rows."""
    sae = vsae.sae.load(built["run"]).eval()
    st = ActivationStore.open(built["store"])
    with torch.no_grad():
        z = sae.encode(st[:]).numpy()
    return {"sae": sae, "z_NF": z, "image_index": st.image_index}


def _png_bytes(path) -> bytes:
    return path.read_bytes()


def test_info(client, built):
    d = client.get("/api/info").json()
    assert d["n_latents"] == built["F"] and d["n_images"] == 48
    assert d["hook"] == "resid.1" and d["tokens"] == "cls" and d["groups"] == 4
    assert d["heatmaps"] is None and d["diffusion"] is False and d["has_ms"] and d["has_names"]


def test_table_stats_match_direct(client, direct, built):
    rows = client.get("/api/latents", params={"limit": 500}).json()["rows"]
    assert [r["latent"] for r in rows] == list(range(built["F"]))
    z = direct["z_NF"]
    assert np.array_equal(direct["image_index"], np.arange(48))  # cls: one row per image
    freq = (z > 0).mean(0)
    np.testing.assert_allclose([r["freq"] for r in rows], freq, atol=1e-5)
    np.testing.assert_allclose([r["max"] for r in rows], z.max(0), atol=1e-3)
    assert [r["dead"] for r in rows] == list(freq == 0)
    assert [r["n_fires"] for r in rows] == list((z > 0).sum(0))
    # each row's thumbnails: its 3 top images
    for r in rows[:40]:
        f = r["latent"]
        want = [int(i) for i in np.argsort(-z[:, f], kind="stable")[:3] if z[i, f] > 0]
        assert r["thumbs"] == want
    assert [r["dense"] for r in rows] == list(freq > 0.1)
    sizes = direct["sae"].cfg.group_sizes
    assert [r["group"] for r in rows] == list(np.repeat(np.arange(4), sizes))
    ms = built["ms"]
    assert [r["ms"] is None for r in rows] == list(np.isnan(ms))


def test_table_sort_filter_search_page(client, built):
    ms = built["ms"]
    d = client.get("/api/latents", params={"sort": "ms", "order": "desc", "limit": 500}).json()
    got = [r["latent"] for r in d["rows"]]
    scored = np.flatnonzero(~np.isnan(ms))
    want = list(scored[np.lexsort((scored, -ms[scored]))]) + list(np.flatnonzero(np.isnan(ms)))
    assert got == want  # descending MS, unscored last
    asc = [
        r["latent"] for r in client.get("/api/latents", params={"sort": "ms", "limit": 500}).json()["rows"]
    ]
    assert asc[: len(scored)] == list(scored[np.lexsort((scored, ms[scored]))])
    page = client.get("/api/latents", params={"sort": "ms", "order": "desc", "offset": 10, "limit": 7}).json()
    assert [r["latent"] for r in page["rows"]] == want[10:17] and page["total"] == built["F"]
    names = built["names"]
    hits = client.get("/api/latents", params={"q": "CIRC", "limit": 500}).json()
    assert [r["latent"] for r in hits["rows"]] == [i for i, n in enumerate(names) if n and "circ" in n]
    assert client.get("/api/latents", params={"q": "#5"}).json()["rows"][0]["latent"] == 5
    dead = client.get("/api/latents", params={"filter": "dead", "limit": 500}).json()
    alive = client.get("/api/latents", params={"filter": "alive", "limit": 500}).json()
    assert dead["total"] + alive["total"] == built["F"] and all(r["dead"] for r in dead["rows"])
    counts = np.array(
        [r["n_fires"] for r in client.get("/api/latents", params={"limit": 500}).json()["rows"]]
    )
    m = client.get(
        "/api/latents", params={"min_count": 5, "sort": "ms", "order": "desc", "limit": 500}
    ).json()
    assert m["total"] == int((counts >= 5).sum()) and all(r["n_fires"] >= 5 for r in m["rows"])
    assert client.get("/api/latents", params={"min_count": -1}).status_code == 400
    g = client.get("/api/latents", params={"group": 1, "limit": 500}).json()
    assert g["total"] == 32 and {r["group"] for r in g["rows"]} == {1}
    by_name = [
        r["name"] for r in client.get("/api/latents", params={"sort": "name", "limit": 500}).json()["rows"]
    ]
    named = [n for n in by_name if n]
    assert named == sorted(named) and by_name[len(named) :] == [None] * (len(by_name) - len(named))


def test_latent_page_matches_direct(client, direct, built):
    z = direct["z_NF"]
    f = int(np.argmax((z > 0).sum(0)))  # the most frequent latent
    d = client.get(f"/api/latent/{f}", params={"k": 5}).json()
    order = np.argsort(-z[:, f], kind="stable")[:5]
    assert [t["image"] for t in d["top"]] == list(order)
    np.testing.assert_allclose([t["value"] for t in d["top"]], z[order, f], atol=1e-3)
    nz = z[:, f][z[:, f] > 0]
    assert sum(d["histogram"]["counts"]) == len(nz) and d["histogram"]["zeros"] == 48 - len(nz)
    for qq in d["quantiles"]:
        lo, hi = qq["range"]
        assert all(lo - 1e-3 <= im["value"] <= hi + 1e-3 for im in qq["images"])
    assert sum(1 for _ in d["quantiles"]) == 5
    w = direct["sae"].W_dec_Fd.detach().numpy()
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    cos = w @ w[f]
    cos[f] = -np.inf
    # nearest: the 10 live latents of highest decoder cosine; dead ones that beat them apart
    dead = (z > 0).sum(0) == 0
    assert dead.any()  # the fixture SAE has dead latents, so ranking live ones first matters
    live = [j for j in np.argsort(-cos, kind="stable") if not dead[j] and j != f][:10]
    assert [n["latent"] for n in d["nearest"]] == live
    np.testing.assert_allclose([n["cos"] for n in d["nearest"]], cos[live], atol=1e-4)
    assert not any(n["dead"] for n in d["nearest"])
    floor = cos[live[-1]]
    want_dead = [j for j in np.argsort(-cos, kind="stable") if dead[j] and cos[j] > floor][:10]
    assert [n["latent"] for n in d["nearest_dead"]] == want_dead
    assert all(n["dead"] for n in d["nearest_dead"])
    # co-activation neighbours: Jaccard index of the firing image sets, direct
    on = z > 0
    both = (on[:, f : f + 1] & on).sum(0)
    jac = both / (on[:, f].sum() + on.sum(0) - both)
    jac[f] = -1
    jac[both == 0] = -1
    want = [j for j in np.lexsort((np.arange(len(jac)), -jac)) if jac[j] > 0][:10]
    assert [c["latent"] for c in d["coactive"]] == want
    np.testing.assert_allclose([c["jaccard"] for c in d["coactive"]], jac[want], atol=1e-4)
    assert [c["both"] for c in d["coactive"]] == list(both[want])
    # ground-truth purity straight from the world's attributes.json
    recs = {r["path"]: r for r in json.loads((built["world"] / "attributes.json").read_text())}
    table = json.loads((built["store"] / "images.json").read_text())
    shapes = [recs["test/" + table["items"][i]]["shape"] for i in order]
    p = {x["attribute"]: x for x in d["purity"]}
    top_shape = max(set(shapes), key=shapes.count)
    assert p["shape"]["fraction"] == pytest.approx(shapes.count(top_shape) / 5)
    assert d["purity"][0]["fraction"] == max(x["fraction"] for x in d["purity"])


def test_image_and_heatmap(client, direct, built):
    r = client.get("/api/image/4.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    im = Image.open(io.BytesIO(r.content))
    assert im.size == (160, 160)
    z = direct["z_NF"]
    f = int(np.argmax(z[4]))
    h = Image.open(io.BytesIO(client.get(f"/api/heatmap/{f}/4.png").content))
    assert h.size == (160, 160)
    assert np.abs(np.asarray(h, float) - np.asarray(im.convert("RGB"), float)).max() > 30  # something drawn
    # the map is the SAE's latent f on the patch tokens of resid.1 (direct capture)
    from vsae.data import load_image

    prov = ActivationStore.open(built["store"]).provenance
    lm = vsae.models.load(prov["model"])
    path = ImageSet(built["store"], None).path(4)
    with vsae.models.capture(lm, "resid.1") as cap:
        lm.run(lm.preprocess([load_image(path)]))
    with torch.no_grad():
        want = direct["sae"].encode(cap.output[0, 1:])[:, f].numpy()
        cls = direct["sae"].encode(cap.output[0, :1])[0].numpy()
    np.testing.assert_allclose(cls, z[4], atol=1e-4)  # the same pipeline as the store
    app = client.app
    got = app.state.vsae.maps(None).patch_latents(("check", 4), load_image(path))[:, f].numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert len(want) == 64  # 32 px / patch 4 = an 8x8 grid


def test_latent_maps_share_one_scale_and_say_what_they_are(client, direct, built):
    """map_max is the largest patch activation over every image the page shows (top and
    quantile images); a heatmap drawn with ?vmax= uses that scale; the note flags CLS training."""
    from vsae.data import load_image
    from vsae.serve import heatmaps as hm

    z = direct["z_NF"]
    f = int(np.argmax((z > 0).sum(0)))
    d = client.get(f"/api/latent/{f}").json()
    shown = [t["image"] for t in d["top"]] + [i["image"] for q in d["quantiles"] for i in q["images"]]
    maps = client.app.state.vsae.maps(None)
    imgs = ImageSet(built["store"], None)
    per = [float(maps.patch_latents(("t", i), load_image(imgs.path(i)))[:, f].max()) for i in shown]
    assert d["map_max"] == pytest.approx(max(per), abs=1e-3)
    got_peaks = [t["patch_max"] for t in d["top"]] + [
        i["patch_max"] for q in d["quantiles"] for i in q["images"]
    ]
    np.testing.assert_allclose(got_peaks, per, atol=1e-3)  # 0 marks a blank map
    note = d["map_note"]
    assert (
        note["trained_on"] == "cls" and note["out_of_distribution"] and "out of its training" in note["text"]
    )
    i = d["quantiles"][0]["images"][0]["image"]
    got = Image.open(
        io.BytesIO(client.get(f"/api/heatmap/{f}/{i}.png", params={"vmax": d["map_max"]}).content)
    )
    zz = maps.patch_latents(("t", i), load_image(imgs.path(i)))[:, f].numpy()
    want = hm.overlay(load_image(imgs.path(i)), hm.grid(zz), vmax=d["map_max"])
    assert np.array_equal(np.asarray(got), np.asarray(want))
    own = hm.overlay(load_image(imgs.path(i)), hm.grid(zz))
    assert zz.max() < d["map_max"] * 0.99 and not np.array_equal(np.asarray(got), np.asarray(own))
    for bad in ("0", "-1", "nan", "abc"):
        assert client.get(f"/api/heatmap/{f}/{i}.png", params={"vmax": bad}).status_code == 400
    assert len(client.get("/api/info").json()["colormap"]) == 9


def test_upload_equals_store_row(client, direct, built):
    path = ImageSet(built["store"], None).path(9)
    d = client.post("/api/upload", content=_png_bytes(path)).json()
    z = direct["z_NF"][9]
    want = [int(f) for f in np.argsort(-z, kind="stable")[:8] if z[f] > 0]
    assert [x["latent"] for x in d["latents"]] == want
    np.testing.assert_allclose([x["value"] for x in d["latents"]], z[want], atol=1e-3)
    assert d["image"].startswith("data:image/png;base64,") and all("heatmap" in x for x in d["latents"])


def _png_of(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def test_upload_is_resized_to_the_model_once(client):
    """A 2048 px upload is seen at the model's 32 px and its maps are drawn at that resolution
    (the old route drew 2048 px maps and sent them as multi-MB data URIs)."""
    from PIL import ImageDraw

    big = Image.new("RGB", (2048, 1536), (30, 90, 200))
    ImageDraw.Draw(big).ellipse((500, 400, 1500, 1200), fill=(220, 40, 40))
    r = client.post("/api/upload", content=_png_of(big))
    d = r.json()
    assert r.status_code == 200 and d["size"] == [2048, 1536] and d["model_size"] == [43, 32]
    assert len(r.content) < 400_000 and d["latents"]  # 8 maps at display size, not 2048 px
    for x in d["latents"]:
        im = Image.open(io.BytesIO(__import__("base64").b64decode(x["heatmap"].split(",")[1])))
        assert im.size == (160, 119)  # the 43 x 32 model input, enlarged for display
    small = big.resize((43, 32), Image.Resampling.BICUBIC, reducing_gap=3.0)
    want = client.post("/api/upload", content=_png_of(small)).json()
    assert [x["latent"] for x in d["latents"]] == [x["latent"] for x in want["latents"]]
    np.testing.assert_allclose([x["value"] for x in d["latents"]], [x["value"] for x in want["latents"]])


def test_upload_bad_inputs(client, tmp_path):
    assert client.post("/api/upload", content=b"").status_code == 400
    r = client.post("/api/upload", content=b"this is not an image")
    assert r.status_code == 400 and "not an image" in r.json()["error"]
    bomb = png_bomb(tmp_path / "bomb.png")
    r = client.post("/api/upload", content=bomb.read_bytes())
    assert r.status_code == 400 and "bomb" in r.json()["error"]
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8))
    buf = io.BytesIO()
    big.save(buf, "PNG")
    r = client.post("/api/upload", content=buf.getvalue())
    assert r.status_code == 413 and "limit" in r.json()["error"]


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("/api/latent/100000", 400, "out of range"),
        ("/api/latent/abc", 404, "Not Found"),
        ("/api/latent/3?k=0", 400, "k must be"),
        ("/api/latents?sort=bogus", 400, "unknown sort"),
        ("/api/latents?order=up", 400, "unknown order"),
        ("/api/latents?filter=x", 400, "unknown filter"),
        ("/api/latents?limit=0", 400, "limit"),
        ("/api/latents?offset=-3", 400, "offset"),
        ("/api/latents?group=abc", 400, "not an integer"),
        ("/api/info?sae=nope", 404, "unknown SAE"),
        ("/api/image/48.png", 400, "out of range"),
        ("/api/heatmap/9999/0.png", 400, "out of range"),
        ("/api/heatmap/1/480.png", 400, "out of range"),
        ("/static/..%2f..%2fapp.py", 404, "Not Found"),
        ("/static/%2e%2e/app.py", 404, "Not Found"),
        ("/nothing", 404, "Not Found"),
    ],
)
def test_bad_requests_are_one_line_4xx(client, url, status, words):
    r = client.get(url)
    assert r.status_code == status, r.text
    msg = r.json()["error"]
    assert words in msg and "\n" not in msg and "Traceback" not in r.text


def test_method_not_allowed(client):
    r = client.get("/api/upload")
    assert r.status_code == 405 and "\n" not in r.json()["error"]


def test_images_never_escape_the_served_folder(built, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    t = json.loads((built["store"] / "images.json").read_text())
    t["items"] = ["../../../etc/passwd", t["items"][0]]
    t["root"] = str(built["world"])
    (store / "images.json").write_text(json.dumps(t))
    s = ImageSet(store, None)
    with pytest.raises(VsaeError, match="outside the served folder"):
        s.path(0)
    assert s.path(1).is_file()


def test_steer(client, built):
    info = client.get("/api/steer/info").json()
    assert info["n_latents"] > 0 and "clamp" in info["ops"] and len(info["images"]) == 12
    img = info["images"][0]
    answers = [
        client.post("/api/steer", json={"image": img, "latent": f, "op": "clamp", "value": 100}).json()
        for f in (3, 40, 200)
    ]
    assert len({a["unsteered"] for a in answers}) == 1  # the same image and question
    assert any(a["steered"] != a["unsteered"] for a in answers)
    same = client.post("/api/steer", json={"image": img, "latent": 3, "op": "scale", "value": 1}).json()
    assert same["steered"] == same["unsteered"]  # scaling by 1 changes nothing


def test_steering_latent_can_be_inspected(client, built):
    """The steering SAE's latent f on the served images: top images by the pooled latent the
    steering experiment uses (`pooled_latents`), computed here directly."""
    from vsae.data import load_image
    from vsae.steer.mllm import pooled_latents

    pg = client.app.state.vsae.playground
    lm, _, sae, hook = pg.load()
    imgs = ImageSet(built["store"], None)
    direct = pooled_latents(lm, hook, sae, [load_image(imgs.path(i)) for i in range(48)]).acts_NF
    f = int(np.argmax((direct > 0).sum(0)))
    d = client.get(f"/api/steer/latent/{f}").json()
    want = [i for i in np.argsort(-direct[:, f], kind="stable")[:8] if direct[i, f] > 0]
    assert [t["image"] for t in d["top"]] == want and d["n_images"] == 48 and d["hook"] == hook
    np.testing.assert_allclose([t["value"] for t in d["top"]], direct[want, f], atol=1e-3)
    assert d["fires_on"] == int((direct[:, f] > 0).sum())
    r = client.get(f"/api/steer/latent/{sae.cfg.d_sae}")
    assert r.status_code == 400 and "out of range" in r.json()["error"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("not json", "JSON object"),
        ([1, 2], "JSON object"),
        ({"image": 0}, "latent"),
        ({"image": 0, "latent": 3, "op": "explode"}, "unknown op"),
        ({"image": 0, "latent": -1, "value": 1}, "out of range"),
        ({"image": 0, "latent": 10**6, "value": 1}, "out of range"),
        ({"latent": 3, "value": 1}, "image"),
        ({"image": 4800, "latent": 3, "value": 1}, "out of range"),
        ({"image": 0, "latent": 3, "value": "nan"}, "finite"),
        ({"image": 0, "latent": 3, "value": 1, "question": "x" * 400}, "question"),
    ],
)
def test_steer_bad_inputs(client, body, words):
    kw = {"content": body} if isinstance(body, str) else {"json": body}
    r = client.post("/api/steer", **kw)
    assert r.status_code == 400 and words in r.json()["error"], r.text


class FakeDiffusion:
    """A stand-in for the diffusion steering hook: colour encodes (latent, value)."""

    n_latents = 16

    def __call__(self, prompt, latent, op, value, seed):
        return Image.new("RGB", (32, 32), (0, 0, 0)), Image.new(
            "RGB", (32, 32), (latent * 10, int(value) % 256, 0)
        )


def test_diffusion_hook(served):
    c = local_client(create_app(served, diffusion=FakeDiffusion()), raise_server_exceptions=False)
    assert c.get("/api/info").json()["diffusion"] is True
    r = c.post(
        "/api/steer/diffusion", json={"prompt": "a red circle", "latent": 2, "op": "clamp", "value": 7}
    )
    d = r.json()
    assert (
        r.status_code == 200 and d["unsteered"] != d["steered"] and d["steered"].startswith("data:image/png")
    )
    assert c.post("/api/steer/diffusion", json={"prompt": "", "latent": 2}).status_code == 400
    r = c.post("/api/steer/diffusion", json={"prompt": "x", "latent": 99, "value": 1})
    assert r.status_code == 400 and "out of range" in r.json()["error"]


def test_diffusion_suggestions_come_from_its_results(served, demo_dir, tmp_path):
    """The diffusion panel suggests the text-encoder SAE's steered latents (not the LLaVA's)."""
    from vsae.serve import SteerSource

    p = tmp_path / "results.json"
    p.write_text(
        json.dumps({"steering": {"latents": [{"latent": 3, "word": "medium"}, {"latent": 5, "word": "red"}]}})
    )
    c = local_client(
        create_app(Served(served.saes, SteerSource(diffusion_results=p)), diffusion=FakeDiffusion())
    )
    info = c.get("/api/steer/info").json()
    assert info["diffusion_suggested"] == [
        {"latent": 3, "name": "medium", "value": None},
        {"latent": 5, "name": "red", "value": None},
    ]
    assert info["diffusion_latents"] == 16
    (demo_dir / "diffusion").mkdir(exist_ok=True)
    (demo_dir / "diffusion" / "results.json").write_text(p.read_text())
    try:
        assert from_demo(demo_dir).steer.diffusion_results == demo_dir / "diffusion" / "results.json"
    finally:
        (demo_dir / "diffusion" / "results.json").unlink()


def test_no_diffusion_is_501(client):
    r = client.post("/api/steer/diffusion", json={"prompt": "a", "latent": 1})
    assert r.status_code == 501 and "diffusion" in r.json()["error"]


def test_server_error_is_one_line(served):
    class Broken(FakeDiffusion):
        def __call__(self, *a):
            raise RuntimeError("boom\nsecond line")

    c = local_client(create_app(served, diffusion=Broken()), raise_server_exceptions=False)
    r = c.post("/api/steer/diffusion", json={"prompt": "a", "latent": 1, "value": 1})
    assert r.status_code == 500 and r.json() == {"error": "internal error (RuntimeError); see the server log"}


def test_home_and_static_are_local(client):
    html = client.get("/").text
    assert '<script src="/static/app.js">' in html and "http" not in html
    for asset in ("app.js", "style.css"):
        r = client.get(f"/static/{asset}")
        assert r.status_code == 200 and "https://" not in r.text and "http://" not in r.text


def test_from_demo_and_flags(demo_dir, built, tmp_path):
    s = from_demo(demo_dir)
    assert [x.id for x in s.saes] == ["resid.1/" + built["run"].name]
    np.testing.assert_array_equal(np.isnan(s.saes[0].ms_F), np.isnan(built["ms"]))
    assert s.saes[0].names == built["names"]
    with pytest.raises(VsaeError, match="results.json"):
        from_demo(tmp_path)
    from safetensors.numpy import save_file

    (tmp_path / "ms").mkdir()
    save_file({"sae": built["ms"]}, str(tmp_path / "ms" / "ms_scores.safetensors"))
    (tmp_path / "names").mkdir()
    (tmp_path / "names" / "names.json").write_text(
        json.dumps({"names": built["names"], "scores": built["scores"]})
    )
    one = from_flags(built["store"], built["run"], built["world"], tmp_path / "ms", tmp_path / "names")
    np.testing.assert_array_equal(one.ms_F, built["ms"])
    assert one.names == built["names"]
    with pytest.raises(VsaeError, match="MS scores"):
        from_flags(built["store"], built["run"], None, tmp_path / "nope")
    c = local_client(create_app(Served((one,)), diffusion=None))
    assert c.get("/api/latent/1").status_code == 200
    wrong = SaeSource("w", built["run"], built["store"], None, np.zeros(3))
    c = local_client(create_app(Served((wrong,)), diffusion=None), raise_server_exceptions=False)
    r = c.get("/api/info")
    assert r.status_code == 400 and "MS scores have 3 latents" in r.json()["error"]


def test_pooled_hook_has_no_heatmaps(direct):
    from vsae.serve.heatmaps import TokenMaps

    maps = TokenMaps({"hook": "embed", "tokens": "pooled", "model": "unused"}, direct["sae"])
    assert "no patch map" in maps.available
    with pytest.raises(VsaeError, match="no patch map"):
        maps.patch_latents(None, Image.new("RGB", (32, 32)))
    missing = TokenMaps({"hook": "resid.1", "tokens": "cls", "model": "/nonexistent/model"}, direct["sae"])
    with pytest.raises(VsaeError, match="cannot load the model"):
        missing.patch_latents(None, Image.new("RGB", (32, 32)))
    assert "cannot load the model" in missing.available


def test_index_answers_typed_and_the_api_sends_their_json(client, served):
    """LatentIndex returns typed rows / pages / details; the API sends exactly their to_json()."""
    from vsae.serve.latent_index import LatentDetail, LatentIndex, LatentPage, LatentRow, TableQuery

    ix = LatentIndex(served.saes[0])
    page = ix.table(TableQuery(sort="ms", order="desc", limit=5))
    assert isinstance(page, LatentPage) and all(isinstance(r, LatentRow) for r in page.rows)
    api = client.get("/api/latents", params={"sort": "ms", "order": "desc", "limit": 5}).json()
    assert api == json.loads(json.dumps(page.to_json()))
    f = page.rows[0].latent
    d = ix.detail(f)
    assert isinstance(d, LatentDetail) and d.row == ix.row(f)
    got = client.get(f"/api/latent/{f}").json()
    want = json.loads(json.dumps(d.to_json()))
    assert {k: got[k] for k in want} == want
    assert set(got) - set(want) == {"heatmaps", "map_max", "map_note", "sae"}  # what the route adds
