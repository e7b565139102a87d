"""`vsae world build`: train the tiny CLIP and the similarity encoder (into the package assets
by default, which is how the shipped weights were made).

Each model trains on one torch thread (bitwise reproducible for a given platform); with
``jobs=2`` the two models train at the same time in two child processes, one core each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from vsae.errors import VsaeError
from vsae.train.recipe import TrainRecipe
from vsae.world.assets import ASSETS_DIR
from vsae.world.train_clip import ClipConfig, train_clip
from vsae.world.train_simenc import SimEncConfig, train_simenc

MODELS: tuple[str, ...] = ("clip", "simenc")


def build(
    out_dir: str | Path | None = None,
    clip_cfg: ClipConfig = ClipConfig(),
    simenc_cfg: SimEncConfig = SimEncConfig(),
    threads: int | None = 1,
    which: tuple[str, ...] = MODELS,
    progress: bool = True,
    jobs: int = 1,
) -> dict[str, dict]:
    """Train the world models into ``out_dir/clip`` and ``out_dir/simenc`` (default: the package
    assets). Deterministic for a given seed and thread count (the shipped models: 1 thread each).
    Returns each trainer's summary (also written to ``<model>/vsae_world_build.json``)."""
    out = Path(out_dir) if out_dir is not None else ASSETS_DIR
    cfgs = {"clip": clip_cfg, "simenc": simenc_cfg}
    if jobs > 1 and len(which) > 1:
        return _build_in_children(out, {k: cfgs[k] for k in which}, threads)
    if threads:
        torch.set_num_threads(threads)
    trainers: dict[str, Callable[..., dict[str, Any]]] = {"clip": train_clip, "simenc": train_simenc}
    return {name: trainers[name](out / name, cfgs[name], progress=progress) for name in which}


def _build_in_children(out: Path, cfgs: dict, threads: int | None) -> dict[str, dict]:
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vsae.world.builder",
                name,
                str(out),
                json.dumps(asdict(cfg)),
                str(threads or 0),
            ]
        )
        for name, cfg in cfgs.items()
    }
    failed = [name for name, p in procs.items() if p.wait() != 0]
    if failed:
        raise VsaeError(
            f"building {', '.join(failed)} failed (see above); retry with --jobs 1 to see the error"
        )
    return {name: json.loads((out / name / "vsae_world_build.json").read_text()) for name in cfgs}


def _child(name: str, out: str, cfg_json: str, threads: str) -> None:
    cls = {"clip": ClipConfig, "simenc": SimEncConfig}[name]
    d = json.loads(cfg_json)  # asdict: the nested recipe comes back as a dict
    build(
        out,
        **{f"{name}_cfg": cls(**{**d, "recipe": TrainRecipe(**d["recipe"])})},
        threads=int(threads) or None,
        which=(name,),
        progress=False,
    )


if __name__ == "__main__":
    _child(*sys.argv[1:5])
