"""The `vsae serve` web app (Starlette): a JSON API over the latent index and a static page.

Routes (every ``/api`` route takes ``?sae=<id>``, default: the first SAE served):

``GET /``                              the browser (static/index.html; scripts and styles from /static)
``GET /api/info``                      SAEs served, limits, what is available
``GET /api/latents``                   a page of the latent table (sort, order, q, filter, group, offset, limit)
``GET /api/latent/{f}``                one latent: stats, top images, histogram, quantiles, neighbours, purity
``GET /api/image/{i}.png``             image i of the store (safely decoded, enlarged when small)
``GET /api/heatmap/{f}/{i}.png``       latent f's patch map over image i
``POST /api/upload``                   an image (raw body): its top latents with heatmaps
``GET /api/steer/info``, ``POST /api/steer``   the steering playground (tiny LLaVA by default)
``GET /api/steer/latent/{f}``          a steering-SAE latent's top served images (inspect before steering)
``POST /api/steer/diffusion``          generated images steered vs unsteered (when a hook is wired)
``GET /api/explain/search?q=``, ``GET /api/explain/{f}``   concept search, explanations (serve/explanations.py)

Bad input is a 4xx with ``{"error": "<one line>"}``; nothing returns a traceback.
"""

from __future__ import annotations

import base64
import functools
import logging
import math
import os
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np
from PIL.Image import Image as PILImage
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from vsae.data import DecodeError, load_image
from vsae.errors import VsaeError
from vsae.serve import bodies, steering_store
from vsae.serve import explanations as ex
from vsae.serve import heatmaps as hm
from vsae.serve.latent_index import LatentIndex, TableQuery
from vsae.serve.security import Guard, allowed_hosts
from vsae.serve.serve_config import ServeConfig
from vsae.serve.sources import Served
from vsae.serve.steering import MAX_QUESTION, DiffusionSteer, Playground, diffusion_hook
from vsae.steer.edits import OPS
from vsae.steer.steer_config import STEERING_QUESTION

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("vsae.serve")


@dataclass(frozen=True)
class ServeLimits:
    """Limits on what a request may send.

    max_upload_bytes: largest uploaded file; max_upload_pixels: larger images are refused as
    decompression bombs (vsae.data.load_image); upload_top: latents shown for an upload;
    max_json_bytes: largest JSON body (steering requests).
    """

    max_upload_bytes: int = ServeConfig().max_upload_bytes
    max_upload_pixels: int = 4096 * 4096
    upload_top: int = 8
    max_json_bytes: int = 64 * 1024


class State:
    """The served SAEs, their indexes (built on first use), the playground and the diffusion hook."""

    def __init__(self, served: Served, limits: ServeLimits, diffusion: DiffusionSteer | None):
        self.served = served
        self.by_id = {s.id: s for s in served.saes}
        self.limits = limits
        self.playground = Playground(served.steer)
        self.diffusion = diffusion
        self.steering = steering_store.browse(served, self.playground)
        self._idx: dict[str, LatentIndex] = {}
        self._maps: dict[str, hm.TokenMaps] = {}
        self._lock = threading.Lock()
        # one upload decoded at a time: a 16 Mpx image costs ~130 MB while it is decoded and
        # resized, so concurrent uploads queue instead of adding up
        self.decoding = threading.Lock()

    def sae_ids(self) -> list[str]:
        """The ids of the SAEs served, the steering SAE last."""
        return [s.id for s in self.served.saes] + ([self.steering.id] if self.steering else [])

    def index(self, sae_id: str | None) -> LatentIndex:
        sid = sae_id or self.served.saes[0].id
        src = self.by_id.get(sid)
        steering = self.steering is not None and sid == self.steering.id
        if src is None and not steering:
            raise HTTPException(404, f"unknown SAE {sid!r}; /api/info lists the SAEs served")
        if src is None:  # extracted on first use, outside the lock (the other SAEs stay served)
            assert self.steering is not None
            src = self.steering.source()
        with self._lock:
            if sid not in self._idx:
                ix = LatentIndex(src)
                if steering:
                    assert self.steering is not None
                    ms = self.steering.ms(ix)
                    if ms is not None:
                        ix.set_ms(ms)
                self._idx[sid] = ix
                self._maps[sid] = hm.TokenMaps(ix.store.provenance, ix.sae)
            return self._idx[sid]

    def steer_panel(self, sid: str) -> str | None:
        """The steering panel a latent of SAE `sid` can steer in: "llava" for the steering SAE,
        "diffusion" for the diffusion hook's text-encoder SAE, None for the others."""
        if self.steering is not None and sid == self.steering.id:
            return "llava"
        src = self.by_id.get(sid)
        d_sae = getattr(self.diffusion, "sae_dir", None)
        if src is not None and d_sae is not None and Path(src.sae_dir).resolve() == Path(d_sae).resolve():
            return "diffusion"
        return None

    def warm(self) -> None:
        """Build the default SAE's index and draw one heatmap (loads the model), so pages are fast."""
        ix = self.index(None)
        maps = self.maps(None)
        if maps.available is None and len(ix.image_ids):
            i = int(ix.image_ids[0])
            try:
                img = _image(str(ix.images.path(i)))
                hm.png(hm.overlay(img, hm.grid(maps.patch_latents((ix.src.id, i), img)[:, 0].numpy())))
            except VsaeError as e:  # maps stay unavailable; the pages say why
                log.warning("no heatmaps: %s", e)

    def maps(self, sae_id: str | None) -> hm.TokenMaps:
        ix = self.index(sae_id)
        return self._maps[ix.src.id]


# -- helpers ---------------------------------------------------------------------------------
@overload
def _int(req: Request, name: str, default: int) -> int: ...
@overload
def _int(req: Request, name: str, default: None) -> int | None: ...
def _int(req: Request, name: str, default: int | None) -> int | None:
    """Integer query parameter ``name`` (``default`` when absent); VsaeError when not an integer."""
    v = req.query_params.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise VsaeError(f"query parameter {name}={v!r} is not an integer") from None


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


@functools.lru_cache(maxsize=2048)
def _image(path: str) -> PILImage:
    try:
        return load_image(path)
    except DecodeError as e:
        raise VsaeError(f"image {Path(path).name} cannot be decoded: {e}") from None


# -- routes ----------------------------------------------------------------------------------
async def home(req: Request) -> Response:
    return FileResponse(STATIC / "index.html")


def info(req: Request) -> JSONResponse:
    st: State = req.app.state.vsae
    ix = st.index(req.query_params.get("sae"))
    return JSONResponse(
        {
            "title": st.served.title,
            "saes": st.sae_ids(),
            "sae": ix.src.id,
            "n_latents": ix.F,
            "n_images": int(ix.Z.shape[0]),
            "hook": ix.store.provenance.get("hook"),
            "tokens": ix.store.provenance.get("tokens"),
            "model": ix.store.provenance.get("model"),
            "arch": ix.sae.cfg.arch,
            "groups": None if ix.group_F is None else int(ix.group_F.max()) + 1,
            "has_ms": bool(np.isfinite(ix.ms_F).any()),
            "has_names": any(n is not None for n in ix.names),
            "has_explanations": ex.of(ix.src) is not None,
            "heatmaps": st.maps(ix.src.id).available,
            "max_upload_bytes": st.limits.max_upload_bytes,
            "diffusion": st.diffusion is not None,
            "steer_panel": st.steer_panel(ix.src.id),
            "steering_sae": None if st.steering is None else st.steering.id,
            "warning": ix.src.warning,
            "colormap": hm.colormap_hex(),
        }
    )


def latents(req: Request) -> JSONResponse:
    st: State = req.app.state.vsae
    ix = st.index(req.query_params.get("sae"))
    p = req.query_params
    q = TableQuery(
        sort=p.get("sort", "index"),
        order=p.get("order", "asc"),
        q=p.get("q", "")[:200],
        filter=p.get("filter", "all"),
        group=_int(req, "group", None),
        offset=_int(req, "offset", 0),
        limit=_int(req, "limit", 50),
        min_count=_int(req, "min_count", 0),
    )
    return JSONResponse(ex.annotate_rows(ix.src, ix.table(q).to_json()))


def latent(req: Request) -> JSONResponse:
    st: State = req.app.state.vsae
    ix = st.index(req.query_params.get("sae"))
    k = _int(req, "k", 16)
    if not 1 <= k <= 64:
        raise VsaeError("k must be in 1..64")
    d = ix.detail(req.path_params["f"], k=k).to_json()
    maps = st.maps(ix.src.id)
    d["heatmaps"] = maps.available
    d["map_max"] = None
    shown = [t["image"] for t in d["top"]] + [im["image"] for q in d["quantiles"] for im in q["images"]]
    if d["heatmaps"] is None and shown:  # the page asks for these heatmaps next
        sid = ix.src.id
        try:
            maps.prefetch([(sid, i) for i in shown], lambda key: _image(str(ix.images.path(key[1]))))
            # one colour scale for every map of the page: the largest patch activation among them
            peak = {
                i: float(maps.patch_latents((sid, i), _image(str(ix.images.path(i))))[:, d["latent"]].max())
                for i in shown
            }
            d["map_max"] = round(max(peak.values()), 4)
            for im in d["top"] + [im for q in d["quantiles"] for im in q["images"]]:
                im["patch_max"] = round(peak[im["image"]] + 0.0, 4)  # 0: no patch fires (a blank map)
        except VsaeError as e:
            d["heatmaps"] = str(e)
    d["map_note"] = _map_note(ix, maps)
    d["sae"] = ix.src.id
    return JSONResponse(ex.annotate_latent(ix.src, d))


def _map_note(ix: LatentIndex, maps: hm.TokenMaps) -> dict[str, Any]:
    """What a heatmap is, and whether its tokens are the kind the SAE was trained on."""
    sae_prov = getattr(ix.sae.cfg, "provenance", None) or {}
    trained = sae_prov.get("tokens") or ix.store.provenance.get("tokens")
    ood = trained in ("cls", "mean", "pooled")
    text = (
        f"Each map is this latent of the SAE applied to every patch token at {maps.hook}, laid on the "
        "patch grid and blended over the image; one colour scale for all maps of the page."
    )
    if ood:
        text += (
            f" The SAE was trained on {trained} tokens, so patch tokens are out of its training "
            "distribution: a map can be blank on an image the latent ranks high, or cover the whole image."
        )
    return {"text": text, "trained_on": trained, "out_of_distribution": ood}


def image(req: Request) -> Response:
    st: State = req.app.state.vsae
    ix = st.index(req.query_params.get("sae"))
    return _png(_display_png(str(ix.images.path(req.path_params["i"]))))


@functools.lru_cache(maxsize=2048)
def _display_png(path: str) -> bytes:
    return hm.png(hm.display(_image(path)))


def heatmap(req: Request) -> Response:
    st: State = req.app.state.vsae
    ix = st.index(req.query_params.get("sae"))
    f, i = req.path_params["f"], req.path_params["i"]
    ix.check_latent(f)
    path = ix.images.path(i)
    maps = st.maps(ix.src.id)
    z = maps.patch_latents((ix.src.id, i), _image(str(path)))
    vmax = req.query_params.get("vmax") or ""
    try:
        top = float(vmax) if vmax else None
    except ValueError:
        raise VsaeError(f"vmax={vmax[:40]!r} is not a number") from None
    if top is not None and not (math.isfinite(top) and top > 0):
        raise VsaeError("vmax must be a finite number above 0")
    return _png(hm.png(hm.overlay(_image(str(path)), hm.grid(z[:, f].numpy()), vmax=top)))


async def upload(req: Request) -> JSONResponse:
    st: State = req.app.state.vsae
    lim = st.limits
    declared = req.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > lim.max_upload_bytes:
        raise HTTPException(
            413, f"upload of {int(declared)} bytes is over the limit of {lim.max_upload_bytes}"
        )
    buf = bytearray()
    async for chunk in req.stream():
        buf += chunk
        if len(buf) > lim.max_upload_bytes:
            raise HTTPException(413, f"upload is over the limit of {lim.max_upload_bytes} bytes")
    if not buf:
        raise VsaeError("empty upload; send the image file as the request body")
    return JSONResponse(await run_in_threadpool(_upload, st, req.query_params.get("sae"), bytes(buf)))


def _upload(st: State, sae_id: str | None, data: bytes) -> dict[str, Any]:
    ix = st.index(sae_id)
    maps = st.maps(ix.src.id)
    with st.decoding:
        fd, tmp = tempfile.mkstemp(prefix="vsae-upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            try:
                img = load_image(tmp, max_pixels=st.limits.max_upload_pixels)
            except DecodeError as e:
                raise VsaeError(f"the upload cannot be used: {e}") from None
        finally:
            os.unlink(tmp)
        original = img.size
        img = maps.fit(img)  # the full-size image is freed here, before the next upload decodes
    why = maps.available
    z_F, z_PF = maps.upload_latents(img, maps=why is None)
    order = [int(f) for f in np.argsort(-z_F, kind="stable")[: st.limits.upload_top] if z_F[f] > 0]
    out = []
    for f in order:
        row = {**ix.row(f).to_json(), "value": round(float(z_F[f]), 4)}
        if z_PF is not None:
            row["heatmap"] = _data_uri(hm.png(hm.overlay(img, hm.grid(z_PF[:, f].numpy()))))
            row["map_max"] = round(float(z_PF[:, f].max()), 4)
        out.append(row)
    return {
        "image": _data_uri(hm.png(hm.display(img))),
        "size": list(original),
        "model_size": list(img.size),
        "latents": out,
        "heatmaps": why,
        "sae": ix.src.id,
    }


def steer_info(req: Request) -> JSONResponse:
    st: State = req.app.state.vsae
    ix = st.index(req.query_params.get("sae"))
    rng = np.random.default_rng(0)
    n = len(ix.image_ids)
    choices: Any = np.sort(rng.choice(ix.image_ids, size=min(12, n), replace=False)) if n else []
    return JSONResponse(
        {
            **st.playground.info(),
            "images": [int(i) for i in choices],
            "diffusion": st.diffusion is not None,
            "diffusion_latents": None if st.diffusion is None else int(st.diffusion.n_latents),
            "diffusion_suggested": st.playground.diffusion_suggested() if st.diffusion is not None else [],
            "steering_sae": None if st.steering is None else st.steering.id,
        }
    )


def steer_latent(req: Request) -> JSONResponse:
    """A steering-SAE latent's top served images, to inspect it before steering with it."""
    st: State = req.app.state.vsae
    ix = st.index(req.query_params.get("sae"))
    d = st.playground.latent(req.path_params["f"], ix.image_ids, lambda i: _image(str(ix.images.path(i))))
    return JSONResponse(d)


def _edit(body: dict[str, Any]) -> tuple[int, str, float]:
    """(latent, op, value) of a steering request; value is required except for ``ablate``."""
    op = bodies.choice(body, "op", tuple(OPS), "clamp")
    latent = bodies.integer(body, "latent", 0, 2**31 - 1)
    value = bodies.number(body, "value", bodies.MAX_VALUE, 0.0 if op == "ablate" else bodies.REQUIRED)
    return latent, op, value


async def steer(req: Request) -> JSONResponse:
    st: State = req.app.state.vsae
    body = await bodies.json_object(req, st.limits.max_json_bytes)
    latent_, op, value = _edit(body)
    i = bodies.integer(body, "image", 0, 2**31 - 1)
    question = bodies.line(body, "question", MAX_QUESTION, STEERING_QUESTION)

    def run() -> dict[str, Any]:
        ix = st.index(req.query_params.get("sae"))
        path = ix.images.path(i)
        r = st.playground.answer(str(path), _image(str(path)), latent_, op, value, question)
        return {**r, "image": i}

    return JSONResponse(await run_in_threadpool(run))


async def steer_diffusion(req: Request) -> JSONResponse:
    st: State = req.app.state.vsae
    if st.diffusion is None:
        raise HTTPException(
            501, "no diffusion steering is wired in this server (serve a demo output with diffusion/, or pass --diffusion and --diffusion-sae)"
        )
    body = await bodies.json_object(req, st.limits.max_json_bytes)
    latent_, op, value = _edit(body)
    prompt = bodies.line(body, "prompt", MAX_QUESTION)
    if not 0 <= latent_ < st.diffusion.n_latents:
        raise VsaeError(
            f"latent {latent_} out of range (0..{st.diffusion.n_latents - 1}) of the diffusion SAE"
        )
    seed = bodies.integer(body, "seed", 0, bodies.MAX_SEED, 0)

    steer_images = st.diffusion

    def run() -> dict[str, Any]:
        a, b = steer_images(prompt, latent_, op, value, seed)
        return {
            "unsteered": _data_uri(hm.png(hm.display(a))),
            "steered": _data_uri(hm.png(hm.display(b))),
            "latent": latent_,
            "op": op,
            "value": value,
            "prompt": prompt,
            "seed": seed,
        }

    return JSONResponse(await run_in_threadpool(run))


# -- errors ----------------------------------------------------------------------------------
def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())[:500]


async def _vsae_error(req: Request, exc: VsaeError) -> JSONResponse:
    return JSONResponse({"error": _one_line(str(exc))}, status_code=400)


async def _http_error(req: Request, exc: HTTPException) -> Response:
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code)
    return JSONResponse({"error": _one_line(exc.detail)}, status_code=exc.status_code)


async def _server_error(req: Request, exc: Exception) -> JSONResponse:
    log.error("error serving %s", req.url.path, exc_info=exc)
    return JSONResponse(
        {"error": f"internal error ({type(exc).__name__}); see the server log"}, status_code=500
    )


def create_app(
    served: Served,
    limits: ServeLimits = ServeLimits(),
    diffusion: DiffusionSteer | None | str = "auto",
    hosts: Iterable[str] = allowed_hosts("127.0.0.1"),
) -> Starlette:
    """The app over `served`; `diffusion`: a DiffusionSteer, None, or "auto" (the shipped tiny
    text-to-image model); `hosts`: the Host names it answers (`vsae.serve.security`)."""
    routes = [
        Route("/", home),
        Route("/api/info", info),
        Route("/api/latents", latents),
        Route("/api/latent/{f:int}", latent),
        Route("/api/image/{i:int}.png", image),
        Route("/api/heatmap/{f:int}/{i:int}.png", heatmap),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/steer/info", steer_info),
        Route("/api/steer/latent/{f:int}", steer_latent),
        Route("/api/steer", steer, methods=["POST"]),
        Route("/api/steer/diffusion", steer_diffusion, methods=["POST"]),
        *ex.routes(),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers: dict[Any, Any] = {VsaeError: _vsae_error, HTTPException: _http_error, Exception: _server_error}
    app = Starlette(routes=routes, exception_handlers=handlers, middleware=[Middleware(Guard, hosts=hosts)])
    app.state.vsae = State(served, limits, diffusion_hook() if isinstance(diffusion, str) else diffusion)
    return app
