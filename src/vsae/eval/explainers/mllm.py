"""The multimodal-LLM explainer: ask the model (any image-text-to-text model vsae loads, e.g. the
world's tiny LLaVA; `ExplainContext.ask`) the same question about each shown top image and each
contrast image, and explain the latent by the answer words that are more frequent among its top
images than among the contrast (the contrastive reading of Bills et al. 2023's explanation step,
one image per prompt). Answers are asked once per image and reused across latents.

A small model may only answer single words; the phrase is then one word."""

from __future__ import annotations

import numpy as np

from vsae.errors import VsaeError
from vsae.eval.explain import LatentSets, phrase_words
from vsae.eval.explainers import EXPLAINERS, ExplainContext

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "on",
        "in",
        "with",
        "and",
        "is",
        "this",
        "image",
        "shows",
        "there",
        "it",
        "to",
        "at",
    ]
)
MAX_WORDS = 3


def contrastive_phrase(top: list[list[str]], contrast: list[list[str]]) -> str | None:
    """Up to `MAX_WORDS` words said about at least half the top images and more often about them
    than about the contrast images, most over-represented first; None when no word is."""
    words = {w for ws in top for w in ws if w not in STOPWORDS}
    if not words:
        return None

    def freq(w: str, group: list[list[str]]) -> float:
        return sum(w in ws for ws in group) / max(len(group), 1)

    gain = {w: freq(w, top) - freq(w, contrast) for w in words if freq(w, top) >= 0.5}
    keep = sorted((w for w, g in gain.items() if g > 0), key=lambda w: (-gain[w], w))[:MAX_WORDS]
    return " ".join(keep) if keep else None


@EXPLAINERS.register("mllm")
def explain_mllm(sets: LatentSets, ctx: ExplainContext) -> list[str | None]:
    """Per latent, the words the model says about its shown top images more than about the contrast."""
    if ctx.ask is None or ctx.images is None:
        raise VsaeError("the mllm explainer needs a multimodal model (--explainer-model) and the images")
    need = np.unique(np.concatenate([sets.shown_Lh.ravel(), sets.contrast_Lc.ravel()]))
    answers = ctx.ask(ctx.images(need), ctx.cfg.question) if need.size else []
    said = {int(i): set(phrase_words(a)) for i, a in zip(need, answers)}
    return [
        contrastive_phrase([sorted(said[int(i)]) for i in s], [sorted(said[int(i)]) for i in c])
        for s, c in zip(sets.shown_Lh, sets.contrast_Lc)
    ]
