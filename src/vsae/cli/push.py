"""`vsae push`: upload an SAE run directory to the Hugging Face hub with a generated model card."""

from __future__ import annotations

import click


@click.command()
@click.argument("run_dir", type=click.Path())
@click.argument("repo_id")
@click.option("--private", is_flag=True, help="Create the repo as private.")
@click.option("--revision", default=None, help="Branch to commit to [default: main].")
@click.option(
    "--dry-run",
    type=click.Path(),
    default=None,
    help="Write the folder that would be uploaded here; upload nothing.",
)
def push(run_dir: str, repo_id: str, private: bool, revision: str | None, dry_run: str | None) -> None:
    """Upload RUN_DIR (a `vsae train` SAE) to REPO_ID with a model card (model, hook, data,
    architecture, width, k, training rows, FVU, L0, dead fraction, MS) and a SAELens copy.
    The token is huggingface_hub's (`hf auth login` or HF_TOKEN)."""
    from pathlib import Path

    from vsae.errors import VsaeError

    if not Path(run_dir).exists():  # fails before torch is imported
        raise VsaeError(f"run directory {run_dir} does not exist")
    from vsae.sae.publish import push as upload
    from vsae.sae.publish import stage

    if dry_run:
        click.echo(f"wrote {stage(run_dir, dry_run, repo_id)} (not uploaded)")
        return
    click.echo(upload(run_dir, repo_id, private=private, revision=revision))
