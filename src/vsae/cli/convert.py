"""`vsae convert`: write another library's SAE (or a hub id's) as a vsae SAE directory."""

from __future__ import annotations

import click


@click.command()
@click.argument("source")
@click.option("--out", required=True, type=click.Path(), help="vsae SAE directory to write.")
@click.option(
    "--format",
    "fmt",
    default=None,
    help="Force an importer (dictionary_learning, saelens, sparsify, saev, overcomplete, prisma) "
    "[default: detected].",
)
@click.option("--revision", default=None, help="Hub revision (branch, tag or commit) of a hub id SOURCE.")
@click.option("--overwrite", is_flag=True, help="Replace an SAE already in --out.")
def convert(source: str, out: str, fmt: str | None, revision: str | None, overwrite: bool) -> None:
    """Convert SOURCE (a dictionary_learning / saev / sparsify / overcomplete / ViT-Prisma / SAELens
    checkpoint, a known name from `vsae sae list`, or a hub id org/repo[/subfolder]) into a vsae
    SAE directory OUT (safetensors + JSON, recording the source format, file hashes and config)."""
    from vsae.sae.hub_ids import check_sae_arg

    check_sae_arg(source)  # a wrong path fails before torch is imported
    from vsae.sae.convert import convert as run

    d = run(source, out, format=fmt, revision=revision, overwrite=overwrite)
    click.echo(f"wrote {d}")
