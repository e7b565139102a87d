"""How much of a layer's variance each labelling explains: the between-group variance fraction
(the R² of predicting the activations from the group means; the "eta squared" of an ANOVA).

Used to ask whether a taxonomy is coarse-to-fine in the activations, which the Matryoshka depth
finding (Pach et al. 2025) presumes: if the coarse level explains most of the variance the first,
small groups must spend their latents on it; if a finer level or an attribute orthogonal to the
taxonomy explains more, they need not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vsae.errors import VsaeError
from vsae.eval._arrays import to_numpy
from vsae.shapes import Array, Float, Shaped


def between_group_fraction(x_Nd: Float[Array, "N d"], labels_N: Shaped[Array, " N"] | Sequence[Any]) -> float:
    """sum_g n_g ||mean_g - mean||^2 / sum_i ||x_i - mean||^2 (NaN when x has no variance)."""
    x = to_numpy(x_Nd, np.float64)
    y = np.asarray(labels_N)
    if x.ndim != 2 or y.shape[0] != x.shape[0]:
        raise VsaeError(
            f"{x.shape[0] if x.ndim else 0} activation rows but {y.shape[0]} labels; give one per row"
        )
    xc = x - x.mean(axis=0)
    total = float((xc**2).sum())
    if total == 0:
        return float("nan")
    _, inv, counts = np.unique(y, return_inverse=True, return_counts=True)
    sums = np.zeros((counts.size, x.shape[1]))
    np.add.at(sums, inv.ravel(), xc)
    return float(((sums**2).sum(axis=1) / counts).sum() / total)


def variance_shares(x_Nd: Float[Array, "N d"], labels: Mapping[str, Any]) -> dict[str, float]:
    """`between_group_fraction` for every labelling (e.g. each level of a taxonomy)."""
    x = to_numpy(x_Nd, np.float64)
    return {name: between_group_fraction(x, y) for name, y in labels.items()}
