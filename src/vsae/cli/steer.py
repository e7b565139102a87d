"""`vsae steer`: steering with SAE latents. `vsae steer mllm`: Pach et al.'s MLLM experiment (clamp SAE
latents in LLaVA's vision encoder); `vsae steer diffusion`: Olson et al.'s text-to-image steering
through SAE latents of the text encoder, with automatic attribute discovery."""

from __future__ import annotations

from typing import Any, Literal

import click

from vsae.cli.from_config import config_options, pick
from vsae.cli.options import compute_dtype_option, device_option, revision_option
from vsae.steer.config import DiffusionSteerConfig, SteerConfig


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
    from vsae.steer.experiment import run_steering

    if llava is None or sae_dir is None:
        from vsae.world.llava import shipped_llava_dir, shipped_steering_sae_dir

        llava = llava or str(shipped_llava_dir())
        sae_dir = sae_dir or str(shipped_steering_sae_dir())
    if sim_encoder is None:
        from vsae.world import shipped_clip_dir

        sim_encoder = str(shipped_clip_dir())
    cfg = SteerConfig(**pick(SteerConfig, fields))
    from pathlib import Path

    from vsae.report.steering import write_steering_index

    res = run_steering(llava, sae_dir, sim_encoder, cfg, out, device=device, dtype=dtype, progress=not quiet)
    write_steering_index(Path(out), res.to_json())
    s = res.score
    click.echo(
        f"steering score {s.steered:.4f} vs unsteered {s.baseline:.4f} "
        f"(moved toward {100 * s.moved_toward:.1f}%, away {100 * s.moved_away:.1f}%) -> {out}/index.html"
    )


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
    help="Text-to-image pipeline: a Stable Diffusion hub id or directory [default: the shipped tiny model].",
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
    "--tokens", default="all", show_default=True, help="'all' prompt tokens or comma-separated positions."
)
@click.option(
    "--prompts", default=None, help="Text file, one prompt per line [default: held-out world captions]."
)
@config_options(DiffusionSteerConfig, only=("n_prompts", "n_eval", "discovery_latents", "discovery_prompts"))
@click.option("--clip", default=None, help="CLIP naming the changes [default: the world CLIP].")
@click.option(
    "--vocabulary", default=None, help="Comma-separated naming words (pipelines other than the world's)."
)
@config_options(DiffusionSteerConfig, only=("steps", "guidance", "eta", "batch_size"))
@device_option()
@compute_dtype_option()
@config_options(DiffusionSteerConfig, only=("seed", "force"))
@click.option("--quiet", is_flag=True, help="No progress lines.")
def diffusion(
    out: str,
    pipeline: str | None,
    sae_dir: str | None,
    tokens: str,
    prompts: str | None,
    clip: str | None,
    vocabulary: str | None,
    device: Any,
    dtype: str,
    quiet: bool,
    **fields: Any,
) -> None:
    """Steer a text-to-image model through SAE latents of its text encoder; measure the change and
    name each latent's attribute from the images alone (Olson et al.)."""
    from vsae.errors import VsaeError
    from vsae.world.diffusion.steering import run_diffusion_steering

    if pipeline is None or sae_dir is None:
        from vsae.world.diffusion import shipped_diffusion_dir, shipped_text_sae_dir

        pipeline = pipeline or str(shipped_diffusion_dir())
        sae_dir = sae_dir or str(shipped_text_sae_dir())
    tok: Literal["all"] | tuple[int, ...] = "all"
    if tokens.strip() != "all":
        try:
            tok = tuple(int(t) for t in tokens.strip().split(",") if t)
        except ValueError:
            raise VsaeError(f"--tokens {tokens!r}: give 'all' or comma-separated token positions") from None
    cfg = DiffusionSteerConfig(tokens=tok, prompts=_prompts(prompts), **pick(DiffusionSteerConfig, fields))
    words = tuple(w.strip() for w in (vocabulary or "").split(",") if w.strip())
    res = run_diffusion_steering(
        pipeline,
        sae_dir,
        out,
        cfg,
        clip=clip,
        vocabulary=words,
        device=device,
        dtype=dtype,
        progress=not quiet,
    )
    s, d = res["steering"], res["discovery"]

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.1f}%"

    click.echo(
        f"target rate {pct(s['target_rate']['steered'])} steered vs {pct(s['target_rate']['baseline'])} unsteered, "
        f"preserved {pct(s['preserved_rate'])}; discovery agreement {pct(d['agreement'])} "
        f"(random {pct(d['random_agreement'])}) -> {out}/index.html"
    )
