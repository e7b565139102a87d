"""Automatic attribute discovery for text-encoder SAE latents (Olson et al.): boost a latent,
generate, and name what changed from the images alone -- the vocabulary word whose CLIP
image-text similarity rises most from unsteered to steered images of the same prompts and
noise. The names are then checked against the ground truth where there is one (a
`judges.DiffusionJudge`: on the shapes world, the attribute value whose rate, as read by the
similarity encoder's heads, rises most), beside random words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vsae.errors import VsaeError
from vsae.models.hf import safe_from_pretrained


@dataclass(frozen=True)
class VocabWord:
    """A word of the naming vocabulary: its prompts (their mean CLIP text embedding is the
    word's) and, on the shapes world, the (attribute, value index) it names."""

    word: str
    prompts: tuple[str, ...]
    attribute: str | None = None
    value: int | None = None


def plain_vocabulary(words: Sequence[str]) -> list[VocabWord]:
    """Any word list, each prompted as "a photo of {word}" (real models, no ground truth)."""
    return [VocabWord(w, (f"a photo of {w}",)) for w in words]


class ClipScorer:
    """Image-text cosine similarities with a CLIP loaded by `from_pretrained` (hub id or dir)."""

    def __init__(self, clip_dir: str, device: str = "cpu"):
        from transformers import AutoModel, AutoProcessor

        self.model = safe_from_pretrained(AutoModel, clip_dir, "the naming CLIP").eval().to(device)
        try:
            self.proc = AutoProcessor.from_pretrained(str(clip_dir))
        except (OSError, ValueError) as e:
            raise VsaeError(
                f"cannot load the processor of the naming CLIP {clip_dir} ({str(e).splitlines()[0][:120]})"
            ) from None
        self.device = device

    @staticmethod
    def _feat(out: Any) -> torch.Tensor:
        return getattr(out, "pooler_output", out)

    @torch.no_grad()
    def words(self, vocab: Sequence[VocabWord]) -> torch.Tensor:
        """[W, D] unit text embeddings (mean over each word's prompts, renormalised)."""
        rows = []
        for w in vocab:
            enc = self.proc.tokenizer(list(w.prompts), padding=True, return_tensors="pt").to(self.device)
            t = self._feat(
                self.model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            )
            rows.append(
                torch.nn.functional.normalize(torch.nn.functional.normalize(t.float(), dim=-1).mean(0), dim=0)
            )
        return torch.stack(rows).cpu()

    @torch.no_grad()
    def images(self, images_NHWC: np.ndarray, batch_size: int = 256) -> torch.Tensor:
        """[N, D] unit image embeddings."""
        from PIL import Image

        out = []
        for i in range(0, len(images_NHWC), batch_size):
            pil = [Image.fromarray(a) for a in images_NHWC[i : i + batch_size]]
            pix = self.proc(images=pil, return_tensors="pt")["pixel_values"].to(self.device)
            out.append(
                torch.nn.functional.normalize(
                    self._feat(self.model.get_image_features(pixel_values=pix)).float(), dim=-1
                )
            )
        return torch.cat(out).cpu()


def discover(
    img_steered_ND: torch.Tensor, img_unsteered_ND: torch.Tensor, words_WD: torch.Tensor
) -> tuple[int, np.ndarray]:
    """(index of the discovered word, similarity rise [W]): the rise of word w is
    mean_n cos(steered_n, w) - mean_n cos(unsteered_n, w)."""
    diff = (img_steered_ND @ words_WD.T).mean(0) - (img_unsteered_ND @ words_WD.T).mean(0)
    rise = diff.numpy().astype(np.float64)
    return int(rise.argmax()), rise


def truth_change(
    pred_steered: dict[str, np.ndarray], pred_unsteered: dict[str, np.ndarray], vocab: Sequence[VocabWord]
) -> np.ndarray:
    """[W] rise of each word's attribute-value rate (judge predictions) from unsteered to steered."""
    if any(w.attribute is None for w in vocab):
        raise VsaeError("ground-truth changes need a vocabulary of attribute values (the world's)")
    return np.array(
        [
            float(
                np.mean(pred_steered[str(w.attribute)] == w.value)
                - np.mean(pred_unsteered[str(w.attribute)] == w.value)
            )
            for w in vocab
        ]
    )


def truth_name(change_W: np.ndarray, min_change: float) -> int | None:
    """The ground-truth word: the largest rate rise, if it is at least ``min_change``."""
    i = int(np.argmax(change_W))
    return i if change_W[i] >= min_change else None


def agreement(discovered: Sequence[int], truth: Sequence[int | None]) -> tuple[float, int]:
    """(fraction of latents with a ground-truth change whose discovered word is it, how many)."""
    pairs = [(d, t) for d, t in zip(discovered, truth) if t is not None]
    if not pairs:
        return float("nan"), 0
    return float(np.mean([d == t for d, t in pairs])), len(pairs)


def random_agreement(truth: Sequence[int | None], n_words: int, seed: int, draws: int = 100) -> float:
    """The agreement of uniformly random words (mean over ``draws`` seeded draws)."""
    rng = np.random.default_rng(seed)
    t = np.array([x for x in truth if x is not None])
    if len(t) == 0:
        return float("nan")
    return float(np.mean(rng.integers(0, n_words, size=(draws, len(t))) == t[None]))
