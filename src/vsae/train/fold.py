"""Fold the trainer's input transform, x -> (x - center) * scale, into an SAE's weights."""

from __future__ import annotations

import torch

from vsae.sae.base import SAE
from vsae.sae.io import fold_scale


@torch.no_grad()
def fold_input(sae: SAE, scale: float, center: torch.Tensor | None) -> SAE:
    """A copy of an SAE trained on ``(x - center) * scale`` that works on raw ``x``.

    :func:`vsae.sae.io.fold_scale` undoes the scale; the centre then moves into the biases:
    ``pre = W_enc (x - c) + b_enc = W_enc x + (b_enc - W_enc c)`` and ``x_hat = ... + b_dec + c``.
    The centre is the decoder-bias initialisation, so encoding ``x - b_dec_init`` follows
    Bricken et al. (2023, "Towards Monosemanticity").
    """
    out = fold_scale(sae, scale)
    if center is not None:
        c = center.to(device=out.b_dec_d.device, dtype=out.b_dec_d.dtype)
        out.b_enc_F.sub_(out.W_enc_Fd @ c)
        out.b_dec_d.add_(c)
    return out
