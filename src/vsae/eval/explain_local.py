"""Localisation score of explanations of patch-level latents: does the judge find the explained
concept *where the latent fires*? Per held-out top image, the Pearson correlation between the
latent's activation over the patch grid and the judge's patch relevance for the phrase — the
cosine of each patch token, projected into CLIP's joint space (post-layernorm, then the visual
projection: the dense reading of CLIP of Zhou et al. 2022, "Extract free dense labels from CLIP"),
with the phrase's text embedding; averaged over the latent's held-out images (NaN where a map is
constant)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from vsae.errors import VsaeError
from vsae.eval._arrays import to_numpy, unit_rows
from vsae.eval.explain import LatentSets


def judge_patch_embeddings(judge: Any, images: Sequence[Any]) -> list[np.ndarray]:
    """Per image, [P, D] unit patch embeddings of a CLIP judge (`vsae.models.load` of its vision
    tower with its projection)."""
    m = judge.model
    if not (hasattr(m, "vision_model") and hasattr(m, "visual_projection")):
        raise VsaeError(
            f"localisation needs a CLIP judge with a visual projection, not a {judge.family} model"
        )
    out = []
    with torch.no_grad():
        for a in range(0, len(images), 32):
            px = judge.preprocess(list(images[a : a + 32]))
            px = px["pixel_values"] if isinstance(px, dict) else px
            h = m.vision_model(pixel_values=px.to(next(m.parameters()).dtype)).last_hidden_state
            e = m.visual_projection(m.vision_model.post_layernorm(h[:, judge.n_prefix :]))
            out += [unit_rows(to_numpy(x, np.float64))[0] for x in e]
    return out


def _resize(map_P: np.ndarray, side: int) -> np.ndarray:
    """A square map resized (bilinear) to side x side, flattened."""
    s = int(round(np.sqrt(map_P.size)))
    if s * s != map_P.size:
        raise VsaeError(f"{map_P.size} judge patches do not form a square grid; no localisation")
    if s == side:
        return map_P
    t = torch.tensor(map_P, dtype=torch.float64).reshape(1, 1, s, s)
    return (
        torch.nn.functional.interpolate(t, size=(side, side), mode="bilinear", align_corners=False)
        .ravel()
        .numpy()
    )


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float("nan")


def localisation(
    phrases: Sequence[str | None],
    sets: LatentSets,
    latent_map: Callable[[int], np.ndarray],
    patch_emb: Callable[[np.ndarray], list[np.ndarray]],
    encode: Callable[[Sequence[str]], np.ndarray],
) -> np.ndarray:
    """[L] mean Pearson correlation over each latent's held-out images of its activation map and
    the judge's relevance map for its phrase (NaN without a phrase or where every map is flat).

    `latent_map(position)`: [P, F] latents of the image's patch tokens in grid order;
    `patch_emb(positions)`: the judge's unit patch embeddings of those images."""
    out = np.full(len(phrases), np.nan)
    have = [j for j, p in enumerate(phrases) if p]
    if not have:
        return out
    text, _ = unit_rows(np.asarray(encode([phrases[j] or "" for j in have]), np.float64))
    pos = np.unique(sets.held_Lh[have])
    emb = dict(zip(pos.tolist(), patch_emb(pos)))
    r: dict[int, list[float]] = {j: [] for j in have}
    for p in pos.tolist():
        z_PF = latent_map(p)
        side = int(round(np.sqrt(z_PF.shape[0])))
        for t, j in enumerate(have):
            if p in sets.held_Lh[j]:
                rel = _resize(emb[p] @ text[t], side)
                r[j].append(_pearson(z_PF[:, sets.latents_L[j]], rel))
    for j, v in r.items():
        v = [x for x in v if np.isfinite(x)]
        out[j] = float(np.mean(v)) if v else np.nan
    return out


def store_latent_map(
    view: Any, transform: Callable[[Any], Any] | None, n_prefix: int
) -> Callable[[int], np.ndarray]:
    """`latent_map` over a store holding every patch token of each image (tokens `all` / `patches`):
    the image's patch rows (token index >= n_prefix) in grid order, through `transform` (the SAE)."""
    tok = np.asarray(view.rows.token_index)

    def get(p: int) -> np.ndarray:
        a, b = int(view.starts[p]), int(view.starts[p + 1])
        x = view.rows.read(a, b)
        x = transform(x) if transform is not None else x
        x = x.toarray() if hasattr(x, "toarray") else to_numpy(x, np.float64)
        t = tok[a:b]
        keep = t >= n_prefix
        order = np.argsort(t[keep])
        ti = t[keep][order] - n_prefix
        side = int(round(np.sqrt(ti.size)))
        if side * side != ti.size or not np.array_equal(ti, np.arange(ti.size)):
            raise VsaeError(
                f"image {int(view.images[p])} has {ti.size} patch rows, not a full square grid; localisation "
                "needs every patch token (extract with --tokens all or patches)"
            )
        return np.asarray(x[keep][order], np.float64)

    return get
