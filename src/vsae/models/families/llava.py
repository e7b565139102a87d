"""LLaVA (Liu et al.): the vision tower (a CLIP or SigLIP tower, laid out by its own family) or
the language model (a decoder LM such as Llama / Mistral / Qwen2, run on text)."""

from __future__ import annotations

from typing import Any

from vsae.errors import VsaeError
from vsae.models import hf
from vsae.models.loaded import LoadedModel
from vsae.models.registry import Family, Layout, LoadRequest, for_model_type, register_family

LANGUAGE = Layout("llava", "text", ("self_attn",), ("mlp",), False, ())


def conversation(question: str) -> list[dict[str, Any]]:
    """A one-turn llava-hf conversation: one image, then the question (for the chat template)."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]


def load_llava(req: LoadRequest) -> LoadedModel:
    """The vision tower (default) or the language model of a LlavaForConditionalGeneration."""
    config = req.config
    tower = hf.choose_tower(req, ("vision", "language"), "llava")
    full = hf.load_weights(req, "LlavaForConditionalGeneration")
    inner = full.model
    if tower == "vision":
        sub = config.vision_config
        layout = for_model_type(sub.model_type).layout
        if layout is None:
            raise VsaeError(
                f"LLaVA vision tower {sub.model_type!r} has no known layout; use module:<path> hooks"
            )
        model, kwargs = inner.vision_tower, None
    else:
        sub, layout, model, kwargs = config.text_config, LANGUAGE, inner.language_model, {"use_cache": False}
    return hf.tower_model(
        req,
        full=full,
        model=model,
        sub_config=sub,
        layout=layout,
        tower=tower,
        family="llava",
        move_full=False,
        forward_kwargs=kwargs,
    )


register_family(
    Family("llava", load_llava, model_types={"llava": "LlavaForConditionalGeneration"}, layout=None)
)
