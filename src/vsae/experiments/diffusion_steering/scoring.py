"""Scores of the diffusion steering experiment (Olson et al.; the target of issue 10): which
latents to steer, the target and preservation rates of steered vs unsteered images, and when a
latent meets the steering target. Pure numpy on the judge's readings."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from vsae.experiments.diffusion_steering.diffusion_result import Reference, SteeringRates
from vsae.experiments.diffusion_steering.judges import DiffusionJudge
from vsae.steer.diffusion_latents import LatentStats


def target_latents(stats: LatentStats, n: int, judge: DiffusionJudge) -> list[tuple[int, str, int]]:
    """(latent, attribute, value index) of up to ``n`` latents whose top word is a judged
    attribute value, most word-specific first, at most one latent per value."""
    word_attr = {v: (a, i) for a in judge.judged for i, v in enumerate(judge.values(a))}
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
) -> SteeringRates:
    """Target rate steered / unsteered (fraction judged ``value``) and preserved rate (fraction of
    (image, other judged attribute) pairs that still show the prompt's value; the judged
    attributes are the keys of ``truth``), steered and not. Given which images still draw an
    object (``drawn_s``, ``drawn_u``: bool [N]), also the target rates counting only those
    (``*_drawn``: an image of noise that the judge reads as the value does not count) and the
    drawn fractions."""
    others = [a for a in truth if a != attribute]

    def keep(p: dict[str, np.ndarray]) -> float:
        return float(np.mean([np.mean(p[a] == truth[a]) for a in others]))

    rates = SteeringRates(
        target_steered=float(np.mean(pred_s[attribute] == value)),
        target_baseline=float(np.mean(pred_u[attribute] == value)),
        preserved=keep(pred_s),
        preserved_baseline=keep(pred_u),
        kept_all=kept_all(pred_s, truth, others),
        kept_all_baseline=kept_all(pred_u, truth, others),
        preserved_by_attribute={a: float(np.mean(pred_s[a] == truth[a])) for a in others},
        preserved_by_attribute_baseline={a: float(np.mean(pred_u[a] == truth[a])) for a in others},
    )
    if drawn_s is None or drawn_u is None:
        return rates
    return replace(
        rates,
        target_steered_drawn=float(np.mean((pred_s[attribute] == value) & drawn_s)),
        target_baseline_drawn=float(np.mean((pred_u[attribute] == value) & drawn_u)),
        drawn_steered=float(np.mean(drawn_s)),
        drawn_baseline=float(np.mean(drawn_u)),
    )


def kept_all(pred: dict[str, np.ndarray], truth: dict[str, np.ndarray], attributes: Sequence[str]) -> float:
    """Fraction of images that keep the prompt's value of every one of ``attributes`` (1 with none)."""
    n = len(next(iter(truth.values())))
    ok = np.ones(n, bool)
    for a in attributes:
        ok &= pred[a] == truth[a]
    return float(ok.mean())


def reference(
    pred: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    attribute: str,
    value: int,
    latent: int | None = None,
) -> Reference:
    """A reference edit's target rate, images keeping every other attribute and pairs preserved."""
    others = [a for a in truth if a != attribute]
    return Reference(
        target=float(np.mean(pred[attribute] == value)),
        kept_all=kept_all(pred, truth, others),
        preserved=float(np.mean([np.mean(pred[a] == truth[a]) for a in others])),
        latent=latent,
    )


def edit_prompt(prompt: str, old: str, new: str) -> str:
    """``prompt`` with the whole word ``old`` replaced by ``new`` (the prompt-edit reference: the
    attribute changed by the words instead of the latents, issue 23)."""
    return re.sub(rf"\b{re.escape(old)}\b", new, prompt)


def target_met(steered: float, baseline: float) -> bool:
    """The steering target (issue 10, after Olson et al.): the target attribute rate steered is
    >= 0.5 and >= 2x the unsteered rate."""
    return steered >= 0.5 and steered >= 2 * baseline


def meets_target(rates: SteeringRates) -> bool:
    """`target_met` for one latent's rates, counting only images that still draw an object where
    that is known."""
    if rates.target_steered_drawn is not None and rates.target_baseline_drawn is not None:
        return target_met(rates.target_steered_drawn, rates.target_baseline_drawn)
    return target_met(rates.target_steered, rates.target_baseline)


def mean_or_none(values: Sequence[float | None]) -> float | None:
    """The mean of ``values``, or None when there are none or one is unknown."""
    if not values or any(v is None for v in values):
        return None
    return float(np.mean([float(v) for v in values if v is not None]))
