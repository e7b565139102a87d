"""`vsae demo`: the whole pipeline on the embedded shapes world, offline, with a report.

`--steps` and `--seed` are generated from `DemoConfig` (`vsae.cli.from_config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vsae.cli.from_config import config_options
from vsae.demo.demo_config import DemoConfig, fast_config

_FAST_STEPS = fast_config(Path("demo-out")).steps


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
@config_options(
    DemoConfig,
    only=("steps", "seed"),
    overrides={
        "steps": {
            "default": None,
            "show_default": False,
            "help": f"SAE training steps [default: {DemoConfig.__dataclass_fields__['steps'].default}; "
            f"with --fast {_FAST_STEPS}].",
        }
    },
)
@click.option("--quiet", is_flag=True, help="No progress output; print only where the report is.")
def demo(out: Path, fast: bool, steps: int | None, seed: int, quiet: bool) -> None:
    """Extract -> train SAEs -> evaluate (MS, hierarchy, uniqueness, probes, OOD, names) -> report.html,
    on the shapes world with the shipped tiny CLIP; no GPU or network needed."""
    from vsae.demo import run_demo

    kw: dict[str, Any] = {"seed": seed, "progress": not quiet}
    if steps is not None:
        kw["steps"] = steps
    cfg = fast_config(out, **kw) if fast else DemoConfig(out=out, **kw)
    run_demo(cfg)
    if quiet:
        click.echo(f"{cfg.out / 'report.html'}, {cfg.out / 'results.json'}")
