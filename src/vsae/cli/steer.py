"""`vsae steer`: steering with SAE latents. `vsae steer mllm`: Pach et al.'s MLLM experiment (clamp SAE
latents in LLaVA's vision encoder); `vsae steer diffusion`: Olson et al.'s text-to-image steering
through SAE latents of the text encoder, with automatic attribute discovery."""

from __future__ import annotations

from typing import Any, Literal

import click

from vsae.cli.from_config import config_options, pick
from vsae.cli.options import compute_dtype_option, device_option, revision_option
from vsae.experiments.diffusion_steering.diffusion_config import DiffusionSteerConfig
from vsae.experiments.mllm_steering.mllm_config import SteerConfig


def _latents(text: str | None) -> tuple[int, ...] | None:
    from vsae.errors import VsaeError

    if not text:
        return None  # the config's default
    try:
        return tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise VsaeError(f"--latents {text!r}: give comma-separated latent indices, e.g. 3,17,42") from None


# Latent indices start at 0 and the strengths of --sweep may be any number: both are comma lists
# parsed here (the generator's comma lists of ints are positive counts), unset by default.
_LATENTS = {"callback": lambda ctx, param, v: _latents(v), "default": None, "show_default": False}
_SWEEP = {
    "callback": lambda ctx, param, v: _floats(v, "--sweep") or None,
    "default": None,
    "show_default": False,
}


@click.group()
def steer() -> None:
    """Steer a model by editing SAE latents: `mllm` (LLaVA's vision encoder) or `diffusion` (a text encoder)."""


@steer.command("mllm")
@click.option("--llava", default=None, help="LLaVA hub id or directory [default: the shipped tiny LLaVA].")
@click.option(
    "--sae",
    "sae_dir",
    default=None,
    help="SAE (directory or hub id) for the hook [default: the tiny LLaVA's steering SAE].",
)
@revision_option("sae_dir")
@click.option(
    "--sim-encoder",
    default=None,
    help="CLIP-like model embedding images and answers [default: the world CLIP].",
)
@click.option("--out", required=True, help="Output directory (results.json, index.html, scores.png).")
@config_options(SteerConfig, overrides={"latents": _LATENTS})
@device_option()
@compute_dtype_option()
@click.option("--quiet", is_flag=True, help="No progress bars.")
def mllm(
    llava: str | None,
    sae_dir: str | None,
    sim_encoder: str | None,
    out: str,
    device: Any,
    dtype: str,
    quiet: bool,
    **fields: Any,
) -> None:
    """Steer a LLaVA by clamping SAE latents in its vision encoder; score the answers (Pach et al.)."""
    from pathlib import Path

    from vsae.experiments.mllm_steering.mllm_report import write_steering_index
    from vsae.experiments.mllm_steering.mllm_run import run_steering
    from vsae.world import shipped_clip_dir  # the embedded world's models are the defaults
    from vsae.world.llava import shipped_llava_dir, shipped_steering_sae_dir

    cfg = SteerConfig(**pick(SteerConfig, fields))
    res = run_steering(
        llava or shipped_llava_dir(),
        sae_dir or shipped_steering_sae_dir(),
        sim_encoder or shipped_clip_dir(),
        cfg,
        out,
        device=device,
        dtype=dtype,
        progress=not quiet,
    )
    write_steering_index(Path(out), res.to_json())
    click.echo(f"{res.summary_line()} -> {out}/index.html")


def _prompts(path: str | None) -> tuple[str, ...]:
    from pathlib import Path

    from vsae.errors import VsaeError, regular_file

    if path is None:
        return ()
    # a FIFO would block the read: refused, as every reader of user files does
    p = regular_file(Path(path), "--prompts", "give a text file with one prompt per line")
    lines = tuple(
        t.strip() for t in p.read_text(encoding="utf-8", errors="replace").splitlines() if t.strip()
    )
    if not lines:
        raise VsaeError(f"--prompts {path}: the prompt list is empty; give one prompt per line")
    return lines


def _floats(text: str | None, name: str) -> tuple[float, ...]:
    from vsae.errors import VsaeError

    if not text:
        return ()
    try:
        return tuple(float(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise VsaeError(f"{name} {text!r}: give comma-separated numbers, e.g. 1,2,4") from None


@steer.command("diffusion")
@click.option("--out", required=True, help="Output directory (results.json, index.html).")
@click.option(
    "--pipeline",
    default=None,
    help="Text-to-image pipeline: a Stable Diffusion 1.x/2.x, SDXL, SD3 or FLUX hub id or directory "
    "[default: the shipped tiny model].",
)
@click.option(
    "--tower",
    default=None,
    help="SDXL / SD3 / FLUX: the text encoder the SAE edits (the others stay unedited): text, text_2 or text_3 [default: the SAE's].",
)
@click.option("--sae", "sae_dir", default=None, help="Text-encoder SAE [default: the tiny model's text SAE].")
@revision_option("sae_dir")
@config_options(
    DiffusionSteerConfig,
    only=("hook", "latents", "n_latents", "op", "strength"),
    overrides={"latents": _LATENTS},
)
@config_options(DiffusionSteerConfig, only=("sweep",), overrides={"sweep": _SWEEP})
@click.option(
    "--tokens",
    default="all",
    show_default=True,
    help="'all' prompt tokens, 'word' (the prompt's word for the latent's attribute) or comma-separated positions.",
)
@click.option(
    "--prompts", default=None, help="Text file, one prompt per line [default: held-out world captions]."
)
@config_options(DiffusionSteerConfig, only=("n_prompts", "n_eval", "discovery_latents", "discovery_prompts"))
@click.option("--clip", default=None, help="CLIP naming the changes [default: the judge's, the world CLIP].")
@click.option(
    "--judge",
    default=None,
    help="Registered ground-truth judge (vsae.diffusion_judges) [default: the one the pipeline's kind names].",
)
@click.option(
    "--vocabulary", default=None, help="Comma-separated naming words (pipelines other than the world's)."
)
@config_options(DiffusionSteerConfig, only=("steps", "guidance", "eta", "batch_size"))
@click.option(
    "--size", type=int, default=None, help="SDXL / SD3 / FLUX image size [default: the pipeline's]."
)
@device_option()
@compute_dtype_option()
@config_options(DiffusionSteerConfig, only=("seed", "force"))
@click.option("--quiet", is_flag=True, help="No progress lines.")
def diffusion(
    out: str,
    pipeline: str | None,
    sae_dir: str | None,
    tower: str | None,
    tokens: str,
    prompts: str | None,
    clip: str | None,
    judge: str | None,
    vocabulary: str | None,
    device: Any,
    dtype: str,
    size: int | None,
    quiet: bool,
    **fields: Any,
) -> None:
    """Steer a text-to-image model through SAE latents of its text encoder; measure the change and
    name each latent's attribute from the images alone (Olson et al.)."""
    from vsae.errors import VsaeError
    from vsae.experiments.diffusion_steering.diffusion_run import run_diffusion_steering

    tok: Literal["all", "word"] | tuple[int, ...] = "all"
    if tokens.strip() == "word":
        tok = "word"
    elif tokens.strip() != "all":
        try:
            tok = tuple(int(t) for t in tokens.strip().split(",") if t)
        except ValueError:
            raise VsaeError(
                f"--tokens {tokens!r}: give 'all', 'word' or comma-separated token positions"
            ) from None
    cfg = DiffusionSteerConfig(tokens=tok, prompts=_prompts(prompts), **pick(DiffusionSteerConfig, fields))
    words = tuple(w.strip() for w in (vocabulary or "").split(",") if w.strip())
    res = run_diffusion_steering(
        pipeline, sae_dir, out, cfg, clip=clip, vocabulary=words, judge=judge, device=device, dtype=dtype,
        progress=not quiet, tower=tower, size=size,
    )  # fmt: skip
    click.echo(f"{res.summary()} -> {out}/index.html")
