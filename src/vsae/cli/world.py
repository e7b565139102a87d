"""`vsae world`: the embedded shapes world (export it, rebuild its models, inspect them)."""

from __future__ import annotations

import json
from typing import Any

import click

from vsae.cli.from_config import config_options, pick
from vsae.errors import VsaeError
from vsae.world.build_config import WorldBuildConfig


@click.group()
def world() -> None:
    """The embedded shapes world and its tiny models."""


def _parse_counts(n: tuple[str, ...]) -> dict[str, int] | None:
    if not n:
        return None
    from vsae.world.export import DEFAULT_COUNTS

    counts = dict(DEFAULT_COUNTS)
    for item in n:
        split, _, num = item.partition("=")
        if not num.isdigit():
            raise VsaeError(f"bad --n {item!r}; write SPLIT=COUNT, e.g. --n train=5000")
        counts[split] = int(num)
    return {k: v for k, v in counts.items() if v > 0}


@world.command("export")
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="New directory to write."
)
@click.option(
    "--n",
    "n",
    multiple=True,
    metavar="SPLIT=COUNT",
    help="Images per split (repeatable); defaults train=2000 val=500 test=500 ood_background=500 ood_combo=500.",
)
@click.option("--seed", default=0, show_default=True, help="Generator seed.")
@click.option(
    "--folder-style",
    type=click.Choice(["name", "inat"]),
    default="name",
    show_default=True,
    help="Class folders as class names or iNaturalist-style NNNNN_family_shape_variant.",
)
def export_cmd(out_dir: str, n: tuple[str, ...], seed: int, folder_style: str) -> None:
    """Write the world as DIR/<split>/<class>/<id>.png plus attributes.csv/json and taxonomy.json."""
    from vsae.world.export import export

    counts = export(out_dir, _parse_counts(n), seed=seed, folder_style=folder_style)
    click.echo(
        f"wrote {sum(counts.values())} images to {out_dir}: "
        + ", ".join(f"{k}={v}" for k, v in counts.items())
    )


@world.command("build")
@config_options(WorldBuildConfig, overrides={"out_dir": {"type": click.Path(file_okay=False)}})
def build_cmd(**fields: Any) -> None:
    """Train the tiny CLIP and the similarity encoder (in parallel), then the tiny LLaVA on that
    CLIP with its steering SAE and the tiny text-to-image model on its text encoder; deterministic on CPU."""
    from pathlib import Path

    import vsae

    cfg = WorldBuildConfig(**pick(WorldBuildConfig, fields))
    which, out_dir, threads, sae_steps = cfg.models, cfg.out_dir, cfg.threads, cfg.sae_steps
    shipped = (Path(vsae.__file__).parent / "world" / "assets").resolve()  # without importing torch
    out_dir = out_dir or str(shipped)
    out = Path(out_dir).resolve()
    if out == shipped or shipped in out.parents:
        there = [m for m in which if (out / m).is_dir() and any((out / m).iterdir())]
        if there:
            raise VsaeError(
                f"building into {out} would overwrite the shipped {', '.join(there)}; pass --out NEW_DIR "
                "(to update the shipped models, build elsewhere, compare, and copy deliberately)"
            )
    from vsae.train.recipe import with_recipe
    from vsae.world.builder import build
    from vsae.world.train_clip import ClipConfig
    from vsae.world.train_simenc import SimEncConfig
    from vsae.world.zeroshot import zero_shot_accuracy

    clip_cfg, sim_cfg = ClipConfig(), SimEncConfig()
    if cfg.clip_steps is not None:
        clip_cfg = with_recipe(clip_cfg, steps=cfg.clip_steps)
    if cfg.simenc_steps is not None:
        sim_cfg = with_recipe(sim_cfg, steps=cfg.simenc_steps)
    base = tuple(m for m in which if m not in ("llava", "diffusion"))
    res = build(out_dir, clip_cfg, sim_cfg, threads=threads, which=base, jobs=cfg.jobs) if base else {}
    root = out_dir
    for name, summary in res.items():
        click.echo(
            f"{name}: {summary['seconds']} s ({summary['cpu_seconds']} s CPU), final loss {summary['final_loss']:.3f} -> {root}/{name}"
        )
        if name == "simenc":
            click.echo(
                "  val head accuracy: "
                + json.dumps({k: round(v, 3) for k, v in summary["val_head_accuracy"].items()})
            )
    if "clip" in res:
        acc = zero_shot_accuracy(f"{root}/clip", split="test", n=300)
        click.echo(
            f"  tiny CLIP zero-shot on 300 test images: shape {acc['shape']:.3f}, colour {acc['colour']:.3f}"
        )
    if "llava" in which:  # its vision tower is the CLIP: built after it, on the CLIP just built
        from vsae.world.llava.build import build_llava_assets
        from vsae.world.llava.steering_sae import SteeringSAEConfig
        from vsae.world.llava.train import LlavaTrainConfig

        lc, sc = LlavaTrainConfig(), SteeringSAEConfig()
        if cfg.llava_steps is not None:
            lc = with_recipe(lc, steps=cfg.llava_steps)
        if sae_steps is not None:
            sc = with_recipe(sc, steps=sae_steps)
        clip_dir = f"{root}/clip" if "clip" in res else "shipped"
        s = build_llava_assets(f"{root}/llava", clip_dir, lc, sc, threads=threads)
        click.echo(f"llava: {s['seconds']} s, one-word test accuracy {s['test_accuracy']} -> {root}/llava")
    if "diffusion" in which:  # conditioned on the CLIP's text encoder: built after it, on the CLIP just built
        from vsae.world.diffusion.build import build_diffusion_assets
        from vsae.world.diffusion.text_sae import TextSAEConfig
        from vsae.world.diffusion.train import DiffusionTrainConfig

        dc, tc = DiffusionTrainConfig(), TextSAEConfig()
        if cfg.diffusion_steps is not None:
            dc = with_recipe(dc, steps=cfg.diffusion_steps)
        if sae_steps is not None:
            tc = with_recipe(tc, steps=sae_steps)
        s = build_diffusion_assets(
            f"{root}/diffusion",
            f"{root}/clip" if "clip" in res else "shipped",
            dc,
            tc,
            threads=threads,
            n_eval=cfg.diffusion_eval,
            simenc_dir=f"{root}/simenc" if "simenc" in res else "shipped",
            judge_images=cfg.judge_images,
        )
        q = s.get("quality", {}).get("generated", {})
        click.echo(
            f"diffusion: {s['total_seconds']} s, held-out generation agreement shape {q.get('shape', float('nan')):.3f}, "
            f"colour {q.get('colour', float('nan')):.3f} -> {root}/diffusion"
        )


@world.command("info")
def info_cmd() -> None:
    """Show the world's taxonomy, splits and the shipped models."""
    from vsae.world import SPLITS, class_paths, shipped_clip_dir, shipped_simenc_dir
    from vsae.world import taxonomy as tx

    click.echo("classes (family / shape / variant):")
    for c, p in class_paths().items():
        click.echo(f"  {c:16s} {' / '.join(p)}")
    click.echo("colours: " + ", ".join(f"{c} ({tx.colour_family(c)})" for c in tx.COLOURS))
    click.echo(
        f"sizes: {', '.join(tx.SIZES)}; backgrounds: {', '.join(tx.IN_DIST_BACKGROUNDS)} (+ {tx.OOD_BACKGROUND}, OOD only)"
    )
    click.echo(
        f"splits: {', '.join(SPLITS)}; held-out (shape, colour) pairs: "
        + ", ".join(f"{s}/{c}" for s, c in tx.HELD_OUT_COMBOS)
    )
    for name, fn in (("tiny CLIP", shipped_clip_dir), ("similarity encoder", shipped_simenc_dir)):
        try:
            click.echo(f"{name}: {fn()}")
        except VsaeError as e:
            click.echo(f"{name}: {e}")
