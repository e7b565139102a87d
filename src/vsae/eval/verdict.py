"""Verdicts that can come out either way: a bootstrap interval on a paired difference and a
pre-set margin that turns it into one of four outcomes.

- `stratified_bootstrap`: resample the units (e.g. evaluation images) of each stratum (e.g. each
  split) with replacement, independently per stratum, B times; a statistic of the per-stratum
  column means is computed on every resample and its percentile interval returned (Efron &
  Tibshirani 1993, ch. 13). Paired: each unit carries every compared quantity in its columns
  (e.g. "raw probe correct", "SAE probe correct" on the same image), so one resample moves both.
- `outcome`: where the interval of a difference d = A - B lies against a margin m fixed before
  looking (the equivalence-margin logic of two one-sided tests, Schuirmann 1987):
  ``equivalent`` when the whole interval is inside [-m, +m]; else ``better`` when it is above 0,
  ``worse`` when it is below 0; else ``inconclusive`` (the interval is too wide to decide).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from vsae.errors import VsaeError

Outcome = Literal["better", "equivalent", "worse", "inconclusive"]


@dataclass(frozen=True)
class Interval:
    """A statistic with its bootstrap percentile interval.

    Attributes
    ----------
    estimate: the statistic on the data as observed.
    lo, hi: the interval's bounds.
    level: its coverage (e.g. 0.95).
    n_boot: bootstrap resamples it rests on.
    """

    estimate: float
    lo: float
    hi: float
    level: float
    n_boot: int

    def to_json(self) -> dict[str, Any]:
        """The interval as results.json records it."""
        return asdict(self)

    def text(self, scale: float = 1.0, fmt: str = "+.1f") -> str:
        """E.g. ``-2.6 [-5.8, +0.4]`` (scale 100 for percentage points)."""
        e, lo, hi = (scale * v for v in (self.estimate, self.lo, self.hi))
        return f"{e:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def stratified_bootstrap(
    strata: Mapping[str, np.ndarray],
    statistic: Callable[[Mapping[str, np.ndarray]], np.ndarray],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile interval of ``statistic`` over resamples of the units of every stratum.

    strata: name -> [N_s, K] per-unit values (one row per unit, e.g. per evaluation image; K
        columns of paired quantities, e.g. correct under A and under B).
    statistic: maps name -> [R, K] column means (R resamples, or R = 1 for the data itself) to [R].
    Draws: for each stratum in the mapping's order, ``rng.integers(0, N_s, size=(n_boot, N_s))``
    from ``np.random.default_rng(seed)``.
    """
    if not strata:
        raise VsaeError("the bootstrap needs at least one stratum of units")
    if not 0 < level < 1:
        raise VsaeError(f"interval level {level} is not in (0, 1); give e.g. 0.95")
    if n_boot < 1:
        raise VsaeError(f"n_boot {n_boot} < 1; give the number of bootstrap resamples")
    rng = np.random.default_rng(seed)
    full: dict[str, np.ndarray] = {}
    boot: dict[str, np.ndarray] = {}
    for name, values in strata.items():
        v = np.asarray(values, np.float64)
        v = v[:, None] if v.ndim == 1 else v
        if v.ndim != 2 or v.shape[0] == 0:
            raise VsaeError(
                f"stratum {name!r} has shape {np.shape(values)}; give [units, quantities] with units > 0"
            )
        full[name] = v.mean(0, keepdims=True)
        idx = rng.integers(0, v.shape[0], size=(n_boot, v.shape[0]))
        boot[name] = np.stack([v[:, k][idx].mean(1) for k in range(v.shape[1])], axis=1)
    est = float(np.asarray(statistic(full)).ravel()[0])
    stats = np.asarray(statistic(boot), np.float64).ravel()
    a = (1 - level) / 2
    lo, hi = np.quantile(stats, [a, 1 - a])
    return Interval(est, float(lo), float(hi), level, n_boot)


def paired_difference(
    a_N: npt.ArrayLike, b_N: npt.ArrayLike, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> Interval:
    """Interval of mean(a) - mean(b) over units measured under both A and B (one stratum)."""
    a, b = np.asarray(a_N, np.float64).ravel(), np.asarray(b_N, np.float64).ravel()
    if a.shape != b.shape:
        raise VsaeError(f"paired values differ in length ({a.size} vs {b.size}); give one of each per unit")
    return stratified_bootstrap(
        {"units": np.stack([a, b], 1)}, lambda m: m["units"][:, 0] - m["units"][:, 1], n_boot, level, seed
    )


def outcome(diff: Interval, margin: float) -> Outcome:
    """Three decided outcomes and one undecided for a difference A - B against a pre-set margin
    (module docstring): equivalent / better / worse / inconclusive."""
    if margin < 0:
        raise VsaeError(f"margin {margin} < 0; give the largest difference that does not matter")
    if -margin <= diff.lo and diff.hi <= margin:
        return "equivalent"
    if diff.lo > 0:
        return "better"
    if diff.hi < 0:
        return "worse"
    return "inconclusive"


@dataclass(frozen=True)
class Comparison:
    """A difference, its interval, the margin it is judged against, and the outcome.

    Attributes
    ----------
    what: the difference, in words (e.g. "SAE - raw, mean shifted-split accuracy").
    interval: the bootstrap interval of the difference.
    margin: the pre-set margin (same units as the difference).
    outcome: `outcome(interval, margin)`.
    """

    what: str
    interval: Interval
    margin: float
    outcome: Outcome

    @classmethod
    def judge(cls, what: str, interval: Interval, margin: float) -> Comparison:
        """The comparison with its outcome."""
        return cls(what, interval, margin, outcome(interval, margin))

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Comparison:
        """The comparison from its `to_json` form."""
        iv = Interval(
            float(d["estimate"]), float(d["lo"]), float(d["hi"]), float(d["level"]), int(d["n_boot"])
        )
        return cls(str(d["what"]), iv, float(d["margin"]), d["outcome"])

    def to_json(self) -> dict[str, Any]:
        """The comparison as results.json records it."""
        return {"what": self.what, **self.interval.to_json(), "margin": self.margin, "outcome": self.outcome}

    def text(self, scale: float = 100.0, unit: str = " pts") -> str:
        """E.g. ``-2.6 [-5.8, +0.4] pts (95% CI), margin ±2.0: inconclusive``."""
        return (
            f"{self.interval.text(scale)}{unit} ({self.interval.level:.0%} CI), "
            f"margin ±{scale * self.margin:.1f}: {self.outcome}"
        )
