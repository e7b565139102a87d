"""`vsae serve`: the latent browser, a local web app over a demo output or a store + SAE (its
settings are generated from `vsae.serve.serve_config.ServeConfig`)."""

from __future__ import annotations

import dataclasses
import socket
import sys
import time
from pathlib import Path
from typing import Any

import click

from vsae.cli.from_config import config_options, pick
from vsae.cli.options import revision_option
from vsae.errors import VsaeError
from vsae.serve.serve_config import ServeConfig


def _socket(host: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except (OSError, OverflowError) as e:
        s.close()
        why = getattr(e, "strerror", None) or str(e)
        raise VsaeError(
            f"cannot listen on {host}:{port} ({why}); give another --host / --port (0: a free port)"
        ) from None
    s.listen(64)
    return s


@click.command()
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option("--acts", type=click.Path(), help="Activation store the SAE encodes (instead of PATH).")
@click.option("--sae", "sae_dir", type=click.Path(), help="SAE run directory or hub id (with --acts).")
@revision_option("sae_dir")
@click.option("--images", type=click.Path(file_okay=False), help="Image dataset root (default: the store's).")
@click.option("--ms", type=click.Path(), help="`vsae eval ms --out` directory: MS per latent.")
@click.option("--names", type=click.Path(), help="`vsae eval names --out` directory: latent names.")
@click.option(
    "--explanations",
    type=click.Path(),
    help="`vsae eval explain --out` directory: explanations, concept search.",
)
@click.option("--llava", type=click.Path(), help="LLaVA for the steering playground (default: the tiny one).")
@click.option("--steer-sae", type=click.Path(), help="SAE on that LLaVA's vision tower (with --llava).")
@click.option(
    "--diffusion",
    type=click.Path(),
    help="Text-to-image pipeline for diffusion steering (default: the world's tiny one when built).",
)
@click.option(
    "--diffusion-sae", type=click.Path(), help="SAE on that pipeline's text encoder (with --diffusion)."
)
@click.option(
    "--force",
    is_flag=True,
    help="Serve an SAE whose hook differs from the store's (every page then says so).",
)
@config_options(ServeConfig)
def serve(
    path: str,
    acts: str,
    sae_dir: str,
    images: str,
    ms: str,
    names: str,
    explanations: str | None,
    llava: str,
    steer_sae: str,
    diffusion: str,
    diffusion_sae: str,
    force: bool,
    **fields: Any,
) -> None:
    """Browse SAE latents in a web browser: table, latent pages with heatmaps, uploads, steering.

    PATH is a `vsae demo --out` directory; or give --acts STORE --sae RUN [--images DIR].
    """
    from vsae.serve.sources import Served, SteerSource, from_demo, from_flags

    if path and (acts or sae_dir or images or ms or names or explanations or force):
        raise VsaeError(
            "give either PATH (a demo output) or --acts/--sae (with --images/--ms/--names/--force), not both"
        )
    if path:
        served = from_demo(path)
    elif acts and sae_dir:
        served = Served((from_flags(acts, sae_dir, images, ms, names, force=force),))
        if explanations:  # issue 29 (vsae.serve.explanations)
            from vsae.serve.explanations import check

            served = Served((dataclasses.replace(served.saes[0], explanations=check(explanations)),))
    else:
        raise VsaeError("give PATH (a `vsae demo --out` directory) or --acts STORE --sae RUN")
    if llava or steer_sae:
        served = Served(
            served.saes,
            SteerSource(
                Path(llava) if llava else None,
                Path(steer_sae) if steer_sae else None,
                served.steer.steer_results,
                served.steer.diffusion_results,
            ),
        )
    cfg = ServeConfig(**pick(ServeConfig, fields))
    if not 0 <= cfg.port < 65536 or cfg.max_upload_mb <= 0:
        raise VsaeError("--port must be in 0..65535 and --max-upload-mb positive")
    sock = _socket(cfg.host, cfg.port)  # fail fast on a taken port, before the indexing
    try:
        import torch
        import uvicorn

        from vsae.serve import ServeLimits, create_app
        from vsae.serve.steering import diffusion_hook
    except ImportError as e:
        raise VsaeError(f"vsae serve needs the 'serve' extra ({e}); pip install -e '.[serve]'") from None
    torch.set_num_threads(max(1, cfg.threads))
    limits = ServeLimits(max_upload_bytes=cfg.max_upload_bytes)
    from vsae.serve.security import LOOPBACK, allowed_hosts

    hosts = allowed_hosts(cfg.host, cfg.extra_hosts)
    app = create_app(served, limits, diffusion=diffusion_hook(diffusion, diffusion_sae), hosts=hosts)
    state = app.state.vsae
    t = time.perf_counter()
    state.warm()  # the default SAE's index and its heatmap model, so the first page is fast
    click.echo(f"indexed {state.served.saes[0].id} in {time.perf_counter() - t:.1f} s", err=True)
    shown = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{sock.getsockname()[1]}/"
    if cfg.host not in LOOPBACK:
        click.echo(
            f"warning: listening on {cfg.host}: anyone who can reach it can use this server (no login)",
            err=True,
        )
    click.echo(f"serving {len(served.saes)} SAE(s) at {url}  (Ctrl-C stops)")
    sys.stdout.flush()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
