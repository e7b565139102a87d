"""Storage dtypes of the activation store and their conversion to and from torch.

numpy has no bfloat16, so bfloat16 rows are stored as their raw 16-bit patterns (uint16) and
reinterpreted by torch on read; no precision is lost in either direction.
"""

from __future__ import annotations

import numpy as np
import torch

from vsae.errors import VsaeError
from vsae.shapes import Float, Float32, Shaped, Tensor
from vsae.store.validate import ON_DISK, STORAGE_DTYPES  # the one list (validate.py stays torch-free)

_TORCH = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
_NUMPY: dict[str, np.dtype] = {name: np.dtype(ON_DISK[name]) for name in STORAGE_DTYPES}


def check_dtype(name: str) -> str:
    """`name` itself when it is a storage dtype; one-line VsaeError otherwise."""
    if name not in STORAGE_DTYPES:
        raise VsaeError(f"unknown storage dtype {name!r}; use one of {', '.join(STORAGE_DTYPES)}")
    return name


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype of the arrays on disk for storage dtype `name`."""
    return _NUMPY[check_dtype(name)]


def to_storage(x: Float[Tensor, "*shape"], name: str) -> Shaped[np.ndarray, "*shape"]:
    """Convert a tensor to the on-disk array (C-contiguous, CPU)."""
    t = x.detach().to("cpu", _TORCH[check_dtype(name)]).contiguous()
    if name == "bfloat16":
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


def from_storage(a: Shaped[np.ndarray, "*shape"], name: str) -> Float32[Tensor, "*shape"]:
    """Convert an on-disk array (possibly a memmap slice) to a float32 tensor (always a copy)."""
    a = np.array(a, copy=True, order="C")
    if name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16).float()
    return torch.from_numpy(a).float()


def raw_storage(a: Shaped[np.ndarray, "*shape"], name: str) -> Float[Tensor, "*shape"]:
    """An on-disk array (possibly a memmap slice) as a tensor of the storage dtype (a copy)."""
    a = np.array(a, copy=True, order="C")
    if name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)
