"""Store reader throughput: shuffled ``iter_batches`` rows/s, float32 vs storage dtype vs prefetch.

    .venv/bin/python bench/store.py --rows 524288 --d 1024 --dtype float16 --batch 4096

Builds a store of random rows in --dir (kept, reused when it matches), warms the page cache by
reading every shard file once, then times (same run, same store, one after another):
``iter_batches`` as the trainer read it before issue 13 (float32 rows), the same batches in the
storage dtype (``raw=True``; the trainer converts them on the device) and
``vsae.store.prefetch.prefetch_batches`` (a reader thread; what the trainer consumes), each for
--batches batches, best of --repeats. Target (issue 13): >= 500k rows/s shuffled, d=1024
float16, from page cache on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch


def build(path: Path, rows: int, d: int, dtype: str) -> None:
    from vsae.store import ActivationStore, StoreWriter

    if (path / "manifest.json").exists():
        s = ActivationStore.open(path)
        if len(s) == rows and s.d == d and s.dtype_name == dtype and s.complete:
            return
        raise SystemExit(f"error: {path} holds another store; pass a new --dir")
    w = StoreWriter.create_or_resume(
        path, d=d, dtype=dtype, provenance={"model": "bench"}, rows_per_shard=65536
    )
    g = torch.Generator().manual_seed(0)
    chunk = 16384
    for a in range(0, rows, chunk):
        b = min(a + chunk, rows)
        img = np.arange(a, b, dtype=np.int64)
        w.add(torch.randn(b - a, d, generator=g), img, np.zeros(b - a, dtype=np.int64))
        w.mark_images_done(b)
    w.close()


def warm(path: Path) -> None:
    for f in sorted(path.rglob("*.npy")):
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass


def rate(make, batches: int, batch: int, repeats: int) -> tuple[float, float]:
    """(rows per wall second, rows per CPU second of this process, all threads), best of repeats."""
    best, best_cpu = 0.0, 0.0
    for r in range(repeats):
        it = make(r)
        next(it)  # the first batch fills the first buffer / starts the thread
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(batches):
            next(it)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        best, best_cpu = max(best, batches * batch / wall), max(best_cpu, batches * batch / max(cpu, 1e-9))
        close = getattr(it, "close", None)
        if close:
            close()
    return best, best_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=524288)
    ap.add_argument("--d", type=int, default=1024)
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--batches", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/vsae-bench-store")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from vsae.store import ActivationStore
    from vsae.store.prefetch import prefetch_batches

    path = Path(args.dir)
    t0 = time.perf_counter()
    build(path, args.rows, args.d, args.dtype)
    built = time.perf_counter() - t0
    warm(path)
    s = ActivationStore.open(path)
    B, n = args.batch, args.batches
    # start each repeat at another place of the epoch, so no repeat re-reads a buffer just read
    per = len(s) // B
    starts = [(r * 3 * n) % per for r in range(args.repeats)]
    res = {
        "iter_batches float32": rate(
            lambda r: s.iter_batches(B, seed=1, start_batch=starts[r]), n, B, args.repeats
        ),
        f"iter_batches raw {args.dtype}": rate(
            lambda r: s.iter_batches(B, seed=1, start_batch=starts[r], raw=True), n, B, args.repeats
        ),
        "prefetch_batches (thread)": rate(
            lambda r: prefetch_batches(s, B, seed=1, start_batch=starts[r]), n, B, args.repeats
        ),
    }
    load = os.getloadavg()[0]
    print(
        f"# store {path}: {len(s)} rows, d={s.d}, {s.dtype_name}; built/reused in {built:.0f}s; "
        f"batch {B}, {n} batches, best of {args.repeats}; torch threads {args.threads}; "
        f"cpus {os.cpu_count()}, load average {load:.1f}; peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    base = res["iter_batches float32"][0]
    print(f"{'reader':<34}{'rows/s':>12}{'ratio':>8}{'rows/CPU-s':>14}")
    for k, (v, c) in res.items():
        print(f"{k:<34}{v:>12,.0f}{v / base:>7.2f}x{c:>14,.0f}")
    best = max(v for v, _ in res.values())
    print(f"target >= 500,000 rows/s shuffled: {'MET' if best >= 5e5 else 'NOT MET'} (best {best:,.0f})")


if __name__ == "__main__":
    main()
