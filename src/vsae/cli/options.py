"""Click options shared by several commands, each parsed by one helper (one error message each)."""

from __future__ import annotations

import functools
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


def revision_option(sae_param: str) -> Callable[[F], F]:
    """``--revision`` of a command's hub-id ``--sae`` (the parameter ``sae_param``: one value or a
    repeated option's tuple), folded into the id as ``org/repo[/subfolder]@REV``
    (:func:`vsae.sae.hub_ids.with_revision`) before the command runs, so the one
    :func:`vsae.sae.load` of that SAE gets it. Put it right under the ``--sae`` option."""

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def run(*args: Any, revision: str | None = None, **kwargs: Any) -> Any:
            from vsae.errors import VsaeError
            from vsae.sae.hub_ids import with_revision

            if revision is not None:
                sae = kwargs.get(sae_param)
                if not sae:
                    raise VsaeError(f"--revision {revision} needs a hub id --sae (org/repo[/subfolder])")
                kwargs[sae_param] = (
                    tuple(with_revision(s, revision) for s in sae)
                    if isinstance(sae, tuple)
                    else with_revision(sae, revision)
                )
            return f(*args, **kwargs)

        return click.option(
            "--revision",
            default=None,
            help="Hub revision (branch, tag or commit) of a hub id --sae; the same as --sae ID@REVISION.",
        )(run)  # type: ignore[return-value]

    return decorate
