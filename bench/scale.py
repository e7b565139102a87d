"""A store of real size (issue 13, item 6): extract >= 10M rows, then train on it at the reader's rate.

    .venv/bin/python bench/scale.py --images 154000 --small-images 15400 --steps 300

In one run, everything under --dir (default bench/out/scale, gitignored):
1. ``vsae world export`` --images world images (train split);
2. ``vsae extract`` (the CLI, a subprocess) of the shipped world CLIP, hook resid.2, ``--tokens all``
   (65 rows per 32x32 image at patch 4, d=64, float16) into a small store (a seeded
   ``--max-images`` sample of --small-images) and a big one (all --images); the process tree's RSS is
   sampled from /proc every 0.2 s and the process's own peak RSS comes from ``os.wait4``;
3. the reader's shuffled rate on each store (``iter_batches(raw=True)`` and ``prefetch_batches``,
   what the trainer consumes), from the page cache;
4. ``vsae train`` (a subprocess) on each store: rows/s and ``data_wait_frac`` from its log.jsonl,
   its peak RSS from ``os.wait4``.
Prints a summary and writes --dir/scale.json; the stores are deleted afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

VSAE = str(Path(sys.executable).with_name("vsae"))
ROWS_PER_SHARD = 65536


def _status_kib(pid: int, keys: tuple[str, ...]) -> dict[str, int]:
    """Fields of /proc/pid/status in KiB (empty once the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return {k: int(x.split()[1]) for x in lines for k in keys if x.startswith(k + ":")}


def _tree_rss_kib(pid: int) -> int:
    """VmRSS of pid and its descendants (the DataLoader workers), KiB; 0 once gone."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += _status_kib(p, ("VmRSS",)).get("VmRSS", 0)
        try:
            for t in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (t / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
    return total


def run_measured(cmd: list[str], progress: Path | None = None) -> dict:
    """Run cmd; its wall time, own peak RSS (wait4), the peaks of its own RssAnon (private memory)
    and RssFile (mapped file pages: page cache, reclaimable) and samples (t, tree RSS MiB, shards)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, float, int]] = []
    peak = {"RssAnon": 0, "RssFile": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            shards = len(list(progress.glob("*.acts.npy"))) if progress and progress.exists() else 0
            samples.append((time.perf_counter() - t0, _tree_rss_kib(p.pid) / 1024, shards))
            for k, v in _status_kib(p.pid, tuple(peak)).items():
                peak[k] = max(peak[k], v)
            done.wait(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    done.set()
    th.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise SystemExit(f"error: {' '.join(cmd)} failed ({p.returncode}): {err.strip()[-2000:]}")
    return {
        "wall_s": wall,
        "maxrss_mib": ru.ru_maxrss / 1024,
        "rss_anon_peak_mib": peak["RssAnon"] / 1024,
        "rss_file_peak_mib": peak["RssFile"] / 1024,
        "samples": samples,
    }


def extract(clip: str, data: Path, out: Path, max_images: int | None, workers: int) -> dict:
    cmd = [VSAE, "extract", "--model", clip, "--hook", "resid.2", "--tokens", "all", "--data", str(data)]
    cmd += ["--split", "train", "--out", str(out), "--batch-size", "512", "--num-workers", str(workers)]
    cmd += ["--dtype", "float16", "--rows-per-shard", str(ROWS_PER_SHARD), "--quiet"]
    cmd += ["--max-images", str(max_images)] if max_images else []
    r = run_measured(cmd, progress=out)
    from vsae.store import ActivationStore

    s = ActivationStore.open(out)
    rows, rps = len(s), ROWS_PER_SHARD
    # peak tree RSS seen before 1M rows were on disk, and over the whole run
    first_m = [m for _, m, sh in r["samples"] if sh * rps <= 1_000_000] or [0.0]
    r.update(
        rows=rows,
        rows_per_s=rows / r["wall_s"],
        tree_rss_peak_first_1m_mib=max(first_m),
        tree_rss_peak_mib=max(m for _, m, _ in r["samples"]),
        bytes=sum(f.stat().st_size for f in out.glob("*.npy")),
    )
    del r["samples"]
    return r


def reader_rates(store: Path, batch: int, batches: int) -> dict:
    from vsae.store import ActivationStore
    from vsae.store.prefetch import prefetch_batches

    s = ActivationStore.open(store)
    for f in sorted(store.glob("*.acts.npy")):  # page cache, as the trainer's later epochs see it
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    per = len(s) // batch
    out = {}
    for name, make in {
        "iter_batches_raw": lambda: s.iter_batches(batch, seed=3, start_batch=per // 3, raw=True),
        "prefetch_batches": lambda: prefetch_batches(s, batch, seed=3, start_batch=per // 2),
    }.items():
        it = make()
        next(it)
        t0 = time.perf_counter()
        for _ in range(batches):
            next(it)
        out[name] = batches * batch / (time.perf_counter() - t0)
        if hasattr(it, "close"):
            it.close()
    return out


def train(store: Path, out: Path, a: argparse.Namespace) -> dict:
    if out.exists():
        shutil.rmtree(out)
    cmd = [VSAE, "train", "--acts", str(store), "--arch", a.arch, "--k", str(a.k), "--expansion", "16"]
    cmd += ["--steps", str(a.steps), "--batch-size", str(a.batch), "--out", str(out), "--log-every"]
    cmd += [str(a.log_every), "--ckpt-every", str(10 * a.steps), "--threads", str(a.threads), "--quiet"]
    r = run_measured(cmd)
    logs = [json.loads(x) for f in out.rglob("log.jsonl") for x in f.read_text().splitlines() if x]
    steady = logs[1:] or logs  # the first interval includes start-up and sha256 verification
    r.update(
        log_rows_per_s_median=statistics.median(x["rows_per_s"] for x in steady),
        data_wait_frac_median=statistics.median(x["data_wait_frac"] for x in steady),
        fvu_last=logs[-1]["fvu"],
        rows_per_s_overall=a.steps * a.batch / r["wall_s"],
    )
    del r["samples"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=154000, help="big store: images x 65 rows")
    ap.add_argument("--small-images", type=int, default=15400, help="small store (seeded sample)")
    ap.add_argument("--dir", default="bench/out/scale")
    ap.add_argument("--workers", type=int, default=1, help="extract --num-workers")
    ap.add_argument("--arch", default="topk")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1, help="trainer torch threads")
    ap.add_argument("--reader-batches", type=int, default=100)
    ap.add_argument("--keep", action="store_true", help="keep the stores")
    a = ap.parse_args()
    torch.set_num_threads(1)
    import vsae.world as world

    d = Path(a.dir)
    d.mkdir(parents=True, exist_ok=True)
    data = d / "world"
    res: dict = {"cpus": os.cpu_count(), "load_start": os.getloadavg(), "args": vars(a)}
    t0 = time.perf_counter()
    if not data.exists():
        subprocess.run(
            [VSAE, "world", "export", "--out", str(data), "--n", f"train={a.images}", "--n", "val=0"]
            + ["--n", "test=0", "--n", "ood_background=0", "--n", "ood_combo=0"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    res["export_s"] = time.perf_counter() - t0
    clip = str(world.shipped_clip_dir())
    stores = {"small": (d / "store-small", a.small_images), "big": (d / "store-big", None)}
    for name, (path, n) in stores.items():
        if path.exists():
            shutil.rmtree(path)
        res[f"extract_{name}"] = e = extract(clip, data, path, n, a.workers)
        print(f"extract {name}: {json.dumps(e)}", flush=True)
    for name, (path, _) in stores.items():
        res[f"reader_{name}"] = rr = reader_rates(path, a.batch, a.reader_batches)
        print(f"reader {name}: {json.dumps(rr)}", flush=True)
        res[f"train_{name}"] = tr = train(path, d / f"run-{name}", a)
        print(f"train {name}: {json.dumps(tr)}", flush=True)
    res["load_end"] = os.getloadavg()
    res["total_s"] = time.perf_counter() - t0
    (d / "scale.json").write_text(json.dumps(res, indent=1))
    print(f"total {res['total_s']:.0f}s; load {res['load_start']} -> {res['load_end']}")
    if not a.keep:
        for path, _ in stores.values():
            shutil.rmtree(path)
        shutil.rmtree(data)


if __name__ == "__main__":
    main()
