"""One-word answer accuracy of a LLaVA on shapes-world images, driven like llava-hf's model card."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vsae.world.generate import generate
from vsae.world.llava.questions import QUESTIONS, answer

if TYPE_CHECKING:
    from transformers import LlavaForConditionalGeneration, ProcessorMixin


def load_llava(model_dir: str | Path) -> tuple[LlavaForConditionalGeneration, ProcessorMixin]:
    """(model, processor) via ``LlavaForConditionalGeneration`` / ``AutoProcessor.from_pretrained``."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from vsae.errors import VsaeError
    from vsae.models.hf import safe_from_pretrained  # here: importing this module stays torch-free

    model = safe_from_pretrained(LlavaForConditionalGeneration, model_dir, "a LLaVA from").eval()
    try:
        processor = AutoProcessor.from_pretrained(str(model_dir))
    except (OSError, ValueError) as e:
        raise VsaeError(f"cannot load a LLaVA from {model_dir} ({str(e).splitlines()[0][:120]})") from None
    return model, processor


def answer_accuracy(
    model_dir_or_pair: str | Path | tuple[LlavaForConditionalGeneration, ProcessorMixin],
    kinds: tuple[str, ...] = ("object", "colour", "background", "count"),
    split: str = "test",
    n: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """Fraction of ``n`` images of ``split`` whose first answer word is the true one, per question."""
    from vsae.steer.mllm import ask, first_word

    model, processor = (
        model_dir_or_pair if isinstance(model_dir_or_pair, tuple) else load_llava(model_dir_or_pair)
    )
    batch = generate(split, n, seed=seed)
    recs = [r.to_dict() for r in batch.records]
    images = batch.pil_images()
    acc = {}
    for kind in kinds:
        said = [first_word(a) for a in ask(model, processor, images, QUESTIONS[kind], max_new_tokens=2)]
        acc[kind] = float(np.mean([s == answer(kind, r) for s, r in zip(said, recs)]))
    return acc
