"""The model-free explainer: the candidate phrase (vocabulary words in templates) whose judge text
embedding best separates a latent's shown top images from its contrast images (Cohen's d of the
CLIP image-phrase similarity) — open-vocabulary within the templates, no language model."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence

import numpy as np

from vsae.errors import VsaeError
from vsae.eval.explain import LatentSets, judge_similarities, separation
from vsae.eval.explainers import EXPLAINERS, ExplainContext

_SLOT = re.compile(r"{(\w+)}")


def candidates(vocabulary: Mapping[str, Sequence[str]], templates: Sequence[str]) -> list[str]:
    """Every phrase the templates make from the vocabulary (`{word}`: any word of any slot;
    templates naming a slot the vocabulary lacks are skipped), without repeats, in order."""
    words = list(dict.fromkeys(w for ws in vocabulary.values() for w in ws))
    pools = {**{k: list(v) for k, v in vocabulary.items()}, "word": words}
    out: dict[str, None] = {}
    for t in templates:
        slots = _SLOT.findall(t)
        if any(s not in pools or not pools[s] for s in slots):
            continue
        for combo in itertools.product(*(pools[s] for s in slots)):
            out[t.format(**dict(zip(slots, combo)))] = None
    if not out:
        raise VsaeError(
            f"no candidate phrase: the templates {list(templates)} use slots the vocabulary "
            f"({sorted(vocabulary)}) lacks; add `{{word}}` or name its slots"
        )
    return list(out)


@EXPLAINERS.register("vocab")
def explain_vocab(sets: LatentSets, ctx: ExplainContext) -> list[str | None]:
    """Per latent, the candidate phrase with the largest separation of shown top vs contrast images,
    each vocabulary word beyond the first costing `parsimony` of it (Occam: with 8 shown images a
    longer phrase fits noise; 0.1 chosen on the demo's resid.2 SAE, where ground truth agreed most)."""
    phrases = candidates(ctx.vocabulary, ctx.cfg.templates)
    sims_NP = judge_similarities(ctx.image_emb_ND, ctx.encode(phrases))
    if len(sets.latents_L) == 0:
        return []
    words = {w for ws in ctx.vocabulary.values() for w in ws}
    n_words_P = np.array([max(sum(w in words for w in p.split()), 1) for p in phrases])
    d_LP = separation(sims_NP, sets.shown_Lh, sets.contrast_Lc)
    best_L = (d_LP * (1 - ctx.cfg.parsimony * (n_words_P - 1))).argmax(1)
    return [phrases[int(i)] for i in best_L]
