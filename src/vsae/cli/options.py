"""Click options shared by several commands, each parsed by one helper (one error message each)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, get_args

import click

from vsae.store.validate import StorageDtype

F = TypeVar("F", bound=Callable[..., Any])


def device_callback(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Click callback: `--device` checked by `vsae.device.parse_device` (one line naming the devices here)."""
    from vsae.device import parse_device

    return parse_device(value)


def device_option(
    default: str = "cpu", help: str = "Torch device: cpu, cuda, cuda:N or mps."
) -> Callable[[F], F]:
    """`--device`, checked by `vsae.device.parse_device` (a one-line error naming the devices here)."""
    return click.option("--device", default=default, show_default=True, callback=device_callback, help=help)


def repeated(*fields: str) -> dict[str, dict[str, Any]]:
    """`config_options` overrides making the tuple fields ``fields`` repeated options (``--hook A
    --hook B``: one value each) instead of comma lists."""
    return {f: {"multiple": True, "callback": None} for f in fields}


def compute_dtype_option() -> Callable[[F], F]:
    """``--dtype``: the dtype the model computes in (the choices are the storage dtypes')."""
    return click.option(
        "--dtype",
        default="float32",
        show_default=True,
        type=click.Choice(list(get_args(StorageDtype))),
        help="Compute dtype of the model.",
    )
