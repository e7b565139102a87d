"""`vsae sae`: the directory of known public vision SAEs."""

from __future__ import annotations

import click


@click.group()
def sae() -> None:
    """Known public vision SAEs (load one with --sae RELEASE/NAME or SAE.from_pretrained)."""


@sae.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the directory as JSON.")
def list_saes(as_json: bool) -> None:
    """Print the known SAEs: name, hub id, format, model, hook, width, k (* = unverified field)."""
    import dataclasses
    import json

    from vsae.sae.pretrained import directory

    saes = directory()
    if as_json:
        click.echo(json.dumps({n: dataclasses.asdict(s) for n, s in saes.items()}, indent=1))
        return
    cols = ("model", "hook", "arch", "width", "k")
    for name, s in saes.items():
        where = s.repo_id + (f"/{s.subfolder}" if s.subfolder else "")
        cells = [f"{c}={getattr(s, c)}{'' if c in s.verified else '*'}" for c in cols]
        click.echo(f"{name}\n  {where}\n  format={s.format}  " + "  ".join(cells))
    click.echo("(* = not verified against a public source; see `vsae sae list --json`)")
