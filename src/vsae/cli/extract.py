"""`vsae extract`: activations of a model at hook points into activation stores.

The options are generated from `vsae.extract.settings.ExtractConfig` (`vsae.cli.from_config`).
"""

from __future__ import annotations

from typing import Any

import click

from vsae.cli.from_config import config_options
from vsae.cli.options import device_callback, repeated
from vsae.extract.settings import ExtractConfig


@click.command()
@config_options(
    ExtractConfig,
    only=("model", "hooks", "tokens", "data", "split", "image_column", "label_column", "out", "tower"),
    overrides=repeated("hooks"),
)
@config_options(ExtractConfig, only=("batch_size", "num_workers"))
@config_options(ExtractConfig, only=("device",), overrides={"device": {"callback": device_callback}})
@config_options(ExtractConfig, only=("dtype", "model_dtype", "max_images", "max_images_order"))
@click.option(
    "--shard", default=None, help="I/N: process the I-th of N blocks [default: RANK/WORLD_SIZE or 0/1]."
)
@config_options(ExtractConfig, only=("seed", "rows_per_shard", "threads"))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def extract(hooks: tuple[str, ...], shard: str | None, quiet: bool, **kw: Any) -> None:
    """Extract activations of a model at hook points into an activation store (resumable)."""
    from vsae.data.image_sources import open_source_early

    # a bad --data/--split fails before torch loads
    source = open_source_early(kw["data"], kw["split"], kw["image_column"], kw["label_column"])
    from vsae.extract import extract as run
    from vsae.extract import parse_shard, prepare

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
