"""`vsae train`: train one SAE, or a sweep over --k / --expansion in one pass, on a store.

The SAE and training options are generated from `SAEConfig`, `SweepAxes` and `TrainConfig`
(`vsae.cli.from_config`): their fields' defaults, choices and docstrings are the only ones.
"""

from __future__ import annotations

from typing import Any

import click

from vsae.cli.from_config import LazyChoice, config_options, pick
from vsae.cli.options import device_callback
from vsae.sae.config import SAEConfig
from vsae.sae.registry import arch_names
from vsae.sae.sweep import SweepAxes
from vsae.train.config import TrainConfig
from vsae.train.stream_config import StreamConfig

# SAEConfig fields that are not options: set from the store and the sweep.
_SAE_DERIVED = ("d_in", "d_sae", "name", "provenance")


@click.command()
@click.option(
    "--acts", default=None, type=click.Path(), help="Activation store to train on (or --model ...)."
)
@config_options(
    StreamConfig,
    only=("model", "hook", "data"),
    overrides={f: {"required": False} for f in ("model", "hook", "data")},
)
@config_options(StreamConfig, exclude=("model", "hook", "data"))
@config_options(SAEConfig, only=("arch",), overrides={"arch": {"type": LazyChoice(arch_names)}})
@config_options(SweepAxes, lists=("expansion",))
@config_options(SAEConfig, only=("k",), lists=("k",))
@config_options(TrainConfig, only=("steps", "batch_size", "lr"))
@click.option("--out", required=True, type=click.Path(), help="Run directory; each SAE goes to OUT/<name>/.")
@click.option("--val", type=click.Path(), default=None, help="Held-out store for validation metrics.")
@config_options(TrainConfig, only=("val_rows",))
@config_options(SAEConfig, exclude=(*_SAE_DERIVED, "arch", "k"))
@config_options(TrainConfig, exclude=("steps", "batch_size", "lr", "val_rows", "device"))
@click.option("--resume", is_flag=True, help="Continue the run in OUT from its last checkpoint.")
@click.option(
    "--no-verify",
    is_flag=True,
    help="Skip the sha256 and NaN/Inf check of each shard on first read (file types and shapes are always checked).",
)
@click.option("--allow-incomplete", is_flag=True, help="Train on a store whose extraction has not finished.")
@config_options(TrainConfig, only=("device",), overrides={"device": {"callback": device_callback}})
@click.option(
    "--export-saelens", is_flag=True, help="Also write each SAE in SAELens format to OUT/<name>/saelens/."
)
@click.option("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(
    acts: str | None,
    out: str,
    val: str | None,
    resume: bool,
    no_verify: bool,
    allow_incomplete: bool,
    export_saelens: bool,
    threads: int,
    quiet: bool,
    **fields: Any,
) -> None:
    """Train sparse autoencoders on an activation store, or straight from a model (several in one pass for a sweep)."""
    from pathlib import Path

    from vsae.errors import VsaeError
    from vsae.store.manifest import read_manifests

    stream = pick(StreamConfig, fields)
    given = [f"--{k}" for k in ("model", "hook", "data") if stream.get(k) is not None]
    if acts is not None and given:
        raise VsaeError(
            f"give --acts (a store) or --model/--hook/--data (a model), not both ({', '.join(given)})"
        )
    if acts is None and len(given) < 3:
        raise VsaeError("give --acts STORE, or --model, --hook and --data to train straight from a model")
    for path in [p for p in (acts, val) if p]:  # a wrong path fails fast, before torch
        read_manifests(Path(path))
    from vsae.sae.sweep import expand_sweep
    from vsae.train import open_source
    from vsae.train import train as run_training
    from vsae.train.dist import init_from_env, rank, shutdown

    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    tkw = pick(TrainConfig, fields)
    tkw["device"] = init_from_env(tkw["device"])
    axes = pick(SweepAxes, fields)
    skw = pick(SAEConfig, fields)
    if acts is not None:
        source = open_source(acts, verify=not no_verify, allow_incomplete=allow_incomplete)
    else:
        from vsae.train.stream import ModelSource

        source = ModelSource(StreamConfig(**stream), device=tkw["device"], seed=tkw.get("seed", 0))
    val_source = open_source(val, verify=not no_verify, allow_incomplete=allow_incomplete) if val else None
    d = source.d
    if val_source is not None and val_source.d != d:  # before training, not after it
        raise VsaeError(
            f"--val {val} has width d={val_source.d} but --acts has d={d}; use a store of the same hook"
        )
    cfgs = expand_sweep(d, **axes, **skw)
    tcfg = TrainConfig(**tkw)
    try:
        dirs = run_training(source, cfgs, tcfg, out, val=val_source, resume=resume, progress=not quiet)
        is_main = rank() == 0
    finally:
        shutdown()
    if not is_main:
        return
    if getattr(source, "skipped", None):  # a model stream: the images it could not use, and why
        from vsae.store.safe_io import atomic_write_json

        atomic_write_json(
            Path(out, "skipped.json"), {str(k): v for k, v in sorted(source.skipped.items())}, indent=None
        )
        click.echo(f"skipped {len(source.skipped)} images (reasons in {Path(out, 'skipped.json')})", err=True)
    for p in dirs:
        if export_saelens:
            from vsae.sae import load
            from vsae.sae.saelens import export_saelens as write_saelens

            write_saelens(load(p), p / "saelens")
        click.echo(str(p))
