"""Matmul precision of the training step (``--precision fp32|tf32|bf16``).

Weights, optimizer state and the loss reductions stay fp32 (mixed precision, Micikevicius et
al. 2018); only the encoder/decoder products run in the lower precision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device) -> Iterator[None]:
    """fp32: plain fp32 kernels; tf32: TF32 tensor cores for fp32 matmuls (CUDA); bf16: autocast."""
    if precision == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    elif precision == "tf32":
        old = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("high")
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(old)
    else:
        yield
