"""Writing evaluation results: JSON (NaN/inf -> null, numpy -> Python) into an output directory."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from vsae.store.safe_io import atomic_write


def jsonable(x: Any) -> Any:
    """``x`` with numpy values as Python ones, tuples as lists and non-finite floats as None."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(out_dir: str | os.PathLike[str], name: str, obj: Any) -> Path:
    """Write `obj` as `<out_dir>/<name>.json` (temporary file, fsync, rename; never through a link)."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    return atomic_write(d / f"{name}.json", json.dumps(jsonable(obj), indent=1, allow_nan=False) + "\n")
