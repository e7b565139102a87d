"""`vsae store info|check`: inspect and verify activation stores."""

from __future__ import annotations

import json
import sys

import click


@click.group()
def store():
    """Inspect and verify activation stores."""


def _summary(path: str) -> dict:
    from vsae.store import ActivationStore

    s = ActivationStore.open(path)
    m = s.manifest
    return {
        "path": str(s.path),
        "format": m["format"],
        "rows": len(s),
        "d": s.d,
        "dtype": s.dtype,
        "parts": len(s.manifests),
        "shards": s.n_shards,
        "complete": s.complete,
        "images_done": sum(mm["next_image"] - mm["image_range"][0] for mm in s.manifests),
        "skipped": len(s.skipped),
        "skipped_reasons": _count_reasons(s.skipped),
        "provenance": s.provenance,
        "vsae_version": m.get("vsae_version"),
        "created": m.get("created"),
    }


def _count_reasons(skipped: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in skipped:
        key = s["reason"].split(":")[0]
        out[key] = out.get(key, 0) + 1
    return out


@store.command()
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(path: str, as_json: bool):
    """Show a store's size, format and provenance."""
    s = _summary(path)
    if as_json:
        click.echo(json.dumps(s, indent=1))
        return
    state = "complete" if s["complete"] else "INCOMPLETE (re-run the same command to resume)"
    click.echo(f"store     {s['path']}  ({state})")
    click.echo(
        f"rows      {s['rows']:,} x {s['d']} {s['dtype']} ({s['format']}), {s['shards']} shards, {s['parts']} part(s)"
    )
    click.echo(
        f"images    {s['images_done']:,} processed, {s['skipped']} skipped {s['skipped_reasons'] or ''}".rstrip()
    )
    for k, v in s["provenance"].items():
        click.echo(f"{k:<9} {json.dumps(v) if isinstance(v, dict | list) else v}")
    click.echo(f"written   by vsae {s['vsae_version']} at {s['created']}")


@store.command()
@click.argument("path", type=click.Path())
def check(path: str):
    """Verify checksums, row counts, indices and NaN/Inf; exit status 1 on any problem."""
    from vsae.store import check_store

    rep = check_store(path)
    for p in rep.problems:
        click.echo(f"problem: {p}")
    if rep.ok:
        click.echo(f"ok: {rep.rows:,} rows in {rep.shards} shards, checksums match, no NaN/Inf")
    else:
        click.echo(f"{len(rep.problems)} problem(s) in {path}")
        sys.exit(1)
