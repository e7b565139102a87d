"""`vsae train`: train one SAE, or a sweep over --k / --expansion in one pass, on a store."""

from __future__ import annotations

import click

from vsae.cli.options import device_option
from vsae.errors import VsaeError


def _floats(s: str, what: str) -> list[float]:
    try:
        return [float(v) for v in s.split(",") if v.strip()]
    except ValueError:
        raise VsaeError(f"{what} must be a number or a comma list of numbers, got {s!r}") from None


def _ints(s: str, what: str) -> list[int]:
    vals = _floats(s, what)
    if not vals or any(not (v.is_integer() and v >= 1) for v in vals):
        raise VsaeError(f"{what} must be a positive integer or a comma list of them, got {s!r}")
    return [int(v) for v in vals]


@click.command()
@click.option("--acts", required=True, type=click.Path(), help="Activation store to train on.")
@click.option(
    "--arch",
    type=click.Choice(["relu", "topk", "batchtopk", "matryoshka", "jumprelu"]),
    default="batchtopk",
    show_default=True,
)
@click.option(
    "--expansion", default="16", show_default=True, help="Dictionary size / d; a comma list trains a sweep."
)
@click.option(
    "--k",
    "k",
    default="20",
    show_default=True,
    help="Active latents per row (top-k family); a comma list trains a sweep.",
)
@click.option("--steps", type=int, required=True, help="Optimizer steps.")
@click.option("--batch-size", type=int, default=4096, show_default=True)
@click.option("--lr", type=float, default=4e-4, show_default=True)
@click.option("--out", required=True, type=click.Path(), help="Run directory; each SAE goes to OUT/<name>/.")
@click.option("--val", type=click.Path(), default=None, help="Held-out store for validation metrics.")
@click.option(
    "--val-rows",
    type=int,
    default=65536,
    show_default=True,
    help="Validation rows: a seeded sample spread over the whole --val store (all if it has fewer).",
)
@click.option(
    "--groups", default="0.0625,0.125,0.25,0.5625", show_default=True, help="Matryoshka group fractions."
)
@click.option("--l1", type=float, default=5.0, show_default=True, help="ReLU SAE L1 coefficient.")
@click.option("--l0", type=float, default=1.0, show_default=True, help="JumpReLU L0 coefficient.")
@click.option(
    "--aux-k", type=int, default=None, help="Dead latents in the aux-k loss (default d/2; 0 = off)."
)
@click.option(
    "--aux-coeff", type=float, default=0.03, show_default=True, help="Aux-k loss weight (Pach et al.: 0.03)."
)
@click.option(
    "--dead-window", type=int, default=None, help="Rows without firing after which a latent is dead."
)
@click.option(
    "--warmup-steps", type=int, default=None, help="LR warm-up steps (default 5% of steps, <= 1000)."
)
@click.option("--grad-clip", type=float, default=1.0, show_default=True)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "tf32", "bf16"]),
    default="fp32",
    show_default=True,
    help="Matmul precision of the encoder/decoder products (tf32: CUDA tensor cores; bf16: autocast); weights stay fp32.",
)
@click.option("--resume", is_flag=True, help="Continue the run in OUT from its last checkpoint.")
@click.option(
    "--no-verify",
    is_flag=True,
    help="Skip the sha256 and NaN/Inf check of each shard on first read (file types and shapes are always checked).",
)
@click.option("--allow-incomplete", is_flag=True, help="Train on a store whose extraction has not finished.")
@device_option()
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--log-every", type=int, default=100, show_default=True)
@click.option("--ckpt-every", type=int, default=1000, show_default=True)
@click.option(
    "--wandb", "wandb_project", default=None, help="Also log to this Weights & Biases project (if installed)."
)
@click.option(
    "--export-saelens", is_flag=True, help="Also write each SAE in SAELens format to OUT/<name>/saelens/."
)
@click.option("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(
    acts,
    arch,
    expansion,
    k,
    steps,
    batch_size,
    lr,
    out,
    val,
    val_rows,
    groups,
    l1,
    l0,
    aux_k,
    aux_coeff,
    dead_window,
    warmup_steps,
    grad_clip,
    precision,
    resume,
    no_verify,
    allow_incomplete,
    device,
    seed,
    log_every,
    ckpt_every,
    wandb_project,
    export_saelens,
    threads,
    quiet,
):
    """Train sparse autoencoders on an activation store (several in one pass for a sweep)."""
    from pathlib import Path

    from vsae.store.manifest import read_manifests

    for path in (acts, val) if val else (acts,):  # a wrong path fails in well under a second, before torch
        read_manifests(Path(path))
    from vsae.sae import SAEConfig
    from vsae.train import TrainConfig, open_source, run_name
    from vsae.train import train as run_training
    from vsae.train.dist import init_from_env, rank, shutdown

    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    device = init_from_env(device)
    source = open_source(acts, verify=not no_verify, allow_incomplete=allow_incomplete)
    val_source = open_source(val, verify=not no_verify, allow_incomplete=allow_incomplete) if val else None
    d = source.d
    if val_source is not None and val_source.d != d:  # before training, not after it
        raise VsaeError(
            f"--val {val} has width d={val_source.d} but --acts has d={d}; use a store of the same hook"
        )
    exps = _floats(expansion, "--expansion")
    if not exps or any(not e > 0 for e in exps):
        raise VsaeError(f"--expansion must be positive numbers, got {expansion!r}")
    topk = arch in ("topk", "batchtopk", "matryoshka")
    ks = _ints(k, "--k") if topk else [0]
    cfgs = []
    for e in exps:
        for kk in ks:
            extra = {"k": kk} if topk else {}
            c = SAEConfig(
                arch=arch,
                d_in=d,
                d_sae=int(round(e * d)),
                groups=tuple(_floats(groups, "--groups")),
                l1_coeff=l1,
                l0_coeff=l0,
                aux_coeff=aux_coeff,
                aux_k=(d // 2 if aux_k is None else aux_k) if topk else 0,
                **extra,
            )
            cfgs.append(c.replace(name=run_name(c, e)))
    tcfg = TrainConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        warmup_steps=warmup_steps,
        grad_clip=grad_clip,
        seed=seed,
        log_every=log_every,
        ckpt_every=ckpt_every,
        dead_window_rows=dead_window,
        device=device,
        wandb_project=wandb_project,
        val_rows=val_rows,
        precision=precision,
    )
    try:
        dirs = run_training(source, cfgs, tcfg, out, val=val_source, resume=resume, progress=not quiet)
        is_main = rank() == 0
    finally:
        shutdown()
    if not is_main:
        return
    for p in dirs:
        if export_saelens:
            from vsae.sae import load
            from vsae.sae.saelens import export_saelens as write_saelens

            write_saelens(load(p), p / "saelens")
        click.echo(str(p))
