"""The diffusion steering experiment's report: the page `vsae steer diffusion` writes and the
demo's diffusion section (per latent, the same prompts' images unsteered vs steered, side by
side), from the ``results.json`` dict (`results.DiffusionSteeringResult.to_json`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vsae.report.html import Report

# readable column headers of the per-latent tables (the results' field names are the keys)
HEADERS = {
    "word_share": "word's share",
    "target_baseline": "target rate, unsteered",
    "target_steered": "target rate, steered",
    "target_baseline_drawn": "target rate, unsteered (drawn objects)",
    "target_steered_drawn": "target rate, steered (drawn objects)",
    "preserved": "other attributes preserved",
    "iou_baseline": "silhouette IoU, unsteered",
    "iou_steered": "silhouette IoU, steered",
    "image_change": "image change (mean |steered - unsteered|, 0-1)",
    "text_word": "text word",
    "rise": "CLIP similarity rise",
    "truth": "attribute it changes",
    "kept_all_baseline": "all others kept, unsteered",
    "kept_all": "all others kept, steered",
    "control_target": "target rate, random latent",
    "control_kept_all": "all others kept, random latent",
    "prompt_edit_target": "target rate, prompt edit",
    "prompt_edit_kept_all": "all others kept, prompt edit",
}


def specificity_text(sp: dict[str, Any]) -> str:
    """One paragraph: images keeping every other attribute steered vs unsteered against the
    criterion, per attribute, and the random-latent and prompt-edit references (issue 23)."""
    per = ", ".join(
        f"{a} {_pct(v['steered'])} (unsteered {_pct(v['baseline'])})"
        for a, v in sp["preserved_by_attribute"].items()
    )
    text = (
        f"Specificity: every other judged attribute kept in {_pct(sp['kept_all'])} of steered images vs "
        f"{_pct(sp['kept_all_baseline'])} unsteered (criterion: >= {sp['criterion']:g}x unsteered; "
        f"{'holds' if sp['holds'] else 'does not hold'}); kept per attribute: {per}."
    )
    for key, what in (("random_latent", "a random live latent clamped the same way"),
                      ("prompt_edit", "editing the prompt's attribute word instead")):  # fmt: skip
        ref = sp.get(key)
        if ref is not None:
            text += f" With {what}: target {_pct(ref['target'])}, all others kept {_pct(ref['kept_all'])}."
    return text


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def diffusion_section(r: Report, res: dict[str, Any], res_dir: str | Path) -> None:
    """Numbers, per-latent table, unsteered/steered image pairs and discovered names."""
    g, s, d = res["generation"], res["steering"], res["discovery"]
    if g["accuracy"].get("shape") is not None:
        r.text(
            f"Generation on {g['n']} held-out captions: shape agrees with the prompt {_pct(g['accuracy']['shape'])}, "
            f"colour {_pct(g['accuracy']['colour'])} (the similarity-encoder heads on real images of the same captions: "
            f"shape {_pct(g['judge_accuracy_on_real']['shape'])}, colour {_pct(g['judge_accuracy_on_real']['colour'])})."
            + (
                f" Shape read from the object's silhouette by template matching (no model): "
                f"{_pct(g['silhouette']['shape'])}."
                if g.get("silhouette")
                else ""
            )
        )
    if s["target_rate"]["steered"] is not None:
        r.text(
            f"Steering ({s['op']} at {s['strength']:g}x the latent's largest activation, all prompt tokens): "
            f"target attribute rate {_pct(s['target_rate']['steered'])} steered vs {_pct(s['target_rate']['baseline'])} "
            f"unsteered over {s['n_latents']} latents"
            + (
                f" ({_pct(s['target_rate']['steered_drawn'])} vs {_pct(s['target_rate']['baseline_drawn'])} "
                f"counting only images that still draw an object, silhouette IoU >= {s['drawn_iou']:g})"
                if s["target_rate"].get("steered_drawn") is not None
                else ""
            )
            + f"; other attributes preserved {_pct(s['preserved_rate'])} "
            f"(unsteered {_pct(s['preserved_rate_baseline'])})."
        )
    if s.get("specificity"):
        r.text(specificity_text(s["specificity"]))
    for part, why in res.get("skipped", {}).items():  # a run without a judge says what it left out
        r.text(f"Skipped {part}: {why}.")
    cols = [
        "latent",
        "word",
        "word_share",
        "attribute",
        "target_baseline",
        "target_steered",
        "target_baseline_drawn",
        "target_steered_drawn",
        "preserved",
        "kept_all_baseline",
        "kept_all",
        "control_target",
        "control_kept_all",
        "prompt_edit_target",
        "prompt_edit_kept_all",
        "iou_baseline",
        "iou_steered",
        "image_change",
    ]
    r.table(
        s["latents"],
        [c for c in cols if any(c in row for row in s["latents"])],
        left=["word", "attribute"],
        headers=HEADERS,
    )
    if s.get("sweep"):
        r.table(
            [
                {
                    "strength": x["strength"],
                    "target steered": x["steered"],
                    "target unsteered": x["baseline"],
                    "preserved": x["preserved"],
                    "all others kept": x.get("kept_all"),
                }
                for x in s["sweep"]
            ]
        )
    for ex in res.get("examples", []):
        p = Path(res_dir) / ex["png"]
        if p.is_file():
            r.text(
                f"{ex['label']}: top row unsteered, bottom row steered (same prompts and noise), e.g. '{ex['prompts'][0]}'"
            )
            r.plot(p, ex["label"])
    if d.get("agreement") is not None:
        r.text(
            f"Discovery: {d['n_latents']} live latents named from images alone (largest CLIP similarity rise); "
            f"{d.get('n_with_truth', 0)} changed a judged attribute by >= the threshold; the name agrees with that "
            f"change for {_pct(d['agreement'])} of them (random words: {_pct(d['random_agreement'])})."
        )
    if d.get("latents"):
        r.table(
            d["latents"][:40],
            ["latent", "text_word", "name", "rise", "truth"],
            left=["text_word", "name", "truth"],
            headers=HEADERS,
        )


def write_steering_page(res: dict[str, Any], res_dir: str | Path, path: str | Path) -> Path:
    """``index.html`` of `vsae steer diffusion`."""
    r = Report(
        "Diffusion steering through text-encoder SAE latents", subtitle=str(res["provenance"].get("pipeline"))
    )
    diffusion_section(r, res, res_dir)
    return r.save(path)
