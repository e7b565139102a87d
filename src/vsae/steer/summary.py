"""Write the steering experiment's outputs: results.json, scores.png, HAI strips and index.html."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def hai_strip(images: list[Image.Image], idx: np.ndarray, cell: int = 64) -> Image.Image:
    """The top images of one latent side by side, each resized to ``cell`` px."""
    idx = [int(i) for i in idx if i >= 0]
    strip = Image.new("RGB", (cell * max(len(idx), 1), cell), (255, 255, 255))
    for j, i in enumerate(idx):
        strip.paste(images[i].convert("RGB").resize((cell, cell), Image.NEAREST), (j * cell, 0))
    return strip


def scores_plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_summary(out: Path, results: dict[str, Any], hai_set, top, latents: np.ndarray) -> None:
    """results.json + scores.png + hai/latent_F.png + index.html into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "hai").mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    scores_plot(results, out / "scores.png")
    for f in latents:
        hai_strip(hai_set.images, top.indices_Fk[f]).save(out / "hai" / f"latent_{int(f)}.png")
    from vsae.report.html import Report
    from vsae.report.steering import steering_section

    r = Report("vsae steer", f"{results['llava'].get('model', '')} · SAE {results['sae']}")
    steering_section(r, results, out)
    r.save(out / "index.html")


def answer_counts(answers: list[str]) -> str:
    """'star x12, cross x4' for a list of answers."""
    from collections import Counter

    return ", ".join(f"{a or '(empty)'} x{c}" for a, c in Counter(answers).most_common())
