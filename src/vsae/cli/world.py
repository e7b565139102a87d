"""`vsae world`: the embedded shapes world (export it, rebuild its models, inspect them)."""

from __future__ import annotations

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
    from vsae.world.builder import build_world

    build_world(WorldBuildConfig(**pick(WorldBuildConfig, fields)), echo=click.echo)


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
