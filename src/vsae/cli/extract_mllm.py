"""`vsae extract-mllm`: a LLaVA language model's residual stream at image tokens and caption tokens,
in one store with a per-row modality column (for `vsae eval shared`)."""

from __future__ import annotations

import click

from vsae.cli.options import device_option, store_dtype_options


@click.command("extract-mllm")
@click.option("--model", required=True, help="LLaVA hub id or local directory (with its LlavaProcessor).")
@click.option(
    "--hook",
    "hooks",
    multiple=True,
    required=True,
    help="Hook of the language model: resid.L | attn.L | mlp.L | module:<path>; repeat for several (OUT/<hook>/ each).",
)
@click.option("--data", required=True, help="Image folder tree or .txt/.csv image list.")
@click.option("--split", default=None, help="Split sub-folder of the data tree (train, val ...).")
@click.option(
    "--captions",
    default=None,
    help="Captions: .txt with line i = caption of image i of --data (or .csv with a 'text' column) "
    "[default: the 'caption' field of DATA/attributes.json, a world export].",
)
@click.option("--out", required=True, help="Store directory (created, or resumed if it exists).")
@click.option("--question", default="Describe this image.", show_default=True, help="Asked with each image.")
@click.option("--n-images", type=int, default=None, help="A seeded random sample of N images [default: all].")
@click.option(
    "--image-tokens",
    default="all",
    show_default=True,
    help="Image-token positions per image: all | random:K.",
)
@click.option(
    "--balance/--no-balance",
    default=True,
    show_default=True,
    help="Equal image and text row counts (seeded subsample of the larger modality).",
)
@click.option("--batch-size", default=32, show_default=True, type=int)
@device_option()
@store_dtype_options()
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Seeds the sample, random:K and balancing."
)
@click.option("--rows-per-shard", default=65536, show_default=True, type=int)
@click.option("--threads", default=None, type=int, help="torch CPU threads [default: torch's].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def extract_mllm(hooks, quiet, **kw):
    """Residual stream of a LLaVA's language model at image-token positions (image + question) and at
    caption-token positions (text only), balanced, in one store per hook (Olson et al.'s shared features)."""
    from vsae.data.sources import open_source_early

    open_source_early(kw["data"], kw["split"])  # a bad --data/--split fails before torch loads
    from vsae.cli.extract import _quiet_transformers
    from vsae.extract_mllm import MllmExtractConfig
    from vsae.extract_mllm import extract_mllm as run

    _quiet_transformers()
    out = run(MllmExtractConfig(hooks=tuple(hooks), progress=not quiet, **kw))
    click.echo(f"wrote {out}")
