"""Stops for training that has gone wrong: a non-finite loss or non-finite weights, one line each.

The loss is checked at every log interval (no per-step host sync), so a run stops at the first
log step at or after the first non-finite loss; the weights are checked before each checkpoint,
so a checkpoint never holds NaN/Inf.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from vsae.errors import VsaeError

CAUSE = (
    "likely cause: a too high --lr (or --grad-clip 0), or NaN/Inf or extreme values in the store "
    "(`vsae store check`; training with --no-verify skips that check); train again into a new --out"
)


def check_log_row(name: str, row: dict[str, Any], first_step: int) -> None:
    """Raise if the logged loss of SAE `name` over steps [first_step, row['step']] is not finite."""
    loss = row.get("loss/loss", 0.0)
    if not math.isfinite(loss):
        raise VsaeError(
            f"training of {name} diverged: the loss became {loss} between steps {first_step} and "
            f"{row['step']} (checked every --log-every steps); {CAUSE}"
        )


def check_weights(name: str, params: Iterable[torch.Tensor], step: int) -> None:
    """Raise if any parameter of SAE `name` is NaN/Inf at `step` (called before a checkpoint)."""
    if not all(bool(torch.isfinite(p).all()) for p in params):
        raise VsaeError(f"training of {name} diverged: its weights hold NaN/Inf at step {step}; {CAUSE}")
