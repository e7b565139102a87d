"""Write the steering experiment's artefacts: results.json, scores.png and the HAI strips.

The HTML page (index.html) is the experiment's report section:
`vsae.experiments.mllm_steering.mllm_report.write_steering_index`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vsae.eval.plots import pyplot
from vsae.eval.topimages import TopImages
from vsae.store.safe_io import atomic_path, atomic_write_json


def hai_strip(images: Sequence[Image.Image], idx: np.ndarray, cell: int = 64) -> Image.Image:
    """The top images of one latent side by side, each resized to ``cell`` px."""
    keep = [int(i) for i in idx if i >= 0]
    strip = Image.new("RGB", (cell * max(len(keep), 1), cell), (255, 255, 255))
    for j, i in enumerate(keep):
        strip.paste(images[i].convert("RGB").resize((cell, cell), Image.Resampling.NEAREST), (j * cell, 0))
    return strip


def scores_plot(results: dict[str, Any], path: Path) -> None:
    """Bar chart of the steered and unsteered score per latent (from the results' JSON form)."""
    plt = pyplot()
    rows = results["latents"]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(rows) + 2), 3))
    ax.bar(x - 0.2, [r["score_baseline"] for r in rows], 0.4, label="unsteered")
    ax.bar(x + 0.2, [r["score_steered"] for r in rows], 0.4, label="steered")
    ax.set_xticks(x, [str(r["latent"]) for r in rows], rotation=90)
    ax.set_xlabel("latent")
    ax.set_ylabel("cos(h_f, t)")
    s = results["score"]
    ax.set_title(f"steering score {s['steered']:.3f} vs unsteered {s['baseline']:.3f}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)


def write_summary(
    out: Path, results: dict[str, Any], images: Sequence[Image.Image], top: TopImages, latents: np.ndarray
) -> None:
    """results.json + scores.png + hai/latent_F.png into ``out`` (``results``: the JSON form)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "hai").mkdir(exist_ok=True)
    atomic_write_json(out / "results.json", results)
    scores_plot(results, out / "scores.png")
    for f in latents:
        with atomic_path(out / "hai" / f"latent_{int(f)}.png") as tmp:
            hai_strip(images, top.indices_Fk[f]).save(tmp, format="PNG")
