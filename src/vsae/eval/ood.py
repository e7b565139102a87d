"""OOD detection from SAE signals — Olson et al. (2025): a score per image (reconstruction
error, sum or max of the latent activations), AUROC and FPR at 95% TPR, OOD as the positive
class (a higher score means "more out-of-distribution")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from vsae.errors import VsaeError
from vsae.eval._arrays import to_numpy
from vsae.shapes import Array, Float, Float64

# one score per image: an array, or a list of numbers
Scores = Float[Array, " _"] | Sequence[float]


def _scores(x: Any, name: str) -> np.ndarray:
    s = to_numpy(x, np.float64).ravel()
    if s.size == 0:
        raise VsaeError(f"no {name} scores: OOD metrics need at least one in-distribution and one OOD image")
    if not np.isfinite(s).all():
        raise VsaeError(f"{name} scores contain NaN or inf; check the activations")
    return s


def auroc(scores_in: Scores, scores_ood: Scores) -> float:
    """Area under the ROC curve = P(s_ood > s_in) + P(s_ood == s_in) / 2 (Mann-Whitney U)."""
    s_in, s_ood = _scores(scores_in, "in-distribution"), _scores(scores_ood, "OOD")
    ranks = rankdata(np.concatenate([s_in, s_ood]))  # average ranks for ties
    n_in, n_ood = s_in.size, s_ood.size
    u = ranks[n_in:].sum() - n_ood * (n_ood + 1) / 2.0
    return float(u / (n_in * n_ood))


def fpr_at_tpr(scores_in: Scores, scores_ood: Scores, tpr: float = 0.95) -> float:
    """The smallest false-positive rate (in-distribution images with score >= t) over thresholds
    t whose true-positive rate (OOD images with score >= t) is at least `tpr`."""
    s_in, s_ood = _scores(scores_in, "in-distribution"), _scores(scores_ood, "OOD")
    need = int(np.ceil(round(tpr * s_ood.size, 9)))  # OOD images that must be flagged
    need = min(max(need, 1), s_ood.size)
    t = np.sort(s_ood)[::-1][need - 1]  # the largest threshold that flags `need` of them
    return float((s_in >= t).mean())


def roc_curve(
    scores_in: Scores, scores_ood: Scores
) -> tuple[Float64[np.ndarray, " T"], Float64[np.ndarray, " T"]]:
    """(FPR, TPR) at every distinct threshold, from (0, 0) to (1, 1), for plotting."""
    s_in, s_ood = _scores(scores_in, "in-distribution"), _scores(scores_ood, "OOD")
    ts = np.unique(np.concatenate([s_in, s_ood]))[::-1]
    s_in_sorted, s_ood_sorted = np.sort(s_in), np.sort(s_ood)
    fpr = (s_in.size - np.searchsorted(s_in_sorted, ts, side="left")) / s_in.size
    tpr = (s_ood.size - np.searchsorted(s_ood_sorted, ts, side="left")) / s_ood.size
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])


def ood_scores(
    x_Nd: Float[Array, "N d"], x_hat_Nd: Float[Array, "N d"], z_NF: Float[Array, "N F"]
) -> dict[str, Float64[np.ndarray, " N"]]:
    """The three per-image scores: squared reconstruction error, latent sum, latent max."""
    x, xh, z = to_numpy(x_Nd, np.float64), to_numpy(x_hat_Nd, np.float64), to_numpy(z_NF, np.float64)
    return {
        "recon_error": ((x - xh) ** 2).sum(axis=1),
        "latent_sum": z.sum(axis=1),
        "latent_max": z.max(axis=1),
    }


def ood_report(scores_in: dict[str, np.ndarray], scores_ood: dict[str, np.ndarray]) -> dict[str, dict]:
    """AUROC and FPR@95%TPR for every score name present in both dicts."""
    return {
        name: {
            "auroc": auroc(scores_in[name], scores_ood[name]),
            "fpr_at_95tpr": fpr_at_tpr(scores_in[name], scores_ood[name]),
        }
        for name in scores_in
        if name in scores_ood
    }
