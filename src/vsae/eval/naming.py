"""Latent naming — the "automatic attribute discovery" of Olson et al. (2025): name each latent by
the vocabulary word whose text embedding ("a photo of a {word}", from a text tower aligned with the
image space, e.g. CLIP's) best matches the mean image embedding of the latent's top images."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vsae.errors import VsaeError
from vsae.eval._arrays import to_numpy, unit_rows
from vsae.eval.eval_config import PROMPT

PROMPT_TEMPLATE = PROMPT  # the one default (vsae.eval.eval_config)


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


def norm_word(s: str) -> str:
    """Case- and underscore-insensitive form of a word or attribute value."""
    return s.strip().lower().replace("_", " ")


def name_agreement(
    names: Sequence[str | None], hai_idx_Fk: np.ndarray, labels_N: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """How often a latent's name equals the most common ground-truth class of its top images
    (case- and underscore-insensitive; ties: the smaller class index).

    Only a class match: a name that is not the class counts as disagreeing even when it is right
    about another attribute, and one that is the class counts as agreeing even when another
    attribute is purer. Where attributes are known use `attribute_name_agreement`."""
    labels_N = np.asarray(labels_N)
    agree = n = 0
    for f, name in enumerate(names):
        rows = hai_idx_Fk[f][hai_idx_Fk[f] >= 0]
        if name is None or rows.size == 0:
            continue
        c = Counter(labels_N[rows].tolist())
        top = min(c, key=lambda k: (-c[k], k))
        n += 1
        agree += norm_word(class_names[top]) == norm_word(name)
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


def attribute_name_agreement(
    names: Sequence[str | None],
    hai_idx_Fk: np.ndarray,
    attributes: Mapping[str, np.ndarray],
    word_value: Mapping[str, tuple[str, int]],
    unmapped: str = "error",
) -> dict[str, Any]:
    """Does each latent's name say what its top images share? (data with known attributes)

    `attributes`: name -> int codes [N] per image (all the ground truth, also attributes no word
    names); `word_value`: word -> (attribute, code) it names. A name agrees only when its
    attribute is a purest one of the latent's top images (no attribute is shared by more of them;
    ties count) and the word is that attribute's most common value there. A "red" latent whose
    top images are all circles but only 40% red disagrees (`not_purest`), and so does a "red"
    latent whose images are mostly orange (`wrong_value`). Ties count as agreeing.

    A name that is no word of `word_value` is an error (`unmapped="error"`) or, with
    `unmapped="disagree"`, a named latent that disagrees (`no_attribute`).

    Returns n_named, n_agree, agreement, n_wrong_value, n_not_purest, n_no_attribute and
    per-latent `verdict_F` ("agree" | "wrong_value" | "not_purest" | "no_attribute" | None for
    unnamed latents)."""
    if unmapped not in ("error", "disagree"):
        raise VsaeError(f"unmapped={unmapped!r}; use 'error' or 'disagree'")
    idx = np.asarray(hai_idx_Fk)
    codes = {a: np.asarray(c, np.int64) for a, c in attributes.items()}
    for w, (a, _) in word_value.items():
        if a not in codes:
            raise VsaeError(f"word {w!r} names attribute {a!r}, which has no ground truth; give its codes")
    verdict: list[str | None] = []
    for f, name in enumerate(names):
        rows = idx[f][idx[f] >= 0]
        if name is None or rows.size == 0:
            verdict.append(None)
            continue
        if name not in word_value and unmapped == "disagree":
            verdict.append("no_attribute")
            continue
        if name not in word_value:
            raise VsaeError(f"latent {f} is named {name!r}, a word with no attribute value; map every word")
        counts = {a: np.bincount(c[rows]) for a, c in codes.items()}
        best = max(int(c.max()) for c in counts.values())
        a, code = word_value[name]
        if int(counts[a].max()) < best:
            verdict.append("not_purest")
        elif (int(counts[a][code]) if code < counts[a].size else 0) < int(counts[a].max()):
            verdict.append("wrong_value")  # ties with the most common value count as agreeing
        else:
            verdict.append("agree")
    n = sum(v is not None for v in verdict)
    agree = verdict.count("agree")
    return {
        "n_named": n,
        "n_agree": agree,
        "agreement": agree / n if n else float("nan"),
        "n_wrong_value": verdict.count("wrong_value"),
        "n_not_purest": verdict.count("not_purest"),
        "n_no_attribute": verdict.count("no_attribute"),
        "verdict_F": verdict,
    }


def attribute_codes(
    values: Mapping[str, Sequence[str | None]], words: Sequence[str]
) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, int]]]:
    """The inputs of `attribute_name_agreement` from string attribute values per image.

    `values`: attribute -> value per image (None: no record, code -1). Each attribute's codes
    index its sorted distinct values; a word maps to the (attribute, code) whose value it is
    (`norm_word`); words that are no value are left out, a word that is a value of two
    attributes is an error."""
    codes: dict[str, np.ndarray] = {}
    word_value: dict[str, tuple[str, int]] = {}
    lookup: dict[str, list[tuple[str, int]]] = {}
    for a, col in values.items():
        vocab = sorted({v for v in col if v is not None})
        index = {v: i for i, v in enumerate(vocab)}
        codes[a] = np.array([-1 if v is None else index[v] for v in col], dtype=np.int64)
        for v, i in index.items():
            lookup.setdefault(norm_word(v), []).append((a, i))
    for w in words:
        hits = lookup.get(norm_word(w), [])
        if len(hits) > 1:
            raise VsaeError(
                f"word {w!r} is a value of attributes {[a for a, _ in hits]}; use words that name one"
            )
        if hits:
            word_value[w] = hits[0]
    return codes, word_value
