"""The demo's explanations (`vsae.eval.explain`): the featured SAE's latents at every hook explained
by the model-free `vocab` explainer with the world CLIP as judge, written as `vsae eval explain`
would (OUT/explain/<hook>/<run>/explanations.json, which `vsae serve` shows), and the finding that
checks them against the world's ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsae.demo.demo_config import DemoConfig, RunKey, Stores, Tables
from vsae.demo.findings import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, Finding
from vsae.demo.pipeline import NAME_ATTRIBUTES
from vsae.eval.explain import world_word_values
from vsae.eval.explain_config import ExplainConfig
from vsae.eval.explain_run import explain_latents, write_explanations
from vsae.eval.naming import encode_words
from vsae.eval.verdict import Comparison, paired_difference
from vsae.sae import load as load_sae
from vsae.world import attribute_vocab

MARGIN = 0.05  # agreement differences within ±5 points do not matter (fixed before looking)
DETECTION_MARGIN = 0.02  # nor detection AUROC differences within ±0.02


def explain_demo(
    cfg: DemoConfig, stores: Stores, tables: Tables, runs: dict[RunKey, Path], clip_emb_ND: np.ndarray,
    clip_dir: str, out: Path,
) -> dict[str, Any]:  # fmt: skip
    """Explain the featured SAE's latents at each hook; per hook the summary, per latent the verdicts."""
    from vsae.models import load  # loads transformers: only for the judge's text tower

    text = load(clip_dir, tower="text")
    cache: dict[str, np.ndarray] = {}

    def encode(phrases: Any) -> np.ndarray:
        todo = [p for p in dict.fromkeys(phrases) if p not in cache]
        if todo:
            cache.update(zip(todo, encode_words(text, todo, "{}")))
        return np.stack([cache[p] for p in phrases])

    table = tables["test"]
    attrs = [a for a in table if a != "path"]
    truth = (
        {a: np.asarray(table[a]) for a in attrs},
        world_word_values({a: attribute_vocab(a) for a in attrs}),
    )
    vocab = {a: list(attribute_vocab(a)) for a in NAME_ATTRIBUTES}
    _, arch, e = cfg.featured_sae
    res: dict[str, Any] = {}
    for hook in cfg.hooks:
        run = runs[(hook, arch, e)]
        with torch.no_grad():
            z = load_sae(run).encode(stores["test"][hook][:]).numpy()
        side = min(64, (z.shape[0] - 16) // 2)  # contrast and random images: 64 each, fewer on tiny splits
        ecfg = ExplainConfig(n_contrast=side, n_random=side, seed=cfg.seed)
        r = explain_latents(z, clip_emb_ND, encode, vocab, ecfg, truth)
        where = out / "explain" / hook / run.name
        write_explanations(where, r, {"judge": clip_dir, "sources": {"sae": str(run)}, "pooling": "none"})
        res[hook] = {
            "sae": run.name,
            "file": str(where / "explanations.json"),
            **{k: r[k] for k in ("n_explained", "detection", "controls", "ground_truth")},
            "agree_per_latent": {k: [v == "agree" for v in vs] for k, vs in r["_gt_L"].items()},
            "detection_per_latent": {
                k: [x[key] for x in r["latents"]]
                for k, key in (
                    ("explanations", "detection"),
                    ("names", "name_detection"),
                    ("shuffled", "shuffled_detection"),
                )
            },
        }
    return res


def _verdict(comps: dict[str, Comparison]) -> str:
    outs = {c.outcome for c in comps.values()}
    return HOLDS if outs == {"better"} else DOES_NOT_HOLD if outs & {"worse", "equivalent"} else INCONCLUSIVE


def detection_finding(explained: dict[str, Any]) -> Finding:
    """Without ground truth: the judge finds a latent's held-out top images from its explanation
    better than from its vocabulary name or from another latent's phrase (paired bootstrap of the
    detection AUROC over the explained latents of every hook, 95% CI, margin ±0.02)."""
    det = {k: np.concatenate([np.asarray(h["detection_per_latent"][k], float) for h in explained.values()])
           for k in ("explanations", "names", "shuffled")}  # fmt: skip
    ok = np.isfinite(det["explanations"]) & np.isfinite(det["names"]) & np.isfinite(det["shuffled"])
    comps = {
        b: Comparison.judge(f"explanations - {b}, detection AUROC", paired_difference(
            det["explanations"][ok], det[b][ok]), DETECTION_MARGIN)
        for b in ("names", "shuffled")
    }  # fmt: skip
    verdict = _verdict(comps)
    means = ", ".join(f"{k} {det[k][ok].mean():.3f}" for k in det)
    return Finding(
        "Without ground truth, a CLIP judge finds a latent's held-out top images among random ones better "
        "from its explanation than from its vocabulary name or another latent's phrase (detection AUROC)",
        verdict == HOLDS,
        f"mean detection AUROC over {int(ok.sum())} latents: {means}. "
        + "; ".join(
            f"{c.what}: {c.interval.text(1.0, '+.3f')} (95% CI), margin ±{c.margin}: {c.outcome}"
            for c in comps.values()
        ),
        "vsae (auto-interpretation scoring, Paulo et al. 2024)",
        verdict=verdict,
        evidence={k: c.to_json() for k, c in comps.items()} | {"n_latents": int(ok.sum())},
    )


def explain_finding(explained: dict[str, Any]) -> Finding:
    """Explanations agree with what the top images share more often than the vocabulary names and
    than shuffled phrases: paired bootstrap over the explained latents of every hook (95% CI),
    margin ±5 points; holds when both differences are above 0, does not hold when either is below 0
    or inside the margin, inconclusive otherwise."""
    agree = {k: np.concatenate([np.asarray(h["agree_per_latent"][k], float) for h in explained.values()])
             for k in ("explanations", "names", "shuffled")}  # fmt: skip
    comps = {
        b: Comparison.judge(f"explanations - {b}, ground-truth agreement", paired_difference(
            agree["explanations"], agree[b]), MARGIN)
        for b in ("names", "shuffled")
    }  # fmt: skip
    verdict = _verdict(comps)
    parts = []
    for hook, h in explained.items():
        g, det, c = h["ground_truth"], h["detection"], h["controls"]
        parts.append(
            f"{hook} ({h['sae']}, {h['n_explained']} latents): agreement {g['explanations']['agreement']:.1%} vs "
            f"names {g['names']['agreement']:.1%} vs shuffled {g['shuffled']['agreement']:.1%}; detection AUROC "
            f"{det['mean']:.3f} vs names {c['names']['mean']:.3f} vs shuffled {c['shuffled']['mean']:.3f}"
        )
    detail = "; ".join(parts) + ". " + "; ".join(f"{c.what}: {c.text()}" for c in comps.values())
    return Finding(
        "Latents explained in words (the templated phrase whose CLIP embedding best separates top from "
        "contrast images) agree with what their top images share more often than the vocabulary names "
        "and than shuffled phrases",
        verdict == HOLDS,
        detail,
        "vsae (shapes world ground truth)",
        verdict=verdict,
        evidence={k: c.to_json() for k, c in comps.items()}
        | {"n_latents": int(agree["explanations"].size), "margin": MARGIN},
    )
