"""Latency of `vsae serve` once warm (never run as a test).

    python bench/serve.py                       # F = 4,096 latent pages, F = 65,536 table pages
    python bench/serve.py --images 1000 --pages 40

Builds the world's test split (N images), extracts the shipped CLIP's resid.2 CLS token, builds
random-weight BatchTopK SAEs (k = 8) of F = 4,096 and 65,536 latents, serves each with uvicorn on
127.0.0.1 and times HTTP requests as a browser makes them:

* latent page JSON  (`/api/latent/f`: stats, top 16, histogram, quantiles, 10 nearest, purity);
* whole latent page (that JSON, then every image and heatmap it shows, fetched one after the
  other: the worst case; a browser fetches 6 at a time) for latents not seen before;
* table pages at F = 65,536 (sort by MS / frequency, search, filter, a deep page).

Latent pages are timed side by side, alternating latent by latent, against a second server whose
latent route does not prefetch the top images' activations in one batched forward pass (each
heatmap request then runs its own forward pass), so machine load hits both alike.

Target (issue 12): a latent page answers in <= 300 ms for F = 4,096 on 2 cores when warm.

Uploads (issue 28; `--uploads-only` runs just these): a 4096 x 4096 PNG of a few tens of KB
(the decompression-bomb limit's largest accepted image), a 12 Mpx photo-like JPEG and a 224 px
PNG are POSTed to /api/upload of the F = 4,096 server, 5 times each one after the other and
then two at once; the server's extra memory is the peak of its resident set (sampled every
5 ms in a thread) over its resident set just before the request.
Target: any accepted upload answers in <= 2 s with <= 200 MB extra memory.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch


def build(root: Path, n_images: int, widths: list[int]) -> tuple[Path, dict[int, Path]]:
    import vsae.sae
    from vsae.extract import ExtractConfig, extract
    from vsae.sae import SAEConfig
    from vsae.world import export, shipped_clip_dir

    world = root / "world"
    export(world, counts={"test": n_images}, seed=0, progress=False)
    store = root / "store"
    extract(
        ExtractConfig(
            model=str(shipped_clip_dir()),
            hooks=("resid.2",),
            tokens="cls",
            data=str(world),
            split="test",
            out=str(store),
            dtype="float32",
            batch_size=256,
            progress=False,
        )
    )
    runs = {}
    for F in widths:
        torch.manual_seed(F)
        sae = vsae.sae.build(SAEConfig(arch="batchtopk", d_in=64, d_sae=F, k=8))
        runs[F] = vsae.sae.save(sae, root / f"sae-{F}")
    return store, runs


class Live:
    """An app served by uvicorn in a thread."""

    def __init__(self, app, served=None):
        import uvicorn

        self.served = served

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return r.read()

    def close(self):
        self.server.should_exit = True
        self.thread.join(10)


def ms(xs: list[float]) -> str:
    a = np.array(xs) * 1000
    return f"median {np.median(a):6.1f} ms, p95 {np.percentile(a, 95):6.1f} ms, max {a.max():6.1f} ms (n={len(a)})"


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def whole(srv: Live, f: int, n_assets: list[int]) -> None:
    """A latent page as the browser loads it: the JSON, then every image and heatmap it shows
    (heatmaps of images whose activations are not cached yet: one per new latent's top images)."""
    d = json.loads(srv.get(f"/api/latent/{f}"))
    paths = [f"/api/image/{t['image']}.png" for t in d["top"]]
    paths += [f"/api/heatmap/{f}/{t['image']}.png" for t in d["top"]]
    paths += [f"/api/image/{i['image']}.png" for q in d["quantiles"] for i in q["images"]]
    for p in paths:
        srv.get(p)
    n_assets.append(len(paths))


def bench_one(live: Live, F: int, rng: np.random.Generator, n_pages: int, pages: bool) -> None:
    """Time the first request (index build), latent pages (if `pages`) and table pages."""
    t = timed(lambda: live.get("/api/info"))
    print(f"[F={F}] index build (first request): {t:.2f} s")
    q = "/api/latents?filter=alive&limit=500&sort=freq&order=desc"
    alive = [r["latent"] for r in json.loads(live.get(q))["rows"]]
    picks = rng.choice(alive, size=min(n_pages + 1, len(alive)), replace=False)
    if pages:
        from vsae.serve import create_app

        app2 = create_app(live.served, diffusion=None)  # the same, without the prefetch
        state = app2.state.vsae
        state.index(None)
        twin = Live(app2)
        state.maps(None).prefetch = lambda *a, **k: None
        for srv in (live, twin):  # warm both the same way
            d = json.loads(srv.get(f"/api/latent/{picks[0]}"))
            for im in d["top"]:
                srv.get(f"/api/heatmap/{picks[0]}/{im['image']}.png")
        res = {"prefetch": ([], []), "no prefetch": ([], [])}
        n_assets = []
        for f in picks[1:]:
            for label, srv in (("prefetch", live), ("no prefetch", twin)):
                res[label][0].append(timed(lambda f=f, srv=srv: srv.get(f"/api/latent/{f}")))
            for label, srv in (("prefetch", live), ("no prefetch", twin)):
                res[label][1].append(timed(lambda f=f, srv=srv: whole(srv, f, n_assets)))
        n = statistics.median(n_assets)
        for label, (js, page) in res.items():
            print(f"[F={F}] {label:11s} latent page JSON: {ms(js)}")
            print(
                f"[F={F}] {label:11s} whole latent page (JSON + {n:.0f} images/heatmaps, sequential): {ms(page)}"
            )
        twin.close()
    queries = {
        "sort=ms desc, page 1": "/api/latents?sort=ms&order=desc&limit=50",
        "sort=freq desc, page 1": "/api/latents?sort=freq&order=desc&limit=50",
        "sort=name, page 400": "/api/latents?sort=name&offset=20000&limit=50",
        "search 'concept42'": "/api/latents?q=concept42&limit=50",
        "filter dead, sort max": "/api/latents?filter=dead&sort=max&order=desc&limit=50",
    }
    for label, q in queries.items():
        live.get(q)
        print(f"[F={F}] table {label:24s} {ms([timed(lambda q=q: live.get(q)) for _ in range(10)])}")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak resident set size while the block runs, sampled every 5 ms in a thread."""

    def __enter__(self):
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss())

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.base) / 1e6


def upload_images() -> dict[str, bytes]:
    """The uploads: a 4096^2 PNG that compresses to a few tens of KB, a 12 Mpx photo-like JPEG
    (smooth colour fields plus noise), a 224 px PNG."""
    import io

    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    out = {}
    big = Image.new("RGB", (4096, 4096), (30, 90, 200))
    ImageDraw.Draw(big).ellipse((1000, 1000, 3000, 3000), fill=(220, 40, 40))
    buf = io.BytesIO()
    big.save(buf, "PNG", optimize=True)
    out["4096x4096 PNG"] = buf.getvalue()
    yy, xx = np.mgrid[0:3000, 0:4000].astype(np.float32)
    photo = np.stack(
        [128 + 100 * np.sin(xx / 300), 128 + 100 * np.cos(yy / 200), 128 + 60 * np.sin((xx + yy) / 500)], -1
    )
    photo += rng.normal(0, 12, photo.shape).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(photo.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=85)
    out["4000x3000 JPEG"] = buf.getvalue()
    small = Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8))
    buf = io.BytesIO()
    small.save(buf, "PNG")
    out["224x224 PNG"] = buf.getvalue()
    return out


def post(url: str, data: bytes) -> bytes:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.read()


def bench_uploads(live: Live) -> None:
    """Each upload 5 times in a row, then two at once: time, reply size, extra server memory."""
    from concurrent.futures import ThreadPoolExecutor

    for label, data in upload_images().items():
        post(live.url + "/api/upload", data)  # warm (the model, the allocator's pools)
        times, sizes, extra = [], [], []
        for _ in range(5):
            with PeakRSS() as m:
                t = time.perf_counter()
                reply = post(live.url + "/api/upload", data)
                times.append(time.perf_counter() - t)
            sizes.append(len(reply))
            extra.append(m.extra_mb)
        with PeakRSS() as m, ThreadPoolExecutor(2) as ex:
            t = time.perf_counter()
            list(ex.map(post, [live.url + "/api/upload"] * 2, [data] * 2))
            both = time.perf_counter() - t
        print(
            f"[upload] {label:15s} ({len(data) / 1e6:5.2f} MB): {ms(times)}; reply {max(sizes) / 1e3:.0f} KB; "
            f"extra memory max {max(extra):.0f} MB; two at once {both * 1000:.0f} ms, extra {m.extra_mb:.0f} MB"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--pages", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (vsae serve's default: 1)")
    ap.add_argument("--uploads-only", action="store_true", help="time only the uploads")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from vsae.serve import SaeSource, Served, create_app

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store, runs = build(Path(tmp), a.images, [4096] if a.uploads_only else [4096, 65536])
        print(
            f"[setup] world test split {a.images} images, resid.2 cls store, SAEs F=4096/65536: "
            f"{time.perf_counter() - t0:.1f} s"
        )
        rng = np.random.default_rng(0)
        for F, run in runs.items():
            ms_F = rng.uniform(0, 1, F)
            names = [f"concept{i % 97}" if i % 5 == 0 else None for i in range(F)]
            app = create_app(Served((SaeSource(f"F{F}", run, store, None, ms_F, names),)), diffusion=None)
            live = Live(app, app.state.vsae.served)
            try:
                if F == 4096:
                    bench_uploads(live)
                if not a.uploads_only:
                    bench_one(live, F, rng, a.pages, pages=F == 4096)
            finally:
                live.close()


if __name__ == "__main__":
    main()
