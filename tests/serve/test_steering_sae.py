"""The steering SAE browsable like the other SAEs (issue 28): its own activation store at its hook
on the LLaVA's vision tower (extracted once, cached), its table, latent pages with heatmaps and MS,
"steer with this latent" for steering SAEs, and the diffusion panel's own suggestions. Each test
fails on the old code (the steering SAE was not served: /api/info did not list it)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vsae.sae
from tests.serve.conftest import N_STEER, local_client
from vsae.data import load_table
from vsae.serve import Served, SteerSource, create_app
from vsae.serve.steering_store import DONE
from vsae.store import ActivationStore
from vsae.world.llava import shipped_steering_sae_dir


class FakeDiffusion:
    """A stand-in for the diffusion hook over the SAE at `sae_dir` (its text-encoder SAE)."""

    def __init__(self, sae_dir: Path, n_latents: int):
        self.sae_dir, self.n_latents = sae_dir, n_latents

    def __call__(self, prompt, latent, op, value, seed):
        return Image.new("RGB", (32, 32)), Image.new("RGB", (32, 32), (200, 0, 0))


@pytest.fixture(scope="module")
def client(served, steer_images):
    return local_client(create_app(replace(served, steer_images=steer_images), diffusion=None))


@pytest.fixture(scope="module")
def sid(client) -> str:
    return client.get("/api/info").json()["steering_sae"]


def _pooled(acts: Path) -> tuple[np.ndarray, np.ndarray]:
    """(image ids, [images, F] latents max-pooled over each image's patch tokens), directly."""
    st = ActivationStore.open(acts)
    sae = vsae.sae.load(shipped_steering_sae_dir()).eval()
    with torch.no_grad():
        z = sae.encode(st[:].float()).float().numpy()
    img = np.asarray(st.image_index)
    ids = np.unique(img)
    return ids, np.stack([z[img == i].max(0) for i in ids])


def _ms_direct(a_NF: np.ndarray, e_ND: np.ndarray) -> np.ndarray:
    """MS (Pach et al.) by its definition: min-max scaled activations, pairwise cosine, i < j."""
    e = e_ND / np.linalg.norm(e_ND, axis=1, keepdims=True)
    s = e @ e.T
    iu = np.triu_indices(len(e), 1)
    out = np.full(a_NF.shape[1], np.nan)
    for f in range(a_NF.shape[1]):
        a = a_NF[:, f]
        if a.max() == a.min():
            continue
        a = (a - a.min()) / (a.max() - a.min())
        w = np.outer(a, a)[iu]
        if w.sum() > 0:
            out[f] = (w * s[iu]).sum() / w.sum()
    return out


def test_steering_sae_is_served_from_its_own_store(client, sid, steer_images):
    """It is listed, indexed over its own store (patch tokens at the hook it steers, a bounded
    seeded sample of the images), with heatmaps and MS; its latent values match a direct encode."""
    info = client.get("/api/info").json()
    assert sid in info["saes"] and sid.startswith("steering:resid.1/")
    i = client.get("/api/info", params={"sae": sid}).json()
    assert (i["hook"], i["tokens"], i["n_images"], i["n_latents"]) == ("resid.1", "patches", N_STEER, 512)
    assert i["has_ms"] and i["heatmaps"] is None and i["steer_panel"] == "llava"
    (store,) = [p for p in steer_images.cache.iterdir() if (p / DONE).is_file()]
    t = load_table(store)
    assert t["split"] == "test" and len(t["items"]) == N_STEER and len(t["source_index"]) == N_STEER
    ids, z = _pooled(store)
    page = client.get("/api/latents", params={"sae": sid, "sort": "freq", "order": "desc", "limit": 5}).json()
    f = page["rows"][0]["latent"]
    assert page["rows"][0]["n_fires"] == int((z[:, f] > 0).sum()) > 0
    d = client.get(f"/api/latent/{f}", params={"sae": sid}).json()
    want = ids[np.argsort(-z[:, f], kind="stable")][: len(d["top"])]
    assert [t["image"] for t in d["top"]] == want.tolist()
    assert d["top"][0]["value"] == pytest.approx(z[:, f].max(), abs=1e-3)
    assert d["heatmaps"] is None and d["map_max"] > 0 and not d["map_note"]["out_of_distribution"]
    r = client.get(f"/api/heatmap/{f}/{d['top'][0]['image']}.png", params={"sae": sid})
    assert r.status_code == 200 and r.content[:4] == b"\x89PNG"
    assert d["nearest"] and all(not n["dead"] for n in d["nearest"])
    # MS from the similarity store's rows of the same images, against the formula itself
    emb = ActivationStore.open(steer_images.sim)[:].float().numpy()[np.asarray(t["source_index"])[ids]]
    ms = _ms_direct(z, emb)
    rows = client.get("/api/latents", params={"sae": sid, "limit": 500, "min_count": 2}).json()["rows"]
    got = np.array([r["ms"] for r in rows], float)
    assert len(rows) > 10 and np.allclose(got, ms[[r["latent"] for r in rows]], atol=2e-4)


def test_steering_store_is_cached(served, steer_images, sid, client, monkeypatch):
    """A second server over the same cache reuses the store: no second extraction."""
    import vsae.extract

    client.get("/api/info", params={"sae": sid})  # extracted (once) by the first server

    def refuse(*a, **k):
        raise AssertionError("extracted again")

    monkeypatch.setattr(vsae.extract, "extract", refuse)
    c2 = local_client(create_app(replace(served, steer_images=steer_images), diffusion=None))
    assert c2.get("/api/info", params={"sae": sid}).json()["n_images"] == N_STEER


def test_a_changed_setup_extracts_a_new_store(served, steer_images, tmp_path):
    """The cache key covers the sample: another size is another store, not a stale one."""
    im = replace(steer_images, n=8, cache=tmp_path, sim=None)
    c = local_client(create_app(replace(served, steer_images=im), diffusion=None))
    sid = c.get("/api/info").json()["steering_sae"]
    i = c.get("/api/info", params={"sae": sid}).json()
    assert i["n_images"] == 8 and not i["has_ms"]  # no similarity store: no MS
    assert len([p for p in tmp_path.iterdir() if (p / DONE).is_file()]) == 1


def test_steer_panel_names_the_steering_and_text_encoder_saes(served, built, steer_images, tmp_path):
    """A latent page can steer when its SAE is the steering SAE (LLaVA panel) or the diffusion
    hook's text-encoder SAE (diffusion panel); the other SAEs cannot."""
    text = tmp_path / "text_sae"
    shutil.copytree(built["run"], text)
    text_src = replace(served.saes[0], id="text/" + text.name, sae_dir=text)
    app = create_app(
        Served((*served.saes, text_src), served.steer, steer_images=steer_images),
        diffusion=FakeDiffusion(text, built["F"]),
    )
    c = local_client(app)
    info = c.get("/api/info").json()
    assert info["steer_panel"] is None
    assert c.get("/api/info", params={"sae": text_src.id}).json()["steer_panel"] == "diffusion"
    assert c.get("/api/info", params={"sae": info["steering_sae"]}).json()["steer_panel"] == "llava"
    assert c.get("/api/steer/info").json()["steering_sae"] == info["steering_sae"]


def test_diffusion_suggestions_carry_their_own_value(served, tmp_path):
    """The diffusion panel's suggestions carry the value its experiment steered each latent with
    (strength x the latent's largest caption activation), not the LLaVA playground's 100."""
    p = tmp_path / "results.json"
    rows = [{"latent": 3, "word": "medium", "max_act": 13.5}, {"latent": 5, "word": "red"}]
    p.write_text(json.dumps({"steering": {"strength": 4.0, "latents": rows}}))
    app = create_app(
        Served(served.saes, SteerSource(diffusion_results=p)), diffusion=FakeDiffusion(Path("/x"), 16)
    )
    sugg = local_client(app).get("/api/steer/info").json()["diffusion_suggested"]
    assert sugg == [
        {"latent": 3, "name": "medium", "value": 54.0},
        {"latent": 5, "name": "red", "value": None},
    ]


def test_demo_output_browses_the_steering_sae_on_its_train_split(demo_dir, tmp_path):
    """`vsae serve DEMO`: the steering SAE on world/train (its training split), MS from the
    demo's similarity store of that split, the store cached under DEMO/serve-cache."""
    from vsae.serve import from_demo

    world = demo_dir / "world"
    (world / "train").mkdir(exist_ok=True)
    (demo_dir / "stores" / "simenc" / "train").mkdir(parents=True, exist_ok=True)
    try:
        im = from_demo(demo_dir).steer_images
        assert im is not None and im.split == "train" and im.n == 2000
        assert im.cache == demo_dir / "serve-cache" and im.sim == demo_dir / "stores" / "simenc" / "train"
    finally:
        shutil.rmtree(world / "train")
        shutil.rmtree(demo_dir / "stores" / "simenc")
    im = from_demo(demo_dir).steer_images
    assert im is not None and im.split == "test" and im.sim is None


def test_an_unwritable_cache_is_a_clear_400(served, steer_images, tmp_path):
    """A cache that cannot be written is one line naming it; the other SAEs stay served."""
    (tmp_path / "file").write_text("x")
    im = replace(steer_images, n=8, cache=tmp_path / "file" / "cache")
    c = local_client(create_app(replace(served, steer_images=im), diffusion=None))
    sid = c.get("/api/info").json()["steering_sae"]
    r = c.get("/api/latents", params={"sae": sid})
    assert r.status_code == 400 and "\n" not in r.json()["error"]
    assert "file" in r.json()["error"]
    assert c.get("/api/latents").status_code == 200
