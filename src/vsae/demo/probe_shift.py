"""Probes under distribution shift (Olson et al. 2025), judged so the verdict can come out either way.

Per hook, the raw-activation probe and the featured SAE's probe (each with its own C chosen on the
val split, `vsae.demo.analyse.probe`) are compared on the same images by two differences, SAE
minus raw:

- *absolute*: mean accuracy over the shifted splits (retention alone flatters features that are
  worse in distribution);
- *retention*: mean shifted accuracy / test accuracy (the share of test accuracy kept).

Each has a 95% bootstrap interval over the evaluation images (each split resampled on its own,
raw and SAE paired per image; `vsae.eval.verdict`) and is judged against a margin fixed here
before looking: better / equivalent / worse / inconclusive. The finding holds when every
comparison is better or equivalent, does not hold when one is worse, and is inconclusive
otherwise. Refits on other seeded train samples (probe-training noise) are counted beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from vsae.demo.findings import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, Finding
from vsae.demo.pipeline import SHIFTED
from vsae.eval.verdict import Comparison, stratified_bootstrap

if TYPE_CHECKING:
    from vsae.demo.analyse import ProbeRun
    from vsae.demo.config import DemoConfig, RunKey, Stores, Tables
    from vsae.sae import SAE

PROBE_MARGIN = 0.02  # 2 accuracy points (or 2 points of retention): a smaller difference does not matter
N_BOOT = 2000
SAMPLE_SEEDS = (1, 2, 3)  # other seeded train samples the probes are refit on (at their chosen C)
LEVEL = 0.95
RAW_COL, SAE_COL = 0, 1  # columns of the paired per-image outcomes


def _shifted(m: Mapping[str, np.ndarray], col: int) -> np.ndarray:
    return np.mean([m[s][:, col] for s in SHIFTED], axis=0)


def absolute_difference(m: Mapping[str, np.ndarray]) -> np.ndarray:
    """SAE - raw mean shifted-split accuracy, from per-split mean correctness [R, 2] (raw, SAE)."""
    return _shifted(m, SAE_COL) - _shifted(m, RAW_COL)


def retention_difference(m: Mapping[str, np.ndarray]) -> np.ndarray:
    """SAE - raw share of test accuracy kept on the shifted splits."""
    return _shifted(m, SAE_COL) / np.maximum(m["test"][:, SAE_COL], 1e-9) - _shifted(m, RAW_COL) / np.maximum(
        m["test"][:, RAW_COL], 1e-9
    )


def shift_comparison(raw: ProbeRun, sae: ProbeRun, seed: int = 0) -> dict[str, Any]:
    """Both differences with their intervals and outcomes, and the two probes' accuracies."""
    strata = {s: np.stack([raw.correct[s], sae.correct[s]], 1) for s in ("test", *SHIFTED)}
    out: dict[str, Any] = {}
    for key, what, stat in (
        ("absolute", "SAE - raw, mean accuracy on the shifted splits", absolute_difference),
        ("retention", "SAE - raw, share of test accuracy kept on the shifted splits", retention_difference),
    ):
        iv = stratified_bootstrap(strata, stat, N_BOOT, LEVEL, seed)
        out[key] = Comparison.judge(what, iv, PROBE_MARGIN).to_json()
    for name, run in (("raw", raw), ("sae", sae)):
        acc = run.accuracy
        shifted = float(np.mean([acc[s] for s in SHIFTED]))
        out[name] = {
            "c": acc["c"],
            "val": acc["val"],
            "val_by_c": {str(c): a for c, a in run.val_by_c.items()},
            "test": acc["test"],
            "shifted": shifted,
            "kept": shifted / max(acc["test"], 1e-9),
        }
    out["n_images"] = {s: int(len(raw.correct[s])) for s in ("test", *SHIFTED)}
    return out


def sample_spread(raws: Sequence[ProbeRun], saes: Sequence[ProbeRun]) -> dict[str, Any]:
    """Over refits on other seeded train samples: how often the SAE is at least raw, per difference."""
    out: dict[str, Any] = {"n_samples": len(raws)}
    for key, stat in (("absolute", absolute_difference), ("retention", retention_difference)):
        d = [
            float(
                stat({s: np.array([[r.correct[s].mean(), a.correct[s].mean()]]) for s in ("test", *SHIFTED)})[
                    0
                ]
            )
            for r, a in zip(raws, saes)
        ]
        out[key] = {"differences": d, "n_sae_at_least_raw": int(sum(x >= 0 for x in d))}
    return out


def compare_under_shift(
    cfg: DemoConfig,
    stores: Stores,
    tables: Tables,
    probes: Mapping[RunKey, ProbeRun],
    saes: Mapping[str, SAE],
    sample_seeds: Sequence[int] = SAMPLE_SEEDS,
) -> dict[str, dict[str, Any]]:
    """Per hook: `shift_comparison` of the raw probe (key (hook, "raw", 0)) and the featured SAE's
    probe, and `sample_spread` over refits on `sample_seeds`' train samples (each feature set at
    its chosen C)."""
    from vsae.demo.analyse import probe

    _, arch, e = cfg.featured_sae
    out = {}
    for hook in cfg.hooks:
        raw, sae = probes[(hook, "raw", 0)], probes[(hook, arch, e)]
        c = shift_comparison(raw, sae, cfg.seed)
        refit = [
            [
                probe(hook, stores, tables, m, cfg.seed, sample_seed=s, cs=(run.accuracy["c"],))
                for s in sample_seeds
            ]
            for m, run in ((None, raw), (saes[hook], sae))
        ]
        if sample_seeds:
            c["samples"] = {"seeds": list(sample_seeds), **sample_spread(*refit)}
        out[hook] = c
    return out


def probe_verdict(outcomes: Sequence[str]) -> str:
    """Holds when every comparison is better or equivalent; does not hold when one is worse."""
    if any(o == "worse" for o in outcomes):
        return DOES_NOT_HOLD
    if all(o in ("better", "equivalent") for o in outcomes):
        return HOLDS
    return INCONCLUSIVE


def probe_finding(comparisons: Mapping[str, dict[str, Any]], arch: str, expansion: int) -> Finding:
    """The probes-under-shift finding from `shift_comparison` per hook (with `sample_spread` under
    "samples" where run)."""
    parts, outcomes = [], []
    for h, c in comparisons.items():
        ab, re = (Comparison.from_json(c[k]) for k in ("absolute", "retention"))
        outcomes += [ab.outcome, re.outcome]
        spread = ""
        if "samples" in c:
            sp = c["samples"]
            spread = (
                f"; over {sp['n_samples']} other train samples SAE >= raw {sp['absolute']['n_sae_at_least_raw']}"
                f"/{sp['n_samples']} (shifted), {sp['retention']['n_sae_at_least_raw']}/{sp['n_samples']} (kept)"
            )
        parts.append(
            f"{h}: shifted accuracy SAE {c['sae']['shifted']:.3f} vs raw {c['raw']['shifted']:.3f}, "
            f"SAE - raw {ab.text()}; kept {c['sae']['kept']:.1%} vs {c['raw']['kept']:.1%}, "
            f"SAE - raw {re.text()}; test {c['sae']['test']:.3f} vs {c['raw']['test']:.3f}; "
            f"C on val {c['sae']['c']:g} (SAE) / {c['raw']['c']:g} (raw){spread}"
        )
    return Finding(
        f"Probes on SAE latents ({arch} x{expansion}) hold up under distribution shift at least as well as "
        "probes on raw activations (absolute shifted accuracy and share of test accuracy kept, "
        f"95% bootstrap interval over the evaluation images, margin ±{100 * PROBE_MARGIN:.0f} points)",
        False,
        "; ".join(parts),
        "Olson et al.",
        verdict=probe_verdict(outcomes),
        evidence={
            "margin": PROBE_MARGIN,
            "level": LEVEL,
            "n_boot": N_BOOT,
            "baseline": "probe on raw activations of the same images, C chosen on val for each",
            "per_hook": dict(comparisons),
        },
    )
