"""`vsae encode`: write the SAE latents of a store as a new sparse store."""

from __future__ import annotations

from typing import Any

import click

from vsae.cli.from_config import config_options
from vsae.cli.options import device_callback, revision_option
from vsae.sae.sae_config import EncodeConfig


@click.command()
@click.option(
    "--sae",
    "sae_path",
    required=True,
    type=click.Path(),
    help="SAE: a run directory (from `vsae train`), another library's checkpoint (SAELens, dictionary_learning, "
    "saev, sparsify, overcomplete, ViT-Prisma), a known name (`vsae sae list`) or a hub id org/repo[/subfolder].",
)
@revision_option("sae_path")
@click.option("--acts", required=True, type=click.Path(), help="Activation store to encode.")
@click.option("--out", required=True, type=click.Path(), help="Sparse store to write (resumes if it exists).")
@config_options(EncodeConfig, overrides={"device": {"callback": device_callback}})
@click.option("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default).")
@click.option(
    "--force",
    is_flag=True,
    help="Encode even where the SAE's training rows (hook, token selection) differ from the store's.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def encode(
    sae_path: str,
    acts: str,
    out: str,
    batch_size: int,
    device: Any,
    dtype: str,
    threads: int,
    force: bool,
    quiet: bool,
) -> None:
    """Encode every row of ACTS with the SAE into OUT (CSR rows: latent indices + values)."""
    from pathlib import Path

    from vsae.errors import VsaeError
    from vsae.sae.hub_ids import check_sae_arg
    from vsae.store.manifest import read_manifests

    check_sae_arg(sae_path)  # wrong paths fail in well under a second, before torch is imported
    read_manifests(Path(acts))
    from vsae.sae import load
    from vsae.sae.encode_store import encode_store
    from vsae.store import ActivationStore

    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    sae = load(sae_path)
    store = ActivationStore.open(acts)
    if store.d != sae.cfg.d_in:
        raise VsaeError(
            f"store {acts} has d={store.d} but the SAE expects d_in={sae.cfg.d_in}; use the matching store"
        )
    p = encode_store(
        sae,
        store,
        out,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        progress=not quiet,
        sae_path=sae_path,
        force=force,
    )
    click.echo(str(p))
