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

SAE seeds: the featured SAE is trained again with other seeds (`SAE_SEEDS`, same recipe, alone;
`seed_replicates`), each probed at the C chosen for the featured SAE. The interval the verdict
uses is then a two-level bootstrap (`seed_bootstrap`): each resample draws the SAE seeds with
replacement and the evaluation images of each split, so it holds seed variance and image
variance; the per-seed differences and the image-only interval are reported beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from vsae.demo.findings import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, Finding
from vsae.demo.pipeline import SHIFTED
from vsae.eval.verdict import Comparison, Interval, stratified_bootstrap

if TYPE_CHECKING:
    from vsae.demo.analyse import ProbeRun
    from vsae.demo.demo_config import DemoConfig, RunKey, Stores, Tables
    from vsae.sae import SAE

PROBE_MARGIN = 0.02  # 2 accuracy points (or 2 points of retention): a smaller difference does not matter
N_BOOT = 2000
SAMPLE_SEEDS = (1, 2, 3)  # other seeded train samples the probes are refit on (at their chosen C)
SAE_SEEDS = (1, 2)  # other training seeds of the featured SAE (its interval includes seed variance)
SEED_STEPS_DIVISOR = 4  # the replicates train for steps // 4 (demo time: measured in docs/demo.md)
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


def seed_bootstrap(
    raw: ProbeRun,
    saes: Sequence[ProbeRun],
    statistic: Any,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """Percentile interval of `statistic` (raw vs SAE, as `absolute_difference`) over resamples of
    the SAE seeds and of each split's images: per resample, S seeds drawn with replacement from the
    S probe runs of `saes` (one per SAE seed) and, per split, the images with replacement (the same
    images for raw and every seed: paired); the SAE column is the mean over the drawn seeds.
    Estimate: raw against the mean of the seeds on all images. Draws from
    ``np.random.default_rng(seed)``: the seeds ``integers(0, S, (n_boot, S))``, then per split
    (test, then the shifted splits) ``integers(0, N, (n_boot, N))``."""
    rng = np.random.default_rng(seed)
    S = len(saes)
    pick = rng.integers(0, S, size=(n_boot, S))
    w_BS = np.stack([np.bincount(p, minlength=S) for p in pick]).astype(np.float64) / S
    full: dict[str, np.ndarray] = {}
    boot: dict[str, np.ndarray] = {}
    for s in ("test", *SHIFTED):
        r = np.asarray(raw.correct[s], np.float64)
        a = np.stack([np.asarray(x.correct[s], np.float64) for x in saes])  # [S, N]
        idx = rng.integers(0, r.size, size=(n_boot, r.size))
        full[s] = np.array([[r.mean(), a.mean()]])
        boot[s] = np.stack([r[idx].mean(1), (w_BS * a[:, idx].mean(2).T).sum(1)], 1)
    est = float(np.asarray(statistic(full)).ravel()[0])
    lo, hi = np.quantile(np.asarray(statistic(boot), np.float64), [(1 - level) / 2, (1 + level) / 2])
    return Interval(est, float(lo), float(hi), level, n_boot)


def shift_comparison(
    raw: ProbeRun, sae: ProbeRun, seed: int = 0, seed_runs: Sequence[ProbeRun] = ()
) -> dict[str, Any]:
    """Both differences with their intervals and outcomes, and the two probes' accuracies. With
    `seed_runs` (the featured SAE trained with other seeds) the judged interval is `seed_bootstrap`'s
    over `sae` and them; the image-only interval and the per-seed differences go under "seeds"."""
    strata = {s: np.stack([raw.correct[s], sae.correct[s]], 1) for s in ("test", *SHIFTED)}
    out: dict[str, Any] = {}
    seeds: dict[str, Any] = {}
    for key, what, stat in (
        ("absolute", "SAE - raw, mean accuracy on the shifted splits", absolute_difference),
        ("retention", "SAE - raw, share of test accuracy kept on the shifted splits", retention_difference),
    ):
        iv = stratified_bootstrap(strata, stat, N_BOOT, LEVEL, seed)
        if seed_runs:
            runs = [sae, *seed_runs]
            per = [
                float(stat({s: np.array([[raw.correct[s].mean(), r.correct[s].mean()]]) for s in strata})[0])
                for r in runs
            ]
            seeds[key] = {"differences": per, "sd": float(np.std(per, ddof=1)), "images_only": iv.to_json()}
            iv = seed_bootstrap(raw, runs, stat, N_BOOT, LEVEL, seed)
            what += f", mean over {len(runs)} SAE seeds"
        out[key] = Comparison.judge(what, iv, PROBE_MARGIN).to_json()
    if seeds:
        out["seeds"] = {"n_seeds": 1 + len(seed_runs), **seeds}
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


def seed_replicates(
    cfg: DemoConfig, stores: Stores, seeds: Sequence[int] = SAE_SEEDS
) -> dict[str, list[SAE]]:
    """Per hook, the featured (arch, expansion) SAE trained alone with each of `seeds` (the demo's
    recipe with `cfg.steps // SEED_STEPS_DIVISOR` steps; resumes finished runs)."""
    from dataclasses import replace

    from vsae.demo.demo_config import demo_train_config
    from vsae.sae import SAEConfig
    from vsae.sae import load as load_sae
    from vsae.train import run_name, train
    from vsae.train.checkpoint import read_run_state

    _, arch, e = cfg.featured_sae
    out: dict[str, list[SAE]] = {}
    for hook in cfg.hooks:
        src = stores["train"][hook]
        c = SAEConfig(
            arch=arch,
            d_in=src.d,
            d_sae=e * src.d,
            k=cfg.k,
            groups=cfg.groups,
            aux_k=2 * cfg.k,
            provenance=src.provenance,
        )
        c = replace(c, name=run_name(c, e))
        out[hook] = []
        for sd in seeds:
            t = demo_train_config(cfg, len(src))
            t = replace(t, seed=sd, steps=max(1, cfg.steps // SEED_STEPS_DIVISOR))
            t = replace(t, log_every=max(1, t.steps // 10))
            run_dir = cfg.out / "runs" / "seeds" / hook / f"seed{sd}"
            (d,) = train(src, [c], t, run_dir, resume=read_run_state(run_dir) is not None, progress=False)
            out[hook].append(load_sae(d))
    return out


def compare_under_shift(
    cfg: DemoConfig,
    stores: Stores,
    tables: Tables,
    probes: Mapping[RunKey, ProbeRun],
    saes: Mapping[str, SAE],
    sample_seeds: Sequence[int] = SAMPLE_SEEDS,
    seed_saes: Mapping[str, Sequence[SAE]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per hook: `shift_comparison` of the raw probe (key (hook, "raw", 0)) and the featured SAE's
    probe (with the probes of `seed_saes[hook]`, the SAE's other seeds, at the featured SAE's C),
    and `sample_spread` over refits on `sample_seeds`' train samples (each feature set at its
    chosen C)."""
    from vsae.demo.analyse import probe

    _, arch, e = cfg.featured_sae
    out = {}
    for hook in cfg.hooks:
        raw, sae = probes[(hook, "raw", 0)], probes[(hook, arch, e)]
        others = [
            probe(hook, stores, tables, m, cfg.seed, cs=(sae.accuracy["c"],))
            for m in (seed_saes or {}).get(hook, ())
        ]
        c = shift_comparison(raw, sae, cfg.seed, others)
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
    seeded = any("seeds" in c for c in comparisons.values())
    for h, c in comparisons.items():
        ab, re = (Comparison.from_json(c[k]) for k in ("absolute", "retention"))
        outcomes += [ab.outcome, re.outcome]
        spread = ""
        if "seeds" in c:
            sd = c["seeds"]
            spread += (
                f"; over {sd['n_seeds']} SAE seeds SAE - raw (shifted) "
                + ", ".join(f"{100 * x:+.1f}" for x in sd["absolute"]["differences"])
                + f" (sd {100 * sd['absolute']['sd']:.1f} pts; images-only interval "
                + _iv(sd["absolute"]["images_only"]).text(100)
                + ")"
            )
        if "samples" in c:
            sp = c["samples"]
            spread += (
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
        f"95% bootstrap interval over the evaluation images{' and SAE seeds' if seeded else ''}, "
        f"margin ±{100 * PROBE_MARGIN:.0f} points)",
        False,
        "; ".join(parts),
        "Olson et al.",
        verdict=probe_verdict(outcomes),
        evidence={
            "margin": PROBE_MARGIN,
            "level": LEVEL,
            "n_boot": N_BOOT,
            "baseline": "probe on raw activations of the same images, C chosen on val for each",
            "interval": "95% bootstrap over evaluation images"
            + (
                f" and SAE seeds (two-level: seeds and images resampled; replicates at steps // {SEED_STEPS_DIVISOR})"
                if seeded
                else ""
            ),
            "control": "refits on other seeded train samples (probe-training noise), per hook under 'samples'",
            "per_hook": dict(comparisons),
        },
    )


def _iv(d: Mapping[str, Any]) -> Interval:
    return Interval(float(d["estimate"]), float(d["lo"]), float(d["hi"]), float(d["level"]), int(d["n_boot"]))
