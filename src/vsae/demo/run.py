"""`run_demo`: the whole pipeline on the shapes world, writing results.json and report.html."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import platform
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from vsae import __version__
from vsae.demo.analyse import UnitAnalysis, analyse_raw, analyse_sae, eval_inputs, probe_sample
from vsae.demo.consistency import require, run_checks
from vsae.demo.demo_config import DemoConfig, RunKey, demo_train_config
from vsae.demo.explain_finding import detection_finding, explain_demo, explain_finding
from vsae.demo.findings import Finding, headline_findings, shared_finding
from vsae.demo.hierarchy_evidence import hierarchy_evidence
from vsae.demo.pipeline import Stopwatch, export_world, extract_all, image_tables, train_all
from vsae.demo.probe_shift import compare_under_shift, probe_finding, seed_replicates
from vsae.demo.report_page import build_report
from vsae.eval.class_hierarchy import from_file
from vsae.eval.write_json import jsonable
from vsae.experiments.mllm_steering.mllm_config import SteerConfig
from vsae.experiments.mllm_steering.mllm_report import write_steering_index
from vsae.experiments.mllm_steering.mllm_run import run_steering
from vsae.experiments.shared_features.shared_run import SharedFeaturesConfig, run_shared_features
from vsae.sae import load as load_sae
from vsae.store.safe_io import atomic_write_json
from vsae.world import shipped_clip_dir, shipped_simenc_dir
from vsae.world.llava import shipped_llava_dir, shipped_steering_sae_dir

SIMENC_DESCRIPTION = (
    "a small ViT trained on the world by supervised attribute classification — a different model and "
    "objective from the contrastive CLIP being explained (as Pach et al. score CLIP-L latents with "
    "CLIP-B/32 or DINOv2 embeddings); MS uses its pooled output"
)


def steer(cfg: DemoConfig, clip_dir: str, out: Path) -> dict[str, Any]:
    """Pach et al.'s steering experiment on the shipped tiny LLaVA (scores embedded by the world CLIP)."""
    scfg = SteerConfig(
        n_latents=cfg.steer_latents,
        n_images=cfg.steer_images,
        blank_latents=cfg.steer_blank_latents,
        seed=cfg.seed,
    )
    res = run_steering(
        shipped_llava_dir(), shipped_steering_sae_dir(), clip_dir, scfg, out / "steering", progress=False
    ).to_json()
    write_steering_index(out / "steering", res)
    return res


def shared_features(
    cfg: DemoConfig, world_dir: Path, out: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    """Olson et al.'s shared vision/language latents in the tiny LLaVA's language model (both layers)."""
    n_train, n_test = cfg.shared_images
    say(
        f"shared vision/language latents: tiny LLaVA language model, {n_train} + {n_test} images and captions"
    )
    scfg = SharedFeaturesConfig(n_train=n_train, n_test=n_test, seed=cfg.seed)
    return run_shared_features(
        shipped_llava_dir(),
        world_dir,
        out,
        scfg,
        lambda n: demo_train_config(scfg, n),
        phrases=phrase_words(),
    ).to_json()


def phrase_words() -> dict[str, tuple[str, str]]:
    """Words of the world's class phrases ("five pointed star", "plus cross") that name one shape
    only and are no attribute value themselves: word -> ("shape", shape)."""
    from vsae.world import taxonomy as tx
    from vsae.world.generate import attribute_vocab

    values = {
        w for a in ("shape", "colour", "size", "position", "background", "tone") for w in attribute_vocab(a)
    }
    shapes: dict[str, set[str]] = {}
    for cls, phrase in tx.VARIANT_PHRASE.items():
        for w in phrase.split():
            shapes.setdefault(w, set()).add(cls.split("_")[0])
    return {w: ("shape", next(iter(s))) for w, s in shapes.items() if len(s) == 1 and w not in values}


def analyse_all(
    cfg: DemoConfig, stores: Any, tables: Any, runs: dict[RunKey, Path], ti: Any
) -> tuple[dict[RunKey, UnitAnalysis], dict[str, Any]]:
    """Per hook: the raw neurons' and every trained SAE's analysis, and their results.json entries."""
    analysis: dict[RunKey, UnitAnalysis] = {}
    layers: dict[str, Any] = {}
    for hook in cfg.hooks:
        analysis[(hook, "raw", 0)] = raw = analyse_raw(hook, stores, tables, cfg, ti)
        layers[hook] = {"raw": raw.to_json(), "saes": {}}
        for (h, arch, e), run_dir in runs.items():
            if h != hook:
                continue
            sae = load_sae(run_dir)
            analysis[(h, arch, e)] = an = analyse_sae((h, arch, e), sae, stores, tables, cfg, ti)
            layers[hook]["saes"][run_dir.name] = {
                "arch": arch,
                "expansion": e,
                "path": str(run_dir),
                **an.to_json(),
            }
    return analysis, layers


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Run every stage (resuming finished ones) and return the results written to results.json."""
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
    say(
        f"training {n_saes} SAEs ({', '.join(cfg.archs)} x {cfg.expansions}) on {len(stores['train'][cfg.hooks[0]])} rows"
    )
    runs = train_all(cfg, stores)
    sw.lap("train")

    say("evaluating: MS, top images, uniqueness, hierarchy, probes, OOD, names, purity")
    ti = eval_inputs(stores, from_file(world_dir / "taxonomy.json"), clip_dir)
    analysis, layers = analyse_all(cfg, stores, tables, runs, ti)
    featured = cfg.featured_sae
    probes = compare_under_shift(
        cfg,
        stores,
        tables,
        {k: a.probe_run for k, a in analysis.items() if a.probe_run is not None},
        {h: load_sae(runs[(h, featured[1], featured[2])]) for h in cfg.hooks},
        seed_saes=seed_replicates(cfg, stores) if cfg.sae_seeds else None,
    )
    hierarchy = hierarchy_evidence(stores, tables, cfg.hooks, out, cfg.seed)
    say("self-checks: probe vs zero-shot, training-log FVU vs vsae eval recon, MS vs vsae eval ms")
    checks = run_checks(cfg, stores, tables, runs, layers, ti, clip_dir, out)
    sw.lap("evaluate")
    say("explaining the featured SAE's latents in words (vocab explainer, the world CLIP as judge)")
    explained = explain_demo(cfg, stores, tables, runs, ti.clip_emb_ND, clip_dir, out)
    sw.lap("explain")
    steering = steer(cfg, clip_dir, out) if cfg.steer_latents else None
    sw.lap("steer")
    shared = shared_features(cfg, world_dir, out, say) if cfg.shared_images[0] else None
    sw.lap("shared")
    diffusion = None
    if cfg.diffusion:
        from vsae.demo.diffusion import run_diffusion_demo

        say("steering the tiny text-to-image model through its text-encoder SAE; naming latents from images")
        diffusion = run_diffusion_demo(out)
    sw.lap("diffusion")
    findings = headline_findings(layers, featured, steering, hierarchy, probe_finding(probes, *featured[1:]))
    findings += [detection_finding(explained), explain_finding(explained)]
    if shared:
        findings.append(shared_finding(shared))
    if diffusion:
        from vsae.demo.diffusion import diffusion_findings

        findings.extend(Finding.from_json(d) for d in diffusion_findings(diffusion))

    results: dict[str, Any] = {
        "vsae_version": __version__,
        "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads",
        "config": {**asdict(cfg), "out": str(cfg.out), "hooks": list(cfg.hooks)},
        "models": {
            "explained": {
                "path": clip_dir,
                "provenance": stores["test"][cfg.hooks[0]].provenance.get("model"),
            },
            "similarity_encoder": {"path": simenc_dir, "description": SIMENC_DESCRIPTION},
        },
        "featured": list(featured),
        "vocabulary": ti.words,
        "findings": [f.to_json() for f in findings],
        "layers": layers,
        "probe": {**probe_sample(len(stores["train"][cfg.hooks[0]]), cfg.seed), "under_shift": probes},
        "hierarchy": hierarchy,
        "checks": checks,
        "steering": steering,
        "shared": shared,
        "diffusion": diffusion,
        "explain": {
            h: {k: v for k, v in r.items() if not k.endswith("_per_latent")} for h, r in explained.items()
        },
    }
    sw.lap("findings")
    say("writing report.html")
    results["timings"] = {**sw.times, "total": sum(sw.times.values())}
    build_report(results, analysis, tables["test"]["path"], out)
    sw.lap("report")
    results["timings"] = {**sw.times, "total": round(sum(sw.times.values()), 2)}
    atomic_write_json(out / "results.json", jsonable(results))
    if steering:
        sc = steering["score"]
        say(
            f"steering the tiny LLaVA: score {sc['steered']:.3f} steered vs {sc['baseline']:.3f} unsteered, "
            f"answers moved toward the latent's concept in {sc['moved_toward']:.0%} of cases"
        )
    for f in findings:
        say(f"{f.label}: {f.claim} — {f.detail}")
    say(f"done in {results['timings']['total']:.0f} s: {out / 'report.html'}, {out / 'results.json'}")
    require(checks)  # after results.json and report.html are written: nothing is lost
    return results
