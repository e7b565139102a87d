"""Fixtures of the latent browser tests: a small world store, a briefly trained Matryoshka SAE
(the shipped world CLIP at resid.1, CLS tokens), names and MS per latent, and a demo-like layout."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

N_TEST = 48
WORDS = ("circle", "square", "triangle", "red", "blue", "green", "star", "striped")


def local_client(app, **kw):
    """A TestClient that talks to `app` as the browser does: Host 127.0.0.1 (the server refuses
    other host names, `vsae.serve.security`)."""
    from starlette.testclient import TestClient

    return TestClient(app, base_url="http://127.0.0.1", **kw)


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict:
    """A store of the world test split, an SAE trained on it by `vsae.train`, names and MS."""
    import vsae.sae
    from vsae.extract import ExtractConfig, extract
    from vsae.sae import SAEConfig
    from vsae.store import ActivationStore
    from vsae.train import TrainConfig, run_name, train
    from vsae.world import export, shipped_clip_dir

    root = tmp_path_factory.mktemp("serve")
    world = root / "world"
    export(world, counts={"test": N_TEST}, seed=3, progress=False)
    store = root / "stores" / "clip" / "test" / "resid.1"
    extract(
        ExtractConfig(
            model=str(shipped_clip_dir()),
            hooks=("resid.1",),
            tokens="cls",
            data=str(world),
            split="test",
            out=str(store),
            dtype="float32",
            batch_size=64,
            progress=False,
        )
    )
    src = ActivationStore.open(store)
    cfg = SAEConfig(arch="matryoshka", d_in=src.d, d_sae=4 * src.d, k=8, groups=(0.0625, 0.125, 0.25, 0.5625))
    cfg = SAEConfig(**{**asdict(cfg), "name": run_name(cfg, 4)})
    tcfg = TrainConfig(
        steps=30, batch_size=16, lr=1e-3, seed=0, log_every=10, ckpt_every=0, val_rows=0, init_rows=len(src)
    )
    (run,) = train(src, [cfg], tcfg, root / "runs" / "resid.1", progress=False)
    sae = vsae.sae.load(run)
    F = sae.cfg.d_sae
    rng = np.random.default_rng(0)
    names = [WORDS[i % len(WORDS)] if i % 3 == 0 else None for i in range(F)]
    scores = [None if n is None else float(rng.uniform(0.2, 0.4)) for n in names]
    ms = rng.uniform(0, 1, F)
    ms[::7] = np.nan
    return {
        "root": root,
        "world": world,
        "store": store,
        "run": Path(run),
        "F": F,
        "names": names,
        "scores": scores,
        "ms": ms,
    }


@pytest.fixture(scope="session")
def served(built):
    from vsae.serve import SaeSource, Served

    b = built
    return Served(
        (SaeSource("resid.1/" + b["run"].name, b["run"], b["store"], None, b["ms"], b["names"], b["scores"]),)
    )


@pytest.fixture(scope="session")
def demo_dir(built) -> Path:
    """The layout `vsae demo` writes (results.json, runs/, stores/clip/test/), over the fixture."""
    b = built
    res = {
        "featured": ["resid.1", "matryoshka", 4],
        "layers": {
            "resid.1": {
                "saes": {
                    b["run"].name: {
                        "ms_per_latent": [None if np.isnan(v) else float(v) for v in b["ms"]],
                        "names": {"per_latent": b["names"], "match_scores": b["scores"]},
                    }
                }
            }
        },
    }
    (b["root"] / "results.json").write_text(json.dumps(res))
    return b["root"]


@pytest.fixture(scope="session")
def other_hook_store(built, tmp_path_factory):
    """The fixture's store, relabelled as a resid.2 store (the SAE was trained on resid.1)."""
    dst = tmp_path_factory.mktemp("r2") / "resid.2"
    shutil.copytree(built["store"], dst)
    man = json.loads((dst / "manifest.json").read_text())
    man["provenance"]["hook"] = "resid.2"
    (dst / "manifest.json").write_text(json.dumps(man))
    return dst


N_STEER = 32  # images of the steering SAE's store in the tests


@pytest.fixture(scope="session")
def steer_images(built, tmp_path_factory):
    """Where the steering SAE is browsed in the tests: a 32-image sample of the fixture's world
    test split, MS from a similarity store of the whole split (the shipped CLIP's embedding), the
    store cached in a session tmp dir (so a second server reuses it)."""
    from vsae.extract import ExtractConfig, extract
    from vsae.serve.sources import SteerImages
    from vsae.world import shipped_clip_dir

    root = tmp_path_factory.mktemp("steer")
    sim = root / "sim"
    extract(
        ExtractConfig(
            model=str(shipped_clip_dir()),
            hooks=("embed",),
            tokens="cls",
            data=str(built["world"]),
            split="test",
            out=str(sim),
            dtype="float32",
            progress=False,
            num_workers=0,
        )
    )
    return SteerImages(built["world"], "test", root / "cache", n=N_STEER, seed=0, sim=sim)


def serve_in_thread(app):
    """Serve `app` with uvicorn on a free 127.0.0.1 port in a thread; yields its URL."""
    import uvicorn

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
