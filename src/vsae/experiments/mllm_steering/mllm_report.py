"""The MLLM steering experiment's report section (Pach et al.): in the demo's report.html and in the
`index.html` that `vsae steer mllm` writes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image

from vsae.experiments.mllm_steering.mllm_run import load_images
from vsae.report.html import Report, image_grid
from vsae.steer.mllm import first_word

MAX_EXAMPLES = 8


def answer_counts(answers: list[str]) -> str:
    """'star x12, cross x4' for a list of answers."""
    return ", ".join(f"{a or '(empty)'} x{c}" for a, c in Counter(answers).most_common())


def write_steering_index(out: Path, steer: dict[str, Any]) -> Path:
    """``out``/index.html for a steering run written there (`run_steering(..., out_dir=out)`;
    ``steer``: its results.json)."""
    r = Report("vsae steer", f"{steer['llava'].get('model', '')} · SAE {steer['sae']}")
    steering_section(r, steer, out)
    return r.save(out / "index.html")


def steering_examples(steer: dict[str, Any]) -> list[dict[str, Any]]:
    """(latent, image) pairs where the clamp makes the model name the latent's concept (the most
    common shape of its top images) on an image whose unsteered answer was something else."""
    out = []
    for row in steer["latents"]:
        concept = row["name"].split(" ")[0] if row["name"] else ""
        if not concept:
            continue
        for j, (base, steered) in enumerate(zip(row["answers_baseline"], row["answers_steered"])):
            b, s = first_word(base), first_word(steered)
            if s == concept and b != concept:
                out.append(
                    {"latent": row["latent"], "name": row["name"], "image": j, "baseline": b, "steered": s}
                )
    return out


def steering_section(r: Report, steer: dict[str, Any], steer_dir: Path) -> None:
    """The results of `vsae.experiments.mllm_steering.mllm_run.run_steering` (written to `steer_dir`, which holds the
    latents' top-image strips in hai/): scores, scale, per-latent answers and examples."""
    cfg = steer["config"]
    sc = steer["score"]
    r.heading("Steering the multimodal model through SAE latents in its vision encoder (Pach et al.)")
    r.text(
        f"Each latent is edited ({cfg['op']} {cfg['value']:g}, {cfg['tokens']} tokens"
        f"{', other latents zeroed' if cfg['pre_zero'] else ''}) at {cfg['hook']} of the vision tower, the SAE's "
        f"error term kept, and the model is asked \u201c{cfg['question']}\u201d. Score = cos(h_f, t): h_f the "
        f"mean image embedding of the latent's top images, t the text embedding of the answer's first word "
        f"(METRICS.md). Scale: hooked tokens have mean L2 norm {steer['scale']['mean_token_norm']:.2f}; the "
        f"steered latents' largest single-token activation (median) is "
        f"{steer['scale']['median_max_token_activation']:.2f}."
    )
    rows = [
        {
            "images": f"{len(steer['test_images'])} test images",
            "latents": len(steer["latents"]),
            "steered score": sc["steered"],
            "unsteered score": sc["baseline"],
            "answers moved toward the latent": sc["moved_toward"],
            "moved away": sc["moved_away"],
        }
    ]
    if "blank_image" in steer:
        b = steer["blank_image"]["score"]
        rows.append(
            {
                "images": "one blank white image",
                "latents": len(steer["blank_image"]["latents"]),
                "steered score": b["steered"],
                "unsteered score": b["baseline"],
                "answers moved toward the latent": b["moved_toward"],
                "moved away": b["moved_away"],
            }
        )
    r.table(rows, left=("images",))
    if (steer_dir / "scores.png").is_file():
        r.plot(steer_dir / "scores.png", "steering score per latent")
    r.heading("Answers per latent", 3)
    r.table(
        [
            {
                "latent": row["latent"],
                "top images": row["name"],
                "steered answers": answer_counts(row["answers_steered"]),
                "unsteered answers": answer_counts(row["answers_baseline"]),
                "score": row["score_steered"],
                "baseline": row["score_baseline"],
            }
            for row in steer["latents"]
        ],
        left=("top images", "steered answers", "unsteered answers"),
    )
    if "blank_image" in steer:
        b = steer["blank_image"]
        r.heading(f"One blank white image (unsteered answer: \u201c{b['baseline_answer']}\u201d)", 3)
        r.table(
            [{"latent": x["latent"], "top images": x["name"], "answer": x["answer"]} for x in b["latents"]],
            left=("top images", "answer"),
        )
    ex = steering_examples(steer)
    r.heading(f"Editing one latent makes the model name its concept ({len(ex)} cases)", 3)
    if not ex:
        r.text("No (latent, image) pair in this run turned an answer into the latent's concept.", cls="note")
        return
    r.text("Left: the image asked about; right: the latent's top images.")
    r.cards(example_cards(ex, cfg, steer_dir))


def example_cards(
    ex: list[dict[str, Any]], cfg: dict[str, Any], steer_dir: Path
) -> list[tuple[Image.Image, str]]:
    """One card per latent (at most `MAX_EXAMPLES`): the image asked about beside the latent's top
    images (its strip in ``steer_dir``/hai), captioned with the answer before and after the edit."""
    images = load_images(cfg["images"], cfg["n_images"], cfg["seed"]).images
    cards: list[tuple[Image.Image, str]] = []
    seen: set[int] = set()
    for e in ex:  # one example per latent
        if e["latent"] in seen or len(cards) == MAX_EXAMPLES:
            continue
        seen.add(e["latent"])
        strip = Image.open(steer_dir / "hai" / f"latent_{e['latent']}.png").convert("RGB")
        cell = strip.height
        hai = image_grid(
            [strip.crop((i * cell, 0, (i + 1) * cell, cell)) for i in range(strip.width // cell)],
            cols=4,
            scale=1,
            pad=1,
        )
        shown = images[e["image"]].resize((hai.height, hai.height), Image.Resampling.NEAREST)
        pair = Image.new("RGB", (shown.width + hai.width + 8, hai.height), "white")
        pair.paste(shown, (0, 0))
        pair.paste(hai, (shown.width + 8, 0))
        cards.append(
            (
                pair,
                f"latent {e['latent']} (top images: {e['name']}): "
                f"\u201c{e['baseline']}\u201d \u2192 \u201c{e['steered']}\u201d",
            )
        )
    return cards
