"""What each latent of a text-encoder SAE reads, from the text side: its largest activation and
the word it fires on most (its share of the latent's activation mass), over a caption corpus.
The word tells which attribute value the latent should steer toward (used to pick latents and
to set the steering strength relative to the latent's natural scale)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vsae.errors import VsaeError

if TYPE_CHECKING:
    from vsae.models import LoadedModel
    from vsae.sae import SAE


@dataclass(frozen=True)
class LatentStats:
    """Per-latent statistics over the caption corpus.

    Attributes
    ----------
    max_act: [F] largest activation on one token.
    fires: [F] number of tokens the latent is active on.
    top_word: [F] the word carrying the largest share of the latent's activation mass ("" if dead).
    top_share: [F] that share (1 = the latent fires only on that word).
    """

    max_act: np.ndarray
    fires: np.ndarray
    top_word: list[str]
    top_share: np.ndarray

    @property
    def live(self) -> np.ndarray:
        return np.flatnonzero(self.fires > 0)


@torch.no_grad()
def text_token_rows(
    text_lm: LoadedModel, hook: str, captions: Sequence[str], batch_size: int = 512
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """(rows [n, d], caption index [n], token position [n]) of every non-padding token."""
    import vsae.models

    if not captions:
        raise VsaeError("no captions to extract text-encoder activations from")
    rows, cap_idx, tok_idx = [], [], []
    for s in range(0, len(captions), batch_size):
        inputs = text_lm.preprocess(list(captions[s : s + batch_size]))
        if not isinstance(inputs, dict):
            raise VsaeError(
                f"{hook}: the text encoder's preprocessing gave no attention mask; give a text model"
            )
        with vsae.models.capture(text_lm, hook) as cap:
            text_lm.run(inputs)
        ids = np.arange(s, s + len(inputs["input_ids"]), dtype=np.int64)
        r, ci, ti = vsae.models.select_tokens(
            cap.output, "all", False, ids, attention_mask_BT=inputs["attention_mask"]
        )
        rows.append(r.float().clone())
        cap_idx.append(ci)
        tok_idx.append(ti)
    return torch.cat(rows), np.concatenate(cap_idx), np.concatenate(tok_idx)


def token_word(token: str) -> str:
    """The word a tokenizer's token stands for (lower case, without CLIP's ``</w>`` or GPT's ``Ġ``)."""
    return token.replace("</w>", "").replace("Ġ", "").strip().lower()


@torch.no_grad()
def latent_stats(
    text_lm: LoadedModel, tokenizer: Any, sae: SAE, hook: str, captions: Sequence[str]
) -> LatentStats:
    """`LatentStats` of ``sae`` at ``hook`` of the text encoder over ``captions`` (padding excluded)."""
    x, cap_idx, tok_idx = text_token_rows(text_lm, hook, captions)
    d_in = getattr(getattr(sae, "cfg", None), "d_in", x.shape[1])
    if d_in != x.shape[1]:
        raise VsaeError(
            f"hook {hook} has width {x.shape[1]} but the SAE's d_in is {d_in}; use the SAE's own hook"
        )
    z = sae.encode(x).float().numpy()
    ids = tokenizer(list(captions), truncation=True, max_length=tokenizer.model_max_length)["input_ids"]
    words = [token_word(tokenizer.convert_ids_to_tokens(ids[c][t])) for c, t in zip(cap_idx, tok_idx)]
    vocab = sorted(set(words))
    w_idx = np.array([vocab.index(w) for w in words]) if words else np.zeros(0, np.int64)
    mass_WF = np.zeros((len(vocab), z.shape[1]))
    np.add.at(mass_WF, w_idx, z)
    total = mass_WF.sum(0)
    top = mass_WF.argmax(0)
    share = np.where(total > 0, mass_WF.max(0) / np.maximum(total, 1e-12), 0.0)
    fires = (z > 0).sum(0)
    return LatentStats(
        max_act=z.max(0) if len(z) else np.zeros(z.shape[1]),
        fires=fires,
        top_word=[vocab[t] if f > 0 else "" for t, f in zip(top, fires)],
        top_share=share,
    )
