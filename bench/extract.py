"""Extraction throughput vs a bare forward pass of the same model on the same in-memory images.

For each hook configuration it times, on the same preprocessed batches in the same process:
  bare    model(**inputs), full forward, no hooks;
  hooked  lm.run under vsae.models.capture (forward hooks, early stop after the last hook);
  select  hooked + token selection + conversion to the storage dtype on the CPU;
  extract the pipeline's own step (vsae.extract.feed) writing a real store, closed at the end;
  post    only the pipeline's work after the forward pass (vsae.extract.commit: selection, dtype
          conversion, buffering, shard and manifest writes), timed alone: the overhead without
          the noise of a second forward pass.
The four run back to back on every batch and the ratios are medians over --repeats passes
(paired timing: a shared machine is noisy); img/s are the best pass. The ratio
extract/bare is the cost of hooking, selection and writing relative to the forward pass
(target <= 1.05 for full-depth hooks; hooks before the last block are cheaper than a bare
forward because the pass stops early).

    python bench/extract.py --preset b32 --images 32 --batch-size 16
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vsae.data import Batch
from vsae.extract import HookStore, commit, feed
from vsae.models import capture, load, parse_selection, select_tokens
from vsae.models.tiny_models import build_tiny
from vsae.store import StoreWriter
from vsae.store.dtypes import to_storage

PRESETS = {
    # CLIP ViT-B/32 vision tower shape with random weights (224 px, 50 tokens, 12 x 768).
    "b32": dict(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        image_size=224,
        patch_size=32,
        projection_dim=512,
    ),
    # A small ViT (112 px, 50 tokens, 6 x 256): overheads weigh more than on real models.
    "small": dict(
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=6,
        num_attention_heads=4,
        image_size=112,
        patch_size=16,
        projection_dim=128,
    ),
}
# (hooks, tokens); a mid-depth hook is added per model (it stops the forward pass half-way).
CONFIGS = [(("embed",), "cls"), (("resid.-1",), "all"), (("resid.-1", "embed"), "patches")]


def build_model(preset: str, root: Path) -> Path:
    if preset == "tiny":
        return build_tiny("clip_vision_proj", root / "tiny")
    import transformers as T

    torch.manual_seed(0)
    out = root / preset
    cfg = T.CLIPVisionConfig(**PRESETS[preset])
    T.CLIPVisionModelWithProjection(cfg).eval().save_pretrained(out)
    s = cfg.image_size
    T.CLIPImageProcessor(size={"shortest_edge": s}, crop_size={"height": s, "width": s}).save_pretrained(out)
    return out


def make_batches(lm, n: int, bs: int) -> list[Batch]:
    from PIL import Image

    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)) for _ in range(n)]
    out = []
    for i in range(0, n, bs):
        ids = np.arange(i, min(n, i + bs), dtype=np.int64)
        out.append(Batch(ids, lm.preprocess(imgs[i : i + bs]), [], int(ids[-1]) + 1))
    return out


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


class Variants:
    """The four ways of processing one batch (see the module docstring), timed batch by batch."""

    def __init__(self, lm, hooks, sel, dtype: str, root: Path, n_images: int):
        self.lm, self.hooks, self.sel, self.dtype = lm, hooks, sel, dtype
        with capture(lm, hooks) as cap:
            lm.run(lm.dummy_inputs())
        d = Path(tempfile.mkdtemp(dir=root))
        self.stores = [
            HookStore(
                h,
                cap.outputs[h].ndim == 2,
                StoreWriter.create_or_resume(
                    d / h.replace(":", "_"),
                    d=cap.outputs[h].shape[-1],
                    dtype=dtype,
                    provenance={"bench": True},
                    end_image=n_images,
                ),
            )
            for h in cap.names
        ]
        self.post_stores = [
            HookStore(
                h.name,
                h.pooled,
                StoreWriter.create_or_resume(
                    d / ("post-" + h.name.replace(":", "_")),
                    d=h.writer.m["d"],
                    dtype=dtype,
                    provenance={"bench": True},
                    end_image=n_images,
                ),
            )
            for h in self.stores
        ]
        self.cap = capture(lm, hooks).__enter__()

    def bare(self, b: Batch) -> None:
        self.cap.__exit__()  # no hooks at all
        with torch.inference_mode():
            self.lm.model(**self.lm.to_device(b.inputs))
        self.cap.__enter__()

    def hooked(self, b: Batch) -> None:
        self.lm.run(b.inputs)

    def select(self, b: Batch) -> None:
        self.lm.run(b.inputs)
        for h in self.cap.names:
            rows, _, _ = select_tokens(
                self.cap.outputs[h], self.sel, self.lm.has_cls, b.ids, 0, self.lm.n_prefix
            )
            to_storage(rows, self.dtype)

    def extract(self, b: Batch) -> None:
        feed(self.lm, self.stores, b, self.sel, 0, self.cap)

    def post(self, b: Batch) -> None:
        """Only the pipeline's work after the forward pass (on the outputs `extract` just captured)."""
        commit(self.lm, self.post_stores, b, self.sel, 0, self.cap.outputs)

    def close(self) -> int:
        self.cap.__exit__()
        for s in self.stores:
            s.writer.close()
        return sum(s.writer.rows for s in self.stores)

    def close_post(self) -> None:
        for s in self.post_stores:
            s.writer.close()


def run_once(lm, batches, hooks, sel, dtype, root) -> tuple[dict[str, float], int]:
    """One pass over the batches; for each batch the four variants run back to back (paired timing)."""
    v = Variants(lm, hooks, sel, dtype, root, int(batches[-1].end))
    t = {"bare": 0.0, "hooked": 0.0, "select": 0.0, "extract": 0.0, "post": 0.0}
    for b in batches:
        for name in t:
            t[name] += _timed(lambda name=name, b=b: getattr(v, name)(b))
    c0 = time.perf_counter()
    rows = v.close()
    t["extract"] += time.perf_counter() - c0  # the final shard and manifest are part of extraction
    t["post"] += _timed(v.close_post)
    return t, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="b32", choices=["b32", "small", "tiny"])
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
    root = Path(tempfile.mkdtemp(prefix="vsae-bench-"))
    lm = load(str(build_model(args.preset, root)), device=args.device)
    batches = make_batches(lm, args.images, args.batch_size)
    with torch.inference_mode():
        lm.model(**lm.to_device(batches[0].inputs))  # warm-up
    print(
        f"preset={args.preset} layers={lm.num_layers} images={args.images} batch={args.batch_size} "
        f"threads={args.threads} device={args.device} dtype={args.dtype} repeats={args.repeats}\n"
    )
    header = (
        "| bench | model | hook | tokens | rows | bare img/s | extract img/s | hooked/bare | "
        "select/bare | extract/bare | post-forward/bare |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    mid = f"resid.{lm.num_layers // 2 - 1}"
    for hooks, tokens in [*CONFIGS, ((mid,), "patches")]:
        sel = parse_selection(tokens)
        runs = [run_once(lm, batches, hooks, sel, args.dtype, root) for _ in range(args.repeats)]
        rows = runs[0][1]
        ratio = {
            k: float(np.median([t[k] / t["bare"] for t, _ in runs]))
            for k in ("hooked", "select", "extract", "post")
        }
        bare = min(t["bare"] for t, _ in runs)
        ext = min(t["extract"] for t, _ in runs)
        print(
            f"| extract | clip-vit {args.preset} (random) | {'+'.join(hooks)} | {tokens} | {rows} | "
            f"{args.images / bare:.1f} | {args.images / ext:.1f} | {ratio['hooked']:.3f} | "
            f"{ratio['select']:.3f} | {ratio['extract']:.3f} | {ratio['post']:.4f} |"
        )


if __name__ == "__main__":
    main()
