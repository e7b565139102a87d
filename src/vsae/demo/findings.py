"""The papers' headline trends, each checked on the demo's own numbers (never assumed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vsae.eval.verdict import stratified_bootstrap

HOLDS, DOES_NOT_HOLD, NOT_TESTABLE, INCONCLUSIVE = (
    "holds",
    "does not hold",
    "not testable here",
    "inconclusive",
)
VERDICTS = (HOLDS, DOES_NOT_HOLD, NOT_TESTABLE, INCONCLUSIVE)


@dataclass(frozen=True)
class Finding:
    """One headline finding of the papers and whether it holds on this run's own numbers.

    Attributes
    ----------
    claim: what the paper found, as one sentence.
    holds: whether it holds here (False for every verdict but "holds").
    detail: the numbers the verdict rests on.
    source: who found it (the paper, or "vsae" for controls).
    verdict: "holds", "does not hold", "not testable here" (the data cannot show the effect
        either way: e.g. the baseline it needs is not met) or "inconclusive" (the interval is too
        wide for the pre-set margin).
    evidence: the intervals or power, the control and the baseline the verdict rests on.
    """

    claim: str
    holds: bool
    detail: str
    source: str
    verdict: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        v = self.verdict or (HOLDS if self.holds else DOES_NOT_HOLD)
        if v not in VERDICTS:
            raise ValueError(f"verdict {v!r} is not one of {VERDICTS}")
        object.__setattr__(self, "verdict", v)
        object.__setattr__(self, "holds", v == HOLDS)

    @property
    def label(self) -> str:
        """The verdict as the demo prints it (e.g. "NOT TESTABLE HERE")."""
        return self.verdict.upper()

    def to_json(self) -> dict[str, Any]:
        """The finding as results.json["findings"] records it."""
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Finding:
        """A finding from its JSON form (e.g. `vsae.demo.diffusion.diffusion_findings`' dicts)."""
        return cls(
            str(d["claim"]),
            bool(d["holds"]),
            str(d["detail"]),
            str(d["source"]),
            str(d.get("verdict", "")),
            dict(d.get("evidence", {})),
        )


def _finding(
    claim: str, holds: bool, detail: str, source: str, evidence: dict[str, Any] | None = None
) -> Finding:
    return Finding(claim, bool(holds), detail, source, evidence=evidence or {})


def mean_gap_interval(a: Sequence[Sequence[float]], b: Sequence[float], seed: int = 0) -> dict[str, Any]:
    """95% bootstrap interval of mean over groups of mean(a_g) minus mean(b): every group of `a`
    (e.g. each SAE's per-latent MS) and `b` (e.g. the raw neurons') resampled on its own
    (`vsae.eval.verdict.stratified_bootstrap`, 1000 resamples; NaNs dropped)."""
    strata = {f"a{i}": _finite(x) for i, x in enumerate(a)} | {"b": _finite(b)}
    n_a = len(a)
    iv = stratified_bootstrap(
        strata,
        lambda m: np.mean([m[f"a{i}"][:, 0] for i in range(n_a)], axis=0) - m["b"][:, 0],
        n_boot=1000,
        seed=seed,
    )
    return iv.to_json()


def _finite(x: Sequence[float]) -> np.ndarray:
    v = np.asarray(x, np.float64)
    return v[np.isfinite(v)]


def proportion_test(k: int, n: int, p0: float, alpha: float = 0.05) -> dict[str, Any]:
    """k of n against a baseline rate p0: Clopper-Pearson 95% interval, one-sided binomial p and
    the minimum detectable rate at 80% power (`vsae.eval.selectivity.min_detectable_rate`)."""
    from scipy.stats import binomtest

    from vsae.eval.selectivity import min_detectable_rate

    if n == 0:
        return {"k": k, "n": n, "interval": None, "p_value": None, "min_detectable_rate": None}
    t = binomtest(int(k), int(n), min(max(float(p0), 1e-9), 1 - 1e-9), alternative="greater")
    ci = binomtest(int(k), int(n)).proportion_ci(0.95)  # two-sided interval
    return {
        "k": int(k),
        "n": int(n),
        "rate": k / n,
        "interval": [float(ci.low), float(ci.high)],
        "baseline_rate": float(p0),
        "p_value": float(t.pvalue),
        "min_detectable_rate": min_detectable_rate(int(n), float(p0), alpha),
    }


def headline_findings(
    layers: dict[str, Any],
    featured: tuple[str, str, int],
    steering: dict[str, Any] | None = None,
    hierarchy: dict[str, Any] | None = None,
    probes: Finding | None = None,
) -> list[Finding]:
    """One verdict per headline finding of Pach et al. and Olson et al., with the numbers (each
    finding is one small function below; a new one is a function and a line here)."""
    out = [more_monosemantic_than_neurons(layers), ms_rises_with_expansion(layers)]
    for tax in TAXONOMIES:
        depth = matryoshka_depth(layers, hierarchy, *tax)
        if depth is not None:
            out.append(depth)
    if hierarchy and "planted" in hierarchy:
        out.append(planted_hierarchy_control(hierarchy["planted"]))
    if (
        probes is not None
    ):  # probes on SAE latents under distribution shift: `vsae.demo.probe_shift.probe_finding`
        out.append(probes)
    out.append(names_agree(layers, featured))
    out.append(purity_above_neurons(layers))
    if steering:
        out.append(steering_finding(steering))
    return out


def more_monosemantic_than_neurons(layers: dict[str, Any]) -> Finding:
    """SAE latents are more monosemantic than raw neurons (Pach et al.)."""
    parts, ok, ivs = [], True, {}
    for hook, L in layers.items():
        raw = L["raw"]["ms"]["mean"]
        sae = float(np.mean([s["ms"]["mean"] for s in L["saes"].values()]))
        ok &= sae > raw
        iv = ivs[hook] = _ms_gap(L)
        parts.append(
            f"{hook}: SAE {sae:.3f} vs raw {raw:.3f}"
            + ("" if iv is None else f" (SAE - raw {iv['estimate']:+.3f} [{iv['lo']:+.3f}, {iv['hi']:+.3f}])")
        )
    return _finding(
        "SAE latents are more monosemantic than raw neurons (mean MS)",
        ok,
        "; ".join(parts),
        "Pach et al.",
        {
            "interval": ivs,
            "interval_what": "mean over SAEs of mean MS minus the neurons', 95% bootstrap over latents / neurons",
            "baseline": "the raw neurons of the same layer (MS on the same images)",
            "control": "none run: no planted monosemantic dictionary for MS (listed as a gap in docs/demo.md)",
        },
    )


def _ms_gap(L: dict[str, Any]) -> dict[str, Any] | None:
    """`mean_gap_interval` of the SAEs' per-latent MS over the raw neurons' (None without them)."""
    if "ms_per_latent" not in L["raw"] or any("ms_per_latent" not in s for s in L["saes"].values()):
        return None
    return mean_gap_interval([s["ms_per_latent"] for s in L["saes"].values()], L["raw"]["ms_per_latent"])


def ms_rises_with_expansion(layers: dict[str, Any]) -> Finding:
    """MS rises with the expansion factor (Pach et al.), per hook and architecture."""
    parts, ok, steps = [], True, {}
    for hook, L in layers.items():
        by_arch: dict[str, list[tuple[int, float, Any]]] = {}
        for s in L["saes"].values():
            by_arch.setdefault(s["arch"], []).append(
                (s["expansion"], s["ms"]["mean"], s.get("ms_per_latent"))
            )
        for arch, pts in by_arch.items():
            pts.sort(key=lambda t: t[0])
            ms = [m for _, m, _ in pts]
            ok &= all(b > a for a, b in zip(ms, ms[1:]))
            parts.append(f"{hook} {arch}: " + " < ".join(f"x{e} {m:.3f}" for e, m, _ in pts))
            if all(x is not None for _, _, x in pts):
                steps[f"{hook} {arch}"] = {
                    f"x{e1} - x{e0}": mean_gap_interval([x1], x0)
                    for (e0, _, x0), (e1, _, x1) in zip(pts, pts[1:])
                }
    n_sure = sum(d["lo"] > 0 for v in steps.values() for d in v.values())
    n_steps = sum(len(v) for v in steps.values())
    detail = "; ".join(parts) + (
        f"; {n_sure} of {n_steps} steps above 0 by their 95% interval" if n_steps else ""
    )
    return _finding(
        "MS rises with the expansion factor",
        ok,
        detail,
        "Pach et al.",
        {
            "interval": steps,
            "interval_what": "each step's mean-MS difference, 95% bootstrap over latents",
            "baseline": "the next smaller expansion of the same architecture, trained on the same batches",
            "control": "none run (listed as a gap in docs/demo.md)",
        },
    )


TAXONOMIES = (  # (tax, key of the per-group depths in results.json, name)
    ("class", "depth_per_group", "class taxonomy"),
    ("colour", "depth_per_group_colour", "colour taxonomy"),
)


def _grouping_baseline(baselines: dict[str, Any], tax: str) -> tuple[list[str], dict[str, bool]]:
    """Per hook, the sentence on whether the taxonomy's top level beats random groupings, and
    whether it does (the hook is testable)."""
    base_parts, testable = [], {}
    for hook, by_tax in baselines.items():
        top, b = next(iter(by_tax[tax].items()))
        testable[hook] = b["above_baseline"]
        base_parts.append(
            f"{hook}: {top.split('/')[0]} explains {b['coarse_share']:.3f} of the variance "
            f"({b['coarse_share'] / b['fine_share']:.2f} of {top.split('/')[1]}'s) vs {b['baseline_mean']:.3f} "
            f"for random groupings of the same sizes (max {b['baseline_max']:.3f}), rank {b['rank']} of "
            f"{b['n_groupings']}: {'above' if b['above_baseline'] else 'not above'} the baseline"
        )
    return base_parts, testable


def _depth_part(hook: str, name: str, s: dict[str, Any], key: str, tax: str, tested: bool) -> str:
    """One Matryoshka SAE's mean depth per group (scored latents, latents dead on the test split)
    and its last - first trend interval."""
    d = [g["mean_depth"] for g in s[key]]
    dead = s.get("dead_per_group", [None] * len(d))
    trend = (s.get("depth_trend") or {}).get(tax)
    trend_text = (
        ""
        if trend is None
        else f"; last - first {trend['estimate']:+.2f} [{trend['lo']:+.2f}, {trend['hi']:+.2f}]"
    )
    return (
        f"{hook} {name}"
        + ("" if tested else " (not tested)")
        + ": "
        + " / ".join(
            ("–" if np.isnan(x) else f"{x:.2f}")
            + f" ({g['n_scored']} scored"
            + ("" if n is None else f", {n} dead")
            + ")"
            for x, g, n in zip(d, s[key], dead)
        )
        + trend_text
    )


def matryoshka_depth(
    layers: dict[str, Any], hierarchy: dict[str, Any] | None, tax: str, key: str, taxonomy: str
) -> Finding | None:
    """Earlier Matryoshka groups are shallower (Pach et al.) in one taxonomy, per group: mean depth
    (scored latents, latents dead on the test split). Testable on a layer only when the taxonomy's
    top level explains more of the layer's variance than random groupings of the same sizes
    (`vsae.eval.grouping`); otherwise "not testable here" on that layer. None without a
    Matryoshka SAE."""
    baselines = (hierarchy or {}).get("grouping_baseline", {})
    base_parts, testable = _grouping_baseline(baselines, tax)
    parts, ok, any_mat, tested = [], True, False, False
    for hook, L in layers.items():
        for name, s in L["saes"].items():
            if s["arch"] != "matryoshka" or key not in s:
                continue
            any_mat = True
            valid = [g["mean_depth"] for g in s[key] if not np.isnan(g["mean_depth"])]
            if testable.get(hook, True):
                tested = True
                ok &= len(valid) >= 2 and valid[0] < valid[-1]
            parts.append(_depth_part(hook, name, s, key, tax, testable.get(hook, True)))
    if not any_mat:
        return None
    verdict = (HOLDS if ok else DOES_NOT_HOLD) if tested else NOT_TESTABLE
    detail = "; ".join(parts)
    if base_parts:
        detail = "baseline — " + "; ".join(base_parts) + ". Depth per group — " + detail
    return Finding(
        f"Earlier Matryoshka groups are shallower in the {taxonomy} (mean LCA depth per group; "
        "testable where the top level beats random groupings of the same sizes)",
        ok and tested,
        detail,
        "Pach et al.",
        verdict=verdict,
        evidence={
            "baseline": {h: next(iter(by_tax[tax].values())) for h, by_tax in baselines.items()},
            "testable_hooks": [h for h, t in testable.items() if t],
            "control": "planted nested dictionary (the control finding)",
        },
    )


def planted_hierarchy_control(p: dict[str, Any]) -> Finding:
    """The control: on a planted nested dictionary the Matryoshka SAE's first group is shallower."""
    depth = {a: [g["mean_depth"] for g in p[a]["depth_per_group"]] for a in ("matryoshka", "batchtopk")}
    m = [x for x in depth["matryoshka"][1:] if not np.isnan(x)]
    ok = not np.isnan(depth["matryoshka"][0]) and bool(m) and all(depth["matryoshka"][0] < x for x in m)
    return _finding(
        "Control: on a planted nested dictionary (few high-variance coarse atoms refined by lower-variance fine "
        "ones) the Matryoshka SAE's first group holds the coarse atoms and the depth metric finds it shallower",
        ok,
        "mean LCA depth per group (0 = other family, 1 = same family, 2 = same leaf): Matryoshka "
        + " / ".join(f"{x:.2f}" for x in depth["matryoshka"])
        + f", first-group decoder cosine with a coarse atom {p['matryoshka']['coarse_cosine_per_group'][0]:.2f}; "
        "BatchTopK control (same latent ranges) " + " / ".join(f"{x:.2f}" for x in depth["batchtopk"]),
        "vsae (planted control)",
        {
            "baseline": "a BatchTopK SAE on the same planted data, depth over the same latent ranges",
            "control": "this finding is the control of the Matryoshka depth findings",
            "interval": "none: one planted dictionary, depth means per group (a gap: no seeds)",
        },
    )


def names_agree(layers: dict[str, Any], featured: tuple[str, str, int]) -> Finding:
    """Latent names of the featured SAE agree with the ground truth (Olson et al.)."""
    _, arch, e = featured
    parts, ok, tests = [], True, {}
    for h, L in layers.items():
        s = next(v for v in L["saes"].values() if v["arch"] == arch and v["expansion"] == e)
        n = s["names"]
        ok &= n["agreement"] > n["random_word_agreement"]
        k = n.get("n_agree", round(n["agreement"] * n["n_named"]))
        t = tests[h] = proportion_test(k, n["n_named"], n["random_word_agreement"])
        parts.append(
            f"{h}: {n['agreement']:.1%} of {n['n_named']} named latents agree "
            f"(random words: {n['random_word_agreement']:.1%})"
            + (
                ""
                if t["interval"] is None
                else f" [{t['interval'][0]:.1%}, {t['interval'][1]:.1%}], binomial p = {t['p_value']:.2g}, "
                f"detectable from {t['min_detectable_rate']:.1%}"
            )
        )
    return _finding(
        "Latent names from the CLIP text tower agree with the ground truth more than random words",
        ok,
        "; ".join(parts),
        "Olson et al.",
        {
            "interval": tests,
            "interval_what": "Clopper-Pearson 95% interval of the agreement, one-sided binomial test against the "
            "random-word rate, minimum detectable rate at 80% power",
            "baseline": "random words of the same vocabulary named the same way",
            "control": "the random-word draw is the control (no planted names)",
        },
    )


def purity_above_neurons(layers: dict[str, Any]) -> Finding:
    """Ground truth: top images of SAE latents share one attribute value more often than neurons'."""
    parts, ok, tests = [], True, {}
    for h, L in layers.items():
        raw = L["raw"]["purity"]["pure_fraction"]
        sae = float(np.mean([s["purity"]["pure_fraction"] for s in L["saes"].values()]))
        ok &= sae > raw
        k = sum(
            round(s["purity"]["pure_fraction"] * s["purity"].get("n_scored", 0)) for s in L["saes"].values()
        )
        n = sum(s["purity"].get("n_scored", 0) for s in L["saes"].values())
        t = tests[h] = proportion_test(k, n, raw)
        parts.append(
            f"{h}: SAE {sae:.1%} vs raw {raw:.1%}"
            + (
                ""
                if t["interval"] is None
                else f" (SAE latents pooled [{t['interval'][0]:.1%}, {t['interval'][1]:.1%}])"
            )
        )
    return _finding(
        "Top images of SAE latents share one attribute value more often than those of raw neurons "
        "(ground-truth purity)",
        ok,
        "; ".join(parts),
        "vsae (shapes world ground truth)",
        {
            "interval": tests,
            "interval_what": "Clopper-Pearson 95% interval of the pure fraction over the SAEs' scored latents pooled, "
            "binomial test against the neurons' rate, minimum detectable rate",
            "baseline": "the raw neurons' pure fraction",
            "control": "none run (listed as a gap in docs/demo.md)",
        },
    )


def steering_finding(steering: dict[str, Any]) -> Finding:
    """Clamping SAE latents in the vision encoder steers the MLLM (Pach et al.; the steering
    experiment's results.json)."""
    from vsae.eval.verdict import paired_difference

    sc = steering["score"]
    iv = None
    if sc.get("steered_per_latent") and sc.get("baseline_per_latent"):
        iv = paired_difference(sc["steered_per_latent"], sc["baseline_per_latent"], n_boot=1000).to_json()
    return _finding(
        "Clamping one SAE latent in the vision encoder steers the multimodal model's answer toward the "
        "latent's concept (steering score above the unsteered baseline)",
        sc["steered"] > sc["baseline"],
        f"score {sc['steered']:.3f} steered vs {sc['baseline']:.3f} unsteered over "
        f"{len(steering['latents'])} latents x {len(steering['test_images'])} images; answers moved toward the "
        f"latent in {sc['moved_toward']:.0%}, away in {sc['moved_away']:.0%}" + _steer_interval_text(iv),
        "Pach et al.",
        {
            "interval": iv,
            "interval_what": "steered - unsteered score, 95% paired bootstrap over the clamped latents",
            "baseline": "the same prompts and images unsteered",
            "control": "none run: no random-latent clamp in this section (listed as a gap in docs/demo.md)",
        },
    )


def _steer_interval_text(iv: dict[str, Any] | None) -> str:
    return (
        ""
        if iv is None
        else f" (steered - unsteered {iv['estimate']:+.3f} [{iv['lo']:+.3f}, {iv['hi']:+.3f}])"
    )


def _precondition_text(pre: dict[str, Any]) -> str:
    return (
        ", ".join(
            f"{a} {p['accuracy']:.2f} [{p['interval'][0]:.2f}, {p['interval'][1]:.2f}] vs chance {p['chance']:.2f}"
            for a, p in pre["per_attribute"].items()
        )
        or "no attribute with enough predicting rows"
    )


def shared_finding(shared: dict[str, Any]) -> Finding:
    """The verdict on "some SAE latents are shared across modalities, and they mean the same concept
    in both", per layer and text kind (caption alone, teacher-forced after the image) by concept
    selectivity (`vsae.eval.selectivity`): shared latents found (matched-value rate above the
    mismatched-value rate, binomial p < alpha) with the planted control found. A (layer, kind)
    is testable only where the raw-stream precondition holds (`vsae.eval.shared_precondition`:
    a probe trained on image rows reads the value from the text rows that predict it) and the
    planted control is found. Holds when some testable (layer, kind) has shared latents; does not
    hold when none of the testable ones has; "not testable here" when none is testable. The
    minimum detectable rate is printed beside each verdict."""
    parts, states, per = [], [], {}
    for h, L in shared["layers"].items():
        kinds = L.get("by_kind")
        if kinds is None and L.get("selectivity") is not None:  # a shared.json from before text kinds
            kinds = {"caption": {"state": None, "precondition": None, "selectivity": L["selectivity"]}}
        if not kinds:
            parts.append(f"{h}: no ground truth, not measured")
            continue
        for kind, K in kinds.items():
            sel, pre = K["selectivity"], K["precondition"]
            c = sel["control"]
            state = K["state"] or ("shared latents found" if sel["found"] and c["found"] else "none found")
            if not c["found"]:
                state = "not testable here"
            states.append(state)
            top = ", ".join(
                f"{p['value']} ({p['image_auroc']:.2f}/{p['text_auroc']:.2f})"
                for p in sel["shared_pairs"][:4]
            )
            why = ""
            if pre is not None and not pre["holds"]:
                why = " (the raw stream does not share the attributes)"
            parts.append(
                f"{h} [{kind} rows]: {state.upper() if state == 'not testable here' else state}{why} — raw-stream "
                f"precondition: {_precondition_text(pre) if pre else 'not measured'}; {sel['n_shared']} of "
                f"{sel['n_image_selective']} image-selective (latent, value) pairs are text-selective for the same "
                f"value ({sel['matched_rate']:.1%}) vs {sel['mismatched_rate']:.1%} for another value of the "
                f"attribute (binomial p = {sel['p_value']:.2g}; detectable from {sel['min_detectable_rate']:.1%} at "
                f"80% power); {len(sel['shared_latents'])} latents{': ' + top if top else ''}; planted control "
                f"{c['n_found']}/{c['n_planted']} found"
            )
            per[f"{h} [{kind}]"] = {
                "state": state,
                "precondition": pre,
                **{
                    k: sel[k]
                    for k in (
                        "found",
                        "n_shared",
                        "n_image_selective",
                        "matched_rate",
                        "mismatched_rate",
                        "p_value",
                        "min_detectable_rate",
                        "control",
                    )
                },
            }
    testable = [st for st in states if st != "not testable here"]
    if not testable:
        verdict = NOT_TESTABLE
    else:
        verdict = HOLDS if "shared latents found" in testable else DOES_NOT_HOLD
    return Finding(
        claim="Some SAE latents of the multimodal model's language model are shared across image and text "
        "tokens and mean the same concept in both (selective for the same attribute value on images and on "
        "words, AUROC >= 0.8, above the mismatched-value baseline at p < 0.05), per layer and text kind, "
        "where the raw stream shares the attribute",
        holds=verdict == HOLDS,
        detail="; ".join(parts),
        source="Olson et al. (project's definitions)",
        verdict=verdict,
        evidence={
            "per_layer": per,
            "interval": "raw-stream precondition: 95% bootstrap interval of the probe's accuracy over text rows; "
            "power: the minimum detectable matched rate (80% power) per layer and kind",
            "baseline": "the same latents' text selectivity for another value of the attribute",
            "control": "planted latents, one per value (80% of positives, 5% of others), both modalities",
            "precondition": "a probe on image rows reads the value from the text rows predicting it, above chance",
        },
    )
