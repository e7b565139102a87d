"""Is a taxonomy's coarse level a real grouping of its fine values, or no better than chance?

A coarse grouping of fine values (e.g. shape family over shapes) always explains less of a
layer's variance than the fine level itself (`vsae.eval.variance`), so a small coarse share
says nothing by itself. The baseline: every other grouping of the same fine values into groups
of the same sizes (all of them when there are at most `max_groupings`, else a seeded sample of
uniformly random ones). The coarse level is *above the baseline* when its between-group
fraction is higher than that of at least `quantile` of the other groupings. Only then can a
test of "coarse concepts come first" (Pach et al.'s Matryoshka depth finding) come out either
way on that layer.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np

from vsae.errors import VsaeError
from vsae.eval._arrays import to_numpy

Grouping = tuple[tuple[int, ...], ...]


def groupings_of_sizes(n: int, sizes: Sequence[int]) -> Iterator[Grouping]:
    """Every partition of range(n) into unlabelled groups of the given sizes, each once (the
    smallest remaining item always opens the next group)."""
    if sum(sizes) != n or min(sizes, default=1) < 1:
        raise VsaeError(f"group sizes {list(sizes)} do not partition {n} items")

    def rec(items: tuple[int, ...], left: tuple[int, ...]) -> Iterator[Grouping]:
        if not items:
            yield ()
            return
        first, rest = items[0], items[1:]
        for size in sorted(set(left)):
            remaining = list(left)
            remaining.remove(size)
            for others in combinations(rest, size - 1):
                group = (first, *others)
                tail = tuple(i for i in rest if i not in others)
                for g in rec(tail, tuple(remaining)):
                    yield (group, *g)

    yield from rec(tuple(range(n)), tuple(sizes))


def _canonical(g: Sequence[Sequence[int]]) -> Grouping:
    return tuple(sorted(tuple(sorted(x)) for x in g))


def random_groupings(n: int, sizes: Sequence[int], count: int, seed: int = 0) -> list[Grouping]:
    """`count` uniformly random groupings (seeded permutations cut at the sizes), as canonical tuples."""
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(sizes)[:-1]
    return [_canonical([p.tolist() for p in np.split(rng.permutation(n), cuts)]) for _ in range(count)]


def grouping_baseline(
    x_Nd: Any,
    fine_N: Any,
    coarse_of: Mapping[Hashable, Hashable],
    max_groupings: int = 2000,
    quantile: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Between-group fraction of the coarse grouping vs every (or a sample of) grouping of the
    fine values into groups of the same sizes.

    x_Nd: activations; fine_N: the fine label of every row; coarse_of: fine value -> coarse value.
    Returns the coarse and fine shares, the baseline's mean / max / quantile, the coarse level's
    rank among all groupings (1 = highest; ties count against it), the fraction of the other
    groupings it beats, and whether it is above the baseline.
    """
    x = to_numpy(x_Nd, np.float64)
    fine = np.asarray(fine_N)
    if x.ndim != 2 or fine.shape[0] != x.shape[0]:
        raise VsaeError(
            f"{x.shape[0] if x.ndim else 0} activation rows but {fine.shape[0]} labels; give one per row"
        )
    values, inv, counts = np.unique(fine, return_inverse=True, return_counts=True)
    missing = [v for v in values.tolist() if v not in coarse_of]
    if missing:
        raise VsaeError(f"fine values {missing[:5]} have no coarse value; map every fine value to its group")
    xc = x - x.mean(0)
    total = float((xc**2).sum())
    if total == 0:
        raise VsaeError("the activations have no variance; nothing to group")
    sums = np.zeros((values.size, x.shape[1]))
    np.add.at(sums, inv.ravel(), xc)

    def share(g: Grouping) -> float:
        return float(sum((sums[list(m)].sum(0) ** 2).sum() / counts[list(m)].sum() for m in g) / total)

    coarse_vals = [coarse_of[v] for v in values.tolist()]
    observed_g = _canonical(
        [[i for i, c in enumerate(coarse_vals) if c == cv] for cv in dict.fromkeys(coarse_vals)]
    )
    sizes = sorted(len(m) for m in observed_g)
    all_g: list[Grouping] = []
    exact = True
    for g in groupings_of_sizes(values.size, sizes):
        all_g.append(_canonical(g))
        if len(all_g) > max_groupings:
            exact = False
            break
    if not exact:
        all_g = random_groupings(values.size, sizes, max_groupings, seed)
    others = np.array([share(g) for g in all_g if g != observed_g])
    obs = share(observed_g)
    beats = float((others < obs).mean()) if others.size else float("nan")
    return {
        "coarse_share": obs,
        "fine_share": share(tuple((i,) for i in range(values.size))),
        "baseline_mean": float(others.mean()) if others.size else float("nan"),
        "baseline_max": float(others.max()) if others.size else float("nan"),
        "baseline_quantile": float(np.quantile(others, quantile)) if others.size else float("nan"),
        "quantile": quantile,
        "rank": int((others >= obs).sum()) + 1,
        "n_groupings": int(others.size) + 1,
        "exact": exact,
        "beats_fraction": beats,
        "above_baseline": bool(others.size and beats >= quantile),
        "group_sizes": sizes,
    }
