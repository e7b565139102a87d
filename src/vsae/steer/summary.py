"""Write the steering experiment's outputs: results.json, scores.png, HAI strips and index.html."""

from __future__ import annotations

import html
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
    e = html.escape
    s = results["score"]
    cfg = results["config"]
    rows = []
    for r in results["latents"]:
        steered = answer_counts(r["answers_steered"])
        base = answer_counts(r["answers_baseline"])
        rows.append(
            f"<tr><td>{r['latent']}</td><td>{e(r['name'])}</td>"
            f"<td><img src='hai/latent_{r['latent']}.png' height=32></td>"
            f"<td>{e(steered)}</td><td>{e(base)}</td>"
            f"<td>{r['score_steered']:.3f}</td><td>{r['score_baseline']:.3f}</td></tr>"
        )
    blank = ""
    if "blank_image" in results:
        b = results["blank_image"]
        brows = "".join(
            f"<tr><td>{r['latent']}</td><td>{e(r['name'])}</td><td>{e(r['answer'])}</td></tr>"
            for r in b["latents"]
        )
        blank = (
            f"<h2>Single blank image</h2><p>unsteered answer: <b>{e(b['baseline_answer'])}</b>; "
            f"score {b['score']['steered']:.3f} vs unsteered {b['score']['baseline']:.3f}</p>"
            f"<table><tr><th>latent</th><th>name</th><th>answer</th></tr>{brows}</table>"
        )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>vsae steer</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border:1px solid #ccc;padding:2px 6px}}
table{{border-collapse:collapse}}</style></head><body>
<h1>Steering with SAE latents (Pach et al.)</h1>
<p>{e(cfg["op"])} latent to {cfg["value"]} at <code>{e(cfg["hook"])}</code> on {e(cfg["tokens"])} tokens
(pre_zero={cfg["pre_zero"]}); question: <i>{e(cfg["question"])}</i>; {len(results["test_images"])} images.</p>
<p><b>Steering score {s["steered"]:.4f}</b> vs unsteered baseline {s["baseline"]:.4f};
answers moved toward the latent's concept in {100 * s["moved_toward"]:.1f}% of (latent, image) pairs,
away in {100 * s["moved_away"]:.1f}%.</p>
<p>Scale: hooked tokens have mean L2 norm {results["scale"]["mean_token_norm"]:.2f}; the steered latents'
largest single-token activation (median) is {results["scale"]["median_max_token_activation"]:.2f}.</p>
<img src="scores.png">
<table><tr><th>latent</th><th>name (HAI ground truth)</th><th>top images</th><th>steered answers</th>
<th>unsteered answers</th><th>score</th><th>baseline</th></tr>{"".join(rows)}</table>
{blank}</body></html>"""
    (out / "index.html").write_text(page)


def answer_counts(answers: list[str]) -> str:
    """'star x12, cross x4' for a list of answers."""
    from collections import Counter

    return ", ".join(f"{a or '(empty)'} x{c}" for a, c in Counter(answers).most_common())
