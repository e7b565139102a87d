"""`vsae steer`: Pach et al.'s MLLM steering experiment (clamp SAE latents in LLaVA's vision encoder)."""

from __future__ import annotations

import click


def _latents(text: str | None) -> tuple[int, ...]:
    from vsae.errors import VsaeError

    if not text:
        return ()
    try:
        return tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise VsaeError(f"--latents {text!r}: give comma-separated latent indices, e.g. 3,17,42") from None


@click.command()
@click.option("--llava", default=None, help="LLaVA hub id or directory [default: the shipped tiny LLaVA].")
@click.option(
    "--sae",
    "sae_dir",
    default=None,
    help="SAE directory for the hook [default: the tiny LLaVA's steering SAE].",
)
@click.option(
    "--sim-encoder",
    default=None,
    help="CLIP-like model embedding images and answers [default: the world CLIP].",
)
@click.option("--out", required=True, help="Output directory (results.json, index.html, scores.png).")
@click.option(
    "--hook", default=None, help="Vision-tower hook [default: the layer LLaVA reads, e.g. resid.22]."
)
@click.option(
    "--latents", default=None, help="Comma-separated latents to steer [default: --n-latents random ones]."
)
@click.option("--n-latents", default=8, show_default=True, type=int)
@click.option("--value", default=100.0, show_default=True, type=float, help="Clamp value (the paper: 100).")
@click.option(
    "--op", default="clamp", show_default=True, type=click.Choice(["clamp", "add", "scale", "ablate"])
)
@click.option("--tokens", default="all", show_default=True, type=click.Choice(["all", "cls", "patches"]))
@click.option("--pre-zero", is_flag=True, help="Zero all other latents first (the paper's pre_zero).")
@click.option(
    "--question",
    default=None,
    help="Question [default: 'What is shown in this image? Use exactly one word!'].",
)
@click.option(
    "--images", default="world:test", show_default=True, help="world:<split>, an image folder or a list file."
)
@click.option("--n-images", default=16, show_default=True, type=int)
@click.option(
    "--hai-images", default="world:train", show_default=True, help="Images the top images come from."
)
@click.option("--n-hai-images", default=1000, show_default=True, type=int)
@click.option("--hai-k", default=16, show_default=True, type=int, help="Top images per latent.")
@click.option(
    "--blank-latents",
    default=32,
    show_default=True,
    type=int,
    help="Latents for the blank-image variant (0: skip).",
)
@click.option("--max-new-tokens", default=4, show_default=True, type=int)
@click.option("--batch-size", default=32, show_default=True, type=int)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float16", "bfloat16"])
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def steer(llava, sae_dir, sim_encoder, out, latents, question, device, dtype, quiet, **kw):
    """Steer a LLaVA by clamping SAE latents in its vision encoder; score the answers (Pach et al.)."""
    from vsae.steer.experiment import STEERING_QUESTION, SteerConfig, run_steering

    if llava is None or sae_dir is None:
        from vsae.world.llava import shipped_llava_dir, shipped_steering_sae_dir

        llava = llava or str(shipped_llava_dir())
        sae_dir = sae_dir or str(shipped_steering_sae_dir())
    if sim_encoder is None:
        from vsae.world import shipped_clip_dir

        sim_encoder = str(shipped_clip_dir())
    cfg = SteerConfig(latents=_latents(latents), question=question or STEERING_QUESTION, **kw)
    res = run_steering(llava, sae_dir, sim_encoder, cfg, out, device=device, dtype=dtype, progress=not quiet)
    s = res["score"]
    click.echo(
        f"steering score {s['steered']:.4f} vs unsteered {s['baseline']:.4f} "
        f"(moved toward {100 * s['moved_toward']:.1f}%, away {100 * s['moved_away']:.1f}%) -> {out}/index.html"
    )
