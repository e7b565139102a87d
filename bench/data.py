"""Data at scale (issue 26), ratios in one run on the same images:

  sources   extraction rows/s reading the same JPEGs as a folder, an `hf:` dataset saved to disk,
            the same rows as Parquet shards read streamed (`hf_stream:`, with 2 and 0 workers: each
            worker reads the stream of its range through) and `wds:` tar shards (the same model,
            hook, tokens and batches);
  workers   extraction rows/s from the folder with 1, 2 and 4 decoding workers;
  stream    rows/s of extract-then-train (vsae extract, then vsae train on the store) vs training
            straight from the model (ModelSource), at equal rows, for 1 and --epochs passes over
            the images (a store is extracted once; the stream runs the model every epoch).

Each variant runs --repeats times, interleaved; the table shows the median rows/s and the ratio
to the first variant of its group.

    python bench/data.py --images 256 --repeats 3 [--groups sources,workers,stream]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from vsae.data.fake_images import noise, write_hf, write_hf_parquet, write_wds
from vsae.data.image_sources import folder_source
from vsae.extract import ExtractConfig, extract
from vsae.models.tiny_models import build_tiny
from vsae.sae import SAEConfig
from vsae.store import ActivationStore
from vsae.train import ModelSource, StreamConfig, TrainConfig, train


def make_images(root: Path, n: int, size: int) -> Path:
    for i in range(n):
        d = root / "data" / f"c{i % 4}"
        d.mkdir(parents=True, exist_ok=True)
        noise(i, (size, size)).save(d / f"{i:05d}.jpg", quality=90)
    return root / "data"


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def extract_once(model, data, out, workers, batch) -> tuple[float, int]:
    cfg = ExtractConfig(
        model=str(model), hooks=("resid.1",), data=data, out=str(out), tokens="all",
        batch_size=batch, num_workers=workers, dtype="float32", progress=False, threads=1,
    )  # fmt: skip
    dt, path = timed(lambda: extract(cfg))
    return dt, len(ActivationStore.open(path))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--size", type=int, default=256, help="JPEG side in pixels")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--train-batch", type=int, default=1024)
    ap.add_argument("--groups", default="sources,workers,stream", help="comma-separated groups to run")
    args = ap.parse_args()
    groups = set(args.groups.split(","))
    root = Path(tempfile.mkdtemp(prefix="vsae-bench-data-"))
    model = build_tiny("clip_vision_proj", root / "model")
    data = make_images(root, args.images, args.size)
    src = folder_source(data)
    hf = write_hf(list(src.items), list(src.labels), list(src.classes), root / "hf")
    pattern = write_wds(list(src.items), list(src.labels), root / "wds", per_shard=64)
    pq = write_hf_parquet(list(src.items), list(src.labels), list(src.classes), root / "pq", per_shard=64)
    forms = {
        "folder": (str(data), 2),
        "hf": (f"hf:{hf}", 2),
        "hf_stream": (f"hf_stream:{pq}", 2),
        "hf_stream, in-process": (f"hf_stream:{pq}", 0),
        "wds": (f"wds:{pattern}", 2),
    }
    res: dict[str, list[float]] = {}
    k = 0
    for _ in range(args.repeats):
        for name, (spec, workers) in forms.items() if "sources" in groups else ():
            k += 1
            dt, rows = extract_once(model, spec, root / f"s{k}", workers, args.batch_size)
            res.setdefault(f"sources/{name} ({workers} workers)", []).append(rows / dt)
        for w in (1, 2, 4) if "workers" in groups else ():
            k += 1
            dt, rows = extract_once(model, str(data), root / f"s{k}", w, args.batch_size)
            res.setdefault(f"workers/folder {w}", []).append(rows / dt)
        for epochs in (1, args.epochs) if "stream" in groups else ():
            k += 1
            t_ext, rows = extract_once(model, str(data), root / f"s{k}", 2, args.batch_size)
            steps = epochs * rows // args.train_batch
            tcfg = TrainConfig(
                steps=steps, batch_size=args.train_batch, log_every=steps, ckpt_every=0, val_rows=0
            )
            store = ActivationStore.open(root / f"s{k}")
            cfg = SAEConfig(arch="topk", d_in=store.d, d_sae=8 * store.d, k=8)
            t_train, _ = timed(lambda: train(store, cfg, tcfg, root / f"r{k}", progress=False))  # noqa: B023
            res.setdefault(f"stream/{epochs} epoch(s): extract+train", []).append(
                steps * args.train_batch / (t_ext + t_train)
            )
            scfg = StreamConfig(model=str(model), hook="resid.1", data=str(data), tokens="all",
                                images_per_batch=args.batch_size, num_workers=2, buffer_rows=4 * args.train_batch)  # fmt: skip
            t_stream, _ = timed(lambda: train(ModelSource(scfg), cfg, tcfg, root / f"m{k}", progress=False))  # noqa: B023
            res.setdefault(f"stream/{epochs} epoch(s): from model", []).append(
                steps * args.train_batch / t_stream
            )
    print(f"images {args.images} ({args.size}px JPEG), tiny CLIP vision model, hook resid.1, tokens all; "
          f"{args.repeats} repeats, median rows/s")  # fmt: skip
    print("| group | variant | rows/s | ratio to first of group |\n|---|---|---|---|")
    first: dict[str, float] = {}
    for key, vals in res.items():
        group, variant = key.split("/", 1)
        med = statistics.median(vals)
        if group == "stream" and variant.endswith("extract+train"):
            first[group + variant.split(":")[0]] = med
        base = first.setdefault(group + (variant.split(":")[0] if group == "stream" else ""), med)
        print(f"| {group} | {variant} | {med:,.0f} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
