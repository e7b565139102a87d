"""`vsae world build`: train the world's models (into the package assets by default, which is how
the shipped weights were made).

`build` trains the tiny CLIP and the similarity encoder: each on one torch thread (bitwise
reproducible for a given platform); with ``jobs=2`` the two at the same time in two child
processes, one core each. `build_world` builds what a `WorldBuildConfig` asks for: those two, then
the tiny LLaVA on the CLIP (with its steering SAE) and the tiny text-to-image model on the CLIP's
text encoder (with its text SAE), and says what it built line by line.
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
from vsae.train.recipe import TrainRecipe, with_recipe
from vsae.world.assets import ASSETS_DIR
from vsae.world.build_config import WorldBuildConfig
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


def build_world(cfg: WorldBuildConfig, echo: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    """Build the models of `cfg` into ``cfg.out_dir`` (default: the package assets, only models
    missing there: shipped models are never overwritten), in build order; `echo` gets one line
    per model built (and the CLIP's zero-shot accuracy). Returns each model's build summary (also
    written to ``<model>/vsae_world_build.json``)."""
    root = cfg.out_dir or str(ASSETS_DIR)
    _refuse_shipped(Path(root).resolve(), cfg.models)
    from vsae.world.clip_zeroshot import zero_shot_accuracy

    clip_cfg, sim_cfg = ClipConfig(), SimEncConfig()
    if cfg.clip_steps is not None:
        clip_cfg = with_recipe(clip_cfg, steps=cfg.clip_steps)
    if cfg.simenc_steps is not None:
        sim_cfg = with_recipe(sim_cfg, steps=cfg.simenc_steps)
    base = tuple(m for m in cfg.models if m not in ("llava", "diffusion"))
    res = build(root, clip_cfg, sim_cfg, threads=cfg.threads, which=base, jobs=cfg.jobs) if base else {}
    for name, summary in res.items():
        echo(
            f"{name}: {summary['seconds']} s ({summary['cpu_seconds']} s CPU), final loss {summary['final_loss']:.3f} -> {root}/{name}"
        )
        if name == "simenc":
            echo(
                "  val head accuracy: "
                + json.dumps({k: round(v, 3) for k, v in summary["val_head_accuracy"].items()})
            )
    if "clip" in res:
        acc = zero_shot_accuracy(f"{root}/clip", split="test", n=300)
        echo(
            f"  tiny CLIP zero-shot on 300 test images: shape {acc['shape']:.3f}, colour {acc['colour']:.3f}"
        )
    clip_dir = f"{root}/clip" if "clip" in res else "shipped"
    if "llava" in cfg.models:  # its vision tower is the CLIP: built after it, on the CLIP just built
        res["llava"] = s = _build_llava(cfg, f"{root}/llava", clip_dir)
        echo(f"llava: {s['seconds']} s, one-word test accuracy {s['test_accuracy']} -> {root}/llava")
    if "diffusion" in cfg.models:  # conditioned on the CLIP's text encoder: built after it
        simenc_dir = f"{root}/simenc" if "simenc" in res else "shipped"
        res["diffusion"] = s = _build_diffusion(cfg, f"{root}/diffusion", clip_dir, simenc_dir)
        q = s.get("quality", {}).get("generated", {})
        echo(
            f"diffusion: {s['total_seconds']} s, held-out generation agreement shape {q.get('shape', float('nan')):.3f}, "
            f"colour {q.get('colour', float('nan')):.3f} -> {root}/diffusion"
        )
    return res


def _refuse_shipped(out: Path, which: tuple[str, ...]) -> None:
    """A build into the package assets may only add models missing there."""
    shipped = ASSETS_DIR.resolve()
    if out == shipped or shipped in out.parents:
        there = [m for m in which if (out / m).is_dir() and any((out / m).iterdir())]
        if there:
            raise VsaeError(
                f"building into {out} would overwrite the shipped {', '.join(there)}; pass --out NEW_DIR "
                "(to update the shipped models, build elsewhere, compare, and copy deliberately)"
            )


def _build_llava(cfg: WorldBuildConfig, out: str, clip_dir: str) -> dict[str, Any]:
    from vsae.world.llava.llava_build import build_llava_assets
    from vsae.world.llava.llava_train import LlavaTrainConfig
    from vsae.world.llava.steering_sae import SteeringSAEConfig

    lc, sc = LlavaTrainConfig(), SteeringSAEConfig()
    if cfg.llava_steps is not None:
        lc = with_recipe(lc, steps=cfg.llava_steps)
    if cfg.sae_steps is not None:
        sc = with_recipe(sc, steps=cfg.sae_steps)
    return build_llava_assets(out, clip_dir, lc, sc, threads=cfg.threads)


def _build_diffusion(cfg: WorldBuildConfig, out: str, clip_dir: str, simenc_dir: str) -> dict[str, Any]:
    from vsae.world.diffusion.t2i_build import build_diffusion_assets
    from vsae.world.diffusion.t2i_train import DiffusionTrainConfig
    from vsae.world.diffusion.text_sae import TextSAEConfig

    dc, tc = DiffusionTrainConfig(), TextSAEConfig()
    if cfg.diffusion_steps is not None:
        dc = with_recipe(dc, steps=cfg.diffusion_steps)
    if cfg.sae_steps is not None:
        tc = with_recipe(tc, steps=cfg.sae_steps)
    return build_diffusion_assets(
        out,
        clip_dir,
        dc,
        tc,
        threads=cfg.threads,
        n_eval=cfg.diffusion_eval,
        simenc_dir=simenc_dir,
        judge_images=cfg.judge_images,
    )


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
