"""The papers' headline trends, each checked on the demo's own numbers (never assumed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

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


def _finding(claim: str, holds: bool, detail: str, source: str) -> Finding:
    return Finding(claim, bool(holds), detail, source)


def headline_findings(
    layers: dict[str, Any],
    featured: tuple[str, str, int],
    steering: dict[str, Any] | None = None,
    hierarchy: dict[str, Any] | None = None,
    probes: Finding | None = None,
) -> list[Finding]:
    """One verdict per headline finding of Pach et al. and Olson et al., with the numbers."""
    out: list[Finding] = []
    # 1. SAE latents are more monosemantic than raw neurons (Pach et al.)
    parts, ok = [], True
    for hook, L in layers.items():
        raw = L["raw"]["ms"]["mean"]
        sae = float(np.mean([s["ms"]["mean"] for s in L["saes"].values()]))
        ok &= sae > raw
        parts.append(f"{hook}: SAE {sae:.3f} vs raw {raw:.3f}")
    out.append(
        _finding(
            "SAE latents are more monosemantic than raw neurons (mean MS)",
            ok,
            "; ".join(parts),
            "Pach et al.",
        )
    )
    # 2. MS rises with the expansion factor (Pach et al.)
    parts, ok = [], True
    for hook, L in layers.items():
        by_arch: dict[str, list[tuple[int, float]]] = {}
        for s in L["saes"].values():
            by_arch.setdefault(s["arch"], []).append((s["expansion"], s["ms"]["mean"]))
        for arch, pts in by_arch.items():
            pts.sort()
            ms = [m for _, m in pts]
            ok &= all(b > a for a, b in zip(ms, ms[1:]))
            parts.append(f"{hook} {arch}: " + " < ".join(f"x{e} {m:.3f}" for e, m in pts))
    out.append(_finding("MS rises with the expansion factor", ok, "; ".join(parts), "Pach et al."))
    # 3. earlier Matryoshka groups are shallower (Pach et al.), in the class taxonomy and in the
    #    colour taxonomy; per group: mean depth (scored latents, latents dead on the test split)
    #    Testable on a layer only when the taxonomy's top level explains more of the layer's
    #    variance than random groupings of the same sizes (`vsae.eval.grouping`); otherwise
    #    "not testable here" on that layer.
    baselines = (hierarchy or {}).get("grouping_baseline", {})
    for tax, key, taxonomy in (
        ("class", "depth_per_group", "class taxonomy"),
        ("colour", "depth_per_group_colour", "colour taxonomy"),
    ):
        parts, ok, any_mat, tested = [], True, False, False
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
        for hook, L in layers.items():
            for name, s in L["saes"].items():
                if s["arch"] != "matryoshka" or key not in s:
                    continue
                any_mat = True
                d = [g["mean_depth"] for g in s[key]]
                valid = [x for x in d if not np.isnan(x)]
                if testable.get(hook, True):
                    tested = True
                    ok &= len(valid) >= 2 and valid[0] < valid[-1]
                dead = s.get("dead_per_group", [None] * len(d))
                trend = (s.get("depth_trend") or {}).get(tax)
                trend_text = (
                    ""
                    if trend is None
                    else f"; last - first {trend['estimate']:+.2f} [{trend['lo']:+.2f}, {trend['hi']:+.2f}]"
                )
                parts.append(
                    f"{hook} {name}"
                    + ("" if testable.get(hook, True) else " (not tested)")
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
        if any_mat:
            verdict = (HOLDS if ok else DOES_NOT_HOLD) if tested else NOT_TESTABLE
            detail = "; ".join(parts)
            if base_parts:
                detail = "baseline — " + "; ".join(base_parts) + ". Depth per group — " + detail
            out.append(
                Finding(
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
            )
    if hierarchy and "planted" in hierarchy:
        p = hierarchy["planted"]
        depth = {a: [g["mean_depth"] for g in p[a]["depth_per_group"]] for a in ("matryoshka", "batchtopk")}
        m = [x for x in depth["matryoshka"][1:] if not np.isnan(x)]
        ok = not np.isnan(depth["matryoshka"][0]) and bool(m) and all(depth["matryoshka"][0] < x for x in m)
        out.append(
            _finding(
                "Control: on a planted nested dictionary (few high-variance coarse atoms refined by lower-variance fine "
                "ones) the Matryoshka SAE's first group holds the coarse atoms and the depth metric finds it shallower",
                ok,
                "mean LCA depth per group (0 = other family, 1 = same family, 2 = same leaf): Matryoshka "
                + " / ".join(f"{x:.2f}" for x in depth["matryoshka"])
                + f", first-group decoder cosine with a coarse atom {p['matryoshka']['coarse_cosine_per_group'][0]:.2f}; "
                "BatchTopK control (same latent ranges) "
                + " / ".join(f"{x:.2f}" for x in depth["batchtopk"]),
                "vsae (planted control)",
            )
        )
    # 4. probes on SAE latents hold up under distribution shift (Olson et al.): intervals, margin
    hook, arch, e = featured
    if probes is not None:  # `vsae.demo.probe_shift.probe_finding`
        out.append(probes)
    # 5. latent names agree with the ground truth (Olson et al.)
    parts, ok = [], True
    for h, L in layers.items():
        s = next(v for v in L["saes"].values() if v["arch"] == arch and v["expansion"] == e)
        n = s["names"]
        ok &= n["agreement"] > n["random_word_agreement"]
        parts.append(
            f"{h}: {n['agreement']:.1%} of {n['n_named']} named latents agree "
            f"(random words: {n['random_word_agreement']:.1%})"
        )
    out.append(
        _finding(
            "Latent names from the CLIP text tower agree with the ground truth more than random words",
            ok,
            "; ".join(parts),
            "Olson et al.",
        )
    )
    # 6. ground truth: top images of SAE latents share one attribute value more often than neurons'
    parts, ok = [], True
    for h, L in layers.items():
        raw = L["raw"]["purity"]["pure_fraction"]
        sae = float(np.mean([s["purity"]["pure_fraction"] for s in L["saes"].values()]))
        ok &= sae > raw
        parts.append(f"{h}: SAE {sae:.1%} vs raw {raw:.1%}")
    out.append(
        _finding(
            "Top images of SAE latents share one attribute value more often than those of raw neurons "
            "(ground-truth purity)",
            ok,
            "; ".join(parts),
            "vsae (shapes world ground truth)",
        )
    )
    # 7. clamping SAE latents in the vision encoder steers the MLLM (Pach et al.)
    if steering:
        sc = steering["score"]
        out.append(
            _finding(
                "Clamping one SAE latent in the vision encoder steers the multimodal model's answer toward the "
                "latent's concept (steering score above the unsteered baseline)",
                sc["steered"] > sc["baseline"],
                f"score {sc['steered']:.3f} steered vs {sc['baseline']:.3f} unsteered over "
                f"{len(steering['latents'])} latents x {len(steering['test_images'])} images; answers moved toward the "
                f"latent in {sc['moved_toward']:.0%}, away in {sc['moved_away']:.0%}",
                "Pach et al.",
            )
        )
    return out
