"""The playground's diffusion steering wired to `vsae.steer.diffusion_pipeline` (a tiny random
world-layout pipeline and a random SAE on its text encoder, built in the test)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from tests.serve.conftest import local_client
from vsae.errors import VsaeError
from vsae.serve import create_app
from vsae.serve.steering import PipelineDiffusion, diffusion_hook


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import vsae.sae
    from vsae.sae import SAEConfig
    from vsae.world.diffusion.t2i_tiny import HIDDEN, build_tiny_world_pipeline

    root = tmp_path_factory.mktemp("diffusion")
    pipe = build_tiny_world_pipeline(root, steps=2)
    sae = vsae.sae.build(SAEConfig(arch="topk", d_in=HIDDEN, d_sae=64, k=4, provenance={"hook": "resid.1"}))
    return pipe, vsae.sae.save(sae, root / "text_sae")


def _png(uri: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def test_pipeline_diffusion_steers(tiny):
    from vsae.steer.diffusion_pipeline import SamplerConfig, generate

    pipe_dir, sae_dir = tiny
    hook = diffusion_hook(pipe_dir, sae_dir)  # the hook from the SAE's provenance
    assert isinstance(hook, PipelineDiffusion) and hook.n_latents == 64
    hook.steps = 2
    a, b = hook("a red circle", 3, "clamp", 50.0, seed=1)
    direct = generate(
        hook._load()[0],
        ["a red circle"],
        SamplerConfig(steps=2, seed=1, batch_size=1),  # pipeline defaults
    )
    assert np.array_equal(np.asarray(a), direct[0])  # unsteered = plain generation, same noise
    assert np.abs(np.asarray(a, int) - np.asarray(b, int)).max() > 0
    same_a, same_b = hook("a red circle", 3, "scale", 1.0, seed=1)
    assert np.array_equal(np.asarray(same_a), np.asarray(same_b))  # an edit that changes nothing


def test_diffusion_route(tiny, served):
    hook = PipelineDiffusion(*tiny, steps=2)
    c = local_client(create_app(served, diffusion=hook), raise_server_exceptions=False)
    assert c.get("/api/info").json()["diffusion"] is True
    d = c.post(
        "/api/steer/diffusion", json={"prompt": "a blue square", "latent": 5, "op": "clamp", "value": 80}
    ).json()
    u, s = _png(d["unsteered"]), _png(d["steered"])
    assert u.shape == s.shape and np.abs(u.astype(int) - s.astype(int)).max() > 0
    r = c.post("/api/steer/diffusion", json={"prompt": "a blue square", "latent": 64, "value": 1})
    assert r.status_code == 400 and "out of range (0..63)" in r.json()["error"]


def test_diffusion_hook_defaults(tiny):
    with pytest.raises(VsaeError, match="both a pipeline and an SAE"):
        diffusion_hook(tiny[0], None)
    try:
        from vsae.world.diffusion import shipped_diffusion_dir, shipped_text_sae_dir

        shipped_diffusion_dir(), shipped_text_sae_dir()
        built = True
    except VsaeError:
        built = False
    assert isinstance(diffusion_hook(), PipelineDiffusion) if built else diffusion_hook() is None
