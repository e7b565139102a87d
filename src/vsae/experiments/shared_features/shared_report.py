"""The shared-features experiment's report section: shared vision/language latents inside the
multimodal LLM (Olson et al.), in the demo's report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vsae.report.html import Report

MAX_LATENTS = 12


def shared_section(r: Report, shared: dict[str, Any], shared_dir: Path) -> None:
    """`run_shared_features`' result in its JSON form (shared.json plus "setup"); the plot is read
    from `shared_dir` (where `vsae eval shared` wrote it)."""
    s = shared.get("setup", {})
    c = shared["config"]
    r.heading("Shared vision/language latents inside the multimodal model (Olson et al.)")
    if s:
        r.text(
            f"One TopK SAE (x{s['expansion']}, k={s['k']}, {s['steps']} steps) per layer of the tiny LLaVA's language "
            f"model, trained on its residual stream at the image tokens of \u201c{s['question']}\u201d prompts "
            f"({s['image_tokens_per_image']} per image) and at the tokens of the images' captions fed alone as "
            f"text; balance: {s['balance']} ({s['rows_train']} train rows from {s['n_train']} train images and "
            f"their captions; evaluated on {s['rows_test']} rows from {s['n_test']} test images)."
        )
    r.text(
        "d_img / d_txt: fraction of image-token / text-token rows where a latent fires; r = d_img / (d_img + d_txt); "
        f"a live latent is shared when {c['shared_range'][0]} <= r <= {c['shared_range'][1]}. Agreement (project's "
        f"definition): for a shared latent, the attribute value its top-{c['top_k']} text tokens' words name most "
        "often equals the value of that attribute most common among the images of its top image tokens; the random "
        f"baseline pairs each latent's image side with the text side of another scored shared latent "
        f"({c['n_draws']} seeded draws); p: one-sided binomial test of the agreeing count against that baseline. "
        "Latents whose top words name no attribute value are not scored."
    )
    rows = []
    for h, L in shared["layers"].items():
        rows.append(
            {
                "layer": h,
                "latents": L["n_latents"],
                "live": L["n_live"],
                "shared": L["n_shared"],
                "shared fraction": L["shared_fraction"],
                "image-leaning (r > 0.8)": L["n_image_leaning"],
                "text-leaning (r < 0.2)": L["n_text_leaning"],
                "scored": L.get("n_scored", 0),
                "agreement": L.get("agreement"),
                "random agreement": L.get("random_agreement"),
                "p (binomial)": L.get("p_value"),
            }
        )
    r.table(rows, left=("layer",))
    plot = shared_dir / shared.get("plot", "shared_ratio.png")
    if plot.is_file():
        r.plot(plot, "histogram of the modality ratio r")
    for h, L in shared["layers"].items():
        lat = L.get("shared_latents") or []
        if not lat:
            continue
        r.heading(f"{h}: scored shared latents", 3)
        r.table(
            [
                {
                    "latent": x["latent"],
                    "r": x["r"],
                    "d_img": x["d_img"],
                    "d_txt": x["d_txt"],
                    "top words name": x["text_value"],
                    "top images' value": x["image_value"],
                    "agree": "yes" if x["agree"] else "no",
                }
                for x in lat[:MAX_LATENTS]
            ],
            left=("top words name", "top images' value", "agree"),
        )
