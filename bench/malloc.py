"""glibc's mmap threshold during extraction: system time against memory that stays flat.

`vsae.memory.limit_heap_growth` sets glibc's M_MMAP_THRESHOLD so that freed large blocks go back
to the OS (a 10M-row extraction's private memory otherwise grew ~80 MiB per million rows,
bench/RESULTS.md "A store of real size"). Every block above the threshold is then a fresh
mmap: page faults to zero it, munmap when freed. Issue 30 measured 91 of 168 s wall in the
kernel for 3,000 images of an EfficientNet-Lite0 at 1 MiB. This bench, in one run:

1. extraction: each setting in its own process (`--repeats` rounds, settings interleaved, so load
   changes of the shared machine hit all alike): `vsae.extract.extract` of an EfficientNet-Lite0-
   shaped CNN (random weights, 224 px, inverted-residual blocks: the tensor sizes of the real
   one) over the same noise images, `--hook resid.-1 --tokens patches`; user and system CPU
   seconds (getrusage), minor page faults, wall, RssAnon peak; ratios to the 1 MiB vsae used before;
2. flatness: the fragmentation pattern of tests/test_memory.py (freed batch-sized buffers pinned
   by small live allocations) per setting and buffer size: MiB the process still holds after
   freeing 400 MiB of buffers (flat = near 0).

    python bench/malloc.py --images 160 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MiB = 1 << 20
# "glibc": no setting (glibc's dynamic threshold); numbers: M_MMAP_THRESHOLD in bytes alone
# (1 MiB: vsae's setting before issue 30; glibc's largest allowed is 32 MiB on 64-bit);
# "+trim": and malloc_trim(0) after each shard is written (extraction) / after the buffers are
# freed (flatness); "vsae": what `vsae.extract` does now (`limit_heap_growth()`: threshold 32
# MiB, trim threshold 64 MiB; `release_free_memory()` per shard), with no monkeypatching.
SETTINGS = ["glibc", str(1 * MiB), str(4 * MiB), str(32 * MiB), "glibc+trim", "vsae"]
BASE = str(1 * MiB)


def _label(s: str) -> str:
    if s == "vsae":
        return "vsae now (32 MiB, trim 64 MiB, release per shard)"
    t, trim = s.removesuffix("+trim"), s.endswith("+trim")
    label = t if t == "glibc" else f"{int(t) // MiB} MiB" + (" (vsae before)" if t == BASE else "")
    return label + (" + trim" if trim else "")


def _apply(setting: str) -> bool:
    """Set the threshold of ``setting``; True when it took effect."""
    import ctypes

    from vsae.memory import M_MMAP_THRESHOLD, limit_heap_growth

    t = setting.removesuffix("+trim")
    if t == "vsae":
        return limit_heap_growth()
    return True if t == "glibc" else bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, int(t)))


def _trim() -> None:
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)


def rss_anon_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon"):
                return int(line.split()[1]) / 1024
    return float("nan")


# ----------------------------------------------------------------------------- the model
def efficientnet_lite0_like():
    """EfficientNet-Lite0's layout (stem 32, MBConv stages 16/24/40/80/112/192/320, head 1280;
    ReLU6, no squeeze-excite) with random weights: the tensor sizes of the real network."""
    import torch
    from torch import nn

    def conv_bn(cin, cout, k, s, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, *([nn.ReLU6(inplace=True)] if act else []))

    class MBConv(nn.Module):
        def __init__(self, cin, cout, k, s, e):
            super().__init__()
            mid = cin * e
            self.body = nn.Sequential(
                *([conv_bn(cin, mid, 1, 1)] if e != 1 else []),
                conv_bn(mid, mid, k, s, groups=mid),
                conv_bn(mid, cout, 1, 1, act=False),
            )
            self.skip = s == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.skip else y

    # (expand, channels, repeats, stride, kernel) of EfficientNet-Lite0
    spec = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3), (6, 112, 3, 1, 5),
            (6, 192, 4, 2, 5), (6, 320, 1, 1, 3)]  # fmt: skip
    stages, cin = [], 32
    for e, c, n, s, k in spec:
        blocks = [MBConv(cin if i == 0 else c, c, k, s if i == 0 else 1, e) for i in range(n)]
        stages.append(nn.Sequential(*blocks))
        cin = c

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_stem = conv_bn(3, 32, 3, 2)
            self.blocks = nn.Sequential(*stages)
            self.conv_head = conv_bn(320, 1280, 1, 1)
            self.classifier = nn.Linear(1280, 1000)

        def forward(self, x):
            return self.classifier(self.conv_head(self.blocks(self.conv_stem(x))).mean((2, 3)))

    torch.manual_seed(0)
    return Net().eval()


def preprocess(images):
    import numpy as np
    import torch

    a = [np.asarray(im.convert("RGB").resize((224, 224)), np.float32) / 255 for im in images]
    return torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).contiguous()


# ----------------------------------------------------------------------------- children
def child_extract(setting: str, data: str, out: str, batch_size: int) -> dict:
    import vsae.extract as ex
    from vsae.models import from_module
    from vsae.store.writer import StoreWriter

    applied = _apply(setting)
    if setting != "vsae":  # the bench's setting, not vsae's; and no release per shard
        ex.limit_heap_growth = lambda: applied  # type: ignore[assignment]
        ex.release_free_memory = lambda: False  # type: ignore[assignment]
    if setting.endswith("+trim"):
        flush = StoreWriter.flush

        def flush_and_trim(self: StoreWriter) -> None:
            flush(self)
            _trim()

        StoreWriter.flush = flush_and_trim  # type: ignore[method-assign]
    lm = from_module(efficientnet_lite0_like(), preprocess, name="effnet-lite0-like", blocks="blocks")
    peak = [rss_anon_mib()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], rss_anon_mib())

    threading.Thread(target=sample, daemon=True).start()
    cfg = ex.ExtractConfig(model="effnet", hooks=("resid.-1",), tokens="patches", data=data, out=out,
                           batch_size=batch_size, num_workers=0, threads=1, progress=False,
                           dtype="float16", rows_per_shard=8192)  # fmt: skip
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    ex.extract(cfg, model=lm)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    done.set()
    return {
        "setting": setting,
        "applied": applied,
        "wall": wall,
        "user": r1.ru_utime - r0.ru_utime,
        "sys": r1.ru_stime - r0.ru_stime,
        "minflt": r1.ru_minflt - r0.ru_minflt,
        "rss_anon_peak": max(peak[0], rss_anon_mib()),
    }


def child_fragment(setting: str, buf_mib: float) -> dict:
    """tests/test_memory.py's pattern: buffers each followed by a small live block, then freed."""
    import ctypes

    import numpy as np

    assert _apply(setting)
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    a = np.ones(30 * MiB, np.uint8)  # a freed 30 MiB tensor raises glibc's dynamic threshold to it
    del a
    n = int(400 / buf_mib)
    big, small = [], []
    for _ in range(n):
        big.append(np.ones(int(buf_mib * MiB), np.uint8))
        small.append(libc.malloc(4096))
    before = rss_anon_mib()
    big.clear()
    if setting.endswith("+trim") or setting == "vsae":
        _trim()
    return {"setting": setting, "buf_mib": buf_mib, "held_before": before, "kept_after_free": rss_anon_mib()}


# ----------------------------------------------------------------------------- parent
def _run(args: list[str], env: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=160)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--settings", default=",".join(SETTINGS))
    p.add_argument("--buffers", default="2,8.5", help="buffer sizes (MiB) of the flatness check")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        kind, *rest = a.child
        res = (
            child_extract(rest[0], rest[1], rest[2], int(rest[3]))
            if kind == "extract"
            else child_fragment(rest[0], float(rest[1]))
        )
        print(json.dumps(res))
        return
    import numpy as np
    from PIL import Image

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.setdefault("OMP_NUM_THREADS", "1")
    settings = a.settings.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for i in range(a.images):
            Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(f"{tmp}/{i:04d}.png")
        (Path(tmp) / "list.txt").write_text("".join(f"{i:04d}.png\n" for i in range(a.images)))
        runs: dict[str, list[dict]] = {s: [] for s in settings}
        print(f"load average at start: {os.getloadavg()}", flush=True)
        for r in range(a.repeats):
            for s in settings:
                out = f"{tmp}/store-{r}-{s}"
                res = _run(["--child", "extract", s, f"{tmp}/list.txt", out, str(a.batch_size)], env)
                runs[s].append(res)
                print(f"  round {r} {_label(s):>8}: wall {res['wall']:.1f} s, user {res['user']:.1f} s, "
                      f"sys {res['sys']:.1f} s, minflt {res['minflt']:,}, RssAnon peak {res['rss_anon_peak']:.0f} MiB",
                      flush=True)  # fmt: skip
                subprocess.run(["rm", "-rf", out])
        print(f"load average at end: {os.getloadavg()}")
        med = {s: {k: float(np.median([x[k] for x in v])) for k in ("wall", "user", "sys", "minflt", "rss_anon_peak")}
               for s, v in runs.items()}  # fmt: skip
        b = med.get(BASE)
        print(f"\nextraction, {a.images} images, batch {a.batch_size}, medians of {a.repeats}:")
        print(
            "| M_MMAP_THRESHOLD | wall s | user s | sys s | minor faults | RssAnon peak MiB | sys / 1 MiB | faults / 1 MiB |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for s in settings:
            m = med[s]
            rs = f"{m['sys'] / b['sys']:.2f}" if b else "-"
            rw = f"{m['minflt'] / b['minflt']:.2f}" if b else "-"  # wall: noise on a shared machine
            print(f"| {_label(s)} | {m['wall']:.1f} | {m['user']:.1f} | {m['sys']:.1f} | {m['minflt']:,.0f} | "
                  f"{m['rss_anon_peak']:.0f} | {rs} | {rw} |")  # fmt: skip
        print(
            "\nflatness: RssAnon (MiB) still held after freeing ~400 MiB of buffers pinned by small live blocks"
        )
        bufs = [float(x) for x in a.buffers.split(",")]
        print("| M_MMAP_THRESHOLD | " + " | ".join(f"{x:g} MiB buffers" for x in bufs) + " |")
        print("|---|" + "---|" * len(bufs))
        for s in settings:
            kept = [_run(["--child", "fragment", s, str(x)], env)["kept_after_free"] for x in bufs]
            print(f"| {_label(s)} | " + " | ".join(f"{k:.0f}" for k in kept) + " |")


if __name__ == "__main__":
    main()
