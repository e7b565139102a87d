"""Sweeps: one :class:`SAEConfig` per point of a grid of hyper-parameters, and their run names.

    cfgs = expand_sweep(d_in=768, expansion=(8, 16), arch="topk", k=(16, 32), aux_coeff=0.03)
    # 4 configs: x8-k16, x8-k32, x16-k16, x16-k32 (named by run_name)

A list or tuple value for a field whose own type is not a tuple (``k``, ``l1_coeff`` ...) is a
grid axis; ``expansion`` (d_sae = round(expansion * d_in)) is always one, and the outermost.
Settings the architecture does not have (``k`` of a ReLU SAE) are dropped
(:func:`vsae.sae.sae_config.config_for`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_type_hints

from vsae.errors import VsaeError
from vsae.sae.arch_registry import get_arch, uses_k
from vsae.sae.sae_config import FLAT_LAYOUT_KEYS, SAEConfig, config_for

DEFAULT_EXPANSION = 16.0  # dictionary size / d of `vsae train` (Pach et al.: 16 and 64)


@dataclass(frozen=True)
class SweepAxes:
    """The axis of a sweep that is not an SAEConfig field (`vsae train --expansion`).

    Attributes
    ----------
    expansion: dictionary size / d (d_sae = round(expansion * d)).
    """

    expansion: tuple[float, ...] = (DEFAULT_EXPANSION,)


def run_name(cfg: SAEConfig, expansion: float | None = None) -> str:
    """Directory name of one SAE in a sweep, e.g. ``batchtopk-x16-k20``."""
    e = expansion if expansion is not None else cfg.d_sae / cfg.d_in
    return f"{cfg.arch}-x{e:g}" + (f"-k{getattr(cfg, 'k', None)}" if uses_k(cfg.arch) else "")


def _tuple_fields(cls: type) -> set[str]:
    hints = get_type_hints(cls)
    return {n for n, t in hints.items() if getattr(t, "__origin__", None) is tuple}


def expand_sweep(
    d_in: int, expansion: float | Sequence[float] = DEFAULT_EXPANSION, **fields: Any
) -> list[SAEConfig]:
    """Every SAEConfig of the grid ``expansion`` x the list-valued ``fields``, in row-major order
    (expansion outermost, then the fields in the order given), each named by :func:`run_name`
    unless ``name`` is given."""
    arch = str(fields.pop("arch", SAEConfig.__dataclass_fields__["arch"].default))
    cls = get_arch(arch).config
    names = {f.name for f in dataclasses.fields(SAEConfig)} | FLAT_LAYOUT_KEYS
    names |= {f.name for f in dataclasses.fields(cls)}
    unknown = set(fields) - names - {"expansion"}
    if unknown or {"d_in", "d_sae"} & set(fields):
        raise VsaeError(
            f"expand_sweep: {sorted(unknown | ({'d_in', 'd_sae'} & set(fields)))} are not sweep fields"
        )
    exps = [float(e) for e in (expansion if isinstance(expansion, Sequence) else (expansion,))]
    if not exps or any(not e > 0 for e in exps):
        raise VsaeError(f"--expansion must be positive numbers, got {exps}")
    own = {f.name for f in dataclasses.fields(cls)}
    fields = {n: v for n, v in fields.items() if n in own}  # one SAE per expansion for a ReLU's k
    tuples = _tuple_fields(cls)
    axes = {n: list(v) for n, v in fields.items() if isinstance(v, (list, tuple)) and n not in tuples}
    fixed = {n: v for n, v in fields.items() if n not in axes}
    cfgs = []
    for e, *vals in itertools.product(exps, *axes.values()):
        cfg = config_for(arch, d_in=d_in, d_sae=int(round(e * d_in)), **fixed, **dict(zip(axes, vals)))
        cfgs.append(cfg if "name" in fixed else cfg.replace(name=run_name(cfg, e)))
    return cfgs
