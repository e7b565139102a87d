"""The steering score of Pach et al. (see /work/shared/METRICS.md, "Steering score").

For latent f, ``h_f`` is the mean similarity-encoder embedding of its highest-activating images
and ``t`` the text embedding (same encoder family) of the first word of the model's answer.
The score is ``cos(h_f, t)`` averaged over latents and images, and is always reported beside
the unsteered baseline: the same ``cos(h_f, t)`` with the answers given without steering, on
the same images and latents. Also reported: how often, per (latent, image), the steered answer
is closer to ``h_f`` than the unsteered one ("moved toward") and how often it is farther.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SteeringScore:
    """Steering scores (cosines averaged over latents and images) with their baseline.

    Attributes
    ----------
    steered, baseline: the score with and without steering.
    steered_L, baseline_L: per-latent means over images.
    cos_steered_LN, cos_baseline_LN: every cos(h_f, t) [latents, images].
    moved_toward, moved_away: fraction of (latent, image) pairs whose steered answer is more /
        less similar to h_f than the unsteered one (ties, e.g. the same answer, count in neither).
    """

    steered: float
    baseline: float
    steered_L: np.ndarray
    baseline_L: np.ndarray
    cos_steered_LN: np.ndarray
    cos_baseline_LN: np.ndarray
    moved_toward: float
    moved_away: float

    def to_json(self) -> dict:
        return {
            "steered": self.steered,
            "baseline": self.baseline,
            "moved_toward": self.moved_toward,
            "moved_away": self.moved_away,
            "steered_per_latent": self.steered_L.tolist(),
            "baseline_per_latent": self.baseline_L.tolist(),
        }


def steering_score(
    h_LD: torch.Tensor, t_steered_LND: torch.Tensor, t_baseline_ND: torch.Tensor, tie_atol: float = 1e-6
) -> SteeringScore:
    """Score from latent embeddings ``h_LD``, the embeddings of the steered answers' first words
    ``t_steered_LND`` (latent l steering image n) and of the unsteered answers ``t_baseline_ND``."""
    h = F.normalize(h_LD.double(), dim=-1)
    cs = torch.einsum("ld,lnd->ln", h, F.normalize(t_steered_LND.double(), dim=-1))
    cb = h @ F.normalize(t_baseline_ND.double(), dim=-1).T  # [L, N]
    diff = cs - cb
    return SteeringScore(
        steered=float(cs.mean()),
        baseline=float(cb.mean()),
        steered_L=cs.mean(1).numpy(),
        baseline_L=cb.mean(1).numpy(),
        cos_steered_LN=cs.numpy(),
        cos_baseline_LN=cb.numpy(),
        moved_toward=float((diff > tie_atol).double().mean()),
        moved_away=float((diff < -tie_atol).double().mean()),
    )


def latent_embeddings(hai_indices_LK: np.ndarray, image_emb_ND: torch.Tensor) -> torch.Tensor:
    """``h_f``: the mean embedding of each latent's top images [L, D] (index -1 = padding, skipped)."""
    out = []
    for idx in hai_indices_LK:
        idx = idx[idx >= 0]
        out.append(image_emb_ND[torch.as_tensor(idx)].mean(0))
    return torch.stack(out)
