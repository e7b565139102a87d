"""Build the shipped tiny text-to-image assets (`vsae world build --only diffusion`): the
diffusion pipeline on the world CLIP's text encoder, the judge heads, the text-encoder SAE, and
the quality numbers (generation accuracy on held-out captions)."""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from vsae.store.safe_io import atomic_write_json
from vsae.world.build_config import WorldBuildConfig
from vsae.world.diffusion.t2i_train import DiffusionTrainConfig, train_diffusion
from vsae.world.diffusion.text_sae import TextSAEConfig, train_text_sae

SAE_SUBDIR = "text_sae"
JUDGE_FILE = "judge.safetensors"


def build_diffusion_assets(
    out_dir: str | Path | None = None,
    clip_dir: str | Path = "shipped",
    cfg: DiffusionTrainConfig = DiffusionTrainConfig(),
    sae_cfg: TextSAEConfig = TextSAEConfig(),
    threads: int | None = 1,
    n_eval: int = WorldBuildConfig.diffusion_eval,
    simenc_dir: str | Path | None = "shipped",
    judge_images: int = WorldBuildConfig.judge_images,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the pipeline into ``out_dir`` (default: the package assets), fit the judge on the
    similarity encoder at ``simenc_dir`` with ``judge_images`` images, train the text SAE into
    ``out_dir/text_sae`` and measure generation accuracy on ``n_eval`` held-out captions.
    Deterministic for a given thread count (shipped: ``threads=1``)."""
    from vsae.steer.diffusion_pipeline import load_pipe
    from vsae.world.diffusion import default_out_dir
    from vsae.world.diffusion.generation_quality import generation_accuracy
    from vsae.world.diffusion.judge import fit_judge

    out = Path(out_dir) if out_dir is not None else default_out_dir()
    if threads:
        torch.set_num_threads(threads)
    if clip_dir == "shipped":
        from vsae.world import shipped_clip_dir

        clip_dir = shipped_clip_dir()
    t0 = time.time()
    summary: dict[str, Any] = {"diffusion": train_diffusion(out, clip_dir, cfg, progress=progress)}
    judge = fit_judge(None if simenc_dir == "shipped" else simenc_dir, n=judge_images)
    judge.save(out / JUDGE_FILE)
    summary["text_sae"] = install_text_sae(out, sae_cfg, progress)
    if n_eval:
        summary["quality"] = generation_accuracy(load_pipe(out), judge, n=n_eval, seed=0)
    summary["clip"] = str(clip_dir)
    summary["total_seconds"] = round(time.time() - t0, 1)
    atomic_write_json(out / "vsae_world_build.json", summary, indent=2, default=str)
    return summary


def install_text_sae(
    out: Path, sae_cfg: TextSAEConfig = TextSAEConfig(), progress: bool = True
) -> dict[str, Any]:
    """Train the text-encoder SAE on the pipeline at ``out`` and install it as ``out/text_sae``
    (replacing any there); return its summary entry."""
    sae_dir = train_text_sae(out, out / "_sae_run", sae_cfg, progress=progress)
    final = out / SAE_SUBDIR
    if final.exists():
        shutil.rmtree(final)
    final.mkdir()
    for name in ("sae.safetensors", "config.json", "log.jsonl"):
        if (sae_dir / name).is_file():
            shutil.copy2(sae_dir / name, final / name)
    shutil.rmtree(out / "_sae_run", ignore_errors=True)
    return {"dir": SAE_SUBDIR, "config": asdict(sae_cfg)}
