"""The extraction pipeline: images (or prompts) -> model + hook points -> token selection -> store.

One pass over the data can fill several stores, one per hook (``OUT/<hook>/``; ``OUT`` itself
when there is one hook). The run is resumable: it restarts at the stores' resume point and feeds
the same images in the same batches, so a killed and restarted run ends with exactly the rows of
an uninterrupted one. ``shard=(I, N)`` processes the I-th contiguous block of the images and
writes part I of the same stores (the reader merges the parts).

```python
from vsae.extract import ExtractConfig, extract
extract(ExtractConfig(model="openai/clip-vit-base-patch32", hooks=("resid.-2",), tokens="cls",
                      data="imagenet", split="val", out="stores/clip-l10"))
```
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vsae.data import Batch, Source, iter_batches, open_source
from vsae.data.image_sources import open_source_early
from vsae.data.schemes import shard_part
from vsae.data.subset import ORDERS, choose
from vsae.device import parse_device
from vsae.errors import VsaeError, file_kind
from vsae.extract.settings import ExtractConfig as ExtractConfig  # torch-free (the CLI's options)
from vsae.memory import limit_heap_growth, release_free_memory
from vsae.models import Capture, LoadedModel, capture, load, parse_selection, resolve_hook, select_tokens
from vsae.models.tokens import TokenSelection, as_tokens
from vsae.store import StoreWriter
from vsae.store.manifest import manifest_name
from vsae.store.safe_io import LOCK_NAME, atomic_write, output_lock
from vsae.store.writer import read_own_manifest


def shard_from_env() -> tuple[int, int]:
    """(RANK, WORLD_SIZE) from the torchrun environment, or (0, 1)."""
    try:
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    except ValueError:
        raise VsaeError("RANK/WORLD_SIZE are not integers; pass --shard I/N explicitly") from None


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise VsaeError(f"--shard {text!r}: expected I/N, e.g. 0/2") from None
    if not 0 <= i < n:
        raise VsaeError(f"--shard {text}: need 0 <= I < N")
    return i, n


def block_range(n_items: int, part: tuple[int, int]) -> tuple[int, int]:
    """The contiguous block [lo, hi) of n_items handled by part I of N."""
    i, n = part
    return i * n_items // n, (i + 1) * n_items // n


def hook_dirname(hook: str) -> str:
    """Directory name of a hook's sub-store (':' and '/' replaced)."""
    return hook.replace(":", "_").replace("/", "_")


@dataclass
class HookStore:
    """One hook's store writer; `pooled` when the hook gives one row per input ([B, d])."""

    name: str
    pooled: bool
    writer: StoreWriter


def _model_dtype(cfg: ExtractConfig) -> str:
    if cfg.model_dtype is not None:
        return cfg.model_dtype
    return "float32" if str(cfg.device).startswith("cpu") else cfg.dtype


def _refuse_non_regular(path: Path) -> None:
    """One-line error when `path` exists but is not a regular file (reading a FIFO would block)."""
    try:
        st = os.stat(path)  # follows symlinks: the target is what would be read
    except FileNotFoundError:
        return  # absent or a dangling symlink: written (replaced) atomically
    except OSError as e:
        raise VsaeError(f"{path} cannot be opened ({e.strerror}); remove it or use a new --out") from None
    if not stat.S_ISREG(st.st_mode):
        raise VsaeError(
            f"{path} is {file_kind(st.st_mode)}, not a regular file; remove it or use a new --out"
        )


def _write_json_once(path: Path, obj: Any, tag: str) -> None:
    """Write JSON atomically (per-writer temporary name) unless the same content is there already.
    `extract` has refused a non-regular `path` (`_refuse_non_regular`) before anything is written."""
    text = json.dumps(obj, indent=1)
    if path.exists() and path.read_text() == text:
        return
    atomic_write(path, text, tag)


def _check_same_run(path: Path, part: tuple[int, int], provenance: dict[str, Any]) -> None:
    """One-line error naming the first argument that differs from the run that made the store."""
    mpath = path / manifest_name(part)
    if not mpath.is_file():  # missing, or a FIFO that would block: the store writer reports it
        return
    try:
        old = json.loads(mpath.read_text()).get("provenance", {})
    except (OSError, ValueError, AttributeError):
        return  # the store writer reports unreadable manifests
    if not isinstance(old, dict):
        return
    new = json.loads(json.dumps(provenance))
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            raise VsaeError(
                f"store {path} was made with {key}={json.dumps(old.get(key))[:80]}, not "
                f"{json.dumps(new.get(key))[:80]}; rerun with the same arguments or use a new --out"
            )


def _check_layout(out: Path, n_hooks: int) -> None:
    """A single-hook store is OUT itself, several hooks make OUT/<hook>/: never mix the two."""
    if not out.is_dir():
        return
    top = any(out.glob("manifest*.json"))
    if n_hooks > 1 and top:
        raise VsaeError(
            f"{out} is a single-hook store; several hooks need a new --out (one sub-store per hook)"
        )
    if n_hooks == 1 and not top and any(out.glob("*/manifest*.json")):
        raise VsaeError(f"{out} holds one sub-store per hook; give one of them as --out or use a new --out")


def probe_hooks(lm: LoadedModel, hooks: list[str], sel: TokenSelection, seed: int) -> dict[str, torch.Tensor]:
    """Run one dummy input: the hook outputs (their shapes give the store widths) and check `sel` fits."""
    with capture(lm, hooks) as cap:
        lm.run(lm.dummy_inputs())
    missing = [h for h in hooks if h not in cap.outputs]
    if missing:
        raise VsaeError(
            f"hooks {missing} did not fire during a forward pass; choose modules the forward uses"
        )
    outs = {h: as_tokens(out) for h, out in cap.outputs.items()}
    for out in outs.values():
        if out.ndim == 3 and lm.modality == "image":
            select_tokens(out, sel, lm.has_cls, np.zeros(out.shape[0], np.int64), seed, lm.n_prefix)
        if out.ndim == 3 and lm.modality == "text" and sel.kind == "cls":
            raise VsaeError(
                "text encoders have no CLS token; use --tokens all, mean or random:K (or --hook embed)"
            )
    return outs


def feed(
    lm: LoadedModel, stores: list[HookStore], batch: Batch, sel: TokenSelection, seed: int, cap: Capture
) -> None:
    """Forward one batch under the capture `cap`, then `commit` its rows to the stores."""
    if batch.inputs is not None:
        lm.run(batch.inputs)
    commit(lm, stores, batch, sel, seed, cap.outputs)


def commit(
    lm: LoadedModel,
    stores: list[HookStore],
    batch: Batch,
    sel: TokenSelection,
    seed: int,
    outputs: dict[str, torch.Tensor],
) -> None:
    """Select the rows of a forwarded batch from the captured `outputs`, buffer them and the skipped
    images in each store, and mark the batch's images done (a shard is written when one is full)."""
    for idx, path, reason in batch.skipped:
        for s in stores:
            if idx >= s.writer.next_image:
                s.writer.skip(idx, path, reason)
    if batch.inputs is not None:
        mask = batch.inputs.get(lm.token_mask) if isinstance(batch.inputs, dict) and lm.token_mask else None
        for s in stores:
            rows, img, tok = select_tokens(
                outputs[s.name],
                sel,
                lm.has_cls,
                batch.ids,
                seed,
                lm.n_prefix,
                mask,
            )
            keep = img >= s.writer.next_image
            if not keep.all():  # this store was already ahead (killed between two stores' commits)
                rows, img, tok = rows[torch.as_tensor(keep, device=rows.device)], img[keep], tok[keep]
            if len(img):
                s.writer.add(rows, img, tok)
    written = sum(s.writer.rows for s in stores)
    for s in stores:
        if batch.end > s.writer.next_image:
            s.writer.mark_images_done(batch.end)
    if sum(s.writer.rows for s in stores) != written:  # a shard was written: its buffers are free
        release_free_memory()  # memory flat (vsae.memory), once per shard


def check_numbers(cfg: ExtractConfig) -> None:
    """Refuse numeric settings that would silently do something else (before anything is written)."""
    for flag, v, lo in (
        ("--max-images", cfg.max_images, 1),
        ("--rows-per-shard", cfg.rows_per_shard, 1),
        ("--num-workers", cfg.num_workers, 0),
        ("--seed", cfg.seed, 0),
        ("max_pixels", cfg.max_pixels, 1),
    ):
        if v is not None and v < lo:
            raise VsaeError(f"{flag} {v}: must be at least {lo}")
    parse_device(cfg.device)


@dataclass(frozen=True)
class Prepared:
    """What `prepare` checked and opened before any model is loaded.

    Attributes
    ----------
    sel: the parsed --tokens selection.
    part: (I, N) of this process's block of the data.
    source: --data opened as an image folder tree; None for a file (an image list or a prompt
        file: the model's modality decides, so it is opened after loading).
    """

    sel: TokenSelection
    part: tuple[int, int]
    source: Source | None


def prepare(cfg: ExtractConfig, source: Source | None = None) -> Prepared:
    """Check every argument that needs no model and open --data (split names, empty sources,
    --max-images), so that bad data arguments fail before the model is loaded.

    `source`: `open_source_early(cfg.data, cfg.split)` when the caller already opened it."""
    sel = parse_selection(cfg.tokens)
    if not cfg.hooks:
        raise VsaeError("no hook given; pass --hook, e.g. --hook resid.-2")
    if cfg.batch_size < 1:
        raise VsaeError(f"--batch-size {cfg.batch_size}: must be at least 1")
    check_numbers(cfg)
    if cfg.max_images_order not in ORDERS:
        raise VsaeError(f"--max-images-order {cfg.max_images_order!r}: use one of {', '.join(ORDERS)}")
    part = cfg.shard if cfg.shard is not None else shard_from_env()
    if not 0 <= part[0] < part[1]:
        raise VsaeError(f"shard {part[0]}/{part[1]}: need 0 <= I < N")
    if source is None:
        source = open_source_early(cfg.data, cfg.split, cfg.image_column, cfg.label_column)
    return Prepared(sel, part, source)


def extract(cfg: ExtractConfig, model: LoadedModel | None = None, prepared: Prepared | None = None) -> Path:
    """Run the extraction described by `cfg` (resuming if the store exists); return the output path.

    `model`: an already loaded model, e.g. `vsae.models.from_module(my_net, my_preprocess)`.
    `prepared`: `prepare(cfg)` when the caller already ran it (it is run here otherwise).
    """
    pre = prepared if prepared is not None else prepare(cfg)
    sel, part = pre.sel, pre.part
    limit_heap_growth()  # large blocks stay in the heap; release_free_memory per shard (vsae.memory)
    if cfg.threads is not None:
        torch.set_num_threads(max(1, cfg.threads))
    lm = (
        model
        if model is not None
        else load(cfg.model, device=cfg.device, dtype=_model_dtype(cfg), tower=cfg.tower)
    )
    if pre.source is not None and lm.modality == "image":
        full: Source = pre.source
    else:
        full = open_source(
            cfg.data, cfg.split, lm.modality, image_column=cfg.image_column, label_column=cfg.label_column
        )
    source, sample, picked = choose(full, cfg.max_images, cfg.max_images_order, cfg.seed)
    n_items = len(source)
    lo, hi = shard_part(full, picked, part) or block_range(n_items, part)  # sharded sources: by shard

    names = (cfg.hooks,) if isinstance(cfg.hooks, str) else cfg.hooks  # a lone "resid.3" is one hook
    hooks = list(dict.fromkeys(resolve_hook(lm, h).name for h in names))
    _check_layout(Path(cfg.out), len(hooks))
    probe = probe_hooks(lm, hooks, sel, cfg.seed)
    out = Path(cfg.out)
    table = {**source.table(), "n_used": n_items}
    if sample is not None and picked is not None:  # the chosen items; where they sit in the full source:
        table.update(sample=sample, source_index=picked.tolist(), source=full.describe())
    for h in hooks:  # before any store writer writes anything
        for name in ("images.json", "taxonomy.json"):
            _refuse_non_regular((out if len(hooks) == 1 else out / hook_dirname(h)) / name)
    provs: dict[str, dict[str, Any]] = {}
    for h in hooks:  # every refusal of a resume before the lock (a refused run leaves no trace)
        path = out if len(hooks) == 1 else out / hook_dirname(h)
        pooled = probe[h].ndim == 2
        provs[h] = prov = {
            **lm.provenance,
            "hook": h,
            "hook_module": lm.module_path(h),
            "tokens": "pooled" if pooled else str(sel),
            "has_cls": lm.has_cls,
            "n_prefix_tokens": lm.n_prefix,
            "model_dtype": str(lm.dtype).replace("torch.", ""),
            "data": full.describe(),
            "max_images": cfg.max_images,
            **({"max_images_sample": sample} if sample is not None else {}),
            "n_images": n_items,
            "seed": cfg.seed,
        }
        _check_same_run(path, part, prov)
        if (path / manifest_name(part)).exists():
            read_own_manifest(path / manifest_name(part))
    # one writer per part: a second extraction of the same part into --out is refused
    lock = LOCK_NAME if part[1] == 1 else f"{LOCK_NAME}.part-{part[0]}-of-{part[1]}"
    with output_lock(out, lock):
        return _write_stores(cfg, lm, source, hooks, probe, provs, table, part, lo, hi, sel)


def _write_stores(
    cfg: ExtractConfig,
    lm: LoadedModel,
    source: Source,
    hooks: list[str],
    probe: dict[str, torch.Tensor],
    provs: dict[str, dict[str, Any]],
    table: dict[str, Any],
    part: tuple[int, int],
    lo: int,
    hi: int,
    sel: TokenSelection,
) -> Path:
    """The extraction itself, under the output lock: open the writers, feed the batches, close."""
    out = Path(cfg.out)
    stores: list[HookStore] = []
    for h in hooks:
        path = out if len(hooks) == 1 else out / hook_dirname(h)
        pooled = probe[h].ndim == 2
        prov = provs[h]
        w = StoreWriter.create_or_resume(
            path,
            d=int(probe[h].shape[-1]),
            dtype=cfg.dtype,
            provenance=prov,
            rows_per_shard=cfg.rows_per_shard,
            part=part,
            start_image=lo,
            end_image=hi,
        )
        _write_json_once(path / "images.json", table, f"part{part[0]}")
        if table["taxonomy"]:
            _write_json_once(path / "taxonomy.json", table["taxonomy"], f"part{part[0]}")
        stores.append(HookStore(h, pooled, w))

    start = min(s.writer.next_image for s in stores)
    bar = tqdm(
        total=hi - lo,
        initial=start - lo,
        unit="img",
        desc=f"extract {','.join(hooks)}",
        disable=not cfg.progress,
        dynamic_ncols=True,
    )
    batches = iter_batches(
        source,
        lm.preprocess,
        start,
        hi,
        cfg.batch_size,
        origin=lo,
        num_workers=cfg.num_workers,
        max_pixels=cfg.max_pixels,
        pin_memory=str(cfg.device).startswith("cuda"),
    )
    with capture(lm, hooks) as cap:
        prev = start
        for batch in batches:
            feed(lm, stores, batch, sel, cfg.seed, cap)
            bar.update(batch.end - prev)
            prev = batch.end
    bar.close()
    for s in stores:
        if not s.writer.complete:
            s.writer.close()
    return out
