"""Where the evaluation's arrays come from: activation stores (dense or sparse), .npy/.safetensors
files, SAE latents computed on the fly, per-image pooling, labels, and similarity embeddings.

The metrics themselves only see re-iterable `(row_start, chunk)` sources (see `_arrays`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from vsae.data import load_table
from vsae.errors import VsaeError, regular_file
from vsae.eval.eval_config import POOLINGS
from vsae.sae.selection import check_rows
from vsae.store import ActivationStore
from vsae.store.inputs import check_ids, check_values


class ArrayRows:
    """A 2-D array file (.npy memory-mapped, or .safetensors) as rows, one per image."""

    def __init__(self, array: np.ndarray, name: str):
        if array.ndim != 2:
            raise VsaeError(f"{name} holds an array of shape {tuple(array.shape)}; expected [rows, width]")
        self.array = array
        self.name = name
        self.d = int(array.shape[1])
        self.image_index = np.arange(array.shape[0], dtype=np.int64)
        self.token_index = np.zeros(array.shape[0], dtype=np.int64)
        self.path = Path(name)
        self.provenance: dict[str, Any] = {}

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def read(self, a: int, b: int) -> np.ndarray:
        return np.asarray(self.array[a:b], dtype=np.float32)


class StoreRows:
    """An activation store as rows: dense chunks as float32 numpy, sparse ones as CSR."""

    def __init__(self, store: Any):
        self.store = store
        self.name = str(store.path)
        self.path = Path(store.path)
        self.d = int(store.d)
        self.sparse = hasattr(store, "csr")
        self.provenance = store.provenance

    def __len__(self) -> int:
        return len(self.store)

    @property
    def image_index(self) -> np.ndarray:
        return self.store.image_index

    @property
    def token_index(self) -> np.ndarray:
        return self.store.token_index

    def read(self, a: int, b: int) -> np.ndarray | sp.csr_matrix:
        if self.sparse:
            indptr, idx, val = self.store.csr(a, b)  # checked by the store reader
            return sp.csr_matrix((val, idx, indptr), shape=(len(indptr) - 1, self.d))
        return self.store[a:b].numpy()


def load_array(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """A 2-D array from .npy (memory-mapped, no pickle) or .safetensors (the only tensor, or `key`)."""
    p = Path(path)
    fix = "give a float32 [rows, width] .npy or .safetensors file or a store directory"
    if p.suffix not in (".npy", ".safetensors"):
        if not p.exists():
            raise VsaeError(f"{p} does not exist; {fix}")
        raise VsaeError(f"{p}: unsupported file type; use .npy, .safetensors or a store directory")
    regular_file(p, "array file", fix)
    if p.suffix == ".npy":
        try:
            a = np.load(p, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            why = (str(e).splitlines() or [type(e).__name__])[0][:120]
            raise VsaeError(f"{p} is not a plain numpy array ({why}); save it without pickle") from None
    else:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            tensors = load_file(str(p))
        except (SafetensorError, OSError, ValueError, TypeError) as e:
            why = (str(e).splitlines() or [type(e).__name__])[0][:120]
            raise VsaeError(
                f"{p} is not a readable .safetensors file ({why}); re-export it as float32"
            ) from None
        k = key or "embeddings"
        if key is None and len(tensors) == 1:
            k = next(iter(tensors))
        if k not in tensors:
            raise VsaeError(f"{p} holds tensors {sorted(tensors)}; name one (expected {k!r})")
        a = tensors[k]
    return check_values(a, str(p), fix)


def open_rows(path: str | os.PathLike) -> ArrayRows | StoreRows:
    """A store directory or an array file as rows."""
    p = Path(path)
    if p.is_dir():
        return StoreRows(ActivationStore.open(p))
    return ArrayRows(load_array(p), str(p))


@dataclass(frozen=True)
class ImageView:
    """Per-image rows of a row source: image ids (ascending) and the pooling used."""

    rows: Any
    images: np.ndarray
    starts: np.ndarray  # first row of each image, plus len(rows) at the end
    pooling: str  # "none" (one row per image) | "cls" | "mean"

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def chunks(
        self,
        transform: Callable[[Any], Any] | None = None,
        images_per_chunk: int = 2048,
        max_rows: int = 32768,
    ) -> Callable[[], Iterator[tuple[int, Any]]]:
        """A re-iterable source of `(first image, [n_images, width])` pooled chunks;
        `transform` maps raw rows (e.g. to SAE latents) before pooling. A chunk holds whole
        images: at most `images_per_chunk` of them and about `max_rows` rows (at least one image)."""

        def gen() -> Iterator[tuple[int, Any]]:
            tok_all = self.rows.token_index if self.pooling == "cls" else None
            g0 = 0
            while g0 < len(self):
                by_rows = int(np.searchsorted(self.starts, self.starts[g0] + max_rows, side="right")) - 1
                g1 = max(g0 + 1, min(g0 + images_per_chunk, by_rows, len(self)))
                a, b = int(self.starts[g0]), int(self.starts[g1])
                x = self.rows.read(a, b)
                if transform is not None:
                    x = transform(x)
                yield g0, self._pool(x, g0, g1, a, b, tok_all)
                g0 = g1

        return gen

    def _pool(self, x: Any, g0: int, g1: int, a: int, b: int, tok_all: np.ndarray | None) -> Any:
        """Rows a:b (images g0:g1) pooled per image as the view's pooling says."""
        if self.pooling == "none":
            return x
        if self.pooling == "cls":
            assert tok_all is not None  # read for cls pooling
            sel = np.flatnonzero(np.asarray(tok_all[a:b]) == 0)
            return x[sel]
        counts = np.diff(self.starts[g0 : g1 + 1])
        r = np.repeat(np.arange(g1 - g0), counts)
        m = sp.csr_matrix((1.0 / counts[r], (r, np.arange(b - a))), shape=(g1 - g0, b - a))
        out = m @ x
        return sp.csr_matrix(out) if sp.issparse(out) else np.asarray(out, dtype=np.float32)


def image_view(rows: Any, pooling: str = "auto") -> ImageView:
    """Group a row source by image: rows of one image must be contiguous, images ascending.
    `pooling`: "auto" (one row per image: use it; else mean), "cls" (token 0) or "mean"."""
    if pooling not in POOLINGS:
        raise VsaeError(f"pooling {pooling!r}: use one of {', '.join(POOLINGS)}")
    img = np.asarray(rows.image_index)
    if img.size and np.any(np.diff(img) < 0):
        raise VsaeError(
            f"{rows.name}: rows are not in image order; evaluation needs a store written by vsae extract"
        )
    starts = np.flatnonzero(np.r_[True, img[1:] != img[:-1]]) if img.size else np.zeros(0, np.int64)
    images = img[starts]
    starts = np.r_[starts, img.size].astype(np.int64)
    if pooling == "auto":
        pooling = "none" if images.size == img.size else "mean"
    elif images.size == img.size:
        pooling = "none" if pooling == "mean" else pooling
    if pooling == "cls":
        tok = np.asarray(rows.token_index)
        n_cls = np.bincount(
            np.searchsorted(starts, np.flatnonzero(tok == 0), side="right") - 1, minlength=images.size
        )
        if images.size and not np.all(n_cls == 1):
            raise VsaeError(
                f"{rows.name}: {int((n_cls != 1).sum())} images lack a CLS row (token 0); use --pooling mean"
            )
    return ImageView(rows=rows, images=images, starts=starts, pooling=pooling)


def sae_transform(sae: Any, batch_size: int = 1024, sparse: bool = True) -> Callable[[Any], Any]:
    """Rows -> SAE latents (CSR when `sparse`), batched, without gradients."""
    from vsae.sae.batched import iter_encode  # imports torch: only when latents are computed

    def f(x: Any) -> Any:
        x = x.toarray() if sp.issparse(x) else x
        if x.shape[1] != sae.cfg.d_in:
            raise VsaeError(
                f"the store has width {x.shape[1]} but the SAE's d_in is {sae.cfg.d_in}; use matching ones"
            )
        outs = []
        for b in iter_encode(sae, np.asarray(x), batch_size):
            z = b.z.float().cpu().numpy()
            outs.append(sp.csr_matrix(z) if sparse else z)
        if not outs:
            return (
                sp.csr_matrix((0, sae.cfg.d_sae), dtype=np.float32)
                if sparse
                else np.zeros((0, sae.cfg.d_sae), np.float32)
            )
        return sp.vstack(outs, format="csr") if sparse else np.concatenate(outs)

    return f


def check_sae_matches(rows: Any, sae: Any, force: bool = False, sae_name: str = "") -> None:
    """One-line error when a store and an SAE have different widths, or (unless ``force``) a
    different hook or token selection (`vsae.sae.selection.check_rows`)."""
    if rows.d != sae.cfg.d_in:
        raise VsaeError(
            f"store {rows.name} has width d={rows.d} but the SAE expects d_in={sae.cfg.d_in}; "
            "use the SAE trained on this hook's activations"
        )
    check_rows(
        getattr(sae.cfg, "provenance", None),
        getattr(rows, "provenance", None),
        sae=sae_name or "the SAE",
        rows=f"store {rows.name}",
        force=force,
    )


def image_labels(table_path: str | os.PathLike, images: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Class index of each image (from the `images.json` table extraction writes) and class names."""
    t = load_table(Path(table_path))
    raw, classes = t.get("labels") or [], [str(c) for c in t.get("classes") or []]
    if not raw or not classes:
        raise VsaeError(
            f"{table_path}: the image table has no class labels; label the images by class folders"
        )
    if "items" in t and len(raw) != len(t["items"]):
        raise VsaeError(
            f"image table {table_path} has {len(raw)} labels for {len(t['items'])} images; re-extract the store"
        )
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in raw):
        raise VsaeError(f"{table_path}: the image table's labels are not all integers; re-extract the store")
    labels = check_ids(
        np.asarray(raw, dtype=np.int64),
        f"{table_path} (labels)",
        "re-extract the store",
        len(classes),
        allow=-1,
    )
    if images.size and images.max() >= labels.size:
        raise VsaeError(
            f"the activations refer to image {int(images.max())} but {table_path} labels {labels.size} images; "
            "give the table of the same extraction"
        )
    return labels[images], classes


def data_of(provenance: dict[str, Any]) -> tuple | None:
    """(kind, root, split) of the images a store was extracted from, if recorded."""
    d = provenance.get("data")
    return (d.get("kind"), d.get("root"), d.get("split")) if isinstance(d, dict) else None


def _items_of(store_dir: Path | None, images: np.ndarray) -> list[Any] | None:
    """The image paths a store's images.json records for the image ids `images` (None: not recorded)."""
    if store_dir is None or not (store_dir / "images.json").is_file():
        return None
    items = load_table(store_dir).get("items")
    if not isinstance(items, list) or (images.size and int(images.max()) >= len(items)):
        return None  # (too short: the row-count checks name the problem)
    return [items[int(i)] for i in images]


def _check_same_items(rows: Any, images: np.ndarray, acts_name: str, acts_dir: Path | None) -> None:
    """Refuse a similarity store whose images.json names other images than the activations' own at
    the same ids (a folder changed since extraction, an edited manifest, a reused --embed-cache):
    an image index means the same image in both only when both tables say so."""
    mine, theirs = _items_of(rows.path, images), _items_of(acts_dir, images)
    if mine is None or theirs is None or mine == theirs:
        return
    i = next(j for j, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b)
    raise VsaeError(
        f"similarity store {rows.name} embedded other images than the activations {acts_name}: image "
        f"{int(images[i])} is {mine[i]} there but {theirs[i]} in {acts_name}/images.json; extract the "
        "embeddings over the store's own images (a fresh --embed-cache)"
    )


def similarity_embeddings(
    path: str | os.PathLike,
    images: np.ndarray,
    acts_name: str,
    acts_provenance: dict[str, Any] | None = None,
    acts_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """[len(images), D] similarity-encoder embeddings aligned with the activation images.

    A store (e.g. `vsae extract --hook embed` of a similarity model over the same data) is aligned
    by image index, after checking both were extracted from the same images (the recorded source,
    and the image paths both images.json tables give those ids, when `acts_dir` has one); a
    .npy/.safetensors file must have one row per activation image, in order."""
    rows = open_rows(path)
    mine, theirs = data_of(rows.provenance), data_of(acts_provenance or {})
    if mine and theirs and mine != theirs:
        raise VsaeError(
            f"similarity store {rows.name} was extracted from {mine[1]} (split {mine[2]}) but the activations "
            f"{acts_name} from {theirs[1]} (split {theirs[2]}); extract the embeddings over the same images"
        )
    if isinstance(rows, ArrayRows):
        if len(rows) != images.size:
            raise VsaeError(
                f"similarity embeddings {rows.name} have {len(rows)} rows but the activations {acts_name} "
                f"cover {images.size} images; give one embedding per image, in image order"
            )
        return rows.array
    _check_same_items(rows, images, acts_name, Path(acts_dir) if acts_dir is not None else None)
    view = image_view(rows, "auto")
    pos = np.searchsorted(view.images, images)
    ok = (pos < view.images.size) & (view.images[np.clip(pos, 0, max(view.images.size - 1, 0))] == images)
    if not ok.all():
        raise VsaeError(
            f"similarity store {rows.name} covers {view.images.size} images but the activations {acts_name} "
            f"use {images.size}, {int((~ok).sum())} of them missing (e.g. image {int(images[~ok][0])}); "
            "extract the embeddings over the same images"
        )
    dense = (
        np.concatenate([c.toarray() if sp.issparse(c) else c for _, c in view.chunks()()])
        if len(view)
        else np.zeros((0, rows.d), np.float32)
    )
    return check_values(dense[pos], f"similarity store {rows.name}", "re-extract the embeddings")


def similarity_store(
    model: str,
    acts: Any,
    cache: str | os.PathLike,
    batch_size: int = 64,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Embed the images of an extracted store with a similarity model (hook `embed`) into the store
    `cache` (created, or resumed / reused if it exists) and return its path."""
    from vsae.extract import ExtractConfig, extract

    data = acts.provenance.get("data") or {}
    if not data.get("root"):
        raise VsaeError(
            f"{acts.name} does not record its images (no provenance.data.root); pass --embeddings instead of --embed-model"
        )
    cfg = ExtractConfig(
        model=model,
        hooks=("embed",),
        data=data["root"],
        split=data.get("split"),
        out=str(cache),
        tokens="cls",
        dtype="float32",
        batch_size=batch_size,
        num_workers=0,  # decoded in this process, as before ExtractConfig's default became the CLI's 2
        device=device,
        max_images=acts.provenance.get("max_images"),
        # the same images: the same --max-images sample (older stores took the first N)
        max_images_order=(acts.provenance.get("max_images_sample") or {}).get("order", "first"),
        seed=int(acts.provenance.get("seed") or 0),
        progress=progress,
    )
    return extract(cfg)
