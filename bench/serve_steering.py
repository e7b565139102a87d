"""What browsing the steering SAE costs `vsae serve` on a demo output (never run as a test).

    python bench/serve_steering.py DEMO_OUT        # copies DEMO_OUT to a tmp dir (fresh cache)

The steering SAE's store (`vsae.serve.steering_store`: 2,000 world/train images, every patch
token at the LLaVA's steered hook) is extracted on the first request for that SAE and cached
under DEMO/serve-cache. Each case runs in a fresh process (torch 1 thread, as `vsae serve`):

* start: `create_app` and `warm()` (the default SAE's index and its heatmap model), as the
  command does before it listens: the server's cost without the steering SAE;
* llava: the playground loads the LLaVA (paid anyway by the first steer);
* steering SAE, first time: extraction + its index + MS (what the first page of it waits for);
* steering SAE, cached: the same on a second start (the store is reused).

Memory is the process's resident set (VmRSS) after each step, and its peak (VmHWM).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB."""
    kv = dict(
        line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
    )
    return int(kv["VmRSS"].split()[0]) / 1024, int(kv["VmHWM"].split()[0]) / 1024


def one(demo: str) -> dict:
    """Time and memory of each step in this process."""
    import torch

    torch.set_num_threads(1)
    from vsae.serve import create_app, from_demo

    out: dict = {"rss_before": _rss()[0]}
    t = time.perf_counter()
    st = create_app(from_demo(demo), diffusion=None).state.vsae
    st.warm()
    out["start_s"], (out["start_rss"], _) = time.perf_counter() - t, _rss()
    t = time.perf_counter()
    st.playground.load()
    out["llava_s"], (out["llava_rss"], _) = time.perf_counter() - t, _rss()
    t = time.perf_counter()
    ix = st.index(st.steering.id)
    out["steering_s"], (out["steering_rss"], out["peak_rss"]) = time.perf_counter() - t, _rss()
    out["n_images"], out["rows"] = int(ix.Z.shape[0]), len(ix.store)
    out["store_mb"] = sum(p.stat().st_size for p in Path(ix.src.acts).iterdir()) / 2**20
    return out


def main() -> None:
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(one(sys.argv[2])))
        return
    tmp = Path(tempfile.mkdtemp(prefix="vsae-bench-steer-"))
    demo = tmp / "demo"
    shutil.copytree(sys.argv[1], demo, ignore=shutil.ignore_patterns("serve-cache"))
    try:
        for case in ("first time", "cached"):
            r = json.loads(subprocess.check_output([sys.executable, __file__, "--one", str(demo)]))
            print(
                f"{case:10s}: start {r['start_s']:.1f} s ({r['start_rss']:.0f} MB) | LLaVA load "
                f"+{r['llava_s']:.1f} s (+{r['llava_rss'] - r['start_rss']:.0f} MB) | steering SAE "
                f"+{r['steering_s']:.1f} s (+{r['steering_rss'] - r['llava_rss']:.0f} MB; peak "
                f"{r['peak_rss']:.0f} MB) | {r['n_images']} images, {r['rows']} rows, "
                f"store {r['store_mb']:.1f} MB"
            )
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
