"""Training batches streamed from a model, without an activation store (as SAELens and sparsify
train): `ModelSource` runs the model over the images and serves the rows at one hook point through
a shuffle buffer, and the `Trainer` trains every SAE of a sweep on each batch (one forward pass of
the model feeds them all).

The shuffle buffer (`StreamConfig.buffer_rows`): each epoch visits the images in a seeded order
(a permutation by (seed, epoch)); a refill forwards the next images of that order, whole model
batches at a time, until the buffer holds at least `buffer_rows` rows (or the epoch ends with at
least one batch held; with less it goes on into the next epoch), permutes them with a generator
seeded by (seed, refill number) and serves consecutive `batch_size` slices; the rest (fewer than
one batch) is dropped, and the next refill starts with an empty buffer. Rows are the
extraction's (`vsae.models.select_tokens`, random:K seeded by (seed, image index)), so the same
images give the same rows as an extracted store.

Exact resume: where the refill holding a batch began, {epoch, image position, refill number, its
first batch}, is the stream's state (`state_at`); the trainer writes it into ``train_state.json``
(JSON, no pickle) and a resumed run `restore`s it, recomputes that refill (the same images in the
same model batches, the same seeded permutation) and skips its batches already trained on.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from vsae.data import iter_batches, open_source
from vsae.data.subset import choose
from vsae.errors import VsaeError
from vsae.extract import probe_hooks
from vsae.models import LoadedModel, capture, load, parse_selection, resolve_hook, select_tokens
from vsae.train.stream_config import StreamConfig as StreamConfig  # torch-free (the CLI's options)

_STATE_KEYS = ("first_batch", "epoch", "image_pos", "refill")


class ModelSource:
    """A training-batch source (`len`, `d`, `provenance`, `fingerprint`, `iter_batches`) that runs
    `cfg.model` on `cfg.data` at `cfg.hook`; `seed` seeds the image sample (max_images) and the
    random:K tokens as in `vsae extract --seed`. `skipped`: image index -> reason, for every image
    that could not be used."""

    def __init__(
        self, cfg: StreamConfig, device: str = "cpu", seed: int = 0, model: LoadedModel | None = None
    ):
        for flag, v in (("--images-per-batch", cfg.images_per_batch), ("--buffer-rows", cfg.buffer_rows)):
            if v < 1:
                raise VsaeError(f"{flag} {v}: must be at least 1")
        if cfg.num_workers < 0:
            raise VsaeError(f"--num-workers {cfg.num_workers}: must be at least 0")
        self.cfg, self.seed = cfg, seed
        self.sel = parse_selection(cfg.tokens)
        self.lm = (
            model
            if model is not None
            else load(cfg.model, device=device, dtype=cfg.model_dtype, tower=cfg.tower)
        )
        full = open_source(
            cfg.data,
            cfg.split,
            self.lm.modality,
            image_column=cfg.image_column,
            label_column=cfg.label_column,
        )
        self.images, sample, _ = choose(full, cfg.max_images, cfg.max_images_order, seed)
        self.hook = resolve_hook(self.lm, cfg.hook).name
        out = probe_hooks(self.lm, [self.hook], self.sel, seed)[self.hook]
        self.d = int(out.shape[-1])
        self.pooled = out.ndim == 2
        rows = self._select(out, np.zeros(out.shape[0], np.int64))
        self.rows_per_image = max(1, rows.shape[0] // out.shape[0])
        self.provenance: dict[str, Any] = {
            **self.lm.provenance,
            "hook": self.hook,
            "tokens": "pooled" if self.pooled else str(self.sel),
            "has_cls": self.lm.has_cls,
            "n_prefix_tokens": self.lm.n_prefix,
            "model_dtype": str(self.lm.dtype).replace("torch.", ""),
            "data": full.describe(),
            "max_images": cfg.max_images,
            **({"max_images_sample": sample} if sample is not None else {}),
            "n_images": len(self.images),
            "seed": seed,
            "stream": {"buffer_rows": cfg.buffer_rows, "images_per_batch": cfg.images_per_batch},
        }
        self.fingerprint = (
            "stream:"
            + hashlib.sha256(json.dumps(self.provenance, sort_keys=True, default=str).encode()).hexdigest()
        )
        self.skipped: dict[int, str] = {}
        self._starts: dict[int, list[dict[str, int]]] = {}  # seed -> refill starts seen, by first batch
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Rows of one pass over the images (nominal: skipped images and dropped buffer rests aside)."""
        return len(self.images) * self.rows_per_image

    def _select(self, out: torch.Tensor, ids: np.ndarray, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The rows of a forwarded batch, as extraction selects them (`vsae.extract.commit`)."""
        mask = mask if self.lm.modality == "text" else None
        return select_tokens(out, self.sel, self.lm.has_cls, ids, self.seed, self.lm.n_prefix, mask)[0]

    # ----- resume state ----------------------------------------------------------------------
    def state_at(self, batch: int, seed: int) -> dict[str, int] | None:
        """The start of the refill that serves batch `batch` of the stream seeded `seed` (JSON)."""
        with self._lock:
            known = [s for s in self._starts.get(seed, []) if s["first_batch"] <= batch]
        return dict(max(known, key=lambda s: s["first_batch"])) if known else None

    def restore(self, state: dict[str, Any], seed: int) -> None:
        """Make a refill start known (from a checkpoint), so that `iter_batches` resumes there."""
        if not isinstance(state, dict) or any(not isinstance(state.get(k), int) for k in _STATE_KEYS):
            raise VsaeError(
                "the checkpoint's stream position is malformed; delete the run directory to restart"
            )
        with self._lock:
            self._starts.setdefault(seed, []).append({k: int(state[k]) for k in _STATE_KEYS})

    def _record(self, seed: int, start: dict[str, int]) -> None:
        with self._lock:
            have = self._starts.setdefault(seed, [])
            if start not in have:
                have.append(dict(start))

    # ----- the stream --------------------------------------------------------------------------
    def order(self, seed: int, epoch: int) -> np.ndarray:
        """The image order of an epoch: a permutation seeded by (seed, epoch)."""
        return np.random.default_rng([int(seed), int(epoch), 2718]).permutation(len(self.images))

    def epoch_rows(self, seed: int, epoch: int, image_pos: int) -> Iterator[tuple[torch.Tensor, int]]:
        """(rows of one model batch [b, d] float32 on the CPU, the image position after it) for
        the epoch's images from `image_pos` on, through one DataLoader (its workers live as long
        as the epoch is being read)."""
        order = self.order(seed, epoch)
        picked = self.images.pick([int(i) for i in order])
        batches = iter_batches(
            picked,
            self.lm.preprocess,
            image_pos,
            len(picked),
            self.cfg.images_per_batch,
            origin=0,  # the same grid wherever reading starts: a resumed refill sees the same batches
            num_workers=self.cfg.num_workers,
            max_pixels=self.cfg.max_pixels,
        )
        for b in batches:
            for pos, _, reason in b.skipped:
                self.skipped[int(order[pos])] = reason
            if b.inputs is None:
                yield torch.empty(0, self.d), b.end
                continue
            with capture(self.lm, [self.hook]) as cap, torch.no_grad():
                self.lm.run(b.inputs)
            mask = b.inputs.get("attention_mask") if isinstance(b.inputs, dict) else None
            yield self._select(cap.outputs[self.hook], order[b.ids], mask).detach().float().cpu(), b.end

    def iter_batches(self, batch_size: int, *, seed: int = 0, start_batch: int = 0) -> Iterator[torch.Tensor]:
        """Batches [batch_size, d] from `start_batch` on: a pure function of (seed, batch number)
        given the refill starts known (recorded as it runs, or `restore`d).

        A refill forwards whole model batches until it holds max(`buffer_rows`, `batch_size`)
        rows, or the epoch ends with at least one batch held (with less it goes on into the next
        epoch)."""
        pos = self.state_at(start_batch, seed) or {"first_batch": 0, "epoch": 0, "image_pos": 0, "refill": 0}
        batch, epoch, image_pos, refill = (pos[k] for k in _STATE_KEYS)
        target = max(self.cfg.buffer_rows, batch_size)
        reader = self.epoch_rows(seed, epoch, image_pos)
        epoch_rows, whole_epoch = 0, image_pos == 0  # rows read from this epoch; read from its start
        while True:
            self._record(
                seed, {"first_batch": batch, "epoch": epoch, "image_pos": image_pos, "refill": refill}
            )
            parts: list[torch.Tensor] = []
            held = 0
            while held < target:
                nxt = next(reader, None)
                if nxt is None:  # the epoch ended
                    if whole_epoch and epoch_rows == 0:
                        raise VsaeError(
                            f"none of the {len(self.images)} images is usable (see the reasons in skipped)"
                        )
                    epoch, image_pos, epoch_rows, whole_epoch = epoch + 1, 0, 0, True
                    reader = self.epoch_rows(seed, epoch, 0)
                    if held >= batch_size:
                        break
                    continue
                rows, image_pos = nxt
                parts.append(rows)
                held += rows.shape[0]
                epoch_rows += rows.shape[0]
            if image_pos >= len(
                self.images
            ):  # ended exactly at the epoch's end: the next refill starts the next
                epoch, image_pos, epoch_rows, whole_epoch = epoch + 1, 0, 0, True
                reader = self.epoch_rows(seed, epoch, 0)
            buf = torch.cat(parts)
            perm = torch.randperm(
                buf.shape[0], generator=torch.Generator().manual_seed(int(seed) * 1_000_003 + refill)
            )
            n = buf.shape[0] // batch_size
            for i in range(n):
                if batch + i >= start_batch:
                    yield buf[perm[i * batch_size : (i + 1) * batch_size]]
            batch, refill = batch + n, refill + 1
