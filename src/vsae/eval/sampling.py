"""Seeded subsets that span their source, never "the first N" of it.

Stores and image folders are usually in class order (one class folder after another), so the
first N rows of one can hold a few classes only. `spread_sample` cuts the source into N equal
strata and draws one row from each, at random with a seed: every part of the source is
represented (a class holding at least len/N consecutive rows always gets a row), and the draw
is reproducible. `describe_sample` is what outputs record about the subset.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vsae.errors import VsaeError

SAMPLE_METHOD = "seeded stratified sample: one row drawn at random from each of n equal strata of the source"


def spread_sample(n_total: int, n: int | None, seed: int) -> np.ndarray:
    """Sorted int64 indices of `n` rows of `range(n_total)` spanning it (all rows if `n` is None
    or at least `n_total`)."""
    if n_total < 0:
        raise VsaeError(f"a source cannot have {n_total} rows")
    if n is None or n >= n_total:
        return np.arange(n_total, dtype=np.int64)
    if n < 1:
        raise VsaeError(f"a sample needs at least 1 row, got {n}; give a positive number of rows")
    edges = (np.arange(n + 1, dtype=np.int64) * n_total) // n  # n strata, each of >= 1 row
    rng = np.random.default_rng([seed, n_total, n])
    return edges[:-1] + (rng.random(n) * (edges[1:] - edges[:-1])).astype(np.int64)


def describe_sample(n_total: int, n: int | None, seed: int) -> dict[str, Any]:
    """JSON record of a `spread_sample(n_total, n, seed)`."""
    if n is None or n >= n_total:
        return {"rows": n_total, "of": n_total, "method": "all rows"}
    return {"rows": n, "of": n_total, "method": SAMPLE_METHOD, "seed": seed}
