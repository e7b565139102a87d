"""The diffusion steering experiment (Olson et al.): steer a text-to-image model through SAE
latents of its text encoder, measure what changes, and discover latent attributes automatically.

For the shapes world's tiny model the similarity encoder's heads give ground truth:
- generation accuracy: held-out captions, agreement of the images with the prompt;
- steering: per latent whose text-side word is an attribute value (`LatentStats.top_word`), the
  rate of that value in images of prompts naming another value, steered vs unsteered (same
  prompts and noise), how often the prompt's other attributes are preserved, and the mean
  silhouette IoU of the images steered and not (`vsae.world.diffusion.silhouette`: is an object
  still drawn, or has the edit turned the image into noise the judge misreads?);
- discovery: per live latent, the word whose CLIP similarity rises most (`diffusion_discovery`),
  checked against the attribute value whose judged rate rises most, beside random words.
On another pipeline (Stable Diffusion) the same code generates, steers and names; the
ground-truth numbers are ``null``. The generic pieces (generation with the splice, latent
statistics, CLIP naming) are in `vsae.steer.diffusion_*`; this module sits in the world layer
because it scores against the world's ground truth and writes the report page.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

import vsae.sae
from vsae.errors import VsaeError
from vsae.report.diffusion import write_steering_page
from vsae.report.html import image_grid
from vsae.sae.selection import check_splice
from vsae.steer import diffusion_discovery as dd
from vsae.steer.config import DiffusionSteerConfig as DiffusionSteerConfig  # torch-free: the CLI's options
from vsae.steer.diffusion_discovery import VocabWord
from vsae.steer.diffusion_latents import LatentStats, latent_stats
from vsae.steer.diffusion_pipeline import DiffusionPipe, generate, load_pipe, resolved_sampler
from vsae.steer.edits import LatentEdit
from vsae.steer.intervention import resolve_point
from vsae.store.safe_io import atomic_path, atomic_write_json, writes_to
from vsae.world.diffusion.evaluate import generation_accuracy, heldout_prompts
from vsae.world.diffusion.judge import AttributeJudge, fit_judge, load_judge
from vsae.world.diffusion.silhouette import DRAWN_IOU, read_shapes
from vsae.world.diffusion.text_sae import world_captions
from vsae.world.generate import attribute_vocab
from vsae.world.taxonomy import BACKGROUNDS

# Attributes the world judge reads reliably (>= 93% on real test images) and their CLIP prompts.
WORLD_ATTRIBUTES: tuple[str, ...] = ("shape", "colour", "size", "tone")
JUDGED = ("shape", "colour", "size")  # attributes steering is scored on (judge >= 93% on real images)


def world_vocabulary(attributes: Sequence[str] = WORLD_ATTRIBUTES) -> list[VocabWord]:
    """The world's attribute values as words, with the world CLIP's zero-shot style prompts."""
    bgs = tuple(b for b in BACKGROUNDS if b != "wavy")
    tmpl = {
        "shape": lambda v: (f"a photo of a {v}",),
        "colour": lambda v: (f"a photo of a {v} shape",),
        "size": lambda v: (f"a {v} shape",),
        "tone": lambda v: tuple(f"a {v} {b} background" for b in bgs),
    }
    return [VocabWord(v, tmpl[a](v), a, i) for a in attributes for i, v in enumerate(attribute_vocab(a))]


def _is_world(pipe: DiffusionPipe) -> bool:
    return pipe.provenance.get("kind") == "vsae-world-diffusion"


def _edit(latent: int, cfg: DiffusionSteerConfig, max_act: float, strength: float) -> LatentEdit:
    value = strength if cfg.op == "scale" else strength * max(float(max_act), 1e-6)
    return LatentEdit(latent=int(latent), op=cfg.op, value=value, tokens=cfg.tokens)


def target_latents(stats: LatentStats, n: int) -> list[tuple[int, str, int]]:
    """(latent, attribute, value index) of up to ``n`` latents whose top word is a judged
    attribute value, most word-specific first, at most one latent per value."""
    word_attr = {v: (a, i) for a in JUDGED for i, v in enumerate(attribute_vocab(a))}
    cands = [f for f in stats.live if stats.top_word[f] in word_attr]
    cands.sort(key=lambda f: (-stats.top_share[f], f))
    out, seen = [], set()
    for f in cands:
        w = stats.top_word[f]
        if w not in seen:
            seen.add(w)
            out.append((int(f), *word_attr[w]))
    return out[:n]


def steering_rates(
    pred_s: dict[str, np.ndarray],
    pred_u: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    attribute: str,
    value: int,
    drawn_s: np.ndarray | None = None,
    drawn_u: np.ndarray | None = None,
) -> dict[str, float]:
    """Target rate steered / unsteered (fraction judged ``value``) and preserved rate (fraction of
    (image, other judged attribute) pairs that still show the prompt's value), steered and not.
    Given which images still draw an object (``drawn_s``, ``drawn_u``: bool [N],
    `vsae.world.diffusion.silhouette.drawn`), also the target rates counting only those
    (``*_drawn``: an image of noise that the judge reads as the value does not count) and the
    drawn fractions."""
    others = [a for a in JUDGED if a != attribute]

    def keep(p: dict[str, np.ndarray]) -> float:
        return float(np.mean([np.mean(p[a] == truth[a]) for a in others]))

    out = {
        "target_steered": float(np.mean(pred_s[attribute] == value)),
        "target_baseline": float(np.mean(pred_u[attribute] == value)),
        "preserved": keep(pred_s),
        "preserved_baseline": keep(pred_u),
    }
    if drawn_s is not None and drawn_u is not None:
        out |= {
            "target_steered_drawn": float(np.mean((pred_s[attribute] == value) & drawn_s)),
            "target_baseline_drawn": float(np.mean((pred_u[attribute] == value) & drawn_u)),
            "drawn_steered": float(np.mean(drawn_s)),
            "drawn_baseline": float(np.mean(drawn_u)),
        }
    return out


def target_met(steered: float, baseline: float) -> bool:
    """The steering target (issue 10, after Olson et al.): the target attribute rate steered is
    >= 0.5 and >= 2x the unsteered rate."""
    return steered >= 0.5 and steered >= 2 * baseline


def meets_target(row: dict[str, float]) -> bool:
    """`target_met` for one latent's rates, counting only images that still draw an object where
    that is known."""
    gated = "target_steered_drawn" in row
    return target_met(*(
        (row["target_steered_drawn"], row["target_baseline_drawn"])
        if gated
        else (row["target_steered"], row["target_baseline"])
    ))  # fmt: skip


@writes_to("out_dir")  # one writer per --out: a second steering run into it is refused, naming it
def run_diffusion_steering(
    pipeline: str,
    sae_dir: str,
    out_dir: str | Path,
    cfg: DiffusionSteerConfig = DiffusionSteerConfig(),
    *,
    clip: str | None = None,
    vocabulary: tuple[str, ...] = (),
    device: str = "cpu",
    dtype: str = "float32",
    progress: bool = True,
) -> dict[str, Any]:
    """Run generation accuracy, steering and discovery; write ``out_dir/results.json`` and
    ``out_dir/index.html``; return the results."""

    t0 = time.time()
    out = Path(out_dir)
    pipe = load_pipe(pipeline, device=device, dtype=dtype)
    sae = vsae.sae.load(sae_dir).to(device)
    hook = cfg.hook or (getattr(sae.cfg, "provenance", None) or {}).get("hook")
    if not hook:
        raise VsaeError("the SAE does not record its hook; give --hook (e.g. resid.-1)")
    point, _ = resolve_point(pipe.text, hook)  # unknown hook -> one-line error before any work
    check_splice(
        sae.cfg.provenance,
        point.name,
        sae=str(sae_dir),
        what="steering",
        force=cfg.force,
        canonical=lambda h: resolve_point(pipe.text, h)[0].name,
    )
    world = _is_world(pipe)
    if not world and not cfg.prompts:
        raise VsaeError(
            "give --prompts for a pipeline other than the shapes world's (no world captions to use)"
        )
    vocab = world_vocabulary() if world else dd.plain_vocabulary(vocabulary)
    naming_clip = clip or (str(_world_clip()) if world else None)
    # Loaded before any work: a --clip that cannot be loaded (or holds only pickle weights) fails at once.
    scorer = dd.ClipScorer(naming_clip, device=device) if vocab and naming_clip else None
    say = print if progress else (lambda *a, **k: None)
    sampler = cfg.sampler

    if world:
        corpus = world_captions(cfg.n_captions, cfg.seed + 1)
    else:
        corpus = list(cfg.prompts)
    stats = latent_stats(pipe.text, pipe.tokenizer, sae, hook, corpus)
    res: dict[str, Any] = {
        "config": {**asdict(cfg), "tokens": cfg.tokens if isinstance(cfg.tokens, str) else list(cfg.tokens)},
        "provenance": {**pipe.provenance, "sae": str(Path(sae_dir).resolve()), "hook": hook, "clip": clip},
        "latents": {"d_sae": int(len(stats.fires)), "live": int(len(stats.live))},
        "sampler": dict(zip(("guidance", "eta"), resolved_sampler(pipe, sampler)), steps=sampler.steps),
    }

    if cfg.latents and max(cfg.latents) >= len(stats.fires):
        raise VsaeError(f"latent {max(cfg.latents)} out of range: the SAE has {len(stats.fires)} latents")
    judge = _world_judge(pipeline) if world else None

    # 1. generation accuracy on held-out captions
    gen_acc = None
    if judge is not None and cfg.n_eval:
        gen_acc = generation_accuracy(pipe, judge, n=cfg.n_eval, seed=cfg.seed, sampler=sampler)
        say(
            f"generation: shape {gen_acc['generated']['shape']:.3f}, colour {gen_acc['generated']['colour']:.3f}"
        )
    res["generation"] = {
        "n": cfg.n_eval if world else 0,
        "accuracy": gen_acc["generated"] if gen_acc else {"shape": None, "colour": None},
        "judge_accuracy_on_real": gen_acc["real"] if gen_acc else None,
        "silhouette": gen_acc["silhouette"]["generated"] if gen_acc else None,
    }

    # 2. steering
    targets: list[tuple[int, str | None, int | None]]
    if cfg.latents:
        targets = [(int(f), None, None) for f in cfg.latents]
        if world:
            ta = {f: (a, v) for f, a, v in target_latents(stats, len(stats.fires))}
            targets = [(f, *ta.get(f, (None, None))) for f, _, _ in targets]
    else:
        targets = list(target_latents(stats, cfg.n_latents)) if world else []
    for f, _, _ in targets:
        if not 0 <= f < len(stats.fires):
            raise VsaeError(f"latent {f} out of range: the SAE has {len(stats.fires)} latents")
    pool_prompts, pool_batch = (
        heldout_prompts(max(8 * cfg.n_prompts, 64), cfg.seed + 2) if world else (list(cfg.prompts), None)
    )
    pool_truth = {a: pool_batch.labels(a) for a in JUDGED} if pool_batch is not None else {}
    cache: dict[tuple[int, ...], tuple[np.ndarray, dict | None]] = {}

    def unsteered(idx: tuple[int, ...]) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        if idx not in cache:
            ims = generate(pipe, [pool_prompts[i] for i in idx], sampler)
            cache[idx] = (ims, judge.predict(ims) if judge else None)
        return cache[idx]

    per_latent: list[dict[str, Any]] = []
    sweep_rows: dict[float, list[dict[str, float]]] = {s: [] for s in cfg.sweep}
    examples: list[dict[str, Any]] = []
    for f, attr, val in targets:
        if world and attr is not None:
            idx = tuple(i for i in range(len(pool_prompts)) if pool_truth[attr][i] != val)[: cfg.n_prompts]
        else:
            idx = tuple(range(min(cfg.n_prompts, len(pool_prompts))))
        ims_u, pred_u = unsteered(idx)
        prompts = [pool_prompts[i] for i in idx]
        row: dict[str, Any] = {
            "latent": f,
            "word": stats.top_word[f],
            "word_share": float(stats.top_share[f]),
            "max_act": float(stats.max_act[f]),
            "attribute": attr,
            "n_prompts": len(idx),
        }
        iou_u = read_shapes(ims_u)[1] if world else None
        for s in (cfg.strength, *cfg.sweep):
            ims_s = generate(
                pipe, prompts, sampler, sae=sae, hook=hook, edits=[_edit(f, cfg, stats.max_act[f], s)]
            )
            iou_s = read_shapes(ims_s)[1] if world else None
            if s == cfg.strength:
                examples.append(_save_example(out, f, stats.top_word[f], prompts, ims_u, ims_s))
                if iou_u is not None and iou_s is not None:  # is an object still drawn?
                    row["iou_baseline"] = float(iou_u.mean())
                    row["iou_steered"] = float(iou_s.mean())
            if judge is not None and pred_u is not None and attr is not None and val is not None:
                truth = {a: pool_truth[a][list(idx)] for a in JUDGED}
                drawn = (
                    (iou_s >= DRAWN_IOU, iou_u >= DRAWN_IOU)
                    if iou_s is not None and iou_u is not None
                    else (None, None)
                )
                r = steering_rates(judge.predict(ims_s), pred_u, truth, attr, val, *drawn)
                if s == cfg.strength:
                    row.update(r)
                else:
                    sweep_rows[s].append(r)
        per_latent.append(row)
        say(
            f"steer latent {f} ({row['word']}): "
            + (
                f"{row.get('target_baseline', float('nan')):.2f} -> {row.get('target_steered', float('nan')):.2f}"
                if "target_steered" in row
                else "done"
            )
        )
    scored = [r for r in per_latent if "target_steered" in r]

    keys = (
        ("steered", "target_steered"),
        ("baseline", "target_baseline"),
        ("preserved", "preserved"),
        ("preserved_baseline", "preserved_baseline"),
        ("steered_drawn", "target_steered_drawn"),
        ("baseline_drawn", "target_baseline_drawn"),
    )

    def summary(rows: list[dict[str, Any]]) -> dict[str, float | None]:
        return {
            k: float(np.mean([r[k2] for r in rows])) if rows and all(k2 in r for r in rows) else None
            for k, k2 in keys
        }

    s0 = summary(scored)
    res["steering"] = {
        "op": cfg.op,
        "strength": cfg.strength,
        "n_latents": len(per_latent),
        "target_rate": {k: s0[k] for k in ("steered", "baseline", "steered_drawn", "baseline_drawn")},
        "preserved_rate": s0["preserved"],
        "preserved_rate_baseline": s0["preserved_baseline"],
        "drawn_iou": DRAWN_IOU if world else None,
        "n_meeting_target": sum(meets_target(r) for r in scored),
        "latents": per_latent,
        "sweep": [{"strength": s, **summary(rows)} for s, rows in sweep_rows.items()],
    }

    # 3. discovery
    disc: dict[str, Any] = {"agreement": None, "random_agreement": None, "latents": []}
    if scorer is not None:
        words_WD = scorer.words(vocab)
        live = stats.live
        if cfg.discovery_latents and cfg.discovery_latents < len(live):
            live = np.sort(np.random.default_rng(cfg.seed).choice(live, cfg.discovery_latents, replace=False))
        d_prompts = (
            heldout_prompts(cfg.discovery_prompts, cfg.seed + 3)[0]
            if world
            else list(cfg.prompts)[: cfg.discovery_prompts]
        )
        ims_u = generate(pipe, d_prompts, sampler)
        emb_u = scorer.images(ims_u)
        pred_u = judge.predict(ims_u, WORLD_ATTRIBUTES) if judge else None
        found: list[int] = []
        truths: list[int | None] = []
        for f in live:
            ims_s = generate(
                pipe,
                d_prompts,
                sampler,
                sae=sae,
                hook=hook,
                edits=[_edit(int(f), cfg, stats.max_act[f], cfg.strength)],
            )
            w, rise = dd.discover(scorer.images(ims_s), emb_u, words_WD)
            t = None
            if judge is not None and pred_u is not None:
                t = dd.truth_name(
                    dd.truth_change(judge.predict(ims_s, WORLD_ATTRIBUTES), pred_u, vocab), cfg.min_change
                )
            found.append(w)
            truths.append(t)
            disc["latents"].append(
                {
                    "latent": int(f),
                    "text_word": stats.top_word[f],
                    "name": vocab[w].word,
                    "rise": float(rise[w]),
                    "truth": vocab[t].word if t is not None else None,
                }
            )
        if judge is not None:
            agr, n_truth = dd.agreement(found, truths)
            disc.update(
                agreement=agr,
                n_with_truth=n_truth,
                random_agreement=dd.random_agreement(truths, len(vocab), cfg.seed),
            )
        disc["n_latents"] = len(found)
        disc["vocabulary"] = [w.word for w in vocab]
        say(
            f"discovery: {len(found)} latents, agreement {disc['agreement']} vs random {disc['random_agreement']}"
        )
    res["discovery"] = disc
    res["examples"] = examples
    res["seconds"] = round(time.time() - t0, 1)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", res, indent=2)
    write_steering_page(res, out, out / "index.html")
    return res


def _save_example(
    out: Path, latent: int, word: str, prompts: Sequence[str], ims_u: np.ndarray, ims_s: np.ndarray
) -> dict[str, Any]:
    """Write the first 8 prompts' unsteered (top row) and steered (bottom row) images as one PNG."""
    n = min(8, len(prompts))
    (out / "examples").mkdir(parents=True, exist_ok=True)
    name = f"examples/latent_{latent}.png"
    with atomic_path(out / name) as tmp:
        image_grid(list(ims_u[:n]) + list(ims_s[:n]), cols=n, scale=3).save(tmp, format="PNG")
    return {
        "latent": int(latent),
        "label": f"latent {latent} ({word})",
        "prompts": list(prompts[:n]),
        "png": name,
    }


def _world_clip() -> Path:
    from vsae.world import shipped_clip_dir

    return shipped_clip_dir()


def _world_judge(pipeline: str) -> AttributeJudge:
    """The judge shipped with the world pipeline (``judge.safetensors``), else one fitted now."""
    p = Path(pipeline) / "judge.safetensors"
    return load_judge(p) if p.is_file() else fit_judge()
