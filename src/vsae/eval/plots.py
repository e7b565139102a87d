"""PNG figures of the evaluation (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsae.store.safe_io import atomic_path


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save ``fig`` as a PNG at ``path`` (atomically, never through a link) and close it."""
    p = Path(path)
    fig.tight_layout()
    try:
        with atomic_path(p) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        pyplot().close(fig)
    return p


def fitted_range(values: Sequence[np.ndarray], marks: Sequence[float] = ()) -> tuple[float, float]:
    """An axis range fitted to the finite ``values`` (and ``marks``) with a 5% margin, within
    [-1, 1]; MS of real models often spans a few hundredths, all in one bin of a -1..1 axis."""
    fin = [np.asarray(v, np.float64)[np.isfinite(v)] for v in values]
    pts = np.concatenate([*fin, np.asarray([m for m in marks if np.isfinite(m)], np.float64)])
    if pts.size == 0:
        return -1.0, 1.0
    lo, hi = float(pts.min()), float(pts.max())
    pad = max(0.05 * (hi - lo), 1e-3)
    return max(lo - pad, -1.0), min(hi + pad, 1.0)


def ms_histogram(
    scores: Mapping[str, np.ndarray], path: str | Path, bins: int = 40, baseline: float | None = None
) -> Path:
    """Histogram of MS per kind (e.g. raw neurons vs SAE latents), NaNs dropped, densities, on
    an axis fitted to the scores; ``baseline`` (the embeddings' mean pairwise cosine) as a line."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    marks = [] if baseline is None else [baseline]
    rng = fitted_range([s for s in scores.values()], marks)
    for name, s in scores.items():
        v = s[~np.isnan(s)]
        if v.size:
            ax.hist(
                v,
                bins=bins,
                range=rng,
                density=True,
                alpha=0.5,
                label=f"{name} (n={v.size}, mean={v.mean():.3f})",
            )
    if baseline is not None and np.isfinite(baseline):
        ax.axvline(baseline, color="k", linestyle="--", label=f"embedding baseline {baseline:.3f}")
    ax.set_xlim(*rng)
    ax.set_xlabel("Monosemanticity Score")
    ax.set_ylabel("density")
    ax.legend()
    return save_figure(fig, path)


def depth_per_group(groups: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Average LCA depth per Matryoshka group (mean-rounded and majority)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(len(groups))
    ax.bar(x - 0.2, [g["mean_depth"] for g in groups], 0.4, label="mean (rounded)")
    ax.bar(x + 0.2, [g["majority_depth"] for g in groups], 0.4, label="majority")
    ax.set_xticks(x, [f"{g['group']}\n[{g['latents'][0]},{g['latents'][1]})" for g in groups])
    ax.set_xlabel("Matryoshka group (latents)")
    ax.set_ylabel("average LCA depth")
    ax.legend()
    return save_figure(fig, path)


def firing_frequency(hist: Mapping[str, Any], path: str | Path) -> Path:
    """Histogram of log10 latent firing frequency (dead latents noted in the title)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    e = np.asarray(hist["log10_edges"])
    ax.bar(e[:-1], hist["counts"], width=np.diff(e), align="edge")
    ax.set_xlabel("log10 firing frequency")
    ax.set_ylabel("latents")
    ax.set_title(f"dead latents: {hist['n_dead']}")
    return save_figure(fig, path)


def roc_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path) -> Path:
    """ROC curves (FPR, TPR), one per score/split."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (fpr, tpr) in curves.items():
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def ms_vs_expansion(
    series: Mapping[str, Sequence[tuple[float, float]]], raw: Mapping[str, float], path: str | Path
) -> Path:
    """Mean MS against the expansion factor, one line per (layer, arch), raw neurons as dashed levels."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, pts in series.items():
        pts = sorted(pts)
        ax.plot([e for e, _ in pts], [m for _, m in pts], marker="o", label=name)
    for i, (name, m) in enumerate(raw.items()):
        ax.axhline(m, ls="--", lw=1, color=f"C{i + len(series)}", label=f"{name} raw neurons")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("expansion factor")
    ax.set_ylabel("mean Monosemanticity Score")
    ax.legend(fontsize=7)
    return save_figure(fig, path)
