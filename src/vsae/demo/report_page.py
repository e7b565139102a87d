"""The demo's report.html: findings, tables, plots and top-image grids of latents, then the
sections of the papers' experiments (`vsae.experiments`). `build_report` writes it, one function
per section."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vsae.demo.analyse import UnitAnalysis
from vsae.demo.demo_config import RunKey
from vsae.demo.report_sections import checks_section, hierarchy_section, need
from vsae.eval import plots
from vsae.eval.monosemanticity import MSResult
from vsae.experiments.mllm_steering.mllm_report import steering_section
from vsae.experiments.shared_features.shared_report import shared_section
from vsae.report.findings_table import findings_head
from vsae.report.html import Report, image_grid

N_BEST, N_WORST, N_RAW = 8, 4, 4


def _grid(paths: np.ndarray, idx: np.ndarray) -> Image.Image:
    """The top images ``idx`` (-1 = none) as one grid."""
    return image_grid([Image.open(paths[i]) for i in idx if i >= 0], cols=4, scale=2)


def _cards(
    unit_ids: Iterable[int],
    kind: str,
    an: UnitAnalysis,
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


def _ranked(an: UnitAnalysis) -> np.ndarray:
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


def _excluded_section(r: Report, an: UnitAnalysis, paths: np.ndarray, k: int) -> None:
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
    analysis: Mapping[RunKey, UnitAnalysis],
    paths_test: np.ndarray,
    out: Path,
) -> Path:
    """Write OUT/report.html (self-contained) and the plots under OUT/plots/."""
    plot_dir = out / "plots"
    plot_dir.mkdir(exist_ok=True)
    r = Report(
        "vsae demo — sparse autoencoders on the shapes world",
        f"vsae {results['vsae_version']} · {results['finished']} · {results['timings']['total']:.0f} s on "
        f"{results['machine']}",
    )
    findings_head(r, results["findings"], out)
    what_was_run_section(r, results)
    monosemanticity_section(r, results, analysis, plot_dir)
    top_images_section(r, results, analysis, paths_test)
    hierarchy_section(r, results, analysis, plot_dir)
    uniqueness_section(r, results)
    probes_section(r, results, _featured(results, analysis), plot_dir)
    names_section(r, results, _featured(results, analysis))
    checks_section(r, results)
    experiments_sections(r, results, out)
    return r.save(out / "report.html")


def _featured(results: dict[str, Any], analysis: Mapping[RunKey, UnitAnalysis]) -> UnitAnalysis:
    hook, arch, e = results["featured"]
    return analysis[(hook, arch, e)]


def _featured_name(results: dict[str, Any]) -> str:
    _, arch, e = results["featured"]
    return f"{arch}-x{e}-k{results['config']['k']}"


def what_was_run_section(r: Report, results: dict[str, Any]) -> None:
    """The models, images, SAEs and time per stage."""
    cfg = results["config"]
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


def _ms_row(hook: str, units: str, s: dict[str, Any], recon: dict[str, Any] | None) -> dict[str, Any]:
    """One row of the MS table (raw neurons have no FVU and L0)."""
    return {
        "hook": hook,
        "units": units,
        "F": s["ms"]["n_latents"],
        "MS mean": s["ms"]["mean"],
        "MS std": s["ms"]["std"],
        "dead": s["ms"]["n_dead"],
        "pure top-16": s["purity"]["pure_fraction"],
        "FVU": float("nan") if recon is None else recon["fvu"],
        "L0": float("nan") if recon is None else recon["l0"],
    }


def monosemanticity_section(
    r: Report, results: dict[str, Any], analysis: Mapping[RunKey, UnitAnalysis], plot_dir: Path
) -> None:
    """MS of every unit set (Pach et al.), MS against expansion, the featured SAE's histogram."""
    hook = results["featured"][0]
    r.heading("Monosemanticity (Pach et al.)")
    rows: list[dict[str, Any]] = []
    series: dict[str, list[tuple[int, float]]] = {}
    raw_levels: dict[str, float] = {}
    for h, L in results["layers"].items():
        raw_levels[h] = L["raw"]["ms"]["mean"]
        rows.append(_ms_row(h, "raw neurons", L["raw"], None))
        for name, s in L["saes"].items():
            series.setdefault(f"{h} {s['arch']}", []).append((s["expansion"], s["ms"]["mean"]))
            rows.append(_ms_row(h, name, s, s["recon"]))
    r.table(rows, left=("hook", "units"))
    r.plot(plots.ms_vs_expansion(series, raw_levels, plot_dir / "ms_vs_expansion.png"), "MS vs expansion")
    fa = _featured(results, analysis)
    ra = analysis[(hook, "raw", 0)]
    r.plot(
        plots.ms_histogram(
            {f"{hook} raw neurons": ra.ms.scores_F, f"{hook} {_featured_name(results)}": fa.ms.scores_F},
            plot_dir / "ms_histogram.png",
        ),
        "MS histogram",
    )


def top_images_section(
    r: Report, results: dict[str, Any], analysis: Mapping[RunKey, UnitAnalysis], paths_test: np.ndarray
) -> None:
    """Top-image grids: the featured SAE's best, left-out and worst latents, and raw neurons."""
    hook = results["featured"][0]
    fa = _featured(results, analysis)
    ra = analysis[(hook, "raw", 0)]
    r.heading(f"Top-{results['config']['top_k']} images of latents ({hook}, {_featured_name(results)})")
    ranked = _ranked(fa)
    names = need(fa.names)["names"]
    r.heading("Most monosemantic latents", 3)
    r.cards(_cards(ranked[:N_BEST], "latent", fa, paths_test, names))
    _excluded_section(r, fa, paths_test, results["config"]["top_k"])
    r.heading("Least monosemantic latents", 3)
    r.cards(_cards(ranked[::-1][:N_WORST], "latent", fa, paths_test, names))
    rr = _ranked(ra)
    r.heading(f"Raw neurons of {hook}, for comparison (best and worst MS)", 3)
    r.cards(_cards(np.concatenate([rr[: N_RAW // 2], rr[::-1][: N_RAW // 2]]), "neuron", ra, paths_test))


def uniqueness_section(r: Report, results: dict[str, Any]) -> None:
    """Pairs of units whose top-image sets overlap (Jaccard), per unit set."""
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


def probes_section(r: Report, results: dict[str, Any], fa: UnitAnalysis, plot_dir: Path) -> None:
    """Shape probes per split and OOD detection by reconstruction error (Olson et al.)."""
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


def names_section(r: Report, results: dict[str, Any], fa: UnitAnalysis) -> None:
    """The featured SAE's latent names and their agreement with the ground truth (Olson et al.)."""
    hook = results["featured"][0]
    r.heading("Latent names (Olson et al.'s automatic attribute discovery)")
    n = need(fa.names)
    names = n["names"]
    r.text(
        f"{hook} {_featured_name(results)}: {n['n_named']} latents named from {len(results['vocabulary'])} "
        f"concept words with the CLIP text tower; {n['agreement']:.1%} agree with the ground truth of their top "
        f"images (random words: {n['random_word_agreement']:.1%})."
    )
    r.text(
        f"A name agrees only when its attribute is a purest one of the latent's top images and the word is "
        f"that attribute's most common value there: {n['n_not_purest']} names disagree because another "
        f"attribute is shared by more of the top images, {n['n_wrong_value']} name the wrong value."
    )
    nrows = []
    for f in _ranked(fa)[:16]:
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


def experiments_sections(r: Report, results: dict[str, Any], out: Path) -> None:
    """The sections of the papers' experiments the demo ran (`vsae.experiments`): MLLM steering,
    shared vision/language latents, text-to-image steering."""
    if results.get("steering"):
        r.text(
            "The tiny LLaVA's steering SAE: top-k, trained on random:2 patch tokens of the layer its projector "
            "reads, as Pach et al. train theirs."
        )
        steering_section(r, results["steering"], out / "steering")
    if results.get("shared"):
        shared_section(r, results["shared"], out / "shared")
    if results.get("diffusion"):
        from vsae.experiments.diffusion_steering.diffusion_report import diffusion_section

        r.heading("Steering a text-to-image model through its text encoder (Olson et al.)")
        r.text(
            "The shipped tiny text-to-image model (a diffusers UNet conditioned on the world CLIP's text "
            "encoder) steered by clamping latents of an SAE on that text encoder; images read by the "
            "similarity encoder's attribute heads."
        )
        diffusion_section(r, results["diffusion"], out / "diffusion")
