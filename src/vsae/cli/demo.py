"""`vsae demo`: the whole pipeline on the embedded shapes world, offline, with a report."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="Output directory (re-running with the same --out resumes).",
)
@click.option(
    "--fast",
    is_flag=True,
    help="Tiny sizes (seconds, for a smoke test); the findings need the default sizes.",
)
@click.option("--steps", type=int, default=None, help="SAE training steps (default 800).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress output; print only where the report is.")
def demo(out: Path, fast: bool, steps: int | None, seed: int, quiet: bool):
    """Extract -> train SAEs -> evaluate (MS, hierarchy, uniqueness, probes, OOD, names) -> report.html,
    on the shapes world with the shipped tiny CLIP; no GPU or network needed."""
    from vsae.demo import DemoConfig, fast_config, run_demo

    kw = {"seed": seed, "progress": not quiet}
    if steps is not None:
        kw["steps"] = steps
    cfg = fast_config(out, **kw) if fast else DemoConfig(out=out, **kw)
    run_demo(cfg)
    if quiet:
        click.echo(f"{cfg.out / 'report.html'}, {cfg.out / 'results.json'}")
