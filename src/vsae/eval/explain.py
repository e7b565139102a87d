"""Latents explained in words, scored without ground truth.

The auto-interpretation recipe of text SAEs (Bills et al. 2023, "Language models can explain
neurons in language models"; Paulo et al. 2024, "Automatically interpreting millions of features
in large language models": detection scoring), carried over to image latents:

1. **sets** (`latent_sets`): per live latent its top-activating images, split in two interleaved
   halves (ranks 0, 2, 4 ... shown to the explainer; ranks 1, 3, 5 ... held out), contrast images
   for the explainer and, disjoint from both, random images for the score;
2. **explain**: a pluggable explainer (`vsae.eval.explainers`) writes one short phrase per latent
   from the shown half and the contrast;
3. **score** (`detection_auroc`): a judge (CLIP image-text similarity) is given only the phrase and
   must separate the held-out top images from the random ones: AUROC (0.5 = chance);
4. **controls** (`shuffled`): the same score of each latent with another latent's phrase, and of
   the vocabulary names (`vsae.eval.naming`) beside them;
5. **ground truth** where attributes are known (`phrase_agreement`): does the phrase name what the
   top images share.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vsae.errors import VsaeError
from vsae.eval._arrays import unit_rows
from vsae.eval.naming import norm_word
from vsae.eval.ood import auroc
from vsae.eval.topimages import TopImages, top_images

TextEncoder = Callable[[Sequence[str]], np.ndarray]
"""Phrases -> judge text embeddings [P, D] (in the judge's image-embedding space)."""

_WORD = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class LatentSets:
    """The images each explained latent is shown and scored on (positions into the N images).

    latents_L: the explained latents (live: at least `n_top` images fire).
    shown_Lh: top images shown to the explainer (ranks 0, 2, 4 ...).
    held_Lh: held-out top images the score must find (ranks 1, 3, 5 ...).
    contrast_Lc: random non-top images shown to the explainer.
    random_Lr: random images the score separates `held_Lh` from (disjoint from top and contrast).
    top_Lk: all top images in rank order (ground truth is checked on these).
    """

    latents_L: np.ndarray
    shown_Lh: np.ndarray
    held_Lh: np.ndarray
    contrast_Lc: np.ndarray
    random_Lr: np.ndarray
    top_Lk: np.ndarray


def latent_sets(
    acts_NF: Any,
    n_top: int,
    n_contrast: int,
    n_random: int,
    seed: int = 0,
    max_latents: int | None = None,
    top: TopImages | None = None,
) -> LatentSets:
    """Split each live latent's images into shown / held-out top images, contrast and random ones.

    A latent is live when at least `n_top` images fire (`vsae.eval.topimages`: fewer is excluded).
    `top`: the latents' top `n_top` images computed already (e.g. streamed over a store, then
    `acts_NF` only gives the number of images: any object with a `shape`)."""
    if n_top < 2:
        raise VsaeError(f"--n-top {n_top}: need at least 2 top images (one shown, one held out)")
    if n_contrast < 1 or n_random < 1:
        raise VsaeError("--n-contrast and --n-random must be at least 1")
    n = int(np.shape(acts_NF)[0])
    if n < n_top + n_contrast + n_random:
        raise VsaeError(
            f"{n} images are fewer than --n-top {n_top} + --n-contrast {n_contrast} + --n-random {n_random}; "
            "use a larger store or smaller sets"
        )
    top = top_images(acts_NF, k=n_top) if top is None else top
    live = np.flatnonzero(~top.excluded_F)
    if max_latents is not None:
        live = live[:max_latents]
    rng = np.random.default_rng(seed)
    contrast, rand = [], []
    for f in live:
        rest = np.setdiff1d(np.arange(n), top.indices_Fk[f], assume_unique=True)
        pick = rng.choice(rest, size=n_contrast + n_random, replace=False)
        contrast.append(np.sort(pick[:n_contrast]))
        rand.append(np.sort(pick[n_contrast:]))
    k = top.indices_Fk[live]
    return LatentSets(
        live,
        k[:, 0::2],
        k[:, 1::2],
        np.array(contrast, np.int64).reshape(-1, n_contrast),
        np.array(rand, np.int64).reshape(-1, n_random),
        k,
    )


def separation(sims_NP: np.ndarray, pos_Lh: np.ndarray, neg_Lc: np.ndarray) -> np.ndarray:
    """[L, P] how well each of P scores separates each latent's positive images from its negative
    ones: the difference of means over the pooled standard deviation (Cohen's d)."""
    a, b = sims_NP[pos_Lh], sims_NP[neg_Lc]  # [L, h, P], [L, c, P]
    pooled = np.sqrt((a.var(1) + b.var(1)) / 2 + 1e-12)
    return (a.mean(1) - b.mean(1)) / pooled


def judge_similarities(image_emb_ND: np.ndarray, text_emb_PD: np.ndarray) -> np.ndarray:
    """[N, P] cosine similarity of every image with every phrase (the CLIP judge)."""
    img, _ = unit_rows(np.asarray(image_emb_ND, np.float64))
    txt, _ = unit_rows(np.asarray(text_emb_PD, np.float64))
    if img.shape[1] != txt.shape[1]:
        raise VsaeError(
            f"image embeddings have width {img.shape[1]} but the judge's text embeddings {txt.shape[1]}; "
            "use the image embeddings of the judge CLIP (its `embed` hook)"
        )
    return img @ txt.T


def detection_auroc(
    phrases: Sequence[str | None], sets: LatentSets, image_emb_ND: np.ndarray, encode: TextEncoder
) -> np.ndarray:
    """[L] detection score of each latent's phrase: the AUROC with which the judge's image-phrase
    similarity ranks the held-out top images above the random ones (NaN where there is no phrase).
    Paulo et al. 2024's detection score, with CLIP as the judge."""
    uniq = sorted({p for p in phrases if p})
    out = np.full(len(phrases), np.nan)
    if not uniq:
        return out
    sims = judge_similarities(image_emb_ND, encode(uniq))
    col = {p: i for i, p in enumerate(uniq)}
    for j, p in enumerate(phrases):
        if p:
            s = sims[:, col[p]]
            out[j] = auroc(s[sets.random_Lr[j]], s[sets.held_Lh[j]])
    return out


def shuffled(phrases: Sequence[str | None], seed: int = 0) -> list[str | None]:
    """Each latent's phrase replaced by another latent's (a random derangement of the phrased
    latents): the control a detection score must beat."""
    idx = [j for j, p in enumerate(phrases) if p]
    out: list[str | None] = list(phrases)
    if len(idx) < 2:
        return [None] * len(phrases)
    rng = np.random.default_rng(seed)
    perm = np.arange(len(idx))
    while np.any(perm == np.arange(len(idx))):  # a derangement: nobody keeps its own phrase
        perm = rng.permutation(len(idx))
    for a, b in zip(idx, perm):
        out[a] = phrases[idx[b]]
    return out


def summary(scores: np.ndarray) -> dict[str, Any]:
    """Distribution of scores (NaN left out): n, mean, quantiles, fraction above 0.5 / 0.75 / 0.9."""
    s = np.asarray(scores, np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return {"n": 0}
    q = np.quantile(s, [0.1, 0.25, 0.5, 0.75, 0.9])
    return {
        "n": int(s.size),
        "mean": float(s.mean()),
        "quantiles": dict(zip(("10", "25", "50", "75", "90"), map(float, q))),
        "above": {t: float((s > float(t)).mean()) for t in ("0.5", "0.75", "0.9")},
        "histogram": np.histogram(s, bins=10, range=(0, 1))[0].tolist(),
    }


def phrase_words(phrase: str | None) -> list[str]:
    """The words of a phrase, normalised (`norm_word`)."""
    return [norm_word(w) for w in _WORD.findall(phrase or "")]


def phrase_agreement(
    phrases: Sequence[str | None],
    top_Lk: np.ndarray,
    codes: Mapping[str, np.ndarray],
    word_value: Mapping[str, tuple[str, int]],
) -> dict[str, Any]:
    """Does each phrase say what its latent's top images share? (data with known attributes)

    The rule of `vsae.eval.naming.attribute_name_agreement`, for phrases of several words: the
    phrase agrees when one word it says names a purest attribute of the top images (no attribute
    is shared by more of them) with that attribute's most common value there, and every other
    attribute value it says is also its attribute's most common value (a "red star" latent whose
    images are red circles disagrees). Words that are no attribute value ("a", "photo", "shape")
    are ignored; a phrase with none disagrees (`no_attribute`). Ties count as agreeing.

    `codes`: attribute -> int code per image (-1: unknown); `word_value`: normalised word ->
    (attribute, code). Returns n, n_agree, agreement and per-latent `verdict_L`
    ("agree" | "wrong_value" | "not_purest" | "no_attribute" | None where there is no phrase)."""
    verdict: list[str | None] = []
    for j, p in enumerate(phrases):
        if not p:
            verdict.append(None)
            continue
        said = [word_value[w] for w in phrase_words(p) if w in word_value]
        if not said:
            verdict.append("no_attribute")
            continue
        rows = top_Lk[j][top_Lk[j] >= 0]
        counts = {a: np.bincount(c[rows][c[rows] >= 0], minlength=1) for a, c in codes.items()}
        best = max(int(c.max()) for c in counts.values())
        modal = all((int(counts[a][v]) if v < counts[a].size else 0) == int(counts[a].max()) for a, v in said)
        purest = any(int(counts[a].max()) == best for a, _ in said)
        verdict.append("wrong_value" if not modal else "agree" if purest else "not_purest")
    n = sum(v is not None for v in verdict)
    agree = verdict.count("agree")
    return {
        "n": n,
        "n_agree": agree,
        "agreement": agree / n if n else float("nan"),
        "n_wrong_value": verdict.count("wrong_value"),
        "n_not_purest": verdict.count("not_purest"),
        "n_no_attribute": verdict.count("no_attribute"),
        "verdict_L": verdict,
    }


def world_word_values(values: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, int]]:
    """normalised word -> (attribute, code) for attributes given as value lists (code = index);
    a word that is a value of two attributes is left out (it cannot be checked)."""
    seen: dict[str, list[tuple[str, int]]] = {}
    for a, vocab in values.items():
        for i, v in enumerate(vocab):
            seen.setdefault(norm_word(v), []).append((a, i))
    return {w: hits[0] for w, hits in seen.items() if len(hits) == 1 and " " not in w}
