"""Shared vision/language latents as concept selectivity in both modalities (Olson et al.; the
project's definition, docs/shared.md).

A latent f is *shared* for a value v of an attribute when it is selective for v on image units
and on text units alike:

- image units: one per image, f's highest activation over the image's token rows; positive for v
  when the image has v;
- text units: one per caption token row, positive for v when the row's own word or the *next*
  word names v (in a causal LM the row before a word predicts it);
- selective: AUROC(f separates positives from the other units) >= `threshold` and f fires
  (z > 0) on at least `min_fires` positive units.

The baseline is the mismatched value: among the (latent, value) pairs selective on images, the
rate at which the latent is text-selective for the *same* value against the rate for another
value of the same attribute (what an unrelated text side gives). One-sided binomial test of the
matched count against the mismatched rate; `min_detectable_rate`: the matched rate the test
detects with 80% power at its alpha, printed beside the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import binom, binomtest, rankdata

from vsae.errors import VsaeError
from vsae.shapes import Bool, Float, Float64, Int, Shaped


def auroc_by_value(
    scores_NF: Float[np.ndarray, "N F"], positive_VN: Bool[np.ndarray, "V N"]
) -> Float[np.ndarray, "V F"]:
    """[V, F] AUROC of each unit's score for each positive mask (Mann-Whitney U with average ranks
    for ties; NaN where a mask has no positives or no negatives)."""
    s = np.asarray(scores_NF, np.float64)
    pos = np.asarray(positive_VN, bool)
    if pos.ndim != 2 or s.ndim != 2 or pos.shape[1] != s.shape[0]:
        raise VsaeError(
            f"masks of shape {pos.shape} do not match scores of shape {s.shape}; one mask per value"
        )
    ranks = rankdata(s, axis=0)
    n_pos = pos.sum(1).astype(np.float64)[:, None]
    n_neg = s.shape[0] - n_pos
    u = pos.astype(np.float64) @ ranks - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def fires_by_value(
    scores_NF: Float[np.ndarray, "N F"], positive_VN: Bool[np.ndarray, "V N"]
) -> Float[np.ndarray, "V F"]:
    """[V, F] positive units on which each latent fires (> 0)."""
    return np.asarray(positive_VN, np.float64) @ (np.asarray(scores_NF) > 0).astype(np.float64)


def image_units(
    z_NF: Float[np.ndarray, "N F"], image_of_row_N: Int[np.ndarray, " N"]
) -> tuple[Int[np.ndarray, " I"], Float64[np.ndarray, "I F"]]:
    """(image ids [I], per-image max over its rows [I, F])."""
    ids, inv = np.unique(np.asarray(image_of_row_N), return_inverse=True)
    out = np.full((ids.size, z_NF.shape[1]), -np.inf)
    np.maximum.at(out, inv.ravel(), np.asarray(z_NF, np.float64))
    return ids, out


def next_word(image_N: np.ndarray, token_N: np.ndarray, words_N: Sequence[str]) -> list[str]:
    """Per text row, the word of the row at the next token position of the same caption ('' if
    that row is not in the store)."""
    at = {(int(i), int(t)): w for i, t, w in zip(image_N, token_N, words_N)}
    return [at.get((int(i), int(t) + 1), "") for i, t in zip(image_N, token_N)]


def min_detectable_rate(n: int, p0: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true rate a one-sided binomial test of n trials at level alpha against p0
    detects with the given power (NaN when n is 0; 1.0 when no count is significant)."""
    if n <= 0 or not np.isfinite(p0):
        return float("nan")
    ks = np.arange(n + 1)
    sig = ks[binom.sf(ks - 1, n, p0) <= alpha]
    if sig.size == 0:
        return 1.0
    k_c = int(sig[0])
    lo, hi = float(p0), 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if binom.sf(k_c - 1, n, mid) < power else (lo, mid)
    return hi


def selective(
    auc_VF: Float[np.ndarray, "V F"], fires_VF: Shaped[np.ndarray, "V F"], threshold: float, min_fires: int
) -> Bool[np.ndarray, "V F"]:
    """[V, F] AUROC >= threshold and at least `min_fires` firings on positive units."""
    return (np.nan_to_num(auc_VF) >= threshold) & (np.asarray(fires_VF) >= min_fires)


def cross_modal(
    img_auc_VF: np.ndarray,
    img_fires_VF: np.ndarray,
    txt_auc_VF: np.ndarray,
    txt_fires_VF: np.ndarray,
    attribute_V: Sequence[str],
    threshold: float = 0.8,
    min_fires: int = 8,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Matched vs mismatched-value text selectivity of the image-selective (latent, value) pairs."""
    img = selective(img_auc_VF, img_fires_VF, threshold, min_fires)
    txt = selective(txt_auc_VF, txt_fires_VF, threshold, min_fires)
    attr = np.asarray(attribute_V)
    n = int(img.sum())
    matched = int((img & txt).sum())
    mis_hits = mis_trials = 0
    for v in range(len(attr)):
        others = np.flatnonzero((attr == attr[v]) & (np.arange(len(attr)) != v))
        if others.size == 0:
            continue
        rows = img[v]
        mis_trials += int(rows.sum()) * others.size
        mis_hits += int(txt[others][:, rows].sum())
    p0 = mis_hits / mis_trials if mis_trials else float("nan")
    if not n or not np.isfinite(p0):
        p = float("nan")
    elif p0 == 0:
        p = 0.0 if matched else 1.0  # any matched hit where none mismatched is above the baseline
    elif p0 >= 1:
        p = 1.0
    else:
        p = float(binomtest(matched, n, p0, alternative="greater").pvalue)
    return {
        "threshold": threshold,
        "min_fires": min_fires,
        "n_image_selective": n,
        "n_text_selective": int(txt.sum()),
        "n_shared": matched,
        "matched_rate": matched / n if n else float("nan"),
        "mismatched_rate": p0,
        "p_value": p,
        "alpha": alpha,
        "min_detectable_rate": min_detectable_rate(n, p0 if np.isfinite(p0) else 0.0, alpha),
        "shared_latents": sorted({int(f) for f in np.flatnonzero((img & txt).any(0))}),
        "found": bool(n and matched > 0 and p < alpha),
    }


def value_masks(
    table: Mapping[str, np.ndarray], attributes: Sequence[str], units: np.ndarray
) -> tuple[list[tuple[str, str]], np.ndarray]:
    """((attribute, value) per mask, [V, U] masks) of the image units (`units`: image ids)."""
    keys, masks = [], []
    for a in attributes:
        col = np.asarray(table[a], object)[units]
        for v in dict.fromkeys(x for x in col if x is not None):
            keys.append((a, str(v)))
            masks.append(np.array([x is not None and str(x) == str(v) for x in col]))
    return keys, np.array(masks, bool).reshape(len(keys), len(units))


def word_masks(
    keys: Sequence[tuple[str, str]],
    words_N: Sequence[str],
    next_words_N: Sequence[str],
    lexicon: Mapping[str, tuple[str, str]],
) -> np.ndarray:
    """[V, N] text-row masks: the row's word or the next word names (attribute, value)."""
    index = {k: i for i, k in enumerate(keys)}
    out = np.zeros((len(keys), len(words_N)), bool)
    for r, (w, nw) in enumerate(zip(words_N, next_words_N)):
        for word in (w, nw):
            k = lexicon.get(word)
            if k is not None and k in index:
                out[index[k], r] = True
    return out


def planted_control(
    img_mask_VI: np.ndarray, txt_mask_VN: np.ndarray, hit: float = 0.8, false: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Planted latents, one per value, that fire on a fraction `hit` of its positive units and on
    a fraction `false` of the others in both modalities: (image scores [I, V], text scores [N, V])."""
    rng = np.random.default_rng(seed)

    def draw(mask: np.ndarray) -> np.ndarray:
        p = np.where(mask.T, hit, false)
        return (rng.random(p.shape) < p) * (1.0 + rng.random(p.shape))

    return draw(img_mask_VI), draw(txt_mask_VN)


def layer_selectivity(
    z_img_NF: np.ndarray,
    image_of_img_N: np.ndarray,
    z_txt_MF: np.ndarray,
    image_of_txt_M: np.ndarray,
    token_of_txt_M: np.ndarray,
    words_M: Sequence[str],
    table: Mapping[str, np.ndarray],
    lexicon: Mapping[str, tuple[str, str]],
    threshold: float = 0.8,
    min_fires: int = 8,
    alpha: float = 0.05,
    seed: int = 0,
    phrases: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """The layer's shared latents by selectivity (module docstring), with the planted control.

    Text selectivity for a value is the better of two labellings of the rows, each scored on its
    own: the row's own word names it (`lexicon` and the modifier words of `phrases`, e.g.
    "pointed" -> shape=star), or the next word does (`lexicon` only: the row before "pointed"
    does not predict the star, the "pointed" row does).
    """
    ids, zi = image_units(z_img_NF, image_of_img_N)
    keys, img_mask = value_masks(table, list(table), ids)
    nxt = next_word(image_of_txt_M, token_of_txt_M, words_M)
    blank = [""] * len(words_M)
    cur_mask = word_masks(keys, words_M, blank, {**lexicon, **(phrases or {})})
    next_mask = word_masks(keys, blank, nxt, lexicon)
    attr = [a for a, _ in keys]

    def score(
        zi_: np.ndarray, zt_: np.ndarray
    ) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        ia, ifi = auroc_by_value(zi_, img_mask), fires_by_value(zi_, img_mask)
        ca, na = auroc_by_value(zt_, cur_mask), auroc_by_value(zt_, next_mask)
        by_cur = np.nan_to_num(ca) >= np.nan_to_num(na)
        ta = np.where(by_cur, ca, na)
        tf = np.where(by_cur, fires_by_value(zt_, cur_mask), fires_by_value(zt_, next_mask))
        both = selective(ia, ifi, threshold, min_fires) & selective(ta, tf, threshold, min_fires)
        return cross_modal(ia, ifi, ta, tf, attr, threshold, min_fires, alpha), ia, ta, by_cur, both

    res, ia, ta, by_cur, both = score(zi, np.asarray(z_txt_MF, np.float64))
    pi, pt = planted_control(img_mask, cur_mask | next_mask, seed=seed)
    control, *_ = score(pi, pt)
    pairs = [
        {
            "latent": int(f),
            "value": f"{keys[v][0]}={keys[v][1]}",
            "image_auroc": float(ia[v, f]),
            "text_auroc": float(ta[v, f]),
            "text_word": "current" if by_cur[v, f] else "next",
        }
        for v, f in zip(*np.nonzero(both))
    ]
    return {
        **res,
        "shared_pairs": pairs,
        "n_values": len(keys),
        "units": {"images": int(ids.size), "text_rows": len(words_M)},
        "control": {
            "what": "one planted latent per value firing on 80% of its positive units and 5% of the others, both modalities",
            "n_planted": len(keys),
            "n_found": control["n_shared"],
            "found": control["found"],
        },
    }
