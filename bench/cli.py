"""CLI start-up and `vsae extract` thread defaults, timed as a user runs them (never run as a test).

    python bench/cli.py                  # `vsae --help`, `vsae store info`, `vsae world info`: wall s
    python bench/cli.py --extract 600    # also: extract N world images with the default threads vs 1 vs 2

Each command runs as a fresh process (`.venv/bin/vsae` next to this interpreter), `--repeats`
times; the median wall time is printed with the modules it imported (torch or not).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VSAE = str(Path(sys.executable).with_name("vsae"))


def wall(cmd: list[str], repeats: int, cwd: str) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def imports_torch(args: list[str], cwd: str) -> bool:
    code = (
        "import sys\nfrom vsae.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)"
    )
    r = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True)
    return "NO-TORCH" not in r.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--extract", type=int, default=0, metavar="N", help="also time extraction of N images")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                VSAE,
                "world",
                "export",
                "--out",
                "world",
                "--n",
                "train=64",
                "--n",
                "test=64",
                "--n",
                "val=0",
                "--n",
                "ood_background=0",
                "--n",
                "ood_combo=0",
            ],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        clip = subprocess.run(
            [sys.executable, "-c", "import vsae.world as w; print(w.shipped_clip_dir())"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        subprocess.run(
            [
                VSAE,
                "extract",
                "--model",
                clip,
                "--hook",
                "resid.2",
                "--data",
                "world",
                "--split",
                "test",
                "--out",
                "store",
                "--quiet",
            ],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        print(f"CPUs available: {len(os.sched_getaffinity(0))}; median of {a.repeats} fresh processes")
        for args in (["--help"], ["store", "info", "store"], ["world", "info"], ["train", "--help"]):
            t = wall([VSAE, *args], a.repeats, tmp)
            print(f"vsae {' '.join(args):<18} {t:6.2f} s   imports torch: {imports_torch(args, tmp)}")
        if a.extract:
            subprocess.run(
                [
                    VSAE,
                    "world",
                    "export",
                    "--out",
                    "big",
                    "--n",
                    f"train={a.extract}",
                    "--n",
                    "val=0",
                    "--n",
                    "test=0",
                    "--n",
                    "ood_background=0",
                    "--n",
                    "ood_combo=0",
                ],
                cwd=tmp,
                check=True,
                capture_output=True,
            )
            base = [
                VSAE,
                "extract",
                "--model",
                clip,
                "--hook",
                "resid.2",
                "--tokens",
                "patches",
                "--data",
                "big",
                "--split",
                "train",
                "--quiet",
                "--num-workers",
                "2",
            ]
            settings = (
                ("default", []),
                ("--threads 1", ["--threads", "1"]),
                ("--threads 2", ["--threads", "2"]),
            )
            ts: dict[str, list[float]] = {name: [] for name, _ in settings}
            cpu: dict[str, list[float]] = {name: [] for name, _ in settings}
            for r in range(a.repeats):  # interleaved, so that a change in machine load hits all alike
                for i, (name, extra) in enumerate(settings):
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    t = time.perf_counter()
                    subprocess.run(
                        [*base, "--out", f"x-{i}-{r}", *extra], cwd=tmp, check=True, capture_output=True
                    )
                    ts[name].append(time.perf_counter() - t)
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            res = {name: statistics.median(v) for name, v in ts.items()}
            for name, _ in settings:
                print(
                    f"extract {a.extract} images, 2 workers, {name:<12} {res[name]:6.2f} s wall, "
                    f"{statistics.median(cpu[name]):6.2f} s CPU (incl. loader workers)"
                )
            print(f"default / --threads 2: {res['default'] / res['--threads 2']:.2f}x time")


if __name__ == "__main__":
    main()
