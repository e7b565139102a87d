"""Ask a multimodal LLM (``llava-hf/llava-1.5-7b-hf``, the world's tiny LLaVA, LLaVA-NeXT, Gemma 3,
Idefics3 ...: `vsae.models.families.mllm`) a question about images, the way their model cards do:
chat template, processor (one image per prompt), greedy ``generate``, decode."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from vsae.models.families.mllm import conversation, processor_images  # the family owns its chat format

_WORD = re.compile(r"[^\W\d_]+|\d+")


@torch.no_grad()
def ask(
    model: Any,
    processor: Any,
    images: Sequence[Image.Image],
    question: str,
    max_new_tokens: int = 8,
    batch_size: int = 32,
) -> list[str]:
    """The decoded answer (greedy) of ``model`` to ``question`` for each image."""
    prompt = processor.apply_chat_template(conversation(question), add_generation_prompt=True)
    p = next(model.parameters())
    answers: list[str] = []
    for s in range(0, len(images), batch_size):
        chunk = list(images[s : s + batch_size])
        inputs = processor(images=processor_images(chunk), text=[prompt] * len(chunk), return_tensors="pt")
        inputs = {
            k: v.to(p.device, p.dtype) if v.is_floating_point() else v.to(p.device) for k, v in inputs.items()
        }
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        answers += processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return [a.strip() for a in answers]


def first_word(answer: str) -> str:
    """The first word of an answer, lower-cased ("" if none): what the steering score embeds."""
    m = _WORD.search(answer)
    return m.group(0).lower() if m else ""
