"""Explainers of `vsae eval explain`: one module per built-in (`vocab`, `mllm`), each registering a
function ``(sets, ctx) -> list[phrase | None]`` (one phrase per latent of `sets`) in `EXPLAINERS`;
plug-ins declare entry points in the group ``vsae.explainers`` (`vsae.registry.Registry`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vsae.eval.explain import LatentSets, TextEncoder
from vsae.eval.explain_config import ExplainConfig
from vsae.registry import Registry

Ask = Callable[[Sequence[Any], str], list[str]]
"""(PIL images, question) -> one answer per image (e.g. `vsae.steer.mllm.ask` bound to a model)."""


@dataclass(frozen=True)
class ExplainContext:
    """What an explainer may look at.

    image_emb_ND: the judge's image embeddings of the N images (the `vocab` explainer's CLIP).
    encode: the judge's text tower (phrases -> [P, D]).
    vocabulary: slot -> words (e.g. {"colour": [...], "shape": [...]}; a plain word list is {"word": [...]}).
    images: positions -> PIL images (explainers that look at pixels, e.g. `mllm`), or None.
    ask: a multimodal LLM's answers (the `mllm` explainer), or None.
    cfg: the command's settings.
    """

    image_emb_ND: np.ndarray
    encode: TextEncoder
    vocabulary: Mapping[str, Sequence[str]] = field(default_factory=dict)
    images: Callable[[np.ndarray], list[Any]] | None = None
    ask: Ask | None = None
    cfg: ExplainConfig = field(default_factory=ExplainConfig)


Explainer = Callable[[LatentSets, ExplainContext], list[str | None]]

EXPLAINERS: Registry[Explainer] = Registry("explainer", "vsae.explainers", "vsae.eval.explainers")
