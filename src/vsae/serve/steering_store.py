"""The steering SAE, browsable like the others: an activation store of its own hook on the LLaVA's
vision tower, extracted once and cached, that the latent index (`vsae.serve.latent_index`) reads.

The SAE `vsae serve` steers the LLaVA with (``--steer-sae``, default the tiny LLaVA's) was trained
on the LLaVA's vision tower, not on any store the server shows; to give it a table, latent pages
with top images and heatmaps, neighbours and MS, the first request for it runs `vsae.extract`
(the playground's loaded LLaVA, at the hook it steers, every patch token) over a bounded seeded
sample of images (`SteerImages`) into ``<cache>/steering-<key>/`` and serves that store. The key
hashes everything the store depends on (LLaVA and SAE weights, hook, images, sample), so a later
start reuses it and a changed set-up extracts anew. MS is computed from a similarity-encoder
store of the same images when one is given (the demo's ``stores/simenc/<split>``).

Cost on the demo output (2,000 world:train images, 64 patch tokens each, 18 MB on disk): see
docs/serve.md ("The steering SAE").
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vsae.errors import VsaeError
from vsae.serve.sources import SaeSource, Served, SteerImages

if TYPE_CHECKING:
    from vsae.serve.latent_index import LatentIndex
    from vsae.serve.steering import Playground

log = logging.getLogger("vsae.serve")

STEER_TOKENS = "patches"  # the SAE was trained on patch tokens (random:2 of them for the tiny LLaVA)
DONE = "vsae_serve_steering.json"  # written once the extraction is complete: its set-up


def _files_key(d: Path) -> list[Any]:
    """Name, size and mtime of a model directory's files (cheap, unlike hashing 14 GB of weights)."""
    if not d.is_dir():
        return [str(d)]
    return [str(d.resolve())] + [
        [p.name, p.stat().st_size, p.stat().st_mtime_ns]
        for p in sorted(d.iterdir())
        if p.is_file() and p.suffix in (".json", ".safetensors", ".bin")
    ]


def _sae_hook(sae_dir: Path) -> str | None:
    """The hook the SAE's provenance records (its config.json), or None."""
    try:
        cfg = json.loads((sae_dir / "config.json").read_text())
        return (cfg.get("cfg", {}).get("provenance") or {}).get("hook")
    except (OSError, ValueError, AttributeError):
        return None


class SteeringBrowse:
    """The steering SAE as a served SAE: its id, and its `SaeSource` once its store is extracted."""

    def __init__(self, playground: Playground, images: SteerImages):
        self.playground = playground
        self.images = images
        self.llava, self.sae_dir = playground.dirs()
        self.hook = _sae_hook(self.sae_dir)
        self.id = f"steering:{self.hook or 'vision'}/{self.sae_dir.resolve().name}"
        self._src: SaeSource | None = None
        self._lock = threading.Lock()

    def _key(self, hook: str) -> str:
        im = self.images
        setup = {
            "llava": _files_key(self.llava),
            "sae": _files_key(self.sae_dir),
            "hook": hook,
            "tokens": STEER_TOKENS,
            "images": [str(im.root.resolve()), im.split, im.n, im.seed],
        }
        return hashlib.sha256(json.dumps(setup, sort_keys=True).encode()).hexdigest()[:16]

    def source(self) -> SaeSource:
        """The steering SAE over its own store, extracting the store on the first call (logged)."""
        with self._lock:
            if self._src is None:
                self._src = self._build()
            return self._src

    def _build(self) -> SaeSource:
        from vsae.extract import ExtractConfig, extract
        from vsae.store.safe_io import atomic_write_json

        lm, _, _, hook = self.playground.load()
        if self.hook and self.hook != hook:
            raise VsaeError(
                f"the steering SAE {self.sae_dir} was trained on {self.hook} but the playground steers "
                f"{hook} (the layer the LLaVA's projector reads); give an SAE of {hook}"
            )
        im = self.images
        key = self._key(hook)
        out = im.cache / f"steering-{key}"
        if not (out / DONE).is_file():
            log.warning(
                "extracting the steering SAE's store: %d %s images at %s of %s -> %s",
                im.n,
                im.split or "",
                hook,
                self.llava,
                out,
            )
            t = time.perf_counter()
            cfg = ExtractConfig(
                model=str(self.llava),
                hooks=(hook,),
                data=str(im.root),
                out=str(out),
                tokens=STEER_TOKENS,
                split=im.split,
                tower="vision",
                max_images=im.n,
                seed=im.seed,
                shard=(0, 1),
                num_workers=0,
                progress=False,
            )
            try:
                with self.playground.lock:  # the model is the playground's: no steering meanwhile
                    extract(cfg, model=lm)
                atomic_write_json(out / DONE, {"key": key, "hook": hook, "seconds": time.perf_counter() - t})
            except OSError as e:
                raise VsaeError(
                    f"cannot write the steering SAE's store under {im.cache} ({e.strerror or e}); "
                    "make it writable (it caches the store between starts)"
                ) from None
            log.warning("extracted the steering SAE's store in %.1f s", time.perf_counter() - t)
        names = self._names()
        return SaeSource(self.id, self.sae_dir, out, None, None, names, confine=im.root.resolve())

    def _names(self) -> list[str | None] | None:
        """The steering experiment's latent names (its results table), per latent."""
        sugg = self.playground.suggested()
        if not sugg:
            return None
        d_sae = json.loads((self.sae_dir / "config.json").read_text())["cfg"]["d_sae"]
        names: list[str | None] = [None] * int(d_sae)
        for s in sugg:
            if 0 <= s["latent"] < len(names):
                names[s["latent"]] = s["name"]
        return names

    def ms(self, ix: LatentIndex) -> np.ndarray | None:
        """MS per latent of the index (Pach et al.) with the similarity store's embeddings of its
        images, or None without a similarity store. The store must hold every image of the
        sampled split in source order (checked by path)."""
        from vsae.data import load_table
        from vsae.eval.monosemanticity import monosemanticity_score
        from vsae.store import ActivationStore

        if self.images.sim is None:
            return None
        sim = ActivationStore.open(self.images.sim)
        table, mine = load_table(self.images.sim, need_items=True), load_table(ix.src.acts, need_items=True)
        src_idx = np.asarray(mine.get("source_index", range(len(mine["items"]))), np.int64)[ix.image_ids]
        if len(sim) != len(table["items"]) or (src_idx >= len(table["items"])).any():
            raise VsaeError(f"the similarity store {self.images.sim} does not hold one row per image")
        for i, s in zip(ix.image_ids, src_idx, strict=True):
            if table["items"][s] != mine["items"][i]:
                raise VsaeError(
                    f"the similarity store {self.images.sim} holds other images than the steering store"
                )
        order = np.argsort(np.asarray(sim.image_index, np.int64))
        emb_ND = sim[:].float().numpy()[order][src_idx]
        return monosemanticity_score(ix.Z.tocsr(), emb_ND).numpy()


def _store_images(src: SaeSource) -> SteerImages | None:
    """The images of a served SAE's store when they are a folder tree (explicit ``--acts``), the
    steering store cached under ``$XDG_CACHE_HOME/vsae/serve`` (default ``~/.cache``)."""
    import os

    from vsae.data import load_table

    try:
        t = load_table(src.acts)
    except VsaeError:
        return None
    if t.get("kind", "folder") != "folder" or not t.get("root"):
        return None
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vsae" / "serve"
    return SteerImages(Path(src.images_root or t["root"]), t.get("split"), cache)


def browse(served: Served, playground: Playground) -> SteeringBrowse | None:
    """The steering SAE as a served SAE, or None (with a log line) when it cannot be: no LLaVA
    built, no image folder to browse it on."""
    im = served.steer_images or _store_images(served.saes[0])
    if im is None:
        return None
    try:
        return SteeringBrowse(playground, im)
    except VsaeError as e:
        log.warning("the steering SAE is not browsable: %s", e)
        return None
