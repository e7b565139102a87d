"""Click options shared by several commands, each parsed by one helper (one error message each)."""

from __future__ import annotations

import click


def _device(ctx, param, value):
    from vsae.device import parse_device

    return parse_device(value)


def device_option(default: str = "cpu", help: str = "torch device: cpu, cuda, cuda:N or mps."):
    """`--device`, checked by `vsae.device.parse_device` (a one-line error naming the devices here)."""
    return click.option("--device", default=default, show_default=True, callback=_device, help=help)


DTYPES = ["float16", "bfloat16", "float32"]


def store_dtype_options(default: str = "float16"):
    """`--dtype` (how the store keeps rows) and `--model-dtype` (what the model computes in)."""

    def deco(f):
        f = click.option(
            "--model-dtype",
            default=None,
            type=click.Choice(DTYPES),
            help="Compute dtype [default: float32 on cpu, --dtype elsewhere].",
        )(f)
        return click.option(
            "--dtype", default=default, show_default=True, type=click.Choice(DTYPES), help="Storage dtype."
        )(f)

    return deco
