"""What a splice does to a classifier's output distribution (docs/METRICS.md, "Splice"): the
original and the spliced logits of the same images compared by top-1 agreement, top-5 overlap
and the KL divergence of their softmax distributions; with labels, accuracy and cross-entropy,
and with the logits of a zero-ablated hook the fraction of the loss recovered -- SAELens's "CE
loss recovered" for language models (Bloom et al.), here on image labels:

    loss_recovered = (CE_ablated - CE_spliced) / (CE_ablated - CE_original)

Cosine of the final output alone hides it: a logits cosine of 0.963 coexisted with a third of
ImageNet top-1 predictions changing (issue 30). float64 throughout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vsae.errors import VsaeError
from vsae.shapes import Array, Float, Int

TOP_K = 5


def _logits(x: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    if t.ndim != 2 or t.shape[1] < 2:
        raise VsaeError(f"{name} logits have shape {tuple(t.shape)}; expected [images, classes >= 2]")
    return t


def cross_entropy(logits_NC: Float[Array, "N C"], labels_N: Int[Array, " N"] | Sequence[int]) -> float:
    """Mean cross-entropy (nats) of the softmax of ``logits_NC`` at the true labels."""
    lg = _logits(logits_NC, "the")
    y = torch.as_tensor(np.asarray(labels_N), dtype=torch.long)
    return float(torch.nn.functional.cross_entropy(lg, y))


def output_agreement(
    original_NC: Any,
    spliced_NC: Any,
    labels_N: Any | None = None,
    ablated_NC: Any | None = None,
    k: int = TOP_K,
) -> dict[str, Any]:
    """Top-1 agreement (fraction of images whose argmax is unchanged), top-5 overlap (mean
    |top-k(original) & top-k(spliced)| / k, k = min(5, classes)), KL(original || spliced) of the softmax
    distributions (nats, mean and max over images); with ``labels_N`` (class indices into the
    logits) accuracy and cross-entropy of both, and with ``ablated_NC`` (the logits with the hook
    zeroed) the loss recovered."""
    a, b = _logits(original_NC, "original"), _logits(spliced_NC, "spliced")
    if a.shape != b.shape:
        raise VsaeError(f"original logits {tuple(a.shape)} and spliced {tuple(b.shape)} differ in shape")
    n, c = a.shape
    if n == 0:
        raise VsaeError("no images to compare")
    kk = min(k, c)
    top_a, top_b = a.topk(kk, dim=1).indices, b.topk(kk, dim=1).indices
    overlap = (top_a[:, :, None] == top_b[:, None, :]).any(dim=2).sum(dim=1).double() / kk
    la, lb = a.log_softmax(dim=1), b.log_softmax(dim=1)
    kl_N = (la.exp() * (la - lb)).sum(dim=1).clamp_min(0.0)
    out: dict[str, Any] = {
        "n_images": n,
        "n_classes": c,
        "top1_agreement": float((a.argmax(1) == b.argmax(1)).double().mean()),
        "top5_overlap": float(overlap.mean()),
        "top5_k": kk,  # min(5, classes): with fewer than 5 classes the overlap of all of them
        "kl_mean": float(kl_N.mean()),
        "kl_max": float(kl_N.max()),
    }
    if labels_N is None:
        return out
    y = np.asarray(labels_N)
    if y.shape != (n,) or (y < 0).any() or (y >= c).any():
        raise VsaeError(f"labels must be {n} class indices in [0, {c})")
    yt = torch.as_tensor(y, dtype=torch.long)
    ce_o, ce_s = cross_entropy(a, y), cross_entropy(b, y)
    out.update(
        accuracy_original=float((a.argmax(1) == yt).double().mean()),
        accuracy_spliced=float((b.argmax(1) == yt).double().mean()),
        ce_original=ce_o,
        ce_spliced=ce_s,
    )
    if ablated_NC is not None:
        ce_z = cross_entropy(_logits(ablated_NC, "ablated"), y)
        out["ce_ablated"] = ce_z
        out["loss_recovered"] = (ce_z - ce_s) / (ce_z - ce_o) if ce_z != ce_o else float("nan")
    return out
