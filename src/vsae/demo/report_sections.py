"""Sections of the demo's report.html about the hierarchy question and the run's self-checks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from vsae.demo.analyse import UnitAnalysis
from vsae.demo.demo_config import RunKey
from vsae.eval import plots
from vsae.report.html import Report

T = TypeVar("T")


def need(value: T | None) -> T:
    """``value``, which an SAE's analysis always has (the raw neurons' lacks it)."""
    if value is None:
        raise ValueError("this part of the analysis exists for SAEs only; pass an SAE's analysis")
    return value


def _depth_rows(results: dict[str, Any], key: str) -> list[dict[str, Any]]:
    rows = []
    for h, L in results["layers"].items():
        for name, s in L["saes"].items():
            if key not in s:
                continue
            row: dict[str, Any] = {"hook": h, "SAE": name}
            dead = s.get("dead_per_group") or [None] * len(s[key])
            for g, n_dead in zip(s[key], dead):
                scored = f"{g['n_scored']} scored" + ("" if n_dead is None else f", {n_dead} dead")
                depth = "–" if np.isnan(g["mean_depth"]) else f"{g['mean_depth']:.2f}"
                row[f"group {g['group']}"] = f"{depth} ({scored})"
            rows.append(row)
    return rows


def hierarchy_section(
    r: Report, results: dict[str, Any], analysis: Mapping[RunKey, UnitAnalysis], plot_dir: Path
) -> None:
    """Depth per Matryoshka group in both world taxonomies, the variance each level explains, and
    the planted control where the answer is known."""
    hook, _, e = results["featured"]
    r.heading("Hierarchy of Matryoshka groups (Pach et al.)")
    r.text(
        "Mean LCA depth of each latent's top images, averaged per group, in the world's two taxonomies: the "
        "class taxonomy (family → shape → variant; 0 = different families, 3 = the same class) and the colour "
        "taxonomy (family → colour; 0 = different colour families, 2 = the same colour). In brackets: latents "
        "scored (at least 16 firing test images) and latents that never fire on the test split."
    )
    r.heading("Class taxonomy", 3)
    r.table(_depth_rows(results, "depth_per_group"), left=("hook", "SAE"))
    r.heading("Colour taxonomy", 3)
    r.table(_depth_rows(results, "depth_per_group_colour"), left=("hook", "SAE"))
    mat = next((k for k in analysis if k[1] == "matryoshka" and k[0] == hook and k[2] == e), None)
    if mat:
        r.plot(
            plots.depth_per_group(need(analysis[mat].depth_per_group), plot_dir / "depth_per_group.png"),
            "depth",
        )
    hi = results.get("hierarchy")
    if not hi:
        return
    r.heading("Is the world's variance coarse-to-fine?", 3)
    r.text(
        "Share of each layer's variance (train split) explained by the group means of each taxonomy level and "
        "of the other attributes (between-group variance fraction). The depth finding presumes that a coarse "
        "level explains most of the variance, so that the small first groups must spend their latents on it."
    )
    levels = [a for lv in hi["levels"].values() for a in lv]
    rows = [
        {"hook": h, **{a: v[a] for a in levels}, **{a: x for a, x in v.items() if a not in levels}}
        for h, v in hi["variance_share"].items()
    ]
    r.table(rows, left=("hook",))
    p = hi.get("planted")
    r.text(_why(hi["variance_share"], p))
    if p:
        r.heading("Control: a planted hierarchy", 3)
        c = p["config"]
        r.text(
            f"{c['n']} rows of width {c['d']} made of one of {c['n_families']} coarse atoms (coefficient "
            f"~{c['coarse_scale']}) plus one of {c['n_families'] * c['n_leaves']} fine atoms refining it "
            f"(~{c['fine_scale']}); a {c['d_sae']}-latent SAE with k={c['k']} and groups of "
            f"{' + '.join(str(b - a) for a, b in (g['latents'] for g in p['matryoshka']['depth_per_group']))} latents, "
            f"{c['steps']} steps. Depth 0 = different families, 1 = same family, 2 = same leaf."
        )
        prow = []
        for arch in ("matryoshka", "batchtopk"):
            q = p[arch]
            for g, cc, fc in zip(
                q["depth_per_group"], q["coarse_cosine_per_group"], q["fine_cosine_per_group"]
            ):
                prow.append(
                    {
                        "SAE": arch,
                        "group (latents)": f"{g['group']} ({g['latents'][0]}–{g['latents'][1]})",
                        "scored": g["n_scored"],
                        "mean depth": g["mean_depth"],
                        "cosine with a coarse atom": cc,
                        "cosine with a fine atom": fc,
                    }
                )
        r.table(prow, left=("SAE", "group (latents)"))


def _why(shares: dict[str, dict[str, float]], planted: dict[str, Any] | None) -> str:
    """The hierarchy verdict's reason, from the numbers: how much each coarse level explains
    against the level below it, here and in the planted control."""

    def span(a: str) -> str:
        v = [s[a] for s in shares.values()]
        return f"{min(v):.2f}–{max(v):.2f}"

    ratio = max(
        max(s["shape_family"] / s["shape"], s["colour_family"] / s["colour"]) for s in shares.values()
    )
    text = (
        f"Each coarse level explains at most {ratio:.0%} of what the level below it explains (shape family "
        f"{span('shape_family')} of the variance vs shape {span('shape')}; colour family {span('colour_family')} "
        f"vs colour {span('colour')})."
    )
    if planted and "variance_share" in planted:
        v = planted["variance_share"]
        pr = v["family"] / v["leaf"]
        text += f" In the planted control the family level explains {pr:.0%} of what the leaves explain."
        if ratio < 0.75 < pr:
            text += (
                " So the world's variance is not coarse-to-fine along its taxonomies: the small first groups "
                "spend their latents on what carries the variance (shapes, colours), not on families. "
                "docs/demo.md gives the evidence on the training (steps, k, dead latents)."
            )
    return text


def checks_section(r: Report, results: dict[str, Any]) -> None:
    """The run's self-checks: pairs of numbers computed two ways that must agree."""
    checks = results.get("checks")
    if not checks:
        return
    r.heading("Self-checks of this run")
    r.text(
        "Each pair is the same quantity computed by two code paths; the demo fails (after writing this report "
        "and results.json) when one disagrees. Probe train rows: "
        + _sample_text(results.get("probe", {}).get("train_rows"))
        + "."
    )
    rows = []
    for c in checks:
        vals = ", ".join(f"{k} {v:.4f}" for k, v in c.items() if isinstance(v, float))
        rows.append(
            {"check": c["check"], "values": vals, "rule": c["rule"], "agrees": "yes" if c["ok"] else "NO"}
        )
    r.table(rows, left=("check", "values", "rule", "agrees"))


def _sample_text(d: dict[str, Any] | None) -> str:
    if not d:
        return "all"
    if d.get("method") == "all rows":
        return f"all {d['of']}"
    return f"{d['rows']} of {d['of']}, {d['method']} (seed {d['seed']})"
