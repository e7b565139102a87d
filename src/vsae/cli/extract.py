"""`vsae extract`: activations of a model at hook points into activation stores."""

from __future__ import annotations

import click


@click.command()
@click.option("--model", required=True, help="Hugging Face hub id or local model directory.")
@click.option(
    "--hook",
    "hooks",
    multiple=True,
    required=True,
    help="resid.L | attn.L | mlp.L | embed | module:<path>; repeat for several (OUT/<hook>/ each).",
)
@click.option("--tokens", default="cls", show_default=True, help="cls | mean | patches | all | random:K")
@click.option(
    "--data", required=True, help="Image folder tree, .txt/.csv image list, or prompt file (text models)."
)
@click.option("--split", default=None, help="Split sub-folder of the data tree (train, val ...).")
@click.option("--out", required=True, help="Store directory (created, or resumed if it exists).")
@click.option(
    "--tower",
    default=None,
    type=click.Choice(["vision", "text", "language"]),
    help="CLIP: vision|text; LLaVA: vision|language.",
)
@click.option("--batch-size", default=64, show_default=True, type=int)
@click.option(
    "--num-workers", default=2, show_default=True, type=int, help="DataLoader workers decoding images."
)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--dtype",
    default="float16",
    show_default=True,
    type=click.Choice(["float16", "bfloat16", "float32"]),
    help="Storage dtype.",
)
@click.option(
    "--model-dtype",
    default=None,
    type=click.Choice(["float16", "bfloat16", "float32"]),
    help="Compute dtype [default: float32 on cpu, --dtype elsewhere].",
)
@click.option("--max-images", default=None, type=int, help="Use only the first N images.")
@click.option(
    "--shard", default=None, help="I/N: process the I-th of N blocks [default: RANK/WORLD_SIZE or 0/1]."
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of random:K token sampling.")
@click.option(
    "--rows-per-shard", default=65536, show_default=True, type=int, help="Rows per store shard file."
)
@click.option("--threads", default=None, type=int, help="torch CPU threads [default: torch's].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def extract(hooks, shard, quiet, **kw):
    """Extract activations of a model at hook points into an activation store (resumable)."""
    from vsae.extract import ExtractConfig, parse_shard
    from vsae.extract import extract as run

    _quiet_transformers()
    cfg = ExtractConfig(
        hooks=tuple(hooks), shard=parse_shard(shard) if shard else None, progress=not quiet, **kw
    )
    out = run(cfg)
    click.echo(f"wrote {out}")


def _quiet_transformers() -> None:
    """Hide transformers' weight-loading bars and advice; the extraction shows its own progress."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
