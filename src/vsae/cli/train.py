"""`vsae train`: train one SAE, or a sweep over --k / --expansion in one pass, on a store.

The common options are generated from `SAEConfig`, `SweepAxes` and `TrainConfig`, and each
architecture's options from its own config class (`vsae.sae.archs.<name>`; `vsae.cli.from_config`):
their fields' defaults, choices and docstrings are the only ones. The architecture's options are
read after the common ones (and after the paths are checked, so a wrong path fails before torch
is imported); `--help` lists them architecture by architecture.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from vsae.cli.from_config import LazyChoice, config_options, pick
from vsae.cli.options import device_callback
from vsae.sae.arch_registry import arch_names
from vsae.sae.sae_config import SAEConfig
from vsae.sae.sweep import SweepAxes
from vsae.train.stream_config import StreamConfig
from vsae.train.train_config import TrainConfig

# SAEConfig fields that are not options: set from the store and the sweep.
_SAE_DERIVED = ("d_in", "d_sae", "name", "provenance")


def arch_options(arch: str) -> list[click.Parameter]:
    """The options of architecture ``arch``: one per setting of its config class (the fields it adds
    to `SAEConfig`); a setting marked ``metadata["sweep"]`` (``k``) takes a comma list. Imports the
    architecture (torch)."""
    from vsae.sae.arch_registry import get_arch
    from vsae.sae.sae_config import settings

    cls = get_arch(arch).config
    own = settings(cls)
    sweep = [f.name for f in dataclasses.fields(cls) if f.name in own and f.metadata.get("sweep")]

    def holder() -> None: ...

    config_options(cls, only=own, lists=sweep)(holder)
    return list(reversed(getattr(holder, "__click_params__", [])))


def parse_arch_options(arch: str, args: list[str]) -> dict[str, Any]:
    """The settings of ``arch`` given in ``args`` (what the common options left); an option of
    another architecture, or of none, is a one-line `VsaeError`."""
    from vsae.errors import VsaeError
    from vsae.sae.arch_registry import arch_names

    params = arch_options(arch)
    cmd = click.Command("train", params=params, add_help_option=False)
    try:
        ctx = cmd.make_context("vsae train", list(args))
    except click.NoSuchOption as e:
        flag = e.option_name
        owners = [n for n in arch_names() if n != arch and any(flag in p.opts for p in arch_options(n))]
        if not owners:
            raise VsaeError(f"no such option {flag}; see `vsae train --help`") from None
        own = ", ".join(sorted(o for p in params for o in p.opts)) or "none"
        raise VsaeError(
            f"{flag} is an option of --arch {', '.join(owners)}, not of --arch {arch} (its options: {own})"
        ) from None
    if ctx.args:
        raise VsaeError(f"unexpected arguments {' '.join(ctx.args)}; see vsae train --help")
    return {k: v for k, v in ctx.params.items() if v is not None}


class _TrainCommand(click.Command):
    """`vsae train`: the common options, then each architecture's options in a section of its own."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """An option of no architecture is refused first, as click refuses one (before a missing
        required option); the architectures are imported only when an unknown-looking flag is given."""
        known = {o for p in self.get_params(ctx) for o in (*p.opts, *p.secondary_opts)}
        unknown = [a.split("=", 1)[0] for a in args if a.startswith("--") and a.split("=", 1)[0] not in known]
        if unknown:
            anywhere = {o for p in self.documented_params() for o in (*p.opts, *p.secondary_opts)}
            for flag in unknown:
                if flag not in anywhere:
                    raise click.NoSuchOption(flag, ctx=ctx)
        return super().parse_args(ctx, args)

    def documented_params(self) -> list[click.Parameter]:
        """The common options and every architecture's (imports the architectures: torch)."""
        from vsae.sae.arch_registry import arch_names

        return [*self.params, *(p for name in arch_names() for p in arch_options(name))]

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_options(ctx, formatter)
        from vsae.sae.arch_registry import arch_names

        for name in arch_names():
            rows = [r for p in arch_options(name) if (r := p.get_help_record(ctx)) is not None]
            with formatter.section(f"Options of --arch {name}"):
                formatter.write_dl(rows) if rows else formatter.write_text("(none)")


@click.command(cls=_TrainCommand, context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
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
@config_options(TrainConfig, only=("steps", "batch_size", "lr"))
@click.option("--out", required=True, type=click.Path(), help="Run directory; each SAE goes to OUT/<name>/.")
@click.option("--val", type=click.Path(), default=None, help="Held-out store for validation metrics.")
@config_options(TrainConfig, only=("val_rows",))
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
    ctx: click.Context,
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
    """Train sparse autoencoders on an activation store, or straight from a model (several in one pass for a sweep).

    The options of the architecture chosen with --arch follow the common ones (sections below)."""
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
    from vsae.train import open_store_source
    from vsae.train import train as run_training
    from vsae.train.dist import init_from_env, rank, shutdown

    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    tkw = pick(TrainConfig, fields)
    tkw["device"] = init_from_env(tkw["device"])
    axes = pick(SweepAxes, fields)
    skw = pick(SAEConfig, fields)
    skw.update(parse_arch_options(skw.get("arch", "batchtopk"), ctx.args))
    if acts is not None:
        source = open_store_source(acts, verify=not no_verify, allow_incomplete=allow_incomplete)
    else:
        from vsae.train.stream import ModelSource

        source = ModelSource(StreamConfig(**stream), device=tkw["device"], seed=tkw.get("seed", 0))
    val_source = open_store_source(val, verify=not no_verify, allow_incomplete=allow_incomplete) if val else None
    cfgs = expand_sweep(source.d, **axes, **skw)  # a --val of another width: refused by the Trainer
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
