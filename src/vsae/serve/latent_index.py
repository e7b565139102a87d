"""The latent index behind the browser: every latent's statistics, its images, its neighbours.

Built once per SAE (on the first request for it): the store's rows are encoded by the SAE in
chunks, pooled per image (max over the image's rows, as `vsae eval`'s ``max`` pooling), and kept
as a sparse column-major [images, F] matrix, so a latent page is a column slice plus small sorts.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

import vsae.sae
from vsae.data import load_table
from vsae.errors import VsaeError
from vsae.sae.batched import iter_encode
from vsae.serve.sources import SaeSource
from vsae.store import ActivationStore

SORT_KEYS = ("index", "ms", "freq", "max", "name", "group")
FILTERS = ("all", "alive", "dead", "dense")
DENSE_FREQ = 0.1  # a latent firing on more than 10% of images is flagged dense
MAX_PAGE = 500


@dataclass(frozen=True)
class LatentRow:
    """One latent's row of the browser's table (`/api/latents`).

    Attributes
    ----------
    latent: its index.
    ms: its Monosemanticity Score (4 decimals; None when not scored).
    freq: the fraction of images it fires on.
    n_fires: the number of images it fires on (MS needs at least 2: a latent firing on one image
      has no MS, though it is not dead).
    max: its largest pooled activation.
    name: its vocabulary name, or None.
    name_score: the name's match score, or None.
    group: its Matryoshka group, or None for other SAEs.
    dead: it never fires on the served images (n_fires == 0; the report counts dead latents the
      same way, `vsae.eval.monosemanticity.MSResult.dead_F`).
    dense: it fires on more than DENSE_FREQ of them.
    """

    latent: int
    ms: float | None
    freq: float
    n_fires: int
    max: float
    name: str | None
    name_score: float | None
    group: int | None
    dead: bool
    dense: bool

    def to_json(self) -> dict[str, Any]:
        """The row as the API sends it."""
        return asdict(self)


@dataclass(frozen=True)
class LatentPage:
    """One page of the latent table (`/api/latents`).

    Attributes
    ----------
    total: latents matching the query.
    offset: the first of them on this page.
    rows: the page's rows, in the query's order.
    thumbs: each row's top images (ids, best first; empty for a dead latent).
    """

    total: int
    offset: int
    rows: tuple[LatentRow, ...]
    thumbs: tuple[tuple[int, ...], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The page as the API sends it (each row with its "thumbs")."""
        th = self.thumbs or ((),) * len(self.rows)
        rows = [{**r.to_json(), "thumbs": list(t)} for r, t in zip(self.rows, th, strict=True)]
        return {"total": self.total, "offset": self.offset, "rows": rows}


@dataclass(frozen=True)
class LatentDetail:
    """Everything a latent's page shows except the pixels (`/api/latent/F`).

    Attributes
    ----------
    row: the latent's table row.
    n_images: images served.
    top: its top images, best first ({"image", "value"}).
    histogram: its non-zero activations' histogram ({"counts", "edges", "zeros"}), None if dead.
    quantiles: sample images per activation quantile, lowest first.
    nearest: the live latents with the most similar decoder directions (rows with "cos").
    nearest_dead: dead latents whose decoder cosine beats the last of `nearest` (rows with "cos"):
      shown apart, as they never fire here.
    coactive: the latents that fire on the most similar sets of images (rows with "jaccard",
      |both| / |either|, and "both", the images where both fire).
    purity: the top images' ground truth per attribute (a world's images), or None.
    """

    row: LatentRow
    n_images: int
    top: list[dict[str, Any]]
    histogram: dict[str, Any] | None
    quantiles: list[dict[str, Any]]
    nearest: list[dict[str, Any]]
    purity: list[dict[str, Any]] | None
    nearest_dead: list[dict[str, Any]] = field(default_factory=list)
    coactive: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The latent's page data as the API sends it (the row's fields first)."""
        return {
            **self.row.to_json(),
            "n_images": self.n_images,
            "top": self.top,
            "histogram": self.histogram,
            "quantiles": self.quantiles,
            "nearest": self.nearest,
            "nearest_dead": self.nearest_dead,
            "coactive": self.coactive,
            "purity": self.purity,
        }


@dataclass(frozen=True)
class TableQuery:
    """A page of the latent table: sort key and order, search text, filter, Matryoshka group, and
    the fewest images a latent must fire on (`min_count`: sorting by MS then skips latents whose
    MS rests on two or three images)."""

    sort: str = "index"
    order: str = "asc"
    q: str = ""
    filter: str = "all"
    group: int | None = None
    offset: int = 0
    limit: int = 50
    min_count: int = 0

    def __post_init__(self) -> None:
        if self.sort not in SORT_KEYS:
            raise VsaeError(f"unknown sort key {self.sort!r}; use one of {', '.join(SORT_KEYS)}")
        if self.order not in ("asc", "desc"):
            raise VsaeError(f"unknown order {self.order!r}; use asc or desc")
        if self.filter not in FILTERS:
            raise VsaeError(f"unknown filter {self.filter!r}; use one of {', '.join(FILTERS)}")
        if self.min_count < 0:
            raise VsaeError("min_count must be >= 0")
        if self.offset < 0 or not 1 <= self.limit <= MAX_PAGE:
            raise VsaeError(f"offset must be >= 0 and limit in 1..{MAX_PAGE}")


class ImageSet:
    """The images of a store: image index -> file, confined to the folder tree they came from."""

    def __init__(self, acts: Path, root: Path | None, confine: Path | None = None):
        t = load_table(acts, need_items=True)
        self.confine = confine.resolve() if confine is not None else None
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
            p = Path(self.items[image_id]).resolve()
        else:
            p = (self.base / self.items[image_id]).resolve()
            if not p.is_relative_to(self.base):
                raise VsaeError(f"image {image_id} lies outside the served folder {self.base}")
        if self.confine is not None and not p.is_relative_to(self.confine):
            raise VsaeError(f"image {image_id} lies outside the served directory {self.confine}")
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
    found = [rows.get(images.rel(i)) for i in range(len(images))]
    recs = [r for r in found if r is not None]
    if len(recs) < len(found) or not recs:
        return None
    keys = [k for k in recs[0] if k != "path" and isinstance(recs[0][k], str)]
    # an attribute with one value over all served images (e.g. the split) says nothing
    return {k: [r[k] for r in recs] for k in keys if len({r[k] for r in recs}) > 1}


class LatentIndex:
    """Per-latent statistics and the pooled [images, F] latent matrix of one SAE over one store."""

    def __init__(self, src: SaeSource, batch_size: int = 4096):
        self.src = src
        self.store = ActivationStore.open(src.acts)
        if getattr(self.store, "manifest", {}).get("format") == "sparse":
            raise VsaeError(f"{src.acts} is a sparse latent store; give the activation store the SAE encodes")
        self.sae = vsae.sae.load(src.sae_dir).eval()
        cfg = self.sae.cfg
        if cfg.d_in != self.store.d:
            raise VsaeError(f"the SAE takes d_in={cfg.d_in} but {src.acts} has width {self.store.d}")
        self.F = int(cfg.d_sae)
        self.images = ImageSet(src.acts, src.images_root, src.confine)
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
        for b in iter_encode(self.sae, self.store, batch_size):
            z = b.z.float().cpu()
            r, c = torch.nonzero(z > 0, as_tuple=True)
            rows.append(pos_of_row[b.start + r.numpy()])
            cols.append(c.numpy())
            vals.append(z[r, c].numpy().astype(np.float32))
        r_all = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        c_all = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        v = np.concatenate(vals) if vals else np.zeros(0, np.float32)
        # max over the rows of one image: sort by (image, latent, value), keep the last of each pair
        key = r_all * self.F + c_all
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
        self.nnz_F = nnz
        self.dead_F = nnz == 0
        self.B = (self.Z > 0).astype(np.float32).tocsr()  # firing images x latents, for co-activation
        self.dense_F = self.freq_F > DENSE_FREQ
        cfg = self.sae.cfg
        self.group_F = None
        if len(cfg.nested_groups) > 1:
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

    def set_ms(self, ms_F: np.ndarray) -> None:
        """MS per latent computed after the index (the steering SAE's, `vsae.serve.steering_store`)."""
        ms = np.asarray(ms_F, np.float64)
        if ms.shape != (self.F,):
            raise VsaeError(f"MS scores have shape {ms.shape} but the SAE has {self.F} latents")
        self.ms_F = ms

    # -- queries -------------------------------------------------------------------------------
    def row(self, f: int) -> LatentRow:
        """The table row of latent f."""
        ms = self.ms_F[f]
        score = self.name_scores[f]
        return LatentRow(
            latent=int(f),
            ms=None if np.isnan(ms) else round(float(ms), 4),
            freq=round(float(self.freq_F[f]), 5),
            n_fires=int(self.nnz_F[f]),
            max=round(float(self.max_F[f]), 4),
            name=self.names[f],
            name_score=None if score is None else round(score, 4),
            group=None if self.group_F is None else int(self.group_F[f]),
            dead=bool(self.dead_F[f]),
            dense=bool(self.dense_F[f]),
        )

    def table(self, q: TableQuery) -> LatentPage:
        """One page of latents, sorted and filtered on the server (fast at F = 65,536)."""
        keep = self.nnz_F >= q.min_count
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
        }.get(q.sort, np.zeros(len(idx)))
        if q.sort == "name":
            names = self.name_lower[idx]
            key = np.unique(names, return_inverse=True)[1].astype(np.float64)
            key[names == ""] = np.nan  # unnamed latents last
        k = -key if q.order == "desc" else key
        o = np.lexsort((idx, np.nan_to_num(k, nan=0.0), np.isnan(k)))  # missing values last either way
        page = idx[o][q.offset : q.offset + q.limit]
        return LatentPage(
            int(len(idx)),
            q.offset,
            tuple(self.row(int(f)) for f in page),
            tuple(self.top_images(int(f), 3) for f in page),
        )

    def top_images(self, f: int, k: int) -> tuple[int, ...]:
        """Ids of latent f's k highest-activation images, best first."""
        ids, vals = self.column(f)
        o = np.argsort(-vals, kind="stable")[:k]
        return tuple(int(i) for i in ids[o])

    def check_latent(self, f: int) -> None:
        """VsaeError unless latent f exists."""
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
    ) -> LatentDetail:
        """Everything the latent page shows except the pixels (heatmaps come per image)."""
        self.check_latent(f)
        ids, vals = self.column(f)
        o = np.argsort(-vals, kind="stable")
        top: list[dict[str, Any]] = [{"image": int(ids[i]), "value": round(float(vals[i]), 4)} for i in o[:k]]
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
        live = np.flatnonzero(~self.dead_F & (np.arange(self.F) != f))
        near_idx = live[np.argsort(-cos[live], kind="stable")[:n_near]]
        near = [{**self.row(int(j)).to_json(), "cos": round(float(cos[j]), 4)} for j in near_idx]
        floor = cos[near_idx[-1]] if len(near_idx) else -np.inf
        dead = np.flatnonzero(self.dead_F & (cos > floor))
        dead = dead[np.argsort(-cos[dead], kind="stable")[:n_near]]
        near_dead = [{**self.row(int(j)).to_json(), "cos": round(float(cos[j]), 4)} for j in dead]
        coactive = self.coactive(f, n_near)
        return LatentDetail(
            row=self.row(f),
            n_images=int(self.Z.shape[0]),
            top=top,
            histogram=hist,
            quantiles=quant,
            nearest=near,
            purity=self.purity([t["image"] for t in top]),
            nearest_dead=near_dead,
            coactive=coactive,
        )

    def coactive(self, f: int, n: int) -> list[dict[str, Any]]:
        """The `n` latents whose firing images overlap latent f's most (Jaccard index of the two
        sets of served images), best first; none for a dead latent."""
        a, b = self.Z.indptr[f], self.Z.indptr[f + 1]
        rows = self.Z.indices[a:b]
        if not len(rows):
            return []
        both = np.bincount(self.B[rows].indices, minlength=self.F)
        both[f] = 0
        jac = both / np.maximum(len(rows) + self.nnz_F - both, 1)
        cand = np.flatnonzero(both > 0)
        cand = cand[np.lexsort((cand, -jac[cand]))[:n]]
        return [
            {**self.row(int(j)).to_json(), "jaccard": round(float(jac[j]), 4), "both": int(both[j])}
            for j in cand
        ]

    def purity(self, image_ids: list[int]) -> list[dict[str, Any]] | None:
        """Ground truth of the top images (a world's attributes): per attribute, the most common
        value and the fraction of the images that share it, purest first."""
        if self.attributes is None or not image_ids:
            return None
        out: list[dict[str, Any]] = []
        for a, vals in self.attributes.items():
            v, c = np.unique([vals[i] for i in image_ids], return_counts=True)
            j = int(np.argmax(c))
            out.append(
                {"attribute": a, "value": str(v[j]), "fraction": round(float(c[j] / len(image_ids)), 4)}
            )
        out.sort(key=lambda d: -d["fraction"])
        return out
