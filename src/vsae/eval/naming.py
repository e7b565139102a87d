"""Latent naming — the "automatic attribute discovery" of Olson et al. (2025): name each latent by
the vocabulary word whose text embedding ("a photo of a {word}", from a text tower aligned with the
image space, e.g. CLIP's) best matches the mean image embedding of the latent's top images."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from vsae.errors import VsaeError
from vsae.eval._arrays import to_numpy, unit_rows

PROMPT_TEMPLATE = "a photo of a {}"


def name_latents(
    hai_idx_Fk: np.ndarray,
    excluded_F: np.ndarray,
    image_embeds_ND: Any,
    word_embeds_WD: Any,
    words: Sequence[str],
) -> dict[str, Any]:
    """Best word and its cosine score per latent (None / NaN for excluded latents).

    `image_embeds_ND` are the aligned image embeddings of the N images (rows = image index);
    `word_embeds_WD` the text embeddings of the prompts, one per word."""
    w, _ = unit_rows(to_numpy(word_embeds_WD, np.float64))
    if w.shape[0] != len(words):
        raise VsaeError(f"{w.shape[0]} word embeddings for {len(words)} words; give one embedding per word")
    img = image_embeds_ND
    if img.shape[1] != w.shape[1]:
        raise VsaeError(
            f"image embeddings have width {img.shape[1]} but word embeddings {w.shape[1]}; "
            "use the text tower aligned with the image encoder"
        )
    idx = np.asarray(hai_idx_Fk)
    if idx.size and idx.max() >= img.shape[0]:
        raise VsaeError(
            f"top images refer to image {int(idx.max())} but there are {img.shape[0]} image embeddings"
        )
    names: list[str | None] = []
    scores = np.full(idx.shape[0], np.nan)
    for f in range(idx.shape[0]):
        rows = idx[f][idx[f] >= 0]
        if excluded_F[f] or rows.size == 0:
            names.append(None)
            continue
        e, _ = unit_rows(to_numpy(img[np.sort(rows)], np.float64))
        m = e.mean(axis=0)
        norm = np.linalg.norm(m)
        if norm == 0:
            names.append(None)
            continue
        sims = w @ (m / norm)
        best = int(np.argmax(sims))
        names.append(words[best])
        scores[f] = sims[best]
    return {"names": names, "scores": scores}


def _norm_word(s: str) -> str:
    return s.strip().lower().replace("_", " ")


def name_agreement(
    names: Sequence[str | None], hai_idx_Fk: np.ndarray, labels_N: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """How often a latent's name equals the most common ground-truth class of its top images
    (case- and underscore-insensitive; ties: the smaller class index)."""
    labels_N = np.asarray(labels_N)
    agree = n = 0
    for f, name in enumerate(names):
        rows = hai_idx_Fk[f][hai_idx_Fk[f] >= 0]
        if name is None or rows.size == 0:
            continue
        c = Counter(labels_N[rows].tolist())
        top = min(c, key=lambda k: (-c[k], k))
        n += 1
        agree += _norm_word(class_names[top]) == _norm_word(name)
    return {"n_named": n, "n_agree": agree, "agreement": agree / n if n else float("nan")}


def encode_words(
    lm_text: Any, words: Sequence[str], template: str = PROMPT_TEMPLATE, batch_size: int = 256
) -> np.ndarray:
    """Text embeddings [W, D] of `template.format(word)` from a loaded text tower (hook `embed`)."""
    from vsae.models import capture

    out = []
    with capture(lm_text, "embed") as cap:
        for a in range(0, len(words), batch_size):
            lm_text.run(lm_text.preprocess([template.format(w) for w in words[a : a + batch_size]]))
            out.append(to_numpy(cap.output.float(), np.float64))
    return np.concatenate(out) if out else np.zeros((0, 0))
