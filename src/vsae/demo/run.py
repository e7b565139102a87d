"""`run_demo`: the whole pipeline on the shapes world, writing results.json and report.html."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from vsae import __version__
from vsae.demo.analyse import analyse_raw, analyse_sae, eval_inputs
from vsae.demo.config import DemoConfig
from vsae.demo.findings import headline_findings
from vsae.demo.pipeline import Stopwatch, export_world, extract_all, image_tables, train_all
from vsae.eval.results import jsonable

SIMENC_DESCRIPTION = (
    "a small ViT trained on the world by supervised attribute classification — a different model and "
    "objective from the contrastive CLIP being explained (as Pach et al. score CLIP-L latents with "
    "CLIP-B/32 or DINOv2 embeddings); MS uses its pooled output"
)


def _summaries(an: dict[str, Any]) -> dict[str, Any]:
    """The JSON part of one unit-set analysis (arrays stay out of results.json)."""
    p = an["purity"]
    out = {
        "ms": an["ms_summary"],
        "ms_per_latent": an["ms"].scores_F,
        "uniqueness": an["uniqueness"],
        "purity": {k: p[k] for k in ("n_scored", "pure_fraction", "mean_purity")},
    }
    for k in ("recon", "depth_per_group", "probe", "ood"):
        if k in an:
            out[k] = an[k]
    if "names" in an:
        n = an["names"]
        out["names"] = {**{k: n[k] for k in ("n_named", "agreement", "random_word_agreement")},
                        "per_latent": n["names"], "match_scores": n["scores"]}
    return out


def steer(cfg: DemoConfig, clip_dir: str, out: Path) -> dict[str, Any]:
    """Pach et al.'s steering experiment on the shipped tiny LLaVA (scores embedded by the world CLIP)."""
    from vsae.steer.experiment import SteerConfig, run_steering
    from vsae.world.llava import shipped_llava_dir, shipped_steering_sae_dir

    scfg = SteerConfig(n_latents=cfg.steer_latents, n_images=cfg.steer_images,
                       blank_latents=cfg.steer_blank_latents, seed=cfg.seed)
    return run_steering(shipped_llava_dir(), shipped_steering_sae_dir(), clip_dir, scfg, out / "steering",
                        progress=False)


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Run every stage (resuming finished ones) and return the results written to results.json."""
    from vsae.eval.taxonomy import from_file
    from vsae.sae import load as load_sae
    from vsae.world import shipped_clip_dir, shipped_simenc_dir

    cfg = dataclasses.replace(cfg, out=Path(cfg.out).resolve())  # stores record absolute image paths
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    clip_dir = cfg.clip_dir or str(shipped_clip_dir())
    simenc_dir = cfg.simenc_dir or str(shipped_simenc_dir())
    sw = Stopwatch()
    say = (lambda m: print(f"[demo] {m}", flush=True)) if cfg.progress else (lambda m: None)

    say(f"writing the shapes world ({sum(cfg.counts.values())} images) to {out / 'world'}")
    world_dir = export_world(cfg)
    sw.lap("world")
    say(f"extracting {', '.join(cfg.hooks)} ({cfg.tokens}) of the world CLIP and the similarity encoder")
    stores = extract_all(cfg, world_dir, clip_dir, simenc_dir)
    tables = image_tables(world_dir, stores)
    sw.lap("extract")
    n_saes = len(cfg.hooks) * len(cfg.archs) * len(cfg.expansions)
    say(f"training {n_saes} SAEs ({', '.join(cfg.archs)} x {cfg.expansions}) on {len(stores['train'][cfg.hooks[0]])} rows")
    runs = train_all(cfg, stores)
    sw.lap("train")

    say("evaluating: MS, top images, uniqueness, hierarchy, probes, OOD, names, purity")
    ti = eval_inputs(stores, from_file(world_dir / "taxonomy.json"), clip_dir)
    analysis: dict[tuple[str, str, int], dict[str, Any]] = {}
    layers: dict[str, Any] = {}
    for hook in cfg.hooks:
        analysis[(hook, "raw", 0)] = raw = analyse_raw(hook, stores, tables, cfg, ti)
        layers[hook] = {"raw": _summaries(raw), "saes": {}}
        for (h, arch, e), run_dir in runs.items():
            if h != hook:
                continue
            sae = load_sae(run_dir)
            analysis[(h, arch, e)] = an = analyse_sae((h, arch, e), sae, stores, tables, cfg, ti)
            layers[hook]["saes"][run_dir.name] = {"arch": arch, "expansion": e, "path": str(run_dir), **_summaries(an)}
    sw.lap("evaluate")
    steering = steer(cfg, clip_dir, out) if cfg.steer_latents else None
    sw.lap("steer")
    featured = cfg.featured_sae
    findings = headline_findings(layers, featured, steering)

    results = {
        "vsae_version": __version__,
        "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads",
        "config": {**asdict(cfg), "out": str(cfg.out), "hooks": list(cfg.hooks)},
        "models": {
            "explained": {"path": clip_dir, "provenance": stores["test"][cfg.hooks[0]].provenance.get("model")},
            "similarity_encoder": {"path": simenc_dir, "description": SIMENC_DESCRIPTION},
        },
        "featured": list(featured),
        "vocabulary": ti.words,
        "findings": findings,
        "layers": layers,
        "steering": steering,
    }
    sw.lap("findings")
    say("writing report.html")
    from vsae.report.demo import build_report

    results["timings"] = {**sw.times, "total": sum(sw.times.values())}
    build_report(results, analysis, tables["test"]["path"], out)
    sw.lap("report")
    results["timings"] = {**sw.times, "total": round(sum(sw.times.values()), 2)}
    (out / "results.json").write_text(json.dumps(jsonable(results), indent=1))
    if steering:
        sc = steering["score"]
        say(f"steering the tiny LLaVA: score {sc['steered']:.3f} steered vs {sc['baseline']:.3f} unsteered, "
            f"answers moved toward the latent's concept in {sc['moved_toward']:.0%} of cases")
    for f in findings:
        say(f"{'HOLDS' if f['holds'] else 'DOES NOT HOLD'}: {f['claim']} — {f['detail']}")
    say(f"done in {results['timings']['total']:.0f} s: {out / 'report.html'}, {out / 'results.json'}")
    return results
