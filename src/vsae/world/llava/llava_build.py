"""Build the shipped tiny-LLaVA assets: the LLaVA (`train_llava`) and its steering SAE
(`train_steering_sae`). This is what `vsae world build --only llava` runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from vsae.store.safe_io import atomic_write_json
from vsae.world.llava.llava_train import LlavaTrainConfig, train_llava
from vsae.world.llava.steering_sae import SteeringSAEConfig, train_steering_sae

SAE_SUBDIR = "steering_sae"


def default_out_dir() -> Path:
    from vsae.world.llava import ASSET_DIR

    return ASSET_DIR


def build_llava_assets(
    out_dir: str | Path | None = None,
    clip_dir: str | Path | None = "shipped",
    llava_cfg: LlavaTrainConfig = LlavaTrainConfig(),
    sae_cfg: SteeringSAEConfig = SteeringSAEConfig(),
    threads: int | None = 1,
    progress: bool = True,
) -> dict:
    """Train the tiny LLaVA into ``out_dir`` (default: the package assets) and its steering SAE
    into ``out_dir/steering_sae``. ``clip_dir="shipped"`` uses `vsae.world.shipped_clip_dir()`;
    None a random vision tower (tests only). The shipped assets were built with the defaults and
    ``threads=1`` (results depend on the thread count). Returns both summaries."""
    out = Path(out_dir) if out_dir is not None else default_out_dir()
    if threads:
        torch.set_num_threads(threads)
    if clip_dir == "shipped":
        from vsae.world import shipped_clip_dir

        clip_dir = shipped_clip_dir()
    summary = train_llava(out, clip_dir, llava_cfg, progress=progress)
    sae_dir = train_steering_sae(out, out / "_sae_run", sae_cfg, progress=progress)
    final = out / SAE_SUBDIR
    if final.exists():
        shutil.rmtree(final)
    final.mkdir()
    for name in ("sae.safetensors", "config.json", "log.jsonl"):  # not the training checkpoints
        if (sae_dir / name).is_file():
            shutil.copy2(sae_dir / name, final / name)
    shutil.rmtree(out / "_sae_run", ignore_errors=True)
    summary["steering_sae"] = {"dir": SAE_SUBDIR, "config": sae_cfg.__dict__}
    atomic_write_json(out / "vsae_world_build.json", summary, indent=2, default=str)
    return summary
