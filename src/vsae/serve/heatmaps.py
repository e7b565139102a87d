"""Patch heatmaps: where in an image a latent fires, computed on demand at token level.

The model the store was extracted from is run on the image with a capture at the store's hook;
the SAE encodes every patch token and latent f's activation per patch, laid on the patch grid,
is blended over the image (saev's patch view; Pach et al. show top images the same way).
"""

from __future__ import annotations

import functools
import io
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

import vsae.models
from vsae.errors import VsaeError
from vsae.models import LoadedModel
from vsae.models.tokens import as_tokens
from vsae.sae import SAE

DISPLAY_SIDE = 160  # small images (the world's are 32 px) are enlarged to this for display


class TokenMaps:
    """Token-level SAE latents of single images at the store's hook, with a small LRU cache.

    The model loads lazily from the store's provenance (`model`, `tower`, `hook`), so a server
    whose model is not available still serves everything but the maps.
    """

    def __init__(self, provenance: dict[str, Any], sae: SAE, cache: int = 512) -> None:
        self.prov = provenance
        self.sae = sae
        self.hook = provenance.get("hook")
        self.tokens = provenance.get("tokens", "cls")
        self._lm: LoadedModel | None = None
        self._err: str | None = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[Any, torch.Tensor] = OrderedDict()
        self._size = cache

    @property
    def available(self) -> str | None:
        """None when maps can be drawn, else why not (one line)."""
        if self.tokens == "pooled":
            return f"hook {self.hook} gives one pooled vector per image: there is no patch map"
        return self._err

    def _hook(self) -> str:
        """The store's hook (a store without one gives no maps)."""
        if not self.hook:
            raise VsaeError("the store does not record its hook; there are no patch maps")
        return str(self.hook)

    def _model(self) -> LoadedModel:
        """The store's model, loaded on first use (VsaeError, with `available` saying why, if it cannot be)."""
        if self._lm is None and self._err is None:
            try:
                self._lm = vsae.models.load(str(self.prov.get("model")), tower=self.prov.get("tower"))
            except Exception as e:  # the model may be a hub id that is not cached offline
                self._err = (
                    f"cannot load the model {self.prov.get('model')} for patch maps ({e})".splitlines()[0]
                )
        if self._lm is None:
            raise VsaeError(self._err or "no model")
        return self._lm

    def hooked(self, key: Any, image: Image.Image) -> torch.Tensor:
        """Activations at the hook for one image: [T, d] tokens (or [1, d] if pooled)."""
        with self._lock:
            if key is not None and key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            lm = self._model()
            with vsae.models.capture(lm, self._hook()) as cap:
                lm.run(lm.preprocess([image]))
            x = as_tokens(cap.output)[0].float()  # a [B, C, H, W] feature map: H*W tokens, as stored
            x = x[None] if x.ndim == 1 else x
            if key is not None:
                self._cache[key] = x
                if len(self._cache) > self._size:
                    self._cache.popitem(last=False)
            return x

    def prefetch(self, keys: list[Any], load: Callable[[Any], Image.Image]) -> None:
        """Hooked activations of the images `keys` not cached yet, in one batched forward pass
        (a latent page's top images: one pass instead of one per heatmap request)."""
        if self.available:
            return
        with self._lock:
            todo = [k for k in keys if k not in self._cache]
            if not todo:
                return
            lm = self._model()
            with vsae.models.capture(lm, self._hook()) as cap:
                lm.run(lm.preprocess([load(k) for k in todo]))
            for k, x in zip(todo, cap.output.float()):
                self._cache[k] = x[None] if x.ndim == 1 else x
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)

    @property
    def n_prefix(self) -> int:
        lm = self._model()
        return int(lm.n_prefix)

    @torch.no_grad()
    def patch_latents(self, key: Any, image: Image.Image) -> torch.Tensor:
        """SAE latents of the patch tokens, [P, F] (P = a square grid of patches)."""
        why = self.available
        if why:
            raise VsaeError(why)
        x = self.hooked(key, image)
        x = x[self.n_prefix :]
        return self.sae.encode(x)

    @property
    def input_side(self) -> int | None:
        """The side in pixels of the model's input images (its config's ``image_size``), None if unknown."""
        lm = self._model()
        for m in (lm.model, lm.full_model):
            cfg = getattr(m, "config", None)
            for c in (cfg, getattr(cfg, "vision_config", None)):
                side = getattr(c, "image_size", None)
                if isinstance(side, int) and side > 0:
                    return side
        return None

    def fit(self, image: Image.Image) -> Image.Image:
        """`image` resized once so that its short side is the model's input side (never enlarged):
        the model's own preprocessing then has nothing left to shrink, and maps are drawn at the
        model's resolution, not at the upload's (a 12 Mpx photo costs what a 224 px one does)."""
        side = self.input_side
        w, h = image.size
        if side is None or min(w, h) <= side:
            return image
        s = side / min(w, h)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)

    @torch.no_grad()
    def upload_latents(self, image: Image.Image, maps: bool) -> tuple[np.ndarray, torch.Tensor | None]:
        """(per-image latents [F] as the store's rows give them, patch latents [P, F] or None when
        `maps` is False) of one image, from one forward pass."""
        x = self.hooked(None, image)
        z_PF = self.sae.encode(x[self.n_prefix :]) if maps else None
        return self._pooled(x), z_PF

    @torch.no_grad()
    def image_latents(self, image: Image.Image) -> np.ndarray:
        """Per-image latents [F] as the store's rows give them (its token selection, max-pooled)."""
        return self._pooled(self.hooked(None, image))

    def _pooled(self, x: torch.Tensor) -> np.ndarray:
        lm = self._model()
        if x.shape[0] == 1 and self.tokens == "pooled":
            rows = x
        else:
            rows, _, _ = vsae.models.select_tokens(
                x[None], self.tokens, lm.has_cls, np.zeros(1, np.int64), n_prefix=lm.n_prefix
            )
        return self.sae.encode(rows.float()).amax(0).numpy()


def grid(values_P: np.ndarray) -> np.ndarray:
    """Patch values [P] on their square grid [s, s]."""
    s = math.isqrt(len(values_P))
    if s * s != len(values_P):
        raise VsaeError(f"{len(values_P)} patch tokens do not form a square grid; no heatmap")
    return values_P.reshape(s, s)


def display(image: Image.Image) -> Image.Image:
    """The image as shown: enlarged (nearest neighbour) when it is small."""
    w, h = image.size
    if max(w, h) >= DISPLAY_SIDE:
        return image
    s = DISPLAY_SIDE / max(w, h)
    return image.resize((round(w * s), round(h * s)), Image.Resampling.NEAREST)


@functools.lru_cache(maxsize=4)
def _lut(name: str = "inferno") -> np.ndarray:
    import matplotlib

    return matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3].astype(np.float32)


def colormap_hex(n: int = 9) -> list[str]:
    """`n` evenly spaced colours of the heatmaps' colour map (for the page's colour scale)."""
    lut = _lut()
    return [
        "#" + "".join(f"{int(c):02x}" for c in (lut[int(i)] * 255).round()) for i in np.linspace(0, 255, n)
    ]


def overlay(image: Image.Image, map_hw: np.ndarray, vmax: float | None = None) -> Image.Image:
    """Blend a heatmap (inferno colours, opacity rising with the activation) over the image."""
    base = display(image).convert("RGB")
    m = np.asarray(map_hw, np.float32)
    top = float(vmax if vmax else m.max())
    norm = np.clip(m / top, 0, 1) if top > 0 else np.zeros_like(m)
    up = np.asarray(Image.fromarray(norm, "F").resize(base.size, Image.Resampling.BILINEAR), np.float32).clip(
        0, 1
    )
    rgb = _lut()[(up * 255).astype(np.uint8)]
    a = (0.15 + 0.7 * up)[..., None] * (up[..., None] > 0.02)
    out = np.asarray(base, np.float32) / 255 * (1 - a) + rgb * a
    return Image.fromarray((out * 255).round().astype(np.uint8), "RGB")


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=1)
    return buf.getvalue()
