"""`vsae extract`: activations of a model at hook points into activation stores."""

from __future__ import annotations

import click

from vsae.cli.options import device_option, store_dtype_options


@click.command()
@click.option(
    "--model",
    required=True,
    help="Hugging Face hub id or local model directory; any nn.Module by python:package.module:factory "
    "(or python:file.py:factory); a timm model by timm:NAME (docs/extract.md).",
)
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
@device_option()
@store_dtype_options()
@click.option(
    "--max-images",
    default=None,
    type=int,
    help="Use only N images: a seeded sample spread over the classes (--seed), listed in images.json.",
)
@click.option(
    "--max-images-order",
    default="sample",
    show_default=True,
    type=click.Choice(["sample", "first"]),
    help="How --max-images chooses: a class-stratified seeded sample, or the first N in source order.",
)
@click.option(
    "--shard", default=None, help="I/N: process the I-th of N blocks [default: RANK/WORLD_SIZE or 0/1]."
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Seed of random:K token sampling and of --max-images.",
)
@click.option(
    "--rows-per-shard", default=65536, show_default=True, type=int, help="Rows per store shard file."
)
@click.option(
    "--threads",
    default=None,
    type=int,
    help="torch CPU threads [default on cpu: the CPUs this process may use (shared by torchrun's local"
    " processes) minus --num-workers, at least 1, so that torch and the image decoders do not compete"
    " for cores (torch's own default ran 2x slower on 2 cores); elsewhere torch's].",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def extract(hooks, shard, quiet, **kw):
    """Extract activations of a model at hook points into an activation store (resumable)."""
    from vsae.data.sources import open_source_early

    source = open_source_early(kw["data"], kw["split"])  # a bad --data/--split fails before torch loads
    from vsae.extract import ExtractConfig, parse_shard, prepare
    from vsae.extract import extract as run

    if kw["threads"] is None and kw["device"] == "cpu":
        kw["threads"] = default_threads(kw["num_workers"])
    cfg = ExtractConfig(
        hooks=tuple(hooks), shard=parse_shard(shard) if shard else None, progress=not quiet, **kw
    )
    prepared = prepare(cfg, source)  # bad data arguments fail here, before transformers and the model load
    _quiet_transformers()
    out = run(cfg, prepared=prepared)
    click.echo(f"wrote {out}")


def default_threads(num_workers: int) -> int:
    """torch threads that leave one CPU per data-loader worker: on 2 cores with 2 workers torch's
    default (2) ran 2x slower than 1, the threads and the decoding processes competing for cores."""
    import os

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    per_process = cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))  # torchrun: share the CPUs
    return max(1, per_process - max(0, num_workers))


def _quiet_transformers() -> None:
    """Hide transformers' weight-loading bars and advice; the extraction shows its own progress."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
