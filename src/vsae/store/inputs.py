"""Distrust of the arrays a command reads (embeddings, latents, top images, labels, SAE weights):
declared shapes and dtypes checked against the data, indices in range, values finite, ids
non-negative integers. Every violation is one ``VsaeError`` naming the file, the problem and the
fix. The readers call these (``vsae.eval.readers``, ``vsae.sae.io``, ...), not the commands; file
kinds (regular files only, checked before opening) are ``vsae.errors.regular_file``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vsae.errors import VsaeError

CHUNK = 1 << 16


def _nonfinite(a: Any) -> int:
    """Number of NaN/Inf entries of a float array (chunked over rows; memory-mapped arrays stay on disk)."""
    n = 0
    for i in range(0, len(a), CHUNK):
        n += int((~np.isfinite(np.asarray(a[i : i + CHUNK]))).sum())
    return n


def check_values(a: Any, name: str, fix: str, ndim: int | None = 2, finite: bool = True) -> Any:
    """``a`` if it is a real-number array of ``ndim`` dimensions (None: any) with finite values."""
    dt = getattr(a, "dtype", None)
    if dt is None or np.dtype(dt).kind not in "fiu":
        raise VsaeError(f"{name} holds {dt} values, not numbers; {fix}")
    if ndim is not None and a.ndim != ndim:
        shape = "[rows, width]" if ndim == 2 else f"{ndim} dimensions"
        raise VsaeError(f"{name} holds an array of shape {tuple(a.shape)}; expected {shape}; {fix}")
    if finite and np.dtype(dt).kind == "f":
        bad = _nonfinite(a if a.ndim else a.reshape(1))
        if bad:
            raise VsaeError(f"{name} holds {bad} NaN or Inf values; {fix}")
    return a


def check_ids(a: Any, name: str, fix: str, below: int | None = None, allow: int | None = None) -> np.ndarray:
    """``a`` as int64 if it holds integers (integral floats are not ids) >= 0 and < ``below``;
    ``allow``: one extra value permitted (e.g. -1 for "no image")."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu":
        raise VsaeError(f"{name} holds {arr.dtype} values, not integer ids; {fix}")
    arr = arr.astype(np.int64, copy=False)
    ok = arr >= 0 if allow is None else (arr >= 0) | (arr == allow)
    if below is not None:
        ok &= (arr < below) | (arr == allow if allow is not None else False)
    if not ok.all():
        v = int(arr[~ok].flat[0])
        rng = f"0..{below - 1}" if below is not None else ">= 0"
        raise VsaeError(f"{name} holds id {v} outside {rng}; {fix}")
    return arr
