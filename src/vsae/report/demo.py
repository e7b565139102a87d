"""The demo's report.html: findings, tables, plots and top-image grids of latents."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vsae.eval import plots
from vsae.eval.monosemanticity import MSResult
from vsae.report.analysis import RunKey, UnitResults, need
from vsae.report.demo_sections import checks_section, hierarchy_section
from vsae.report.findings import findings_head
from vsae.report.html import Report, image_grid
from vsae.report.shared import shared_section
from vsae.report.steering import steering_section

N_BEST, N_WORST, N_RAW = 8, 4, 4


def _grid(paths: np.ndarray, idx: np.ndarray) -> Image.Image:
    """The top images ``idx`` (-1 = none) as one grid."""
    return image_grid([Image.open(paths[i]) for i in idx if i >= 0], cols=4, scale=2)


def _cards(
    unit_ids: Iterable[int],
    kind: str,
    an: UnitResults,
    paths: np.ndarray,
    names: Sequence[str | None] | None = None,
) -> list[tuple[Image.Image, str]]:
    """Captioned top-image grids of units (SAE latents or raw neurons) of one analysis."""
    cards = []
    top, ms, pur = an.top, an.ms.scores_F, an.purity
    for f in unit_ids:
        label = f"{kind} {f}"
        if names is not None and names[f] is not None:
            label += f" “{names[f]}”"
        label += f" · MS {ms[f]:.3f}"
        if pur["attribute_F"][f] is not None:
            label += f" · {pur['purity_F'][f]:.0%} share one {pur['attribute_F'][f]}"
        cards.append((_grid(paths, top.indices_Fk[f]), label))
    return cards


def _ranked(an: UnitResults) -> np.ndarray:
    """Scored units ordered by MS (highest first), ties by index."""
    s = an.ms.scores_F
    ok = np.flatnonzero(~np.isnan(s) & ~an.top.excluded_F)
    return ok[np.lexsort((ok, -s[ok]))]


def dead_sentence(ms: MSResult) -> str:
    """How many latents are dead and how many more have no MS, in the browser's terms: dead =
    never fires on the test images (`MSResult.dead_F`; `vsae serve` flags the same latents), no
    MS = fires on a single image (MS compares pairs of images, so it is undefined)."""
    n_dead = int(ms.dead_F.sum())
    n_one = int((np.isnan(ms.scores_F) & ~ms.dead_F).sum())
    return (
        f"{n_dead} never fire on the test images (dead); {n_one} more fire on exactly one test image, "
        "so their MS is undefined (no MS) though they are not dead."
    )


def _excluded_section(r: Report, an: UnitResults, paths: np.ndarray, k: int) -> None:
    """Latents left out of the grids (fewer than k firing test images), said and shown, with MS."""
    top, ms = an.top, an.ms.scores_F
    excl = np.flatnonzero(top.excluded_F & ~np.isnan(ms))
    r.text(
        f"The grids, uniqueness, hierarchy, purity and names use the latents whose {k}th-highest test activation "
        f"is above 0 (Pach et al.'s exclusion rule). {excl.size} live latents fire on fewer than {k} test images "
        f"and are left out of them — the MS mean above includes them — and {dead_sentence(an.ms)}"
    )
    if excl.size:
        order = excl[np.lexsort((excl, -ms[excl]))][:N_BEST]
        r.heading(f"Highest-MS latents left out of the grid (fewer than {k} firing test images)", 3)
        cards = []
        for f in order:
            idx = top.indices_Fk[f][(top.indices_Fk[f] >= 0) & (top.values_Fk[f] > 0)]
            cards.append(
                (_grid(paths, idx), f"latent {f} · MS {ms[f]:.3f} · fires on {idx.size} test images")
            )
        r.cards(cards)


def build_report(
    results: dict[str, Any],
    analysis: Mapping[RunKey, UnitResults],
    paths_test: np.ndarray,
    out: Path,
) -> Path:
    """Write OUT/report.html (self-contained) and the plots under OUT/plots/."""
    plot_dir = out / "plots"
    plot_dir.mkdir(exist_ok=True)
    cfg = results["config"]
    hook, arch, e = results["featured"]
    fname = f"{arch}-x{e}-k{cfg['k']}"
    r = Report(
        "vsae demo — sparse autoencoders on the shapes world",
        f"vsae {results['vsae_version']} · {results['finished']} · {results['timings']['total']:.0f} s on "
        f"{results['machine']}",
    )
    findings_head(r, results["findings"], out)

    r.heading("What was run")
    m = results["models"]
    r.table(
        [
            {
                "": "model explained",
                "value": f"{m['explained']['path']} (tiny CLIP trained on the world; "
                f"hooks {', '.join(cfg['hooks'])}, tokens {cfg['tokens']})",
            },
            {"": "similarity encoder (MS)", "value": m["similarity_encoder"]["description"]},
            {"": "images", "value": ", ".join(f"{k} {v}" for k, v in cfg["counts"].items())},
            {
                "": "SAEs",
                "value": f"{', '.join(cfg['archs'])} × expansion {cfg['expansions']}, k={cfg['k']}, "
                f"{cfg['steps']} steps of {cfg['batch_size']} rows, Matryoshka groups {cfg['groups']}",
            },
            {
                "": "time per stage (s)",
                "value": ", ".join(f"{k} {v:.1f}" for k, v in results["timings"].items()),
            },
        ],
        left=("", "value"),
    )

    r.heading("Monosemanticity (Pach et al.)")
    rows: list[dict[str, Any]] = []
    series: dict[str, list[tuple[int, float]]] = {}
    raw_levels: dict[str, float] = {}
    for h, L in results["layers"].items():
        rm = L["raw"]["ms"]
        raw_levels[h] = rm["mean"]
        rows.append(
            {
                "hook": h,
                "units": "raw neurons",
                "F": rm["n_latents"],
                "MS mean": rm["mean"],
                "MS std": rm["std"],
                "dead": rm["n_dead"],
                "pure top-16": L["raw"]["purity"]["pure_fraction"],
                "FVU": float("nan"),
                "L0": float("nan"),
            }
        )
        for name, s in L["saes"].items():
            series.setdefault(f"{h} {s['arch']}", []).append((s["expansion"], s["ms"]["mean"]))
            rows.append(
                {
                    "hook": h,
                    "units": name,
                    "F": s["ms"]["n_latents"],
                    "MS mean": s["ms"]["mean"],
                    "MS std": s["ms"]["std"],
                    "dead": s["ms"]["n_dead"],
                    "pure top-16": s["purity"]["pure_fraction"],
                    "FVU": s["recon"]["fvu"],
                    "L0": s["recon"]["l0"],
                }
            )
    r.table(rows, left=("hook", "units"))
    r.plot(plots.ms_vs_expansion(series, raw_levels, plot_dir / "ms_vs_expansion.png"), "MS vs expansion")
    fa = analysis[(hook, arch, e)]
    ra = analysis[(hook, "raw", 0)]
    r.plot(
        plots.ms_histogram(
            {f"{hook} raw neurons": ra.ms.scores_F, f"{hook} {fname}": fa.ms.scores_F},
            plot_dir / "ms_histogram.png",
        ),
        "MS histogram",
    )

    r.heading(f"Top-{cfg['top_k']} images of latents ({hook}, {fname})")
    ranked = _ranked(fa)
    names = need(fa.names)["names"]
    r.heading("Most monosemantic latents", 3)
    r.cards(_cards(ranked[:N_BEST], "latent", fa, paths_test, names))
    _excluded_section(r, fa, paths_test, cfg["top_k"])
    r.heading("Least monosemantic latents", 3)
    r.cards(_cards(ranked[::-1][:N_WORST], "latent", fa, paths_test, names))
    rr = _ranked(ra)
    r.heading(f"Raw neurons of {hook}, for comparison (best and worst MS)", 3)
    r.cards(_cards(np.concatenate([rr[: N_RAW // 2], rr[::-1][: N_RAW // 2]]), "neuron", ra, paths_test))

    hierarchy_section(r, results, analysis, plot_dir)

    r.heading("Uniqueness of top-image sets (Pach et al.)")
    urows = []
    for h, L in results["layers"].items():
        for name, s in [("raw neurons", L["raw"]), *L["saes"].items()]:
            u = s["uniqueness"]
            urows.append(
                {
                    "hook": h,
                    "units": name,
                    "pairs": u["n_pairs"],
                    **{f"J>{t}": u["pairs_above"][t] for t in ("0.1", "0.3", "0.5", "0.9")},
                }
            )
    r.table(urows, left=("hook", "units"))

    r.heading("Probes and OOD detection (Olson et al.)")
    r.text(
        "Logistic-regression probes predicting the shape from raw activations or SAE latents, trained on the "
        "train split; accuracy on the test split and the shifted splits (unseen background texture; unseen "
        "shape–colour combinations)."
    )
    prow = []
    for h, L in results["layers"].items():
        prow.append({"hook": h, "features": "raw activations", **L["raw"]["probe"]})
        prow += [{"hook": h, "features": name, **s["probe"]} for name, s in L["saes"].items() if "probe" in s]
    r.table(prow, left=("hook", "features"))
    orow = []
    for h, L in results["layers"].items():
        for name, s in L["saes"].items():
            for split, rep in s["ood"].items():
                orow.append(
                    {
                        "hook": h,
                        "SAE": name,
                        "OOD split": split,
                        **{f"AUROC {k}": v["auroc"] for k, v in rep.items()},
                        **{f"FPR@95 {k}": v["fpr_at_95tpr"] for k, v in rep.items()},
                    }
                )
    r.table(orow, left=("hook", "SAE", "OOD split"))
    r.plot(
        plots.roc_curves(
            {f"recon error: test vs {k}": v for k, v in need(fa.roc).items()}, plot_dir / "roc.png"
        ),
        "ROC",
    )

    r.heading("Latent names (Olson et al.'s automatic attribute discovery)")
    n = need(fa.names)
    r.text(
        f"{hook} {fname}: {n['n_named']} latents named from {len(results['vocabulary'])} concept words with the "
        f"CLIP text tower; {n['agreement']:.1%} agree with the ground truth of their top images "
        f"(random words: {n['random_word_agreement']:.1%})."
    )
    r.text(
        f"A name agrees only when its attribute is a purest one of the latent's top images and the word is "
        f"that attribute's most common value there: {n['n_not_purest']} names disagree because another "
        f"attribute is shared by more of the top images, {n['n_wrong_value']} name the wrong value."
    )
    nrows = []
    for f in ranked[:16]:
        nrows.append(
            {
                "latent": int(f),
                "name": names[f],
                "match": float(n["scores"][f]),
                "MS": float(fa.ms.scores_F[f]),
                "top images share": f"{fa.purity['attribute_F'][f]} ({fa.purity['purity_F'][f]:.0%})",
                "verdict": (n["verdict_F"][f] or "").replace("_", " "),
            }
        )
    r.table(nrows, left=("name", "top images share", "verdict"))
    checks_section(r, results)
    if results.get("steering"):
        r.text(
            "The tiny LLaVA's steering SAE: top-k, trained on random:2 patch tokens of the layer its projector "
            "reads, as Pach et al. train theirs."
        )
        steering_section(r, results["steering"], out / "steering")
    if results.get("shared"):
        shared_section(r, results["shared"], out / "shared")
    if results.get("diffusion"):
        from vsae.experiments.diffusion_steering.report import diffusion_section

        r.heading("Steering a text-to-image model through its text encoder (Olson et al.)")
        r.text(
            "The shipped tiny text-to-image model (a diffusers UNet conditioned on the world CLIP's text "
            "encoder) steered by clamping latents of an SAE on that text encoder; images read by the "
            "similarity encoder's attribute heads."
        )
        diffusion_section(r, results["diffusion"], out / "diffusion")
    return r.save(out / "report.html")
