"""The latent index behind the browser: every latent's statistics, its images, its neighbours.

Built once per SAE (on the first request for it): the store's rows are encoded by the SAE in
chunks, pooled per image (max over the image's rows, as `vsae eval`'s ``max`` pooling), and kept
as a sparse column-major [images, F] matrix, so a latent page is a column slice plus small sorts.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from vsae.errors import VsaeError
from vsae.serve.sources import SaeSource

SORT_KEYS = ("index", "ms", "freq", "max", "name", "group")
FILTERS = ("all", "alive", "dead", "dense")
DENSE_FREQ = 0.1  # a latent firing on more than 10% of images is flagged dense
MAX_PAGE = 500


@dataclass(frozen=True)
class TableQuery:
    """A page of the latent table: sort key and order, search text, filter, Matryoshka group."""

    sort: str = "index"
    order: str = "asc"
    q: str = ""
    filter: str = "all"
    group: int | None = None
    offset: int = 0
    limit: int = 50

    def __post_init__(self):
        if self.sort not in SORT_KEYS:
            raise VsaeError(f"unknown sort key {self.sort!r}; use one of {', '.join(SORT_KEYS)}")
        if self.order not in ("asc", "desc"):
            raise VsaeError(f"unknown order {self.order!r}; use asc or desc")
        if self.filter not in FILTERS:
            raise VsaeError(f"unknown filter {self.filter!r}; use one of {', '.join(FILTERS)}")
        if self.offset < 0 or not 1 <= self.limit <= MAX_PAGE:
            raise VsaeError(f"offset must be >= 0 and limit in 1..{MAX_PAGE}")


class ImageSet:
    """The images of a store: image index -> file, confined to the folder tree they came from."""

    def __init__(self, acts: Path, root: Path | None):
        from vsae.data import load_table

        t = load_table(acts)
        self.kind = t.get("kind", "folder")
        self.items: list[str] = list(t["items"])
        self.labels = list(t.get("labels") or [])
        self.classes = list(t.get("classes") or [])
        base = Path(root) if root is not None else Path(t["root"])
        self.world_root = base
        self.split = t.get("split")
        self.base = (base / self.split if self.split else base).resolve() if self.kind == "folder" else None
        if self.base is not None and not self.base.is_dir():
            raise VsaeError(f"image folder {self.base} does not exist; give --images (the dataset root)")

    def __len__(self) -> int:
        return len(self.items)

    def path(self, image_id: int) -> Path:
        """The file of image `image_id`; VsaeError if out of range or outside the served tree."""
        if not 0 <= image_id < len(self.items):
            raise VsaeError(f"image {image_id} out of range (0..{len(self.items) - 1})")
        if self.base is None:
            return Path(self.items[image_id])
        p = (self.base / self.items[image_id]).resolve()
        if not p.is_relative_to(self.base):
            raise VsaeError(f"image {image_id} lies outside the served folder {self.base}")
        return p

    def rel(self, image_id: int) -> str:
        """Path relative to the dataset root (the key of a world's attributes.json)."""
        return f"{self.split}/{self.items[image_id]}" if self.split else self.items[image_id]


def _world_attributes(images: ImageSet) -> dict[str, list[str]] | None:
    """Ground-truth attributes per image when the images are a shapes world (attributes.json)."""
    p = images.world_root / "attributes.json"
    if images.base is None or not p.is_file():
        return None
    rows = {r["path"]: r for r in json.loads(p.read_text())}
    recs = [rows.get(images.rel(i)) for i in range(len(images))]
    if any(r is None for r in recs):
        return None
    keys = [k for k in recs[0] if k != "path" and isinstance(recs[0][k], str)]
    # an attribute with one value over all served images (e.g. the split) says nothing
    return {k: [r[k] for r in recs] for k in keys if len({r[k] for r in recs}) > 1}


class LatentIndex:
    """Per-latent statistics and the pooled [images, F] latent matrix of one SAE over one store."""

    def __init__(self, src: SaeSource, batch_size: int = 4096):
        import vsae.sae
        from vsae.store import ActivationStore

        self.src = src
        self.store = ActivationStore.open(src.acts)
        if getattr(self.store, "manifest", {}).get("format") == "sparse":
            raise VsaeError(f"{src.acts} is a sparse latent store; give the activation store the SAE encodes")
        self.sae = vsae.sae.load(src.sae_dir).eval()
        cfg = self.sae.cfg
        if cfg.d_in != self.store.d:
            raise VsaeError(f"the SAE takes d_in={cfg.d_in} but {src.acts} has width {self.store.d}")
        self.F = int(cfg.d_sae)
        self.images = ImageSet(src.acts, src.images_root)
        self.lock = threading.Lock()
        self._encode(batch_size)
        self._stats()
        self.attributes = _world_attributes(self.images)

    # -- building ------------------------------------------------------------------------------
    def _encode(self, batch_size: int) -> None:
        img_of_row = np.asarray(self.store.image_index, np.int64)
        self.image_ids = np.unique(img_of_row)  # positions -> image ids
        pos_of_row = np.searchsorted(self.image_ids, img_of_row)
        rows, cols, vals = [], [], []
        with torch.no_grad():
            for start, x in self.store.iter_sequential(batch_size):
                z = self.sae.encode(x.float())
                r, c = torch.nonzero(z > 0, as_tuple=True)
                rows.append(pos_of_row[start + r.numpy()])
                cols.append(c.numpy())
                vals.append(z[r, c].numpy().astype(np.float32))
        r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        v = np.concatenate(vals) if vals else np.zeros(0, np.float32)
        # max over the rows of one image: sort by (image, latent, value), keep the last of each pair
        key = r * self.F + c
        o = np.lexsort((v, key))
        key, v = key[o], v[o]
        last = np.r_[key[1:] != key[:-1], True] if len(key) else np.zeros(0, bool)
        key, v = key[last], v[last]
        n = len(self.image_ids)
        self.Z = sp.csc_matrix((v, (key // self.F, key % self.F)), shape=(n, self.F), dtype=np.float32)
        self.Z.sort_indices()
        self.rows_per_image = len(img_of_row) / max(n, 1)

    def _stats(self) -> None:
        n = max(self.Z.shape[0], 1)
        nnz = np.diff(self.Z.indptr)
        self.freq_F = nnz / n
        mx = np.zeros(self.F, np.float32)
        has = nnz > 0
        if has.any():
            mx[has] = np.maximum.reduceat(self.Z.data, self.Z.indptr[:-1][has])
        self.max_F = mx
        self.dead_F = nnz == 0
        self.dense_F = self.freq_F > DENSE_FREQ
        cfg = self.sae.cfg
        self.group_F = None
        if cfg.arch == "matryoshka":
            self.group_F = np.repeat(np.arange(len(cfg.group_sizes)), cfg.group_sizes)
        w = self.sae.W_dec_Fd.detach().float()
        self.dec_Fd = (w / w.norm(dim=1, keepdim=True).clamp_min(1e-8)).numpy()
        ms = self.src.ms_F
        self.ms_F = np.full(self.F, np.nan) if ms is None else np.asarray(ms, np.float64)
        if len(self.ms_F) != self.F:
            raise VsaeError(f"MS scores have {len(self.ms_F)} latents but the SAE has {self.F}")
        names = self.src.names or [None] * self.F
        if len(names) != self.F:
            raise VsaeError(f"names cover {len(names)} latents but the SAE has {self.F}")
        self.names = names
        self.name_lower = np.array([(s or "").lower() for s in names])
        sc = self.src.name_scores or [None] * self.F
        self.name_scores = [None if s is None else float(s) for s in sc]

    # -- queries -------------------------------------------------------------------------------
    def row(self, f: int) -> dict[str, Any]:
        """The table row of latent f."""
        ms = self.ms_F[f]
        return {
            "latent": int(f),
            "ms": None if np.isnan(ms) else round(float(ms), 4),
            "freq": round(float(self.freq_F[f]), 5),
            "max": round(float(self.max_F[f]), 4),
            "name": self.names[f],
            "name_score": None if self.name_scores[f] is None else round(self.name_scores[f], 4),
            "group": None if self.group_F is None else int(self.group_F[f]),
            "dead": bool(self.dead_F[f]),
            "dense": bool(self.dense_F[f]),
        }

    def table(self, q: TableQuery) -> dict[str, Any]:
        """One page of latents, sorted and filtered on the server (fast at F = 65,536)."""
        keep = np.ones(self.F, bool)
        if q.filter == "alive":
            keep &= ~self.dead_F
        elif q.filter == "dead":
            keep &= self.dead_F
        elif q.filter == "dense":
            keep &= self.dense_F
        if q.group is not None:
            if self.group_F is None:
                raise VsaeError("this SAE has no Matryoshka groups; drop the group filter")
            keep &= self.group_F == q.group
        text = q.q.strip().lower()
        if text:
            if text.lstrip("#").isdigit():
                f = int(text.lstrip("#"))
                m = np.zeros(self.F, bool)
                if f < self.F:
                    m[f] = True
                keep &= m | (np.char.find(self.name_lower, text) >= 0)
            else:
                keep &= np.char.find(self.name_lower, text) >= 0
        idx = np.flatnonzero(keep)
        key = {
            "index": idx.astype(np.float64),
            "ms": self.ms_F[idx],
            "freq": self.freq_F[idx],
            "max": self.max_F[idx].astype(np.float64),
            "group": (self.group_F[idx] if self.group_F is not None else np.zeros(len(idx))).astype(
                np.float64
            ),
        }.get(q.sort)
        if q.sort == "name":
            names = self.name_lower[idx]
            key = np.unique(names, return_inverse=True)[1].astype(np.float64)
            key[names == ""] = np.nan  # unnamed latents last
        k = -key if q.order == "desc" else key
        o = np.lexsort((idx, np.nan_to_num(k, nan=0.0), np.isnan(k)))  # missing values last either way
        page = idx[o][q.offset : q.offset + q.limit]
        return {"total": int(len(idx)), "offset": q.offset, "rows": [self.row(int(f)) for f in page]}

    def check_latent(self, f: int) -> None:
        if not 0 <= f < self.F:
            raise VsaeError(f"latent {f} out of range (0..{self.F - 1})")

    def column(self, f: int) -> tuple[np.ndarray, np.ndarray]:
        """(image ids, pooled activations) of the images where latent f fires."""
        a, b = self.Z.indptr[f], self.Z.indptr[f + 1]
        return self.image_ids[self.Z.indices[a:b]], self.Z.data[a:b]

    def detail(
        self,
        f: int,
        k: int = 16,
        bins: int = 24,
        per_quantile: int = 4,
        n_quantiles: int = 5,
        n_near: int = 10,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Everything the latent page shows except the pixels (heatmaps come per image)."""
        self.check_latent(f)
        ids, vals = self.column(f)
        o = np.argsort(-vals, kind="stable")
        top = [{"image": int(ids[i]), "value": round(float(vals[i]), 4)} for i in o[:k]]
        hist = None
        if len(vals):
            cnt, edges = np.histogram(vals, bins=bins)
            hist = {
                "counts": cnt.tolist(),
                "edges": [round(float(e), 4) for e in edges],
                "zeros": int(self.Z.shape[0] - len(vals)),
            }
        quant = []
        if len(vals):
            srt = o[::-1]  # ascending
            rng = np.random.default_rng([seed, f])
            for qi, part in enumerate(np.array_split(srt, n_quantiles)):
                if not len(part):
                    continue
                pick = np.sort(rng.choice(len(part), size=min(per_quantile, len(part)), replace=False))
                sel = part[pick][::-1]
                quant.append(
                    {
                        "range": [round(float(vals[part[0]]), 4), round(float(vals[part[-1]]), 4)],
                        "label": f"{100 * qi // n_quantiles}-{100 * (qi + 1) // n_quantiles}%",
                        "images": [{"image": int(ids[i]), "value": round(float(vals[i]), 4)} for i in sel],
                    }
                )
        cos = self.dec_Fd @ self.dec_Fd[f]
        cos[f] = -np.inf
        near_idx = (
            np.argpartition(-cos, min(n_near, self.F - 1) - 1)[: min(n_near, self.F - 1)]
            if self.F > 1
            else []
        )
        near_idx = sorted(near_idx, key=lambda j: -cos[j])
        near = [{**self.row(int(j)), "cos": round(float(cos[j]), 4)} for j in near_idx]
        return {
            **self.row(f),
            "n_images": int(self.Z.shape[0]),
            "top": top,
            "histogram": hist,
            "quantiles": quant,
            "nearest": near,
            "purity": self.purity([t["image"] for t in top]),
        }

    def purity(self, image_ids: list[int]) -> list[dict[str, Any]] | None:
        """Ground truth of the top images (a world's attributes): per attribute, the most common
        value and the fraction of the images that share it, purest first."""
        if self.attributes is None or not image_ids:
            return None
        out = []
        for a, vals in self.attributes.items():
            v, c = np.unique([vals[i] for i in image_ids], return_counts=True)
            j = int(np.argmax(c))
            out.append(
                {"attribute": a, "value": str(v[j]), "fraction": round(float(c[j] / len(image_ids)), 4)}
            )
        out.sort(key=lambda d: -d["fraction"])
        return out
