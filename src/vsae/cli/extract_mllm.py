"""`vsae extract-mllm`: a LLaVA language model's residual stream at image tokens and caption tokens,
in one store with a per-row modality column (for `vsae eval shared`). The options are generated from
`vsae.extract.settings.MllmExtractConfig` (`vsae.cli.from_config`)."""

from __future__ import annotations

from typing import Any

import click

from vsae.cli.from_config import config_options
from vsae.cli.options import device_callback, repeated
from vsae.extract.settings import MllmExtractConfig


@click.command("extract-mllm")
@config_options(
    MllmExtractConfig,
    only=("model", "hooks", "data", "split", "captions", "out"),
    overrides=repeated("hooks"),
)
@config_options(
    MllmExtractConfig,
    only=("question", "n_images", "image_tokens", "balance", "text_kinds", "batch_size"),
    overrides={"text_kinds": {**repeated("text_kinds")["text_kinds"], "default": ["caption"]}},
)
@config_options(MllmExtractConfig, only=("device",), overrides={"device": {"callback": device_callback}})
@config_options(MllmExtractConfig, only=("dtype", "model_dtype", "seed", "rows_per_shard", "threads"))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def extract_mllm(hooks: tuple[str, ...], text_kinds: tuple[str, ...], quiet: bool, **kw: Any) -> None:
    """Residual stream of a LLaVA's language model at image-token positions (image + question) and at
    caption-token positions (text only), balanced, in one store per hook (Olson et al.'s shared features)."""
    from vsae.data.image_sources import open_source_early

    open_source_early(kw["data"], kw["split"])  # a bad --data/--split fails before torch loads
    from vsae.cli.extract import _quiet_transformers
    from vsae.extract.mllm_tokens import extract_mllm as run

    _quiet_transformers()
    kinds = tuple(text_kinds) or ("caption",)
    out = run(MllmExtractConfig(hooks=tuple(hooks), text_kinds=kinds, progress=not quiet, **kw))
    click.echo(f"wrote {out}")
