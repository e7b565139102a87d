"""`vsae steer`: steering with SAE latents. `vsae steer mllm`: Pach et al.'s MLLM experiment (clamp SAE
latents in LLaVA's vision encoder); `vsae steer diffusion`: Olson et al.'s text-to-image steering
through SAE latents of the text encoder, with automatic attribute discovery."""

from __future__ import annotations

from typing import Any

import click

from vsae.cli.options import device_option


def _latents(text: str | None) -> tuple[int, ...]:
    from vsae.errors import VsaeError

    if not text:
        return ()
    try:
        return tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise VsaeError(f"--latents {text!r}: give comma-separated latent indices, e.g. 3,17,42") from None


@click.group()
def steer() -> None:
    """Steer a model by editing SAE latents: `mllm` (LLaVA's vision encoder) or `diffusion` (a text encoder)."""


@steer.command("mllm")
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
@device_option()
@click.option(
    "--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float16", "bfloat16"])
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def mllm(
    llava: str | None,
    sae_dir: str | None,
    sim_encoder: str | None,
    out: str,
    latents: str | None,
    question: str | None,
    device: Any,
    dtype: str,
    quiet: bool,
    **kw: Any,
) -> None:
    """Steer a LLaVA by clamping SAE latents in its vision encoder; score the answers (Pach et al.)."""
    import vsae.world  # noqa: F401  (the top layer wires the world in: --images world:<split>)
    from vsae.steer.experiment import STEERING_QUESTION, SteerConfig, run_steering

    if llava is None or sae_dir is None:
        from vsae.world.llava import shipped_llava_dir, shipped_steering_sae_dir

        llava = llava or str(shipped_llava_dir())
        sae_dir = sae_dir or str(shipped_steering_sae_dir())
    if sim_encoder is None:
        from vsae.world import shipped_clip_dir

        sim_encoder = str(shipped_clip_dir())
    cfg = SteerConfig(latents=_latents(latents), question=question or STEERING_QUESTION, **kw)
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

    from vsae.errors import VsaeError

    if path is None:
        return ()
    p = Path(path)
    if not p.is_file():
        raise VsaeError(f"--prompts {path}: not a file; give a text file with one prompt per line")
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
@click.option("--hook", default=None, help="Text-encoder hook, e.g. resid.-1 [default: the SAE's own].")
@click.option(
    "--latents", default=None, help="Comma-separated latents to steer [default: attribute-word latents]."
)
@click.option("--n-latents", default=8, show_default=True, type=int)
@click.option(
    "--op", default="clamp", show_default=True, type=click.Choice(["clamp", "add", "scale", "ablate"])
)
@click.option(
    "--strength",
    default=4.0,
    show_default=True,
    type=float,
    help="clamp/add value as a multiple of the latent's largest activation (scale: the factor).",
)
@click.option("--sweep", default=None, help="Further strengths to report, comma-separated (e.g. 1,2,8).")
@click.option(
    "--tokens", default="all", show_default=True, help="'all' prompt tokens or comma-separated positions."
)
@click.option(
    "--prompts", default=None, help="Text file, one prompt per line [default: held-out world captions]."
)
@click.option("--n-prompts", default=16, show_default=True, type=int, help="Prompts per steered latent.")
@click.option(
    "--n-eval", default=200, show_default=True, type=int, help="Images for generation accuracy (0: skip)."
)
@click.option(
    "--discovery-latents", default=0, show_default=True, type=int, help="Latents to name (0: all live)."
)
@click.option("--discovery-prompts", default=6, show_default=True, type=int)
@click.option("--clip", default=None, help="CLIP naming the changes [default: the world CLIP].")
@click.option(
    "--vocabulary", default=None, help="Comma-separated naming words (pipelines other than the world's)."
)
@click.option("--steps", default=20, show_default=True, type=int, help="DDIM steps.")
@click.option(
    "--guidance", default=1.5, show_default=True, type=float, help="Classifier-free guidance scale."
)
@click.option("--batch-size", default=64, show_default=True, type=int)
@device_option()
@click.option(
    "--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float16", "bfloat16"])
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--quiet", is_flag=True, help="No progress lines.")
def diffusion(
    out: str,
    pipeline: str | None,
    sae_dir: str | None,
    latents: str | None,
    sweep: str | None,
    tokens: str,
    prompts: str | None,
    clip: str | None,
    vocabulary: str | None,
    device: Any,
    dtype: str,
    quiet: bool,
    **kw,
) -> None:
    """Steer a text-to-image model through SAE latents of its text encoder; measure the change and
    name each latent's attribute from the images alone (Olson et al.)."""
    from vsae.errors import VsaeError
    from vsae.world.diffusion.steering import DiffusionSteerConfig, run_diffusion_steering

    if pipeline is None or sae_dir is None:
        from vsae.world.diffusion import shipped_diffusion_dir, shipped_text_sae_dir

        pipeline = pipeline or str(shipped_diffusion_dir())
        sae_dir = sae_dir or str(shipped_text_sae_dir())
    tok: str | tuple[int, ...] = tokens.strip()
    if tok != "all":
        try:
            tok = tuple(int(t) for t in tokens.strip().split(",") if t)
        except ValueError:
            raise VsaeError(f"--tokens {tokens!r}: give 'all' or comma-separated token positions") from None
    cfg = DiffusionSteerConfig(
        latents=_latents(latents),
        sweep=_floats(sweep, "--sweep"),
        tokens=tok,
        prompts=_prompts(prompts),
        **kw,
    )
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
