"""`vsae store info|check`: inspect and verify activation stores."""

from __future__ import annotations

import json
import sys

import click


@click.group()
def store() -> None:
    """Inspect and verify activation stores."""


def _summary(path: str) -> dict:
    # From the manifests alone: `vsae store info` must not import torch (it answers in well under 1 s).
    from pathlib import Path

    from vsae.store.manifest import read_manifests

    ms = read_manifests(Path(path))
    m = ms[0]
    skipped = [s for mm in ms for s in mm["skipped"]]
    return {
        "path": str(Path(path)),
        "format": m["format"],
        "rows": sum(int(sh["rows"]) for mm in ms for sh in mm["shards"]),
        "d": int(m["d"]),
        "dtype": m["dtype"],
        "parts": len(ms),
        "shards": sum(len(mm["shards"]) for mm in ms),
        "complete": all(mm["complete"] for mm in ms),
        "images_done": sum(mm["next_image"] - mm.get("image_range", [0])[0] for mm in ms),
        "skipped": len(skipped),
        "skipped_reasons": _count_reasons(skipped),
        "provenance": m.get("provenance", {}),
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
def info(path: str, as_json: bool) -> None:
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
def check(path: str) -> None:
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
