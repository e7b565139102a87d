"""Ground-truth purity of latents (the project's check on data with known concepts, e.g. the
shapes world): does a latent's set of top images share one value of one attribute?"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vsae.errors import VsaeError


def top_image_purity(
    hai_idx_Fk: np.ndarray, excluded_F: np.ndarray, attributes: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """Per latent: the largest fraction of its top images that share one value of one attribute.

    Parameters
    ----------
    hai_idx_Fk : int [F, k] top-image row indices (-1 = padding, ignored).
    excluded_F : bool [F] latents left out (worst top value 0, METRICS.md).
    attributes : name -> int codes [N] of that attribute per image.

    Returns ``purity_F`` (NaN for excluded latents), ``attribute_F`` and ``value_F`` (the attribute
    and code reaching it; ties: the first attribute in `attributes`, then the smallest code), and
    ``pure_fraction``: the fraction of non-excluded latents with purity 1 (all top images agree).
    """
    idx = np.asarray(hai_idx_Fk)
    excl = np.asarray(excluded_F, bool)
    if not attributes:
        raise VsaeError("no attributes given for the purity check; pass at least one attribute array")
    n = len(next(iter(attributes.values())))
    for name, codes in attributes.items():
        if len(codes) != n:
            raise VsaeError(
                f"attribute {name!r} has {len(codes)} values but another has {n}; give one per image"
            )
    if idx.size and idx.max() >= n:
        raise VsaeError(f"top images refer to image {int(idx.max())} but attributes cover {n} images")
    f = idx.shape[0]
    purity = np.full(f, np.nan)
    attr = np.full(f, None, dtype=object)
    value = np.full(f, -1, dtype=np.int64)
    valid = idx >= 0
    k_f = valid.sum(1)
    for name, codes in attributes.items():
        codes = np.asarray(codes, np.int64)
        c = np.where(valid, codes[np.clip(idx, 0, None)], -1)  # [F, k]
        n_vals = int(codes.max()) + 1 if codes.size else 1
        counts = np.zeros((f, n_vals), np.int64)
        rows = np.repeat(np.arange(f), k_f)
        np.add.at(counts, (rows, c[valid]), 1)
        best = counts.argmax(1)
        frac = counts[np.arange(f), best] / np.maximum(k_f, 1)
        better = (~excl) & (k_f > 0) & (np.isnan(purity) | (frac > purity))
        purity[better], attr[better], value[better] = frac[better], name, best[better]
    scored = ~np.isnan(purity)
    return {
        "purity_F": purity,
        "attribute_F": attr,
        "value_F": value,
        "n_scored": int(scored.sum()),
        "pure_fraction": float((purity[scored] == 1.0).mean()) if scored.any() else float("nan"),
        "mean_purity": float(purity[scored].mean()) if scored.any() else float("nan"),
    }
